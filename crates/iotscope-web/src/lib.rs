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
pub mod client;
mod detect;
mod honeypot;
mod limit;
mod metrics;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
/// The application type [`router`] returns.
pub use axum::Router;
use iotscope_alerts::{Isp, IspTable};
use iotscope_enrich::{AsnTable, GeoDb};
use iotscope_store::{Locator, Store, StoreError};

/// A connection to the store, of either engine.
type StoreBox = Box<dyn Store + Send>;

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
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` and
    /// `X-Forwarded-Proto` name the client ([`client::Proxies`]).
    pub trusted_proxies: Vec<String>,
    /// Published research scanners, for the map's scanner classes.
    pub research: iotscope_detect::ResearchScanners,
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
    /// A `trusted_proxies` entry that is not an address or CIDR.
    #[error("[web] {0}")]
    TrustedProxies(String),
    /// An account names an ISP the table does not have.
    #[error("account {user:?} speaks for ISP {isp:?}, which is not in the [[isp]] table")]
    UnknownIsp {
        /// Account.
        user: String,
        /// ISP.
        isp: String,
    },
}

/// Store connections open at most: requests beyond wait for one.
pub const POOL_SIZE: usize = 16;
/// How long a request waits for a store connection before a 503.
pub const POOL_WAIT: Duration = Duration::from_secs(5);
/// Password verifications (argon2id, 19 MiB and tens of ms of a core
/// each) running at once, at most: half the cores are theirs at most, so
/// a login storm leaves the rest to `/check` and the dashboard.
pub const ARGON2_AT_ONCE: usize = 4;

/// Verification threads on this machine: half its cores, 1 to
/// [`ARGON2_AT_ONCE`].
fn argon2_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).clamp(1, ARGON2_AT_ONCE)
}
/// Logins waiting for a verification slot before further ones get a 429.
pub const ARGON2_QUEUE: usize = 32;
/// Answers computed at once (overview and map of an uncached period).
pub const COMPUTE_AT_ONCE: usize = 2;
/// How long a request waits for its turn to compute before a 503.
pub const COMPUTE_WAIT: Duration = Duration::from_secs(10);
/// Bytes of cached answers kept at most.
pub const CACHED_BYTES: usize = 64 << 20;

/// Connections to the store, reused across requests; at most
/// [`POOL_SIZE`] exist (`slots`).
struct Pool {
    at: Locator,
    idle: Mutex<Vec<StoreBox>>,
    slots: tokio::sync::Semaphore,
}

impl Pool {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = match taken {
            Some(s) => s,
            None => iotscope_store::open(&self.at).map_err(ApiError::store)?,
        };
        let out = f(store.as_mut()).map_err(ApiError::store);
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
    research: iotscope_detect::ResearchScanners,
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
    /// Proxies trusted to name the client.
    proxies: client::Proxies,
    /// Password verifications at once, and logins waiting for one.
    verifiers: Verifiers,
    /// Turns to compute an uncached answer ([`COMPUTE_AT_ONCE`]).
    computations: tokio::sync::Semaphore,
}

/// A password to check, and where the answer goes.
type VerifyJob = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Threads of their own that verify passwords (half the cores, at most
/// [`ARGON2_AT_ONCE`]), fed by a queue of [`ARGON2_QUEUE`]. Threads of their own, not the blocking pool:
/// the allocator keeps the 19 MiB a verification used in its thread's
/// arena, so the number of threads that ever verified, not the number of
/// logins at once, bounds the memory (tokio's blocking pool grows to
/// hundreds of threads: 400 logins at once reached 832 MB).
struct Verifiers {
    jobs: Mutex<std::sync::mpsc::SyncSender<VerifyJob>>,
}

impl Verifiers {
    fn start() -> Verifiers {
        let (tx, rx) = std::sync::mpsc::sync_channel::<VerifyJob>(ARGON2_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..argon2_threads() {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((password, phc, answer)) = job else {
                            return; // the server is gone
                        };
                        let _ = answer.send(verify_password(&password, &phc));
                        // glibc keeps the freed 19 MiB in this thread's arena
                        // (the block is 64-byte aligned, so not a plain mmap):
                        // give it back, or each thread holds ~100 MB for good.
                        #[cfg(all(target_os = "linux", target_env = "gnu"))]
                        // SAFETY: malloc_trim only returns free heap memory.
                        unsafe {
                            libc::malloc_trim(0);
                        }
                    }
                });
        }
        Verifiers {
            jobs: Mutex::new(tx),
        }
    }
}

/// Runs the calling thread at the lowest CPU priority (nice 19), so that a
/// storm of logins, each a deliberately costly argon2 hash, takes only the
/// CPU that `/check` and the dashboard leave: on two cores, 21 hashes a
/// second at normal priority took a quarter of `/check`'s throughput.
/// Logins still advance (an idle core runs them at full speed); their queue
/// is bounded ([`ARGON2_QUEUE`], then 429).
fn lower_priority() {
    // On Linux a thread's nice value is its own: PRIO_PROCESS with the
    // thread id sets this thread only (setpriority(2), NOTES).
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
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
        // Answers not cached yet cost seconds over a large store: a sweep
        // of distinct parameter values must not run them all at once.
        let _slot = tokio::time::timeout(COMPUTE_WAIT, self.computations.acquire())
            .await
            .map_err(|_| {
                ApiError::busy(
                    "the server is computing other answers: try again shortly",
                    5,
                )
            })?
            .map_err(|_| ApiError::internal("the computation pool is closed"))?;
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
        let held: usize = m.values().map(|(_, a)| a.len()).sum();
        if answer.len() > CACHED_BYTES / 4 {
            return; // too big to keep: computed again when asked again
        }
        if m.len() >= CACHED_ANSWERS || held + answer.len() > CACHED_BYTES {
            m.clear();
            // Gates in use are held by their waiters; the map can go.
            self.computing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        m.insert(key, (version, answer));
    }

    /// Runs a store call on a blocking thread, with one of the pool's
    /// [`POOL_SIZE`] connections; after [`POOL_WAIT`] without one, a 503
    /// with `Retry-After` (never a 500, never another connection).
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(POOL_WAIT, self.pool.slots.acquire())
            .await
            .map_err(|_| ApiError::busy("the store is busy", 5))?
            .map_err(|_| ApiError::internal("the store pool is closed"))?;
        let app = self.clone();
        let out = tokio::task::spawn_blocking(move || app.pool.with(f))
            .await
            .map_err(|e| ApiError::internal(format!("store task: {e}")))?;
        drop(permit);
        out
    }

    /// The client of a request ([`client::Proxies::client`]).
    pub(crate) fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> client::Client {
        self.proxies.client(peer, headers)
    }

    /// Verifies a password on the bounded argon2 pool ([`Verifiers`]):
    /// [`ARGON2_AT_ONCE`] at once and [`ARGON2_QUEUE`] waiting; beyond
    /// that a 429 (each verification costs 19 MiB and tens of ms).
    async fn verify(self: &Arc<Self>, password: String, phc: String) -> Result<bool, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = self
            .verifiers
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_send((password, phc, tx));
        match queued {
            Ok(()) => rx
                .await
                .map_err(|_| ApiError::internal("the password check stopped")),
            Err(std::sync::mpsc::TrySendError::Full(_)) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many logins at once: try again in a few seconds",
            )
            .retry_after(2)),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                Err(ApiError::internal("the password pool is closed"))
            }
        }
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
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    /// Adds `Retry-After: seconds`.
    fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
    /// 503 with `Retry-After`: a resource is saturated, not broken.
    fn busy(message: impl Into<String>, seconds: u64) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(seconds)
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// A body that is not the JSON `expected`: 413 when it passed the
    /// route's size limit, else 400.
    fn json_body(e: axum::extract::rejection::JsonRejection, expected: &str) -> ApiError {
        let status = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("expected a JSON body {expected}: {e}"))
    }
    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// A store failure: the operator reads it on the server's standard
    /// error; the client, who may be anyone (`/check`), learns only that
    /// the store failed (no path, URL, user or database name).
    fn store(e: StoreError) -> ApiError {
        eprintln!("iotscope serve: store: {e}");
        ApiError::internal("the store failed; the server's log says why".to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

/// Headers on every answer: no MIME sniffing anywhere, and no caching of
/// API answers (some hold private data; a shared cache must not keep
/// them).
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::header;
    let api = req.uri().path().starts_with("/api/") || req.uri().path() == "/metrics";
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    if api {
        h.insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    r
}

/// Builds the application. Checks that every ISP account names an ISP of
/// the table, so no account silently sees nothing (or everything).
pub fn router(settings: Settings) -> Result<Router, WebError> {
    let isps = IspTable::new(settings.isps)?;
    let proxies =
        client::Proxies::parse(&settings.trusted_proxies).map_err(WebError::TrustedProxies)?;
    let at = Locator::parse(settings.db.as_os_str());
    let store = iotscope_store::open(&at)?;
    for u in store.users()? {
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
            at,
            idle: Mutex::new(vec![store]),
            slots: tokio::sync::Semaphore::new(POOL_SIZE),
        },
        isps,
        asn: settings.asn,
        geo: settings.geo,
        research: settings.research,
        check_limit: limit::PerAddress::new(settings.check_per_minute),
        login_limit: limit::PerAddress::new(settings.login_per_minute),
        secure_cookies: settings.secure_cookies,
        session_ttl: settings.session_ttl,
        metrics: metrics::Metrics::default(),
        answers: Mutex::new(Default::default()),
        computing: Mutex::new(Default::default()),
        proxies,
        verifiers: Verifiers::start(),
        computations: tokio::sync::Semaphore::new(COMPUTE_AT_ONCE),
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
        .route(
            "/api/alerts/status",
            post(api::set_alert_status).layer(DefaultBodyLimit::max(ALERT_STATUS_BODY)),
        )
        .route(
            "/api/login",
            post(auth::login).layer(DefaultBodyLimit::max(LOGIN_BODY)),
        )
        .route(
            "/api/logout",
            post(auth::logout).layer(DefaultBodyLimit::max(LOGOUT_BODY)),
        )
        .route("/api/honeypot", get(honeypot::honeypot))
        .route("/api/detections", get(detect::detections))
        .route("/api/me", get(auth::me))
        .route("/api/version", get(api::version))
        .route("/api/openapi.json", get(assets::openapi))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::count,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        // Only the routes above read a body; any other is never read.
        .layer(DefaultBodyLimit::max(LOGOUT_BODY))
        .with_state(app))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such page: {}", uri.path()),
    )
}

/// Bytes of a login body at most (a name and a password in JSON); more
/// gets 413 before any password is hashed.
pub const LOGIN_BODY: usize = 4 * 1024;
/// Bytes of an alert status change at most (an address, a port, a problem,
/// a status and a note).
pub const ALERT_STATUS_BODY: usize = 16 * 1024;
/// Bytes of any other body at most (a logout carries none).
pub const LOGOUT_BODY: usize = 1024;

/// Connections served at once in all.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections served at once from one client address (IPv6: one /64); a
/// trusted proxy is not limited (it carries everyone).
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;
/// A request's head must arrive within this (slowloris); it also ends a
/// keep-alive connection that sends no next request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request is answered within this, its body read included, or gets a
/// 503 with `Retry-After`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection is closed (gracefully) after this long however busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Bytes of a request head and buffered body at most.
const MAX_BUFFER: usize = 64 * 1024;

/// How [`serve`] treats connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Proxies trusted to name the client.
    pub proxies: client::Proxies,
    /// Connections at once in all (at most [`MAX_CONNECTIONS`]; lower it
    /// to stay under the open-file limit).
    pub max_connections: usize,
}

/// Serves until `shutdown` resolves. The client's address (for `/check`,
/// the rate limits and the connection limits) is the connection's peer,
/// or, from a peer in `trusted_proxies`, the right-most untrusted hop of
/// `Forwarded` / `X-Forwarded-For` ([`client::Proxies`]).
///
/// HTTP/1.1 (hyper) with the limits above: at most [`MAX_CONNECTIONS`]
/// connections and [`MAX_CONNECTIONS_PER_CLIENT`] per client address
/// (further ones are closed at once), the head within [`HEADER_TIMEOUT`],
/// the answer within [`REQUEST_TIMEOUT`], a connection at most
/// [`CONNECTION_LIFETIME`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ServeOptions {
        proxies,
        max_connections,
    } = options;
    let max_connections = max_connections.clamp(1, MAX_CONNECTIONS);
    // The overview and map of each preset period take a while to compute
    // over a large store: compute them now, and again whenever a capture is
    // added or a sensor commits (the cache notices the new store version),
    // so visitors choosing a preset never wait. The store's per-day rollups
    // (built once per past day) make a recompute read whole days from them
    // and only the partial days at a period's edges bucket by bucket; and
    // presets selecting the same buckets share one computation.
    let warm = router.clone();
    let warming = tokio::spawn(async move {
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
            // A sensor commits every bucket: look often (an unchanged store
            // answers from the cache at once).
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    // Connections that have not sent a whole request head yet, oldest
    // first: when every slot is taken, the oldest of them is closed to make
    // room (half-sent requests from many addresses must not lock visitors
    // out until their header timeout).
    let waiting: Arc<Mutex<std::collections::BTreeMap<u64, tokio::sync::oneshot::Sender<()>>>> =
        Default::default();
    let mut next_id = 0u64;
    let per_client: Arc<Mutex<std::collections::HashMap<IpAddr, usize>>> = Default::default();
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // Out of descriptors or similar: back off rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let oldest = waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_first();
                match oldest {
                    Some((_, kill)) => {
                        let _ = kill.send(());
                        match tokio::time::timeout(
                            Duration::from_secs(1),
                            slots.clone().acquire_owned(),
                        )
                        .await
                        {
                            Ok(Ok(p)) => p,
                            _ => continue,
                        }
                    }
                    None => continue, // every connection is busy: closed at once
                }
            }
        };
        let client_slot = if proxies.trusts(peer.ip()) {
            None
        } else {
            let key = client::limit_key(peer.ip());
            let mut m = per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(key).or_insert(0);
            if *n >= MAX_CONNECTIONS_PER_CLIENT {
                continue;
            }
            *n += 1;
            Some(ClientSlot {
                key,
                map: per_client.clone(),
            })
        };
        next_id += 1;
        let id = next_id;
        let (kill_tx, mut kill) = tokio::sync::oneshot::channel::<()>();
        waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, kill_tx);
        let router = router.clone();
        let mut closing = closing.clone();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let _held = (permit, client_slot, Waiting(id, waiting.clone()));
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    // A whole head arrived: no longer the first to close.
                    waiting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let router = router.clone();
                    async move {
                        let answer = tokio::time::timeout(
                            REQUEST_TIMEOUT,
                            tower::ServiceExt::oneshot(router, req.map(axum::body::Body::new)),
                        )
                        .await;
                        Ok::<_, std::convert::Infallible>(match answer {
                            Ok(Ok(r)) => r,
                            Ok(Err(never)) => match never {},
                            Err(_) => ApiError::busy("the request took too long to answer", 5)
                                .into_response(),
                        })
                    }
                },
            );
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUFFER);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                // Only a sent kill: a dropped sender means a head arrived.
                Ok(()) = &mut kill => return, // made room for a newer connection
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = closing.wait_for(|c| *c) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        });
    }
    warming.abort();
    // Let answers in flight finish (bounded), as a graceful shutdown does.
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(
        Duration::from_secs(6),
        slots.acquire_many(max_connections as u32),
    )
    .await;
    Ok(())
}

/// A connection's entry among those waiting for a whole head, removed
/// when the connection ends.
struct Waiting(
    u64,
    Arc<Mutex<std::collections::BTreeMap<u64, tokio::sync::oneshot::Sender<()>>>>,
);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// A connection counted against its client's limit until dropped.
struct ClientSlot {
    key: IpAddr,
    map: Arc<Mutex<std::collections::HashMap<IpAddr, usize>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}
