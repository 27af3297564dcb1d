//! The dashboard: a JSON API over the store, the pages that draw it (all
//! assets embedded in the binary: no CDN, no tile server), operator and ISP
//! accounts, and the public self-check page for device owners.
//!
//! Access: the overview, series, map and `/check` are public; everything
//! else needs a session cookie (with a CSRF token on every state-changing
//! request) or an API token, and an ISP account only ever sees addresses of
//! its own ISP, decided by the same rule as `alerts export` (longest prefix
//! of the `[[isp]]` table, else the ISP of the address's AS).
//!
//! The store is reached only through the [`Store`] trait, on blocking
//! threads, from a small pool of connections.

mod api;
mod assets;
mod auth;
mod check;
mod limit;
mod metrics;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
/// The application type [`router`] returns.
pub use axum::Router;
use iotscope_alerts::{Isp, IspTable};
use iotscope_enrich::{AsnTable, GeoDb};
use iotscope_store::{SqliteStore, Store, StoreError};

pub use auth::{hash_password, new_token, token_hash, verify_password};

/// What `iotscope serve` starts with.
pub struct Settings {
    /// The store.
    pub db: PathBuf,
    /// The ISP table (`[[isp]]`).
    pub isps: Vec<Isp>,
    /// Address to AS, when configured.
    pub asn: Option<AsnTable>,
    /// Address to location, when configured (the map needs it).
    pub geo: Option<GeoDb>,
    /// Self-check requests a client address may make per minute (0: no limit).
    pub check_per_minute: u32,
    /// Login attempts a client address may make per minute.
    pub login_per_minute: u32,
    /// Mark cookies `Secure` (serve behind TLS); off for plain loopback.
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_ttl: Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ISP table.
    #[error(transparent)]
    Isp(#[from] iotscope_alerts::IspError),
    /// An account names an ISP the table does not have.
    #[error("account {user:?} speaks for ISP {isp:?}, which is not in the [[isp]] table")]
    UnknownIsp {
        /// Account.
        user: String,
        /// ISP.
        isp: String,
    },
}

/// Connections to the store, reused across requests.
struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<SqliteStore>>,
}

impl Pool {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = match taken {
            Some(s) => s,
            None => SqliteStore::open(&self.path).map_err(ApiError::store)?,
        };
        let out = f(&mut store).map_err(ApiError::store);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        out
    }
}

/// Shared by every request.
pub(crate) struct App {
    pool: Pool,
    isps: IspTable,
    asn: Option<AsnTable>,
    geo: Option<GeoDb>,
    check_limit: limit::PerAddress,
    login_limit: limit::PerAddress,
    secure_cookies: bool,
    session_ttl: Duration,
    metrics: metrics::Metrics,
    /// Answers computed from telescope data, by request, with the store
    /// version they were computed at.
    answers: Mutex<std::collections::HashMap<String, (String, axum::body::Bytes)>>,
    /// A gate per key being computed.
    computing: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn json_response(body: axum::body::Bytes) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Cached answers kept at most (a dashboard asks for a handful of periods).
const CACHED_ANSWERS: usize = 256;

impl App {
    /// The answer for `key`, computed by `compute` unless one computed at
    /// the store's current version is cached. The telescope data only
    /// changes when a capture is ingested, so an overview of a year need
    /// not be recomputed for every visitor.
    async fn cached(
        self: &Arc<Self>,
        key: String,
        compute: impl std::future::Future<Output = Result<serde_json::Value, ApiError>>,
    ) -> Result<Response, ApiError> {
        let version = self.store(|s| s.version()).await?;
        if let Some(a) = self.recall(&key, &version) {
            return Ok(json_response(a));
        }
        // One computation per key at a time: a second visitor (or the
        // warm-up) waits for the first instead of repeating it.
        let gate = self
            .computing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        if let Some(a) = self.recall(&key, &version) {
            return Ok(json_response(a));
        }
        let value = compute.await?;
        let bytes = axum::body::Bytes::from(
            serde_json::to_vec(&value)
                .map_err(|e| ApiError::internal(format!("serialising an answer: {e}")))?,
        );
        self.remember(key, version, bytes.clone());
        Ok(json_response(bytes))
    }

