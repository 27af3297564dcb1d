//! The dashboard's API over a real store, through `iotscope serve` on
//! loopback: every endpoint, bad input (400 with a message, never 500),
//! authorisation (401 without credentials, 403 outside an ISP's own
//! addresses), CSRF, API tokens, the self-check page and its rate limit.

mod common;

use std::collections::BTreeSet;

use common::{http, test_isp_of, HttpReply, Server};
use serde_json::{json, Value};

const SUBNET: &str = "127.78.28.0/24";

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    http(None, port, "GET", path, headers, None)
}

fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &Value) -> HttpReply {
    let mut h = headers.to_vec();
    h.push(("Content-Type", "application/json"));
    http(None, port, "POST", path, &h, Some(&body.to_string()))
}

/// Logs in; returns (cookie header value, csrf token).
/// Owned headers as the client takes them.
fn hdr<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn login(port: u16, name: &str) -> (String, String) {
    let r = post(
        port,
        "/api/login",
        &[],
        &json!({"name": name, "password": format!("password-{name}")}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let set = r.header("set-cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain-HTTP loopback: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    (cookie, r.json()["csrf"].as_str().unwrap().to_string())
}

#[test]
fn the_api_answers_checks_and_keeps_each_isp_to_its_own() {
    let lab = common::RunningLab::start(SUBNET, 24, 7);
    let (cfg, db) = common::dashboard_store(&lab, SUBNET);
    let server = Server::start(&cfg, &db, &["--check-per-minute", "5"]);
    let port = server.port;

    // Public: the overview, series, map, pages, OpenAPI.
    let o = get(port, "/api/overview", &[]);
    assert_eq!(o.status, 200, "{}", o.body);
    let o = o.json();
    assert!(o["packets"].as_u64().unwrap() > 19_000, "{o}");
    let class_sum: u64 = o["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["packets"].as_u64().unwrap())
        .sum();
    // Malformed frames count as packets but belong to no class.
    assert_eq!(
        class_sum + o["malformed"].as_u64().unwrap(),
        o["packets"].as_u64().unwrap()
    );
    assert_eq!(o["classes"].as_array().unwrap().len(), 11);
    let countries: BTreeSet<&str> = o["top_countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["country"].as_str().unwrap())
        .collect();
    assert!(countries.contains("JP") && countries.contains("BR"), "{o}");
    let s = get(port, "/api/series?ports=23,tcp/2323,udp/53", &[]).json();
    assert_eq!(s["series"].as_array().unwrap().len(), 3);
    let buckets = s["buckets"].as_u64().unwrap() as usize;
    assert!(buckets >= 47, "two days of hours: {buckets}");
    for line in s["series"].as_array().unwrap() {
        assert_eq!(line["packets"].as_array().unwrap().len(), buckets);
        assert_eq!(line["sources"].as_array().unwrap().len(), buckets);
    }
    let port23: u64 = s["series"][0]["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let overview_23 = o["top_ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 23 && p["proto"] == "tcp")
        .unwrap()["packets"]
        .as_u64()
        .unwrap();
    assert_eq!(port23, overview_23, "the series adds up to the overview");
    // A preset: the last day of data, counted back from the newest bucket.
    let day = get(port, "/api/overview?period=24h", &[]).json();
    let day_packets = day["packets"].as_u64().unwrap();
    assert!(
        day_packets > 0 && day_packets < o["packets"].as_u64().unwrap(),
        "{day}"
    );
    let day_series = get(port, "/api/series?period=24h&ports=23", &[]).json();
    assert!(
        day_series["buckets"].as_u64().unwrap() <= 24,
        "{day_series}"
    );
    let m = get(port, "/api/map?limit=100000", &[]).json();
    assert!(m["geo"].as_bool().unwrap());
    let all = m["points"].as_array().unwrap().len();
    assert!(all > 1000, "{all}");
    assert!(
        !m.to_string().contains("\"ip\""),
        "the public map holds no addresses"
    );
    let m23 = get(port, "/api/map?port=23&limit=100000", &[]).json();
    let on23 = m23["points"].as_array().unwrap().len();
    assert!(on23 > 0 && on23 < all, "{on23} of {all}");
    for page in [
        "/",
        "/app.js",
        "/app.css",
        "/world.json",
        "/api/openapi.json",
    ] {
        let r = get(port, page, &[]);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.header("etag").is_some(), "{page}");
    }
    let doc = get(port, "/api/openapi.json", &[]).json();
    for path in [
        "/api/overview",
        "/api/series",
        "/api/map",
        "/api/check",
        "/api/findings",
        "/api/devices/{ip}",
        "/api/alerts",
        "/api/alerts/status",
        "/api/login",
        "/api/logout",
        "/api/me",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} not in the OpenAPI document"
        );
    }

    // Bad input: 400 with a message naming the parameter, never a 500.
    for (path, says) in [
        ("/api/overview?since=yesterday", "since"),
        ("/api/overview?until=2016-13-45T00:00:00Z", "until"),
        (
            "/api/overview?since=2016-10-03T00:00:00Z&until=2016-10-01T00:00:00Z",
            "before",
        ),
        ("/api/overview?top=-1", "top"),
        ("/api/overview?color=red", "color"),
        ("/api/series?ports=99999", "99999"),
        ("/api/series?ports=sctp/9", "sctp"),
        ("/api/series?ports=", "ports"),
        (
            "/api/series?ports=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
            "ports",
        ),
        ("/api/map?limit=lots", "limit"),
        ("/api/map?port=http", "http"),
        ("/api/check?ip=127.78.28.5", "address"),
        ("/api/overview?period=week", "period"),
        ("/api/map?period=7d&since=2016-10-01T00:00:00Z", "not both"),
    ] {
        let r = get(port, path, &[]);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(says),
            "{path}: {}",
            r.body
        );
    }
    let r = post(port, "/api/login", &[], &json!({"user": "x"}));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http(
        None,
        port,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        Some("{not json"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = get(port, "/api/nothing-here", &[]);
    assert_eq!(r.status, 404);

    // No credentials: 401 everywhere but the public endpoints.
    for path in [
        "/api/findings",
        "/api/alerts",
        "/api/devices/127.78.28.1",
        "/api/me",
        "/metrics",
    ] {
        let r = get(port, path, &[]);
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    for path in ["/api/alerts/status", "/api/logout"] {
        assert_eq!(post(port, path, &[], &json!({})).status, 401, "{path}");
    }
    let r = post(
        port,
        "/api/login",
        &[],
        &json!({"name": "op", "password": "wrong"}),
    );
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = get(
        port,
        "/api/findings",
        &[("Cookie", "iotscope_session=forged")],
    );
    assert_eq!(r.status, 401);

    // The operator sees everything.
    let (op, op_csrf) = login(port, "op");
    let auth = |c: &str| vec![("Cookie", c.to_string())];
    let op_h = auth(&op);
    let all_alerts = get(port, "/api/alerts?limit=10000", &hdr(&op_h)).json();
    let total = all_alerts["total"].as_u64().unwrap();
    let lab_alerts: Vec<&Value> = all_alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["ip"].as_str().unwrap().starts_with("127.78.28."))
        .collect();
    assert!(!lab_alerts.is_empty());
    assert!(
        total as usize > lab_alerts.len(),
        "infected hosts from the telescope too"
    );
    let all_findings = get(port, "/api/findings?limit=10000", &hdr(&op_h)).json();
    assert!(all_findings["total"].as_u64().unwrap() > 0);
    for f in all_findings["findings"].as_array().unwrap() {
        assert_eq!(f["isp"], test_isp_of(f["ip"].as_str().unwrap()), "{f}");
    }
    let crit = get(port, "/api/findings?severity=critical", &hdr(&op_h)).json();
    assert!(crit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] == "critical"));
    assert_eq!(
        get(port, "/api/findings?severity=urgent", &hdr(&op_h)).status,
        400
    );
    assert_eq!(
        get(port, "/api/alerts?status=open", &hdr(&op_h)).status,
        400
    );
    assert_eq!(get(port, "/api/devices/not-an-ip", &hdr(&op_h)).status, 400);
    assert_eq!(
        get(port, "/api/devices/127.78.29.1", &hdr(&op_h)).status,
        404
    );
    let some_ip = lab_alerts[0]["ip"].as_str().unwrap().to_string();
    let dev = get(port, &format!("/api/devices/{some_ip}"), &hdr(&op_h));
    assert_eq!(dev.status, 200, "{}", dev.body);
    let dev = dev.json();
    assert!(!dev["services"].as_array().unwrap().is_empty(), "{dev}");
    assert!(!dev["alerts"].as_array().unwrap().is_empty(), "{dev}");
    let metrics = get(port, "/metrics", &hdr(&op_h));
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("iotscope_http_requests_total{route=\"/api/overview\",status=\"200\"}"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("status=\"401\""));

    // CSRF: a cookie alone cannot change anything.
    let target = lab_alerts
        .iter()
        .find(|a| test_isp_of(a["ip"].as_str().unwrap()) == "ISP A")
        .expect("an alert of ISP A");
    let change = json!({"ip": target["ip"], "problem": target["problem"], "status": "acknowledged", "note": "seen"});
    let r = post(port, "/api/alerts/status", &hdr(&op_h), &change);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"));
    let mut with_csrf = op_h.clone();
    with_csrf.push(("X-CSRF-Token", "0".repeat(64)));
    assert_eq!(
        post(port, "/api/alerts/status", &hdr(&with_csrf), &change).status,
        403
    );

    // ISP A: only its own addresses, by the longest prefix.
    let (a_cookie, a_csrf) = login(port, "ispa");
    let mut a_h = auth(&a_cookie);
    let a_alerts = get(port, "/api/alerts?limit=10000", &hdr(&a_h)).json();
    let a_list = a_alerts["alerts"].as_array().unwrap();
    assert!(!a_list.is_empty());
    for a in a_list {
        assert_eq!(test_isp_of(a["ip"].as_str().unwrap()), "ISP A", "{a}");
    }
    let a_findings = get(port, "/api/findings?limit=10000", &hdr(&a_h)).json();
    for f in a_findings["findings"].as_array().unwrap() {
        assert_eq!(test_isp_of(f["ip"].as_str().unwrap()), "ISP A", "{f}");
    }
    // Filters cannot widen what an ISP sees.
    let b_via_filter = get(port, "/api/findings?isp=ISP%20B", &hdr(&a_h)).json();
    assert_eq!(b_via_filter["total"], 0);
    let b_ip = lab_alerts
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .find(|ip| test_isp_of(ip) == "ISP B")
        .expect("an alert of ISP B");
    let r = get(port, &format!("/api/devices/{b_ip}"), &hdr(&a_h));
    assert_eq!(r.status, 403, "{}", r.body);
    a_h.push(("X-CSRF-Token", a_csrf.clone()));
    let b_alert = lab_alerts.iter().find(|a| a["ip"] == b_ip).unwrap();
    let r = post(
        port,
        "/api/alerts/status",
        &hdr(&a_h),
        &json!({"ip": b_ip, "problem": b_alert["problem"], "status": "acknowledged"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // An ISP may acknowledge its own, not mark it fixed.
    let mut fixed = change.clone();
    fixed["status"] = "fixed".into();
    assert_eq!(
        post(port, "/api/alerts/status", &hdr(&a_h), &fixed).status,
        403
    );
    let mut bogus = change.clone();
    bogus["status"] = "deleted".into();
    assert_eq!(
        post(port, "/api/alerts/status", &hdr(&a_h), &bogus).status,
        400
    );
    let r = post(port, "/api/alerts/status", &hdr(&a_h), &change);
    assert_eq!(r.status, 200, "{}", r.body);
    let mut missing = change.clone();
    missing["problem"] = "no_such_problem".into();
    assert_eq!(
        post(port, "/api/alerts/status", &hdr(&a_h), &missing).status,
        404
    );
    let after = get(
        port,
        "/api/alerts?limit=10000&status=acknowledged",
        &hdr(&op_h),
    )
    .json();
    let acked = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ip"] == target["ip"] && a["problem"] == target["problem"])
        .expect("acknowledged");
    let last = acked["history"].as_array().unwrap().last().unwrap();
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .contains("by ispa via the dashboard: seen"),
        "{last}"
    );

    // ISP B with an API token (no cookie, no CSRF token needed).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["users", "token", "ispb", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bearer = format!("Bearer {token}");
    let b_alerts = get(
        port,
        "/api/alerts?limit=10000",
        &[("Authorization", &bearer)],
    )
    .json();
    let b_list = b_alerts["alerts"].as_array().unwrap();
    assert!(!b_list.is_empty());
    for a in b_list {
        assert_eq!(test_isp_of(a["ip"].as_str().unwrap()), "ISP B", "{a}");
    }
    let r = post(
        port,
        "/api/alerts/status",
        &[("Authorization", &bearer)],
        &json!({"ip": b_ip, "problem": b_alert["problem"], "status": "acknowledged"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        a_list.len() + b_list.len(),
        lab_alerts.len(),
        "the two ISPs split the lab"
    );
    assert_eq!(
        get(port, "/api/me", &[("Authorization", "Bearer nope")]).status,
        401
    );

    // Log out: the cookie stops working.
    let mut op_csrf_h = op_h.clone();
    op_csrf_h.push(("X-CSRF-Token", op_csrf));
    assert_eq!(
        post(port, "/api/logout", &hdr(&op_csrf_h), &json!({})).status,
        200
    );
    assert_eq!(get(port, "/api/me", &hdr(&op_h)).status, 401);

    // The self-check: only about the connecting address; rate limited.
    let owner: std::net::Ipv4Addr = some_ip.parse().unwrap();
    let mine = http(Some(owner), port, "GET", "/api/check", &[], None);
    assert_eq!(mine.status, 200, "{}", mine.body);
    let mine = mine.json();
    assert_eq!(mine["ip"], some_ip.as_str());
    assert!(mine["open_alerts"].as_u64().unwrap() > 0, "{mine}");
    assert!(!mine["alerts"][0]["todo"].as_array().unwrap().is_empty());
    let page = http(Some(owner), port, "GET", "/check?lang=ja", &[], None);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'self'")));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.body.contains("件の問題") && page.body.contains(&some_ip),
        "{}",
        page.body
    );
    let page = http(
        Some(owner),
        port,
        "GET",
        "/check",
        &[("Accept-Language", "en-US,en")],
        None,
    );
    assert!(page.body.contains("problem(s) were found"), "{}", page.body);
    let clean: std::net::Ipv4Addr = "127.78.30.9".parse().unwrap();
    let r = http(Some(clean), port, "GET", "/api/check", &[], None).json();
    assert_eq!(r["open_alerts"], 0, "{r}");
    // Five a minute per address in this server: the owner has used three.
    let fourth = http(Some(owner), port, "GET", "/api/check", &[], None);
    assert_eq!(fourth.status, 200);
    let fifth = http(Some(owner), port, "GET", "/check", &[], None);
    assert_eq!(fifth.status, 200);
    let sixth = http(Some(owner), port, "GET", "/api/check", &[], None);
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    assert!(sixth.header("retry-after").is_some());
    // Another address is not held back by it.
    assert_eq!(
        http(Some(clean), port, "GET", "/api/check", &[], None).status,
        200
    );
}

/// A store a live sensor writes to: its capture counters (with an
/// interface name that needs escaping) are in the overview and in
/// `/metrics`, and `/api/version` changes when a commit lands.
#[test]
fn a_sensors_capture_and_its_drops_are_in_the_overview_and_the_metrics() {
    use iotscope_store::{now_rfc3339, CaptureLoss, IngestedFile, SqliteStore, Store};
    use iotscope_telescope::{Telescope, TelescopeConfig};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let cfg = dir.path().join("s.toml");
    std::fs::write(&cfg, "").unwrap();
    let hour = 3_600_000_000_000i64;
    let commit = |st: &mut SqliteStore, n: u64, dropped: u64| {
        let mut t = Telescope::new(TelescopeConfig {
            bucket_ns: hour,
            detail: true,
            ..Default::default()
        });
        t.finish();
        st.save_run(
            &t,
            &[IngestedFile {
                content_hash: format!("sensor:test:{n}"),
                path: "interface eth\"0".into(),
                frames: 0,
                status: "complete".into(),
                ingested_at: now_rfc3339(),
                implausible_time: 0,
                capture_loss: Some(CaptureLoss {
                    interface: "eth\"0".into(),
                    bucket_start_ns: 472_222 * hour + n as i64 * hour,
                    received: 100,
                    dropped,
                    if_dropped: 1,
                }),
            }],
        )
        .unwrap();
    };
    let mut st = SqliteStore::open(&db).unwrap();
    commit(&mut st, 0, 7);
    common::add_user(&cfg, &db, "op", "operator", None);
    let server = Server::start(&cfg, &db, &[]);
    let port = server.port;
    let version = |port| get(port, "/api/version", &[]).json()["version"].clone();
    let before = version(port);

    let o = get(port, "/api/overview", &[]).json();
    assert_eq!(o["capture_loss"]["received"], 100, "{o}");
    assert_eq!(o["capture_loss"]["dropped"], 7);
    assert_eq!(o["capture_loss"]["lossy_buckets"][0]["interface"], "eth\"0");

    commit(&mut st, 1, 0);
    assert_ne!(version(port), before, "a commit changes the version");
    let (cookie, _) = login(port, "op");
    let m = get(port, "/metrics", &[("cookie", cookie.as_str())]);
    assert_eq!(m.status, 200);
    for line in [
        "iotscope_sensor_received_total{interface=\"eth\\\"0\"} 200",
        "iotscope_sensor_dropped_total{interface=\"eth\\\"0\"} 7",
        "iotscope_sensor_if_dropped_total{interface=\"eth\\\"0\"} 2",
        &format!(
            "iotscope_sensor_last_bucket_seconds{{interface=\"eth\\\"0\"}} {}",
            472_223 * 3600
        ),
    ] {
        assert!(m.body.contains(line), "{line} in {}", m.body);
    }
    // The series marks it too (a bucket with no counts, only drops).
    let series = get(port, "/api/series?ports=23", &[]).json();
    assert_eq!(series["dropped"], json!([8, 1]), "{series}");
    assert_eq!(series["first"], "2023-11-14T22:00:00Z");
    // The report marks the lossy bucket in every format.
    let report = |format: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_iotscope"))
            .args(["telescope", "report", "--format", format, "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        report("csv").contains("bucket_dropped,,,,2023-11-14T22:00:00Z,8,"),
        "{}",
        report("csv")
    );
    assert!(report("table").contains("[8 frames dropped by the capture: a lower bound]"));
    // A store no sensor wrote to has no such section.
    let o = get(port, "/api/overview?since=2000-01-01&until=2000-01-02", &[]).json();
    assert!(o["capture_loss"].is_null(), "{o}");
}
