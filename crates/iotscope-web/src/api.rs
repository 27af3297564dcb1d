//! The JSON API. Every parameter is checked here and a bad one is a 400
//! that names it; nothing a client sends can make a 500.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use iotscope_store::{MapQuery, ReportQuery};
use iotscope_telescope::{parse_port, port_of, PortIndex, Summary};
use iotscope_wire::ALL_CLASSES;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::{ApiError, App};

type Params = Query<HashMap<String, String>>;

/// Parameters a route knows; any other is an error (a typo should not
/// silently widen a query).
pub(crate) fn only(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown parameter {k:?}; this endpoint takes: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `since` / `until`: RFC 3339 times.
pub(crate) fn time(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = q.get(name).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // The telescope's parser, as the command line's: offsets and dates
    // too, and nothing past 2262, where nanoseconds in an i64 would wrap
    // around to a negative time and select everything.
    let ns = iotscope_telescope::time::parse_rfc3339(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name}={text:?}: expected an RFC 3339 time such as 2016-10-01T00:00:00Z, \
             from 1970-01-01 to 2262-04-11"
        ))
    })?;
    Ok(Some(ns))
}

pub(crate) fn number(
    q: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{name}={t:?}: expected a whole number from 0 to {max}"
            ))),
        },
    }
}

/// "23", "tcp/23", "23/tcp", "udp/53".
fn port(text: &str) -> Result<PortIndex, ApiError> {
    let t = text.trim();
    let parsed = if t.chars().all(|c| c.is_ascii_digit()) {
        t.parse::<u16>().ok().map(u32::from)
    } else {
        parse_port(t)
    };
    parsed.ok_or_else(|| {
        ApiError::bad_request(format!(
            "port {t:?}: expected a number (TCP) or tcp/N, udp/N"
        ))
    })
}

fn port_name(index: PortIndex) -> String {
    let (proto, n) = port_of(index);
    format!("{proto}/{n}")
}

/// The preset periods: the last day, week, month and year of data
/// (counted back from the newest bucket), or all of it.
pub(crate) const PRESETS: &[(&str, i64)] = &[
    ("all", 0),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
    ("365d", 365 * 86_400),
];

/// The period asked: `period=` a preset, or `since` / `until` (RFC 3339).
async fn period(
    app: &Arc<App>,
    q: &HashMap<String, String>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let (since, until) = (time(q, "since")?, time(q, "until")?);
    if let Some(p) = q.get("period").filter(|p| !p.is_empty()) {
        if since.is_some() || until.is_some() {
            return Err(ApiError::bad_request(
                "give period or since/until, not both",
            ));
        }
        let Some(&(_, seconds)) = PRESETS.iter().find(|(name, _)| name == p) else {
            return Err(ApiError::bad_request(format!(
                "period={p:?}: expected one of {}",
                PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
            )));
        };
        if seconds == 0 {
            return Ok((None, None));
        }
        // Back from the end of the newest bucket, so a preset names the same
        // buckets until new data arrives (and its answer stays cached). Said
        // as the buckets it selects: no end (none starts after the newest),
        // and no start when the period reaches past the oldest bucket, so
        // presets that select the same buckets (a store younger than a week
        // has "7d" = "30d" = "all") share one answer and one computation.
        let span = app
            .store(|s| Ok((s.oldest_bucket_start()?, s.newest_bucket_end()?)))
            .await?;
        return Ok(match span {
            (Some(first), Some(end)) => {
                let since = end.saturating_sub(seconds.saturating_mul(1_000_000_000));
                ((since > first).then_some(since), None)
            }
            _ => (None, None),
        });
    }
    if let (Some(a), Some(b)) = (since, until) {
        if a >= b {
            return Err(ApiError::bad_request("since must be before until"));
        }
    }
    if since.is_none() && until.is_none() {
        return Ok((None, None));
    }
    // The store selects buckets that start in [since, until): moving both
    // up to the next bucket start selects exactly the same buckets, and
    // makes every time inside one bucket the same cache key (a sweep of
    // distinct seconds is one answer, not thousands).
    let bucket = app.store(|s| s.bucket_ns()).await?;
    Ok(match bucket {
        Some(b) if b > 0 => (
            since.map(|t| bucket_ceil(t, b)),
            until.map(|t| bucket_ceil(t, b)),
        ),
        _ => (since, until),
    })
}

