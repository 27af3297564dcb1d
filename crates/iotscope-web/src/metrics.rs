//! Prometheus metrics: requests by route and status, and their time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::App;

#[derive(Default)]
pub(crate) struct Metrics {
    /// (route, status) -> (requests, seconds).
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

/// Middleware: counts every request under its route pattern (never the
/// raw path, so addresses in paths do not become label values).
pub(crate) async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    let secs = started.elapsed().as_secs_f64();
    let mut m = app
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let e = m.entry((route, resp.status().as_u16())).or_default();
    e.0 += 1;
    e.1 += secs;
    resp
}

/// One metric family of a sensor: name, type, help, value of an interface.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&iotscope_store::CaptureTotals) -> String,
);

/// `/metrics` in the Prometheus text format (needs a session or token).
pub(crate) async fn render(State(app): State<Arc<App>>, _caller: Caller) -> impl IntoResponse {
    let m = app
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut out = String::from(
        "# HELP iotscope_http_requests_total HTTP requests by route and status.\n\
         # TYPE iotscope_http_requests_total counter\n",
    );
    for ((route, status), (n, _)) in &m {
        out.push_str(&format!(
            "iotscope_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
        ));
    }
    out.push_str(
        "# HELP iotscope_http_request_seconds_total Time spent answering, by route and status.\n\
         # TYPE iotscope_http_request_seconds_total counter\n",
    );
    for ((route, status), (_, s)) in &m {
        out.push_str(&format!(
            "iotscope_http_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {s:.6}\n"
        ));
    }
    // Live sensors writing to this store (`iotscope sensor`): a rate of
    // frames_total is the capture rate; drops are never hidden.
    let sensors = app
        .store(|st| iotscope_store::Store::capture_totals(st))
        .await
        .unwrap_or_default();
    if !sensors.is_empty() {
        let families: [Family; 6] = [
            (
                "iotscope_sensor_frames_total",
                "counter",
                "Frames a live sensor counted and committed.",
                |t| t.frames.to_string(),
            ),
            (
                "iotscope_sensor_received_total",
                "counter",
                "Frames the kernel passed the capture filter, dropped or not.",
                |t| t.received.to_string(),
            ),
            (
                "iotscope_sensor_dropped_total",
                "counter",
                "Frames dropped for lack of capture buffer.",
                |t| t.dropped.to_string(),
            ),
            (
                "iotscope_sensor_if_dropped_total",
                "counter",
                "Frames the interface or its driver dropped.",
                |t| t.if_dropped.to_string(),
            ),
            (
                "iotscope_sensor_last_bucket_seconds",
                "gauge",
                "Start of the latest bucket committed, seconds since the epoch.",
                |t| (t.last_bucket_start_ns / 1_000_000_000).to_string(),
            ),
            (
                "iotscope_sensor_last_commit_seconds",
                "gauge",
                "When the latest commit was made, seconds since the epoch.",
                |t| {
                    iotscope_telescope::time::parse_rfc3339(&t.last_commit_at)
                        .map_or("0".to_string(), |ns| (ns / 1_000_000_000).to_string())
                },
            ),
        ];
        for (name, kind, help, value) in families {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for t in &sensors {
                // Interface names are the operator's, not a visitor's; quotes
                // and backslashes are escaped as the text format requires.
                let label = t
                    .interface
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                out.push_str(&format!("{name}{{interface=\"{label}\"}} {}\n", value(t)));
            }
        }
    }
    // Detection episodes still open (within their cool-down of the newest
    // bucket): one gauge per episode, its latest score.
    // One read: the newest bucket's start and the episodes.
    let detections = app
        .store(|st| {
            let newest = iotscope_store::Store::newest_bucket_end(st)?;
            let bucket = st.bucket_ns()?.unwrap_or(0);
            let rows = iotscope_store::Store::detections(st, None, None, 10_000)?;
            Ok((newest.map(|end| end - bucket), rows))
        })
        .await
        .unwrap_or_default();
    if let (Some(newest_start), rows) = &detections {
        let open = crate::detect::open_episodes(rows, *newest_start);
        out.push_str(
            "# HELP iotscope_detection_open Detection alerts still open (latest score), by key, kind and severity.\n\
             # TYPE iotscope_detection_open gauge\n",
        );
        for r in open {
            // Keys, kinds and severities are iotscope's own words.
            out.push_str(&format!(
                "iotscope_detection_open{{key=\"{}\",kind=\"{}\",severity=\"{}\",first_bucket=\"{}\"}} {:.3}\n",
                r.key.replace(['\\', '"', '\n'], "_"),
                r.kind,
                r.severity,
                iotscope_telescope::time::rfc3339(r.first_bucket_ns),
                r.score
            ));
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
