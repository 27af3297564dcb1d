//! The dashboard in a real browser: headless Chromium (Debian's) driven by
//! Playwright (`playwright-core` from npm), against `iotscope serve` on
//! loopback. What the pages draw is checked against what the API says;
//! screenshots go to `target/tmp/browser-shots/` as test artefacts.

mod common;

use common::{get_json, Server};
use serde_json::{json, Value};

const SUBNET: &str = "127.78.31.0/24";

#[test]
fn a_person_can_use_every_page() {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return common::skip("Debian's chromium is not installed (apt-get install chromium)");
    }
    let Some(playwright) = common::npm_install("playwright", "playwright-core@1") else {
        return;
    };
    let lab = common::RunningLab::start(SUBNET, 24, 9);
    let (cfg, db) = common::dashboard_store(&lab, SUBNET);
    // Honeypot sessions: a scanner and a failed login from ISP A's
    // addresses, a loader from ISP B's linked to the scanner.
    {
        use iotscope_store::{HoneypotSession, Store};
        let mut st = iotscope_store::SqliteStore::open(&db).unwrap();
        let t0 = 1_764_547_200_000_000_000i64;
        let scanner = HoneypotSession {
            sensor: "hp".into(),
            id: "00000000000a".into(),
            protocol: "telnet".into(),
            src_ip: "127.78.31.5".into(),
            dst_ip: "127.0.0.1".into(),
            dst_port: 2323,
            start_ns: t0,
            end_ns: t0 + 1,
            login: Some(("root".into(), "xc3511".into())),
            logins: vec![(t0, "root".into(), "xc3511".into(), true)],
            commands: vec![(t0, "/bin/busybox MIRAI".into(), false)],
            reason: "client".into(),
            ..Default::default()
        };
        let failed = HoneypotSession {
            id: "00000000000b".into(),
            src_ip: "127.78.31.6".into(),
            start_ns: t0 + 60_000_000_000,
            login: None,
            logins: vec![(t0, "admin".into(), "<b>x</b>".into(), false)],
            commands: Vec::new(),
            ..scanner.clone()
        };
        let loader = HoneypotSession {
            id: "00000000000c".into(),
            src_ip: "127.78.31.20".into(),
            start_ns: t0 + 120_000_000_000,
            downloads: vec![(
                "wget".into(),
                "http://11.0.9.7/bins/x.arm7".into(),
                Some("11.0.9.7".into()),
                Some(80),
            )],
            linked: Some(("00000000000a".into(), "127.78.31.5".into())),
            ..scanner.clone()
        };
        for s in [&scanner, &failed, &loader] {
            assert!(st.save_honeypot_session(s).unwrap());
        }
        // A detection episode (issue 20) whose example names ISP A's
        // address and another's: an ISP account sees its own only.
        let body = serde_json::json!({
            "key": "campaign:tcp/23", "kind": "infection_campaign", "severity": "high",
            "sources": 120, "new_sources": 90, "packets": 400,
            "classes": {"mirai_like": 0.9, "research_scanner": 0.0},
            "detectors": [{"detector": "coordinated_onset", "metric": "new_sources", "observed": 90.0,
                           "baseline": {"expected": 4.0, "scale": 2.0, "seasonal": false, "history": 30},
                           "score": 43.0, "parameters": {}}],
            "examples": [{"ip": "127.78.31.5", "class": "mirai_like", "packets": 9},
                         {"ip": "11.0.9.7", "class": "mirai_like", "packets": 7}],
            "cooldown_s": 21600,
        });
        let rec = iotscope_store::DetectionRecord {
            key: "campaign:tcp/23".into(),
            first_bucket_ns: 1_475_290_800_000_000_000,
            last_bucket_ns: 1_475_294_400_000_000_000,
            kind: "infection_campaign".into(),
            severity: "high".into(),
            proto: "tcp".into(),
            ports: "23,2323".into(),
            score: 43.0,
            peak_score: 43.0,
            body: body.to_string(),
            created_at: String::new(),
            updated_at: String::new(),
            notified_at: None,
        };
        st.merge_detections(&[rec], 6 * 3_600_000_000_000).unwrap();
    }
    let server = Server::start(&cfg, &db, &[]);
    let port = server.port;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["users", "token", "op", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let bearer = format!("Bearer {}", String::from_utf8_lossy(&out.stdout).trim());
    let api = |path: &str| get_json(port, path, &bearer);

    // What the pages should show, from the API.
    let o = api("/api/overview");
    let packets = o["packets"].as_u64().unwrap();
    let nonzero = o["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["packets"].as_u64().unwrap() > 0)
        .count();
    let series = api("/api/series?ports=23,2323");
    let findings = api("/api/findings?limit=1");
    let critical = api("/api/findings?limit=1&severity=critical");
    let alerts = api("/api/alerts?limit=1");
    let isp_a: Vec<String> = api("/api/alerts?limit=10000")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .filter(|ip| ip.starts_with("127.78.31.") && common::test_isp_of(ip) == "ISP A")
        .collect();
    // Data that arrives while the overview is open (as a sensor's commits
    // do): the page must show it without being reloaded.
    let live = lab.dir.path().join("live.pcap");
    let bin = env!("CARGO_BIN_EXE_iotscope");
    let gen = std::process::Command::new(bin)
        .args([
            "lab",
            "darknet",
            "--packets",
            "3000",
            "--seed",
            "6",
            "--duration",
            "1h",
            "--out",
        ])
        .arg(&live)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let darknet = ["--darknet", "198.18.0.0/16", "--darknet", "2001:db8:1::/48"];
    let alone = std::process::Command::new(bin)
        .args(["telescope", "analyze", "--format", "json"])
        .args(darknet)
        .arg(&live)
        .output()
        .unwrap();
    let added = serde_json::from_slice::<Value>(&alone.stdout).unwrap()["packets"]
        .as_u64()
        .unwrap();
    let thousands = |n: u64| {
        n.to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut ingest = vec![bin.to_string(), "telescope".into(), "analyze".into()];
    ingest.extend(darknet.iter().map(|s| s.to_string()));
    ingest.extend([
        "--db".to_string(),
        db.display().to_string(),
        live.display().to_string(),
    ]);
    let expect = json!({
        "live_ingest": ingest,
        "live_packets_text": thousands(packets + added),
        "packets_text": packets.to_string().as_bytes().rchunks(3).rev()
            .map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(","),
        "nonzero_classes": nonzero,
        "top_ports": o["top_ports"].as_array().unwrap().len(),
        "map_points": api("/api/map")["points"].as_array().unwrap().len(),
        "map_points_23": api("/api/map?port=23")["points"].as_array().unwrap().len(),
        "buckets": series["buckets"],
        "findings": findings["total"],
        "critical": critical["total"],
        "alerts": alerts["total"],
        "isp_a_alerts": isp_a.len(),
        "isp_a_ips": isp_a,
        "hp": api("/api/honeypot"),
        "det": api("/api/detections"),
    });
    assert_eq!(
        expect["det"]["detections"].as_array().unwrap().len(),
        1,
        "{}",
        expect["det"]
    );
    assert_eq!(expect["hp"]["sessions"], 3, "{}", expect["hp"]);
    assert!(expect["critical"].as_u64().unwrap() > 0, "{expect}");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/browser.mjs");
    let staged = playwright.join("browser.mjs");
    // Node resolves playwright-core from the script's folder.
    std::fs::copy(script, &staged).unwrap();
    let run = std::process::Command::new("node")
        .arg(&staged)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(expect.to_string())
        .arg(&shots)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "browser: {}{}",
        said,
        String::from_utf8_lossy(&run.stderr)
    );
    // The acknowledgement made in the browser is in the store, by the operator.
    let result: Value = serde_json::from_str(said.trim()).unwrap();
    let acked = &result["acked"];
    let list = api("/api/alerts?limit=10000&status=acknowledged");
    let a = list["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            // One alert per service: the acknowledged one is that port's.
            let port = a["port"]
                .as_u64()
                .map(|p| p.to_string())
                .unwrap_or_default();
            a["ip"] == acked["ip"]
                && a["problem"] == acked["problem"]
                && acked["port"] == port.as_str()
        })
        .unwrap_or_else(|| panic!("{acked} not acknowledged: {list}"));
    let last = a["history"].as_array().unwrap().last().unwrap();
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .contains("by op via the dashboard"),
        "{last}"
    );
    for shot in [
        "overview",
        "map",
        "series",
        "survey",
        "alerts",
        "honeypot",
        "detections",
        "isp-alerts",
        "check",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}