/// `t` moved up to the next multiple of `bucket` (itself when it is one);
/// `t` when that would pass `i64::MAX`.
fn bucket_ceil(t: i64, bucket: i64) -> i64 {
    match t.rem_euclid(bucket) {
        0 => t,
        r => t.checked_add(bucket - r).unwrap_or(t),
    }
}

/// `GET /api/version`: an opaque token that changes whenever telescope data
/// is added (a capture analysed, a sensor's commit), so a page can poll it
/// and reload its data only then.
pub(crate) async fn version(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    use std::hash::{Hash, Hasher};
    let v = app.store(|st| st.version()).await?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    Ok(Json(json!({ "version": format!("{:016x}", h.finish()) })))
}

/// `GET /api/overview`: totals, classes, top ports, countries and AS.
pub(crate) async fn overview(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    only(&q, &["period", "since", "until", "top"])?;
    let (since_ns, until_ns) = period(&app, &q).await?;
    let top = number(&q, "top", 10, 1000)?;
    let key = format!("overview {since_ns:?} {until_ns:?} {top}");
    app.cached(key, compute_overview(app.clone(), since_ns, until_ns, top))
        .await
}

async fn compute_overview(
    app: Arc<App>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    top: usize,
) -> Result<Value, ApiError> {
    let enrich = app.asn.is_some() || app.geo.is_some();
    let query = ReportQuery {
        since_ns,
        until_ns,
        ports: Vec::new(),
        // The country and AS rows need every source.
        top: if enrich { usize::MAX } else { 1 },
        // The overview shows no series: hold no per-bucket port rows.
        series_top: Some(0),
        // Figures over the whole period are alike in every tier: read the
        // fewest rows (whole days from the daily rollups).
        tier: iotscope_store::TierChoice::Coarsest,
    };
    let (s, bucket_ns): (Summary, Option<i64>) = app
        .store(move |st| Ok((st.report(&query)?, st.bucket_ns()?)))
        .await?;
    let classes: Vec<Value> = ALL_CLASSES
        .iter()
        .map(|c| {
            let n = &s.classes.0[c.index()];
            json!({"class": c.name(), "packets": n.packets, "sources": n.sources})
        })
        .collect();
    let infected: std::collections::HashSet<&str> =
        s.infected.iter().map(|i| i.ip.as_str()).collect();
    let sources: Vec<iotscope_enrich::SourceCount> = s
        .top_sources
        .iter()
        .filter_map(|t| {
            Some((
                t.ip.parse().ok()?,
                t.packets,
                infected.contains(t.ip.as_str()),
            ))
        })
        .collect();
    let countries: Vec<Value> = app
        .geo
        .as_ref()
        .map(|g| g.count_by_country(sources.iter().copied()))
        .unwrap_or_default()
        .into_iter()
        .take(top)
        .map(|(c, n)| json!({"country": c, "sources": n.sources, "packets": n.packets, "infected": n.infected}))
        .collect();
    let ases: Vec<Value> = app
        .asn
        .as_ref()
        .map(|t| t.count_by_as(sources.iter().copied()))
        .unwrap_or_default()
        .into_iter()
        .take(top)
        .map(|((asn, org), n)| json!({"asn": asn, "org": org, "sources": n.sources, "packets": n.packets, "infected": n.infected}))
        .collect();
    Ok(json!({
        "since": s.first_ts,
        "until": s.last_ts,
        "packets": s.packets,
        "malformed": s.malformed,
        "outside": s.outside,
        "bytes": s.bytes,
        "sources": s.sources,
        // The store's bucket length, whichever tier the figures came from.
        "bucket_seconds": bucket_ns.map_or(s.bucket_seconds, |b| b as f64 / 1e9),
        // The tier read: the coarsest that answers the period exactly.
        "tier": s.tier,
        "classes": classes,
        "top_ports": s.ports.iter().take(top).collect::<Vec<_>>(),
        "fingerprints": s.fingerprints,
        "infected": s.infected.len(),
        "top_countries": countries,
        "top_as": ases,
        "enrichment": {"asn": app.asn.is_some(), "geo": app.geo.is_some()},
        // Only for a store a live sensor writes to: what its capture passed
        // and dropped over the period, and the buckets with drops.
        "capture_loss": s.capture_loss,
    }))
}