    /// The cached answer for `key` if it was computed at `version`.
    fn recall(&self, key: &str, version: &str) -> Option<axum::body::Bytes> {
        let m = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        m.get(key)
            .filter(|(v, _)| v == version)
            .map(|(_, a)| a.clone())
    }

    fn remember(&self, key: String, version: String, answer: axum::body::Bytes) {
        let mut m = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= CACHED_ANSWERS {
            m.clear();
            // Gates in use are held by their waiters; the map can go.
            self.computing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        m.insert(key, (version, answer));
    }

    /// Runs a store call on a blocking thread.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || app.pool.with(f))
            .await
            .map_err(|e| ApiError::internal(format!("store task: {e}")))?
    }

    /// The ISP an address belongs to: the longest prefix, else its AS's ISP.
    fn isp_of(&self, ip: &str) -> Option<&Isp> {
        let addr: IpAddr = ip.parse().ok()?;
        let asn = self
            .asn
            .as_ref()
            .and_then(|t| t.lookup(addr))
            .map(|i| i.asn);
        self.isps.isp_of(addr, asn)
    }
}

/// An error answer: a status and a message that says what was wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    fn store(e: StoreError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Builds the application. Checks that every ISP account names an ISP of
/// the table, so no account silently sees nothing (or everything).
pub fn router(settings: Settings) -> Result<Router, WebError> {
    let isps = IspTable::new(settings.isps)?;
    let store = SqliteStore::open(&settings.db)?;
    for u in iotscope_store::Store::users(&store)? {
        if let Some(isp) = &u.isp {
            if isps.by_key(isp).is_none() {
                return Err(WebError::UnknownIsp {
                    user: u.name,
                    isp: isp.clone(),
                });
            }
        }
    }
    let app = Arc::new(App {
        pool: Pool {
            path: settings.db,
            idle: Mutex::new(vec![store]),
        },
        isps,
        asn: settings.asn,
        geo: settings.geo,
        check_limit: limit::PerAddress::new(settings.check_per_minute),
        login_limit: limit::PerAddress::new(settings.login_per_minute),
        secure_cookies: settings.secure_cookies,
        session_ttl: settings.session_ttl,
        metrics: metrics::Metrics::default(),
        answers: Mutex::new(Default::default()),
        computing: Mutex::new(Default::default()),
    });
    Ok(Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/world.json", get(assets::world))
        .route("/check", get(check::page))
        .route("/api/check", get(check::json))
        .route("/api/overview", get(api::overview))
        .route("/api/series", get(api::series))
        .route("/api/map", get(api::map))
        .route("/api/findings", get(api::findings))
        .route("/api/devices/{ip}", get(api::device))
        .route("/api/alerts", get(api::alerts))
        .route("/api/alerts/status", post(api::set_alert_status))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/api/openapi.json", get(assets::openapi))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::count,
        ))
        .with_state(app))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

/// Serves until `shutdown` resolves. The client's address (for `/check` and
/// the rate limits) is the connection's peer address: a proxy in front
/// would make every visitor look the same, so none is trusted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The overview and map of each preset period take a while to compute
    // over a large store: compute them now, and again whenever a capture is
    // added (the cache notices the new store version), so visitors choosing
    // a preset never wait.
    let warm = router.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut first = true;
        loop {
            for (preset, _) in api::PRESETS {
                for endpoint in ["overview", "map"] {
                    let req = axum::http::Request::get(format!("/api/{endpoint}?period={preset}"))
                        .body(axum::body::Body::empty())
                        .expect("a static request");
                    let _ = tower::ServiceExt::oneshot(warm.clone(), req).await;
                }
            }
            if first {
                eprintln!(
                    "iotscope serve: overview and map of the preset periods ready in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                first = false;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
