//! `GET /api/detections`: the detectors' alerts (issue 20), for the
//! Detections page, the time series' markers and `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use iotscope_store::DetectionRecord;
use serde_json::{json, Value};

use crate::api::{number, only, time};
use crate::auth::Caller;
use crate::{ApiError, App};

/// One episode as the API gives it; example sources the caller may not
/// see (an ISP account: addresses outside its networks) are left out.
pub(crate) fn episode(app: &App, caller: &Caller, r: &DetectionRecord) -> Value {
    let mut e = iotscope_detect::episode_json(r);
    if let Some(ex) = e["latest"]
        .get_mut("examples")
        .and_then(Value::as_array_mut)
    {
        ex.retain(|x| x["ip"].as_str().is_some_and(|ip| caller.may_see(app, ip)));
    }
    e
}

/// `GET /api/detections?since=&until=&limit=`: episodes overlapping the
/// period, newest first (at most `limit`, default 200, at most 5,000).
pub(crate) async fn detections(
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
    let limit = number(&q, "limit", 200, 5_000)?;
    let rows = app
        .store(move |st| st.detections(since, until, limit))
        .await?;
    let list: Vec<Value> = rows.iter().map(|r| episode(&app, &caller, r)).collect();
    Ok(Json(json!({ "detections": list })))
}

/// Episodes still open at the newest bucket: their last bucket within
/// their cool-down of it.
pub(crate) fn open_episodes(
    rows: &[DetectionRecord],
    newest_start_ns: i64,
) -> Vec<&DetectionRecord> {
    rows.iter()
        .filter(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let cooldown_ns = body["cooldown_s"]
                .as_i64()
                .unwrap_or(0)
                .saturating_mul(1_000_000_000);
            r.last_bucket_ns.saturating_add(cooldown_ns) >= newest_start_ns
        })
        .collect()
}