/// Buckets where a series jumps: at least 10 packets and more than three
/// times the median of the (up to) 24 buckets before, with at least 3 of them.
pub(crate) fn surges(values: &[u64]) -> Vec<usize> {
    let mut out = Vec::new();
    for i in 3..values.len() {
        let mut before: Vec<u64> = values[i.saturating_sub(24)..i].to_vec();
        before.sort_unstable();
        let median = before[before.len() / 2];
        if values[i] >= 10 && values[i] > 3 * median {
            out.push(i);
        }
    }
    out
}

/// A map source's scanner class (issue 20's rules, over the period shown).
fn scanner_class(app: &App, r: &iotscope_store::MapSource) -> iotscope_detect::ScannerClass {
    let Ok(ip) = r.ip.parse::<std::net::IpAddr>() else {
        return iotscope_detect::ScannerClass::Unknown;
    };
    let c = iotscope_telescope::aggregate::SourceCounters {
        packets: r.packets,
        syn: r.syn,
        mirai: r.fingerprints[0],
        zmap: r.fingerprints[1],
        masscan: r.fingerprints[2],
        backscatter: r.fingerprints[3],
        ..Default::default()
    };
    iotscope_detect::classify(iotscope_wire::Addr::from(ip), &c, &app.research)
}

/// Most points per line `/api/series` returns.
pub(crate) const MAX_SERIES_POINTS: usize = 10_000;

