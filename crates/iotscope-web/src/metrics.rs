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
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
