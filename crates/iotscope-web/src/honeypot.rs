//! `GET /api/honeypot`: what the honeypots saw in a period, for the
//! dashboard's Honeypot page: sessions and logins per hour, the pairs
//! tried, the lines typed, the URLs and hosts asked for, and the scanner
//! and loader sessions linked by a pair. An ISP account sees only the
//! sessions from its own addresses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use iotscope_store::HoneypotSession;
use iotscope_telescope::time::rfc3339;
use serde_json::{json, Value};

use crate::api::{number, only, time};
use crate::auth::Caller;
use crate::{ApiError, App};

/// Rows of each top list.
const TOP: usize = 20;
/// Hour, in ns: the series' bucket.
const HOUR: i64 = 3_600_000_000_000;

/// Sums `sessions` (already filtered to what the caller may see) into the
/// page's figures; `limited` says the period held more sessions than read.
pub(crate) fn summarise(sessions: &[HoneypotSession], limited: bool) -> Value {
    let mut per_hour: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    let mut pairs: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    let mut lines: HashMap<&str, u64> = HashMap::new();
    // url -> (kind, host, count, first ns, last ns)
    let mut urls: HashMap<&str, (&str, Option<&str>, u64, i64, i64)> = HashMap::new();
    let mut sources: std::collections::HashSet<&str> = Default::default();
    let mut logins = 0u64;
    let mut links = Vec::new();
    for s in sessions {
        sources.insert(&s.src_ip);
        let e = per_hour
            .entry(s.start_ns.div_euclid(HOUR) * HOUR)
            .or_default();
        e.0 += 1;
        if s.login.is_some() {
            e.1 += 1;
            logins += 1;
        }
        for (_, u, p, ok) in &s.logins {
            let e = pairs.entry((u.as_str(), p.as_str())).or_default();
            e.0 += 1;
            e.1 += *ok as u64;
        }
        for (_, line, _) in &s.commands {
            *lines.entry(line.as_str()).or_default() += 1;
        }
        for (kind, url, host, _) in &s.downloads {
            let e = urls.entry(url.as_str()).or_insert((
                kind.as_str(),
                host.as_deref(),
                0,
                s.start_ns,
                s.start_ns,
            ));
            e.2 += 1;
            e.3 = e.3.min(s.start_ns);
            e.4 = e.4.max(s.start_ns);
        }
        if let Some((scanner, scanner_ip)) = &s.linked {
            links.push(json!({
                "scanner_session": scanner,
                "scanner_ip": scanner_ip,
                "loader_session": s.id,
                "loader_ip": s.src_ip,
                "sensor": s.sensor,
                "pair": s.login.as_ref().map(|(u, p)| format!("{u}:{p}")),
                "at": rfc3339(s.start_ns),
            }));
        }
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    let mut lines: Vec<_> = lines.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut urls: Vec<_> = urls.into_iter().collect();
    urls.sort_by(|a, b| b.1 .2.cmp(&a.1 .2).then(a.0.cmp(b.0)));
    links.reverse();
    links.truncate(50);
    json!({
        "sessions": sessions.len(),
        "logins": logins,
        "sources": sources.len(),
        "limited": limited,
        "series": per_hour.into_iter().map(|(t, (n, l))| json!({"start": rfc3339(t), "sessions": n, "logins": l})).collect::<Vec<_>>(),
        "credentials": pairs.iter().take(TOP).map(|((u, p), (n, ok))| json!({"username": u, "password": p, "attempts": n, "successes": ok})).collect::<Vec<_>>(),
        "commands": lines.iter().take(TOP).map(|(l, n)| json!({"input": l, "count": n})).collect::<Vec<_>>(),
        "downloads": urls.iter().take(50).map(|(u, (k, h, n, f, l))| json!({"url": u, "kind": k, "host": h, "count": n, "first_seen": rfc3339(*f), "last_seen": rfc3339(*l)})).collect::<Vec<_>>(),
        "links": links,
    })
}

/// `GET /api/honeypot?since=&until=&limit=`: [`summarise`] over the
/// sessions that started in the period (at most `limit`, default 10,000,
/// at most 100,000, the oldest first), that the caller may see.
pub(crate) async fn honeypot(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    only(&q, &["since", "until", "limit"])?;
    let (since, until) = (time(&q, "since")?, time(&q, "until")?);
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            return Err(ApiError::bad_request("since must be before until"));
        }
    }
    let limit = number(&q, "limit", 10_000, 100_000)?;
    let rows = app
        .store(move |st| st.honeypot_sessions(since, until, limit.saturating_add(1)))
        .await?;
    let limited = rows.len() > limit;
    let visible: Vec<HoneypotSession> = rows
        .into_iter()
        .take(limit)
        .filter(|s| caller.may_see(&app, &s.src_ip))
        .collect();
    Ok(Json(summarise(&visible, limited)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_scanner_and_its_loader() {
        let scanner = HoneypotSession {
            sensor: "hp".into(),
            id: "a".into(),
            src_ip: "198.51.100.1".into(),
            start_ns: 10 * HOUR + 5,
            login: Some(("root".into(), "xc3511".into())),
            logins: vec![
                (1, "admin".into(), "x".into(), false),
                (2, "root".into(), "xc3511".into(), true),
            ],
            commands: vec![
                (3, "enable".into(), false),
                (4, "/bin/busybox MIRAI".into(), false),
            ],
            ..Default::default()
        };
        let loader = HoneypotSession {
            id: "b".into(),
            src_ip: "198.51.100.2".into(),
            start_ns: 11 * HOUR,
            logins: vec![(5, "root".into(), "xc3511".into(), true)],
            commands: vec![(6, "enable".into(), false)],
            downloads: vec![(
                "wget".into(),
                "http://h/x".into(),
                Some("h".into()),
                Some(80),
            )],
            linked: Some(("a".into(), "198.51.100.1".into())),
            ..scanner.clone()
        };
        let v = summarise(&[scanner, loader], false);
        assert_eq!(v["sessions"], 2);
        assert_eq!(v["logins"], 2);
        assert_eq!(v["sources"], 2);
        assert_eq!(v["series"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["credentials"][0],
            json!({"username": "root", "password": "xc3511", "attempts": 2, "successes": 2})
        );
        assert_eq!(v["commands"][0], json!({"input": "enable", "count": 2}));
        assert_eq!(v["downloads"][0]["url"], "http://h/x");
        assert_eq!(v["links"][0]["scanner_ip"], "198.51.100.1");
        assert_eq!(v["links"][0]["loader_ip"], "198.51.100.2");
    }
}