/// `GET /api/series?ports=23,2323`: packets and unique sources per port per
/// bucket, with surges marked; at most [`MAX_SERIES_POINTS`] buckets per
/// port (longer ranges merge store buckets).
pub(crate) async fn series(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    only(&q, &["period", "since", "until", "ports"])?;
    let (since_ns, until_ns) = period(&app, &q).await?;
    let text = q.get("ports").map(String::as_str).unwrap_or("23,2323");
    let mut ports = Vec::new();
    for p in text.split(',').filter(|p| !p.trim().is_empty()) {
        let idx = port(p)?;
        if !ports.contains(&idx) {
            ports.push(idx);
        }
    }
    if ports.is_empty() || ports.len() > 16 {
        return Err(ApiError::bad_request(format!(
            "ports={text:?}: give 1 to 16 ports"
        )));
    }
    let asked: Vec<(String, u16)> = ports
        .iter()
        .map(|&p| {
            let (proto, n) = port_of(p);
            (proto.to_string(), n)
        })
        .collect();
    let (s, bucket_ns, tier, loss, episodes) = app
        .store(move |st| {
            // The finest tier that draws the period in at most
            // MAX_SERIES_POINTS exact points (a year of minutes: the hourly
            // rollups), its period widened to whole periods of that tier.
            let cov = st.coverage()?;
            let (tier, lo, hi) = cov
                .series_tier(
                    since_ns,
                    until_ns,
                    st.newest_bucket_end()?,
                    MAX_SERIES_POINTS as u64,
                )
                .unwrap_or((iotscope_store::Tier::Bucket, since_ns, until_ns));
            Ok((
                st.tier_series(tier, lo, hi, &asked)?,
                st.bucket_ns()?
                    .map(|b| tier.length_ns(b))
                    .or((tier != iotscope_store::Tier::Bucket).then(|| tier.length_ns(0))),
                tier,
                st.capture_loss(lo, hi)?,
                st.detections(lo, hi, 1000)?,
            ))
        })
        .await?;
    // Dense arrays from the first to the last bucket with data (a bucket
    // with nothing is 0): the client places bucket i at first + i * step.
    // At most MAX_SERIES_POINTS points: a longer range is drawn with
    // coarser buckets (a whole number of store buckets each, as Grafana's
    // and NICTERWEB's graphs do), packets summed and unique sources the
    // largest of the merged buckets (a lower bound: sources of different
    // buckets may differ).
    let store_step = bucket_ns.unwrap_or(3_600_000_000_000).max(1);
    // Buckets in which a live capture dropped frames count too: one whose
    // frames were all dropped is drawn (empty, marked), not left out (at
    // the start of the tier's period holding it).
    let lossy: Vec<(i64, u64)> = loss
        .iter()
        .filter(|l| l.dropped > 0 || l.if_dropped > 0)
        .map(|l| {
            (
                l.bucket_start_ns.div_euclid(store_step) * store_step,
                l.dropped.saturating_add(l.if_dropped),
            )
        })
        .collect();
    let lo = s.starts.iter().chain(lossy.iter().map(|l| &l.0)).min();
    let hi = s.starts.iter().chain(lossy.iter().map(|l| &l.0)).max();
    let span = match (lo, hi) {
        (Some(&a), Some(&b)) => Some((a, ((b - a) / store_step) as u64 + 1)),
        _ => None,
    };
    let merge = span.map_or(1, |(_, n)| n.div_ceil(MAX_SERIES_POINTS as u64).max(1));
    let step = store_step.saturating_mul(merge as i64);
    let (first, count) = match span {
        Some((a, n)) => (Some(a), n.div_ceil(merge) as usize),
        None => (None, 0),
    };
    let lines: Vec<Value> = ports
        .iter()
        .zip(&s.lines)
        .map(|(&p, (packets, sources))| {
            let mut dense = (vec![0u64; count], vec![0u64; count]);
            for (k, &start) in s.starts.iter().enumerate() {
                let i = ((start - first.unwrap_or(0)) / step) as usize;
                dense.0[i] += packets[k];
                dense.1[i] = dense.1[i].max(sources[k]);
            }
            // Detection episodes on this port: where each starts (its
            // first bucket inside the drawn range), with what they are.
            let (proto, number) = port_of(p);
            let marks: Vec<Value> = episodes
                .iter()
                .filter(|e| e.proto == proto && e.ports.split(',').any(|x| x == number.to_string()))
                .filter_map(|e| {
                    // Only episodes that start inside the drawn range.
                    let a = first?;
                    if e.first_bucket_ns < a {
                        return None;
                    }
                    let i = (e.first_bucket_ns - a) / step;
                    ((i as usize) < count).then(|| {
                        json!({
                            "index": i,
                            "key": e.key,
                            "kind": e.kind,
                            "severity": e.severity,
                            "first_bucket": iotscope_telescope::time::rfc3339(e.first_bucket_ns),
                            "last_bucket": iotscope_telescope::time::rfc3339(e.last_bucket_ns),
                        })
                    })
                })
                .collect();
            json!({
                "port": port_name(p),
                "surges": surges(&dense.0),
                "detections": marks,
                "packets": dense.0,
                "sources": dense.1,
            })
        })
        .collect();
    let mut answer = json!({
        "bucket_seconds": step as f64 / 1e9,
        "store_bucket_seconds": store_step as f64 / 1e9,
        // The store's tier the points come from: its buckets, or their
        // hourly or daily rollups (exact unique sources per period).
        "tier": tier.name(),
        "sources_merged_by": if merge > 1 { "max" } else { "none" },
        "first": first.map(iotscope_telescope::time::rfc3339),
        "buckets": count,
        "series": lines,
    });
    // Only for a store a live sensor writes to: frames its capture dropped
    // per bucket (those buckets' figures are a lower bound).
    if !lossy.is_empty() {
        let mut dropped = vec![0u64; count];
        for (start, n) in &lossy {
            let i = ((start - first.unwrap_or(0)) / step) as usize;
            dropped[i] = dropped[i].saturating_add(*n);
        }
        answer["dropped"] = json!(dropped);
    }
    Ok(Json(answer))
}

/// `GET /api/map`: located sources (no addresses: the map is public), by
/// class, with packets and first/last times for the replay.
pub(crate) async fn map(
    State(app): State<Arc<App>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    only(&q, &["period", "since", "until", "port", "limit"])?;
    let (since_ns, until_ns) = period(&app, &q).await?;
    let port = match q.get("port").filter(|p| !p.is_empty()) {
        Some(p) => {
            let (proto, n) = port_of(port(p)?);
            Some((proto.to_string(), n))
        }
        None => None,
    };
    let limit = number(&q, "limit", 5000, 100_000)?;
    let query = MapQuery {
        since_ns,
        until_ns,
        port,
        limit,
    };
    let key = format!("map {query:?}");
    app.cached(key, compute_map(app.clone(), query)).await
}

async fn compute_map(app: Arc<App>, query: MapQuery) -> Result<Value, ApiError> {
    let rows = app.store(move |st| st.map_sources(&query)).await?;
    let mut points = Vec::new();
    let mut unlocated = 0u64;
    for r in &rows {
        let geo = app.geo.as_ref().and_then(|g| g.lookup(r.ip.parse().ok()?));
        let Some((lat, lon, country)) =
            geo.and_then(|g| Some((g.latitude?, g.longitude?, g.country)))
        else {
            unlocated += 1;
            continue;
        };
        let classes: Vec<&str> = ALL_CLASSES
            .iter()
            .filter(|c| r.class_mask & (1 << c.index()) != 0)
            .map(|c| c.name())
            .collect();
        points.push(json!({
            "lat": lat,
            "lon": lon,
            "country": country,
            "class": classes.first().copied().unwrap_or("other_ip"),
            "classes": classes,
            "packets": r.packets,
            "first_ts": iotscope_telescope::time::rfc3339(r.first_ns),
            "last_ts": iotscope_telescope::time::rfc3339(r.last_ns),
            "mirai": r.fingerprints[0] > 0,
            "scanner": scanner_class(&app, r).name(),
        }));
    }
    Ok(json!({
        "geo": app.geo.is_some(),
        "sources": rows.len(),
        "unlocated": unlocated,
        "points": points,
    }))
}

fn parse_json(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// A finding as the API shows it: a working password is masked.
fn finding_json(app: &App, f: &iotscope_store::FindingRecord) -> Value {
    let mut evidence: Value = serde_json::from_str(&f.evidence).unwrap_or_default();
    // The dashboard never reveals: operators use `findings --reveal`.
    iotscope_checks::findings::redact_evidence(&mut evidence);
    json!({
        "ip": f.ip,
        "port": f.port,
        "service": f.service,
        "kind": f.kind,
        "severity": f.severity,
        "device": parse_json(&f.device),
        "evidence": evidence,
        "first_seen": f.first_seen,
        "last_seen": f.ts,
        "isp": app.isp_of(&f.ip).map(|i| i.name.clone()),
    })
}

fn severity_rank(s: &str) -> usize {
    ["critical", "high", "medium", "low", "info"]
        .iter()
        .position(|x| *x == s)
        .unwrap_or(5)
}

/// `GET /api/findings`: filtered by kind, severity, criticality, vendor and
/// ISP, only what the caller may see, worst first.
pub(crate) async fn findings(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    only(
        &q,
        &[
            "kind",
            "severity",
            "criticality",
            "vendor",
            "isp",
            "ip",
            "limit",
            "offset",
        ],
    )?;
    let limit = number(&q, "limit", 100, 10_000)?;
    let offset = number(&q, "offset", 0, usize::MAX)?;
    if let Some(s) = q.get("severity") {
        if severity_rank(s) == 5 {
            return Err(ApiError::bad_request(format!(
                "severity={s:?}: expected critical, high, medium, low or info"
            )));
        }
    }
    let rows = app.store(|st| st.findings()).await?;
    let want = |key: &str, have: Option<&str>| match q.get(key) {
        None => true,
        Some(w) => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
    };
    // The device JSON is parsed only when a filter needs it, and the rows
    // become JSON only for the page shown: 100,000 findings stay cheap.
    let needs_device = q.contains_key("criticality") || q.contains_key("vendor");
    let mut out: Vec<&iotscope_store::FindingRecord> = rows
        .iter()
        .filter(|f| {
            want("kind", Some(&f.kind))
                && want("severity", Some(&f.severity))
                && want("ip", Some(&f.ip))
        })
        .filter(|f| caller.may_see(&app, &f.ip))
        .filter(|f| {
            !q.contains_key("isp")
                || want("isp", app.isp_of(&f.ip).map(|i| i.id()))
                || want("isp", app.isp_of(&f.ip).map(|i| i.name.as_str()))
        })
        .filter(|f| {
            if !needs_device {
                return true;
            }
            let d = parse_json(&f.device);
            want("criticality", d["criticality"].as_str()) && want("vendor", d["vendor"].as_str())
        })
        .collect();
    out.sort_by(|a, b| {
        severity_rank(&a.severity)
            .cmp(&severity_rank(&b.severity))
            .then(a.ip.cmp(&b.ip))
            .then(a.port.cmp(&b.port))
            .then(a.kind.cmp(&b.kind))
    });
    let total = out.len();
    let page: Vec<Value> = out
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|f| finding_json(&app, f))
        .collect();
    Ok(Json(json!({"total": total, "findings": page})))
}

/// `GET /api/devices/{ip}`: one address's services, findings and alerts.
pub(crate) async fn device(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(ip): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let addr: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{ip:?} is not an IP address")))?;
    let ip = addr.to_string();
    if !caller.may_see(&app, &ip) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{ip} is not an address of your ISP"),
        ));
    }
    let key = ip.clone();
    let (services, findings, alerts) = app
        .store(move |st| {
            let services: Vec<_> = st.services()?.into_iter().filter(|s| s.ip == key).collect();
            let findings: Vec<_> = st.findings()?.into_iter().filter(|f| f.ip == key).collect();
            let alerts = st.alerts_for_ip(&key)?;
            Ok((services, findings, alerts))
        })
        .await?;
    if services.is_empty() && findings.is_empty() && alerts.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("nothing is known about {ip}"),
        ));
    }
    Ok(Json(json!({
        "ip": ip,
        "isp": app.isp_of(&ip).map(|i| i.name.clone()),
        "services": services.iter().map(|s| json!({
            "port": s.port, "proto": s.proto, "status": s.status, "service": s.service,
            "banner": s.banner, "last_seen": s.ts,
        })).collect::<Vec<_>>(),
        "findings": findings.iter().map(|f| finding_json(&app, f)).collect::<Vec<_>>(),
        "alerts": alerts.iter().map(|a| json!({
            "problem": a.problem, "status": a.status, "severity": a.severity,
            "port": a.port, "first_seen": a.first_seen, "last_seen": a.last_seen,
        })).collect::<Vec<_>>(),
    })))
}

const STATUSES: &[&str] = &["new", "notified", "acknowledged", "fixed", "persisting"];

/// `GET /api/alerts`: the caller's alerts with their history.
pub(crate) async fn alerts(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    only(&q, &["status", "isp", "problem", "limit", "offset"])?;
    if let Some(s) = q.get("status") {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "status={s:?}: expected one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let limit = number(&q, "limit", 100, 10_000)?;
    let offset = number(&q, "offset", 0, usize::MAX)?;
    let rows = app.store(|st| st.alerts()).await?;
    let mut visible: Vec<_> = rows
        .into_iter()
        .filter(|a| caller.may_see(&app, &a.ip))
        .filter(|a| q.get("status").is_none_or(|s| &a.status == s))
        .filter(|a| q.get("problem").is_none_or(|p| &a.problem == p))
        .filter(|a| {
            q.get("isp").is_none_or(|i| {
                app.isp_of(&a.ip)
                    .is_some_and(|o| o.id() == i || &o.name == i)
            })
        })
        .collect();
    // Worst first, open before closed.
    let open_rank = |st: &str| {
        ["new", "persisting", "notified", "acknowledged", "fixed"]
            .iter()
            .position(|x| *x == st)
            .unwrap_or(5)
    };
    visible.sort_by(|a, b| {
        severity_rank(&a.severity)
            .cmp(&severity_rank(&b.severity))
            .then(open_rank(&a.status).cmp(&open_rank(&b.status)))
            .then(a.ip.cmp(&b.ip))
            .then(a.problem.cmp(&b.problem))
    });
    let total = visible.len();
    let page: Vec<_> = visible.into_iter().skip(offset).take(limit).collect();
    let keys: Vec<(String, Option<u16>, String)> = page
        .iter()
        .map(|a| (a.ip.clone(), a.port, a.problem.clone()))
        .collect();
    let histories = app
        .store(move |st| {
            keys.iter()
                .map(|(ip, port, p)| st.alert_history(ip, *port, p))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let list: Vec<Value> = page
        .iter()
        .zip(histories)
        .map(|(a, h)| {
            json!({
                "ip": a.ip,
                "problem": a.problem,
                "port": a.port,
                "service": a.service,
                "severity": a.severity,
                "isp": app.isp_of(&a.ip).map(|i| i.name.clone()),
                "device": parse_json(&a.device),
                "evidence": serde_json::from_str::<Value>(&a.evidence).unwrap_or_default(),
                "advice": a.advice,
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
                "status": a.status,
                "history": h.iter().map(|(ts, status, note)| json!({"ts": ts, "status": status, "note": note})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"total": total, "alerts": list})))
}

#[derive(Deserialize)]
pub(crate) struct StatusChange {
    ip: String,
    problem: String,
    /// The alert's port (each service has its own alert); may be left out
    /// when the address has that problem on one port only.
    #[serde(default)]
    port: Option<u16>,
    status: String,
    #[serde(default)]
    note: String,
}

/// `POST /api/alerts/status {"ip","problem","port","status","note"}`: an ISP
/// account may mark its own alerts acknowledged; an operator may also mark
/// them notified or fixed. CSRF-checked for cookie sessions.
pub(crate) async fn set_alert_status(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<StatusChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.check_csrf(&headers)?;
    let Json(c) =
        body.map_err(|e| ApiError::json_body(e, r#"{"ip", "problem", "status", "note"}"#))?;
    let allowed: &[&str] = if caller.user.role == "operator" {
        &["notified", "acknowledged", "fixed"]
    } else {
        &["acknowledged"]
    };
    if !allowed.contains(&c.status.as_str()) {
        return Err(ApiError::new(
            if STATUSES.contains(&c.status.as_str()) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            },
            format!(
                "status {:?}: this account may set {}",
                c.status,
                allowed.join(", ")
            ),
        ));
    }
    if !caller.may_see(&app, &c.ip) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} is not an address of your ISP", c.ip),
        ));
    }
    if c.note.len() > 2000 {
        return Err(ApiError::bad_request("note: at most 2000 bytes"));
    }
    let note = format!(
        "by {} via the dashboard{}{}",
        caller.user.name,
        if c.note.is_empty() { "" } else { ": " },
        c.note
    );
    let (ip, problem, status, port) = (c.ip.clone(), c.problem.clone(), c.status.clone(), c.port);
    // Which alert: the port named, or the only port with that problem.
    let found = app
        .store(move |st| {
            let ports: Vec<Option<u16>> = st
                .alerts_for_ip(&ip)?
                .into_iter()
                .filter(|a| a.problem == problem && (port.is_none() || a.port == port))
                .map(|a| a.port)
                .collect();
            match ports.as_slice() {
                [one] => st
                    .set_alert_status(&ip, *one, &problem, &status, &note)
                    .map(|_| Ok(*one)),
                [] => Ok(Err(0)),
                many => Ok(Err(many.len())),
            }
        })
        .await?;
    let port = match found {
        Ok(port) => port,
        Err(0) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no alert {} for {}", c.problem, c.ip),
            ))
        }
        Err(_) => {
            return Err(ApiError::bad_request(format!(
                "{} has {} on several ports: give \"port\"",
                c.ip, c.problem
            )))
        }
    };
    Ok(Json(
        json!({"ip": c.ip, "problem": c.problem, "port": port, "status": c.status}),
    ))
}

#[cfg(test)]
mod tests {

    #[test]
    fn times_move_up_to_bucket_starts() {
        let h = 3_600_000_000_000i64;
        assert_eq!(super::bucket_ceil(0, h), 0);
        assert_eq!(super::bucket_ceil(1, h), h);
        assert_eq!(super::bucket_ceil(h, h), h);
        assert_eq!(super::bucket_ceil(-1, h), 0);
        assert_eq!(super::bucket_ceil(i64::MAX - 5, h), i64::MAX - 5);
    }

    use super::*;

    #[test]
    fn a_jump_over_three_times_the_recent_median_is_a_surge() {
        let mut v = vec![5u64; 30];
        v[20] = 16; // 3.2x the median of 5
        v[25] = 15; // exactly 3x: not a surge
        assert_eq!(surges(&v), vec![20]);
        assert!(surges(&[0, 0, 0, 9]).is_empty(), "below 10 packets");
        assert_eq!(surges(&[0, 0, 0, 10]), vec![3]);
        assert!(surges(&[100, 100]).is_empty(), "too little history");
    }

    #[test]
    fn ports_parse_in_every_spelling() {
        assert_eq!(port("23").unwrap(), 23);
        assert_eq!(port("tcp/2323").unwrap(), 2323);
        assert_eq!(port("53/udp").unwrap(), (1 << 16) | 53);
        assert!(port("70000").is_err());
        assert!(port("sctp/1").is_err());
    }
}
