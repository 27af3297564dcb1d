//! The honeypot's listeners: one task per connection, every bound enforced
//! (sessions overall and per source, login and idle timeouts, session
//! length, input per session), events handed to a [`Recorder`] through a
//! bounded queue (a flood slows sessions down rather than growing memory
//! or losing events), payloads kept by SHA-256 under a byte budget, and
//! each loader session linked to the scanner session whose pair it used.
//!
//! Shape after mini-redis's server: `run(listeners, ..., shutdown)`, a
//! semaphore for the session limit, accept errors backed off.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::events::{unix_ns, Event, EventKind};
use crate::extract::{stub_downloads, Download, DownloadKind};
use crate::persona::{Deployment, SplitMix};
use crate::shell::Shell;
use crate::telnet::{Accepted, SessionEvent, TelnetSession};

/// The bounds of the honeypot (defaults in [`Limits::default`]).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Sessions at once; further connections are closed at once and counted.
    pub max_sessions: usize,
    /// Sessions at once from one address (IPv6: one /64).
    pub max_per_source: usize,
    /// From connect to a successful login.
    pub login_timeout: Duration,
    /// Without a byte from the client.
    pub idle_timeout: Duration,
    /// A whole session.
    pub session_max: Duration,
    /// Bytes one session may send (an echo loader sends four bytes of
    /// `\xHH` per byte of its binary).
    pub max_input: usize,
    /// Wait after a failed login (BusyBox login waits ~3 s).
    pub login_fail_delay: Duration,
    /// Login attempts per connection.
    pub max_attempts: u32,
    /// Commands, downloads and login attempts kept per session record
    /// (more are counted, and still sent as events).
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_per_source: 16,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            session_max: Duration::from_secs(15 * 60),
            max_input: 4 * 1024 * 1024,
            login_fail_delay: Duration::from_secs(2),
            max_attempts: 3,
            max_records: 1000,
        }
    }
}

/// Where payloads (bytes written with echo) are kept: `DIR/SHA256`, at
/// most `budget` bytes in all; past it, samples are hashed and recorded
/// but not written.
#[derive(Clone, Debug)]
pub struct PayloadStore {
    /// The directory.
    pub dir: PathBuf,
    /// Bytes at most.
    pub budget: u64,
}

/// The honeypot's settings.
#[derive(Clone, Debug)]
pub struct HoneypotConfig {
    /// The device it poses as.
    pub deployment: Arc<Deployment>,
    /// The pairs it accepts.
    pub accepted: Arc<Accepted>,
    /// The bounds.
    pub limits: Limits,
    /// A loader logging in with a scanner's pair within this time is linked to it.
    pub link_window: Duration,
    /// Payload samples, when kept.
    pub payloads: Option<PayloadStore>,
    /// Seeds session ids.
    pub seed: u64,
    /// Fetch `wget`/`curl` URLs (None: never; the default).
    pub fetch: Option<crate::fetch::FetchConfig>,
}

/// A payload the bot wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Path on the emulated device.
    pub path: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: usize,
    /// Already kept before (same hash).
    pub duplicate: bool,
}

/// One login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginAttempt {
    /// When (ns since the epoch).
    pub at_ns: i64,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Whether it worked.
    pub success: bool,
}

/// One session, as stored when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// 12 hex digits.
    pub id: String,
    /// "telnet".
    pub protocol: String,
    /// Client.
    pub src: SocketAddr,
    /// Listener.
    pub dst: SocketAddr,
    /// Start and end (ns since the epoch).
    pub start_ns: i64,
    /// End.
    pub end_ns: i64,
    /// The pair that logged in.
    pub login: Option<(String, String)>,
    /// Login attempts (at most `max_records`).
    pub attempts: Vec<LoginAttempt>,
    /// Lines typed at the shell: (ns, line, every command known).
    pub commands: Vec<(i64, String, bool)>,
    /// Downloads, connections and stub addresses, each once.
    pub downloads: Vec<Download>,
    /// Payloads written.
    pub payloads: Vec<Payload>,
    /// SHA-256 of the shell input (see [`TelnetSession::input_sha256`]).
    pub input_sha256: String,
    /// Why it ended.
    pub reason: String,
    /// The scanner session this loader session is linked to, and its address.
    pub linked: Option<(String, IpAddr)>,
    /// Events that did not fit the record's lists.
    pub truncated: u64,
}

impl SessionRecord {
    /// A loader: it asked for a download or wrote a payload.
    pub fn is_loader(&self) -> bool {
        !self.downloads.is_empty() || !self.payloads.is_empty()
    }
}

/// Where events and session records go (a JSON file, the store). Called
/// from one thread, in order.
pub trait Recorder: Send {
    /// One event.
    fn event(&mut self, event: &Event) -> Result<(), String>;
    /// A session that ended (after its `cowrie.session.closed` event).
    fn session(&mut self, session: &SessionRecord) -> Result<(), String>;
    /// Makes everything so far durable.
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Writes events as Cowrie JSON lines.
pub struct JsonLines<W: std::io::Write + Send> {
    out: W,
    sensor: String,
}

impl<W: std::io::Write + Send> JsonLines<W> {
    /// To `out`, naming the honeypot `sensor`.
    pub fn new(out: W, sensor: &str) -> Self {
        JsonLines {
            out,
            sensor: sensor.to_string(),
        }
    }
}

impl<W: std::io::Write + Send> Recorder for JsonLines<W> {
    fn event(&mut self, event: &Event) -> Result<(), String> {
        let line = event.to_json(&self.sensor).to_string();
        writeln!(self.out, "{line}").map_err(|e| e.to_string())
    }
    fn session(&mut self, _: &SessionRecord) -> Result<(), String> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| e.to_string())
    }
}

/// What a running honeypot has done (for status lines and /metrics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions started.
    pub sessions: AtomicU64,
    /// Sessions now open.
    pub active: AtomicU64,
    /// Connections closed at once (session limits).
    pub refused: AtomicU64,
    /// Successful logins.
    pub logins: AtomicU64,
    /// Loader sessions linked to a scanner.
    pub linked: AtomicU64,
    /// Events the recorder refused (logged to stderr once each).
    pub record_errors: AtomicU64,
}

enum Record {
    Event(Event),
    Session(Box<SessionRecord>),
}

/// Scanner sessions that logged in and asked for nothing, by pair, newest
/// last; entries older than the link window are dropped, and at most
/// 65,536 are kept.
/// A scanner session: when it ended, its id, its address.
type Scanner = (Instant, String, IpAddr);

#[derive(Default)]
struct Linker {
    scanners: HashMap<(String, String), VecDeque<Scanner>>,
    /// Every scanner kept, oldest first, by pair: expiry pops from the
    /// front, so a session's close costs what expired, not a walk of all.
    order: VecDeque<(Instant, (String, String))>,
}

impl Linker {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            let Some((_, pair)) = self.order.pop_front() else {
                break;
            };
            // A pair's scanners are in the order they were kept in.
            if let Some(q) = self.scanners.get_mut(&pair) {
                q.pop_front();
                if q.is_empty() {
                    self.scanners.remove(&pair);
                }
            }
        }
    }

    fn scanner(&mut self, pair: (String, String), now: Instant, id: String, ip: IpAddr) {
        if self.order.len() >= 65_536 {
            return;
        }
        self.order.push_back((now, pair.clone()));
        self.scanners
            .entry(pair)
            .or_default()
            .push_back((now, id, ip));
    }

    /// The newest scanner session with this pair from another address.
    fn loader(&self, pair: &(String, String), ip: IpAddr) -> Option<(String, IpAddr)> {
        self.scanners
            .get(pair)?
            .iter()
            .rev()
            .find(|(_, _, sip)| *sip != ip)
            .map(|(_, id, sip)| (id.clone(), *sip))
    }
}

pub(crate) struct Shared {
    pub(crate) config: HoneypotConfig,
    stats: Arc<Stats>,
    tx: mpsc::Sender<Record>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    linker: Mutex<Linker>,
    ids: Mutex<SplitMix>,
    started: Instant,
    payload_bytes: Mutex<u64>,
    fetches: crate::fetch::RateLimit,
    pub(crate) closing: watch::Receiver<bool>,
}

/// The address a per-source limit counts by: IPv4 itself, IPv6 its /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// Bytes in the regular files of `dir` (what an earlier run kept).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Telnet (RFC 854), BusyBox telnetd's way.
    Telnet,
    /// SSH (RFC 4253), Dropbear's way.
    Ssh,
}

/// Runs the honeypot on `listeners` (each with its protocol)
/// until `shutdown` resolves; then open sessions are ended (reason
/// "shutdown"), their records written, and the recorder flushed.
///
/// Errors: the recorder's first error is logged to stderr and counted in
/// [`Stats::record_errors`]; the honeypot keeps running.
pub async fn run(
    listeners: Vec<(TcpListener, Protocol)>,
    config: HoneypotConfig,
    mut recorder: Box<dyn Recorder>,
    stats: Arc<Stats>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    if let Some(p) = &config.payloads {
        std::fs::create_dir_all(&p.dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("payload directory {}: {e}", p.dir.display()),
            )
        })?;
    }
    let (tx, mut rx) = mpsc::channel::<Record>(1024);
    let writer_stats = stats.clone();
    // The recorder may block (files, SQLite): its own thread, fed in order.
    let writer = std::thread::spawn(move || {
        let mut warned = false;
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                writer_stats.record_errors.fetch_add(1, Ordering::Relaxed);
                if !warned {
                    eprintln!("iotscope honeypot: recording failed: {e}");
                    warned = true;
                }
            }
        };
        while let Some(rec) = rx.blocking_recv() {
            match rec {
                Record::Event(e) => note(recorder.event(&e)),
                Record::Session(s) => {
                    note(recorder.session(&s));
                    note(recorder.flush());
                }
            }
        }
        note(recorder.flush());
    });
    let (close_tx, closing) = watch::channel(false);
    let payload_bytes = config.payloads.as_ref().map_or(0, |p| dir_bytes(&p.dir));
    let shared = Arc::new(Shared {
        stats: stats.clone(),
        tx,
        per_source: Mutex::new(HashMap::new()),
        linker: Mutex::new(Linker::default()),
        ids: Mutex::new(SplitMix::new(
            config.seed ^ unix_ns(SystemTime::now()) as u64,
        )),
        started: Instant::now(),
        payload_bytes: Mutex::new(payload_bytes),
        fetches: crate::fetch::RateLimit::new(config.fetch.as_ref().map_or(0, |f| f.per_minute)),
        closing,
        config,
    });
    let slots = Arc::new(Semaphore::new(shared.config.limits.max_sessions.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let (conn_tx, mut conn_rx) = mpsc::channel::<(TcpStream, SocketAddr, SocketAddr, Protocol)>(64);
    for (l, protocol) in listeners {
        let conn_tx = conn_tx.clone();
        let mut closing = shared.closing.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((s, peer)) => {
                            let local = s.local_addr().unwrap_or_else(|_| l.local_addr().expect("a bound listener"));
                            if conn_tx.send((s, peer, local, protocol)).await.is_err() {
                                return;
                            }
                        }
                        // Out of descriptors or similar: back off rather than spin.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    },
                    _ = closing.changed() => return,
                }
            }
        });
    }
    drop(conn_tx);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer, local, protocol) = tokio::select! {
            c = conn_rx.recv() => match c { Some(c) => c, None => break },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let key = source_key(peer.ip());
        {
            let mut m = shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(key).or_insert(0);
            if *n >= shared.config.limits.max_per_source {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            *n += 1;
        }
        let shared = shared.clone();
        tasks.spawn(async move {
            let _permit = permit;
            shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
            shared.stats.active.fetch_add(1, Ordering::Relaxed);
            match protocol {
                Protocol::Telnet => telnet_session(shared.clone(), stream, peer, local).await,
                Protocol::Ssh => crate::ssh::ssh_session(shared.clone(), stream, peer, local).await,
            }
            shared.stats.active.fetch_sub(1, Ordering::Relaxed);
            let mut m = shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&key);
                }
            }
        });
        // Reap finished sessions so the set does not grow with history.
        while tasks.try_join_next().is_some() {}
    }
    let _ = close_tx.send(true);
    while tasks.join_next().await.is_some() {}
    drop(shared);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    Ok(())
}

/// One session's record and events, whatever the protocol: what the
/// telnet loop and the SSH handler both report through.
pub(crate) struct Log {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rec: SessionRecord,
    pub(crate) started: Instant,
}

impl Log {
    /// A new session from `peer` on `local`; sends its connect event.
    pub(crate) async fn open(
        shared: Arc<Shared>,
        peer: SocketAddr,
        local: SocketAddr,
        protocol: &'static str,
    ) -> Log {
        let id = {
            let mut g = shared.ids.lock().unwrap_or_else(|e| e.into_inner());
            format!("{:012x}", g.next_u64() & 0xffff_ffff_ffff)
        };
        let log = Log {
            rec: SessionRecord {
                id,
                protocol: protocol.into(),
                src: peer,
                dst: local,
                start_ns: unix_ns(SystemTime::now()),
                end_ns: 0,
                login: None,
                attempts: Vec::new(),
                commands: Vec::new(),
                downloads: Vec::new(),
                payloads: Vec::new(),
                input_sha256: String::new(),
                reason: String::new(),
                linked: None,
                truncated: 0,
            },
            started: Instant::now(),
            shared,
        };
        log.emit(EventKind::Connect {
            dst: local,
            protocol,
        })
        .await;
        log
    }

    /// Seconds the device has been up.
    pub(crate) fn uptime(&self) -> u64 {
        self.shared.config.deployment.uptime_at_start + self.shared.started.elapsed().as_secs()
    }

    /// Sends one event; false when the writer is gone (shutting down).
    pub(crate) async fn emit(&self, kind: EventKind) -> bool {
        let ev = Event {
            at: SystemTime::now(),
            session: self.rec.id.clone(),
            src: self.rec.src,
            kind,
        };
        self.shared.tx.send(Record::Event(ev)).await.is_ok()
    }

    /// Records what the session saw and sends its event.
    pub(crate) async fn note(&mut self, ev: SessionEvent) -> bool {
        let lim = &self.shared.config.limits;
        let rec = &mut self.rec;
        let at_ns = unix_ns(SystemTime::now());
        let kind = match ev {
            SessionEvent::LoginSuccess { user, password }
            | SessionEvent::LoginFailed { user, password } => {
                let success =
                    rec.login.is_none() && self.shared.config.accepted.accepts(&user, &password);
                if success {
                    rec.login = Some((user.clone(), password.clone()));
                    self.shared.stats.logins.fetch_add(1, Ordering::Relaxed);
                }
                let a = LoginAttempt {
                    at_ns,
                    user: user.clone(),
                    password: password.clone(),
                    success,
                };
                push(&mut rec.attempts, &mut rec.truncated, lim.max_records, a);
                EventKind::Login {
                    username: user,
                    password,
                    success,
                }
            }
            SessionEvent::Input { line } => {
                push(
                    &mut rec.commands,
                    &mut rec.truncated,
                    lim.max_records,
                    (at_ns, line.clone(), true),
                );
                EventKind::Command { input: line }
            }
            SessionEvent::Failed { command } => {
                if let Some(last) = rec.commands.last_mut() {
                    last.2 = false;
                }
                EventKind::CommandFailed { input: command }
            }
            SessionEvent::Download(d) => {
                if !rec.downloads.contains(&d) {
                    push(
                        &mut rec.downloads,
                        &mut rec.truncated,
                        lim.max_records,
                        d.clone(),
                    );
                }
                match &self.shared.config.fetch {
                    Some(f)
                        if matches!(d.kind, DownloadKind::Wget | DownloadKind::Curl)
                            && d.url.to_ascii_lowercase().starts_with("http://") =>
                    {
                        let f = f.clone();
                        return self.fetch(d.url, &f).await;
                    }
                    _ => EventKind::Download(d),
                }
            }
            SessionEvent::ClientSize { width, height } => EventKind::ClientSize { width, height },
        };
        self.emit(kind).await
    }

    /// Fetches `url` (rate limit and bounds of `f`), keeps the sample and
    /// records it as a payload of the session; sends the event.
    async fn fetch(&mut self, url: String, f: &crate::fetch::FetchConfig) -> bool {
        // A URL that will not be fetched (not http, a private address) does
        // not spend the rate limit: a bot must not starve the real fetches.
        let target = match crate::fetch::prepare(&url, f).await {
            Ok(t) => t,
            Err(reason) => return self.emit(EventKind::FetchFailed { url, reason }).await,
        };
        if !self.shared.fetches.take() {
            let reason = format!("rate limit ({} a minute)", f.per_minute);
            return self.emit(EventKind::FetchFailed { url, reason }).await;
        }
        match crate::fetch::get(&target, f).await {
            Ok(got) => {
                let sha: String = crate::hex(&Sha256::digest(&got.body));
                let (outfile, duplicate) = keep_payload(&self.shared, &sha, &got.body);
                let size = got.body.len();
                self.rec.payloads.push(Payload {
                    path: url.clone(),
                    sha256: sha.clone(),
                    size,
                    duplicate,
                });
                let truncated = got.truncated;
                self.emit(EventKind::Fetched {
                    url,
                    outfile,
                    shasum: sha,
                    size,
                    duplicate,
                    truncated,
                })
                .await
            }
            Err(reason) => self.emit(EventKind::FetchFailed { url, reason }).await,
        }
    }

    /// Ends the session: payloads and stub addresses from `shell`'s written
    /// files, the scanner/loader link, the closed event and the record.
    pub(crate) async fn finish(
        mut self,
        shell: &Shell,
        input_sha256: String,
        reason: &'static str,
    ) {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        let lim = &cfg.limits;
        // Every file written with non-trivial content (Mirai's 4-byte "AK47"
        // probe is not a sample), except copies of the device's own binary.
        let mut seen: Vec<String> = Vec::new();
        for (path, bytes) in shell.written_files() {
            if bytes.len() < 16 || bytes == cfg.deployment.echo_binary.as_slice() {
                continue;
            }
            let sha: String = crate::hex(&Sha256::digest(bytes));
            // The same bytes under two names (a copy, a rewrite) are one sample.
            if seen.contains(&sha) {
                continue;
            }
            seen.push(sha.clone());
            let (outfile, duplicate) = keep_payload(&shared, &sha, bytes);
            for d in stub_downloads(bytes) {
                if !self.rec.downloads.contains(&d) {
                    self.emit(EventKind::Download(d.clone())).await;
                    push(
                        &mut self.rec.downloads,
                        &mut self.rec.truncated,
                        lim.max_records,
                        d,
                    );
                }
            }
            let size = bytes.len();
            self.emit(EventKind::FileUpload {
                filename: path.to_string(),
                outfile,
                shasum: sha.clone(),
                size,
                duplicate,
            })
            .await;
            self.rec.payloads.push(Payload {
                path: path.to_string(),
                sha256: sha,
                size,
                duplicate,
            });
        }
        self.rec.input_sha256 = input_sha256;
        self.rec.reason = reason.to_string();
        self.rec.end_ns = unix_ns(SystemTime::now());
        if let Some(pair) = self.rec.login.clone() {
            let now = Instant::now();
            {
                let mut l = shared.linker.lock().unwrap_or_else(|e| e.into_inner());
                l.expire(now, cfg.link_window);
                if self.rec.is_loader() {
                    self.rec.linked = l.loader(&pair, self.rec.src.ip());
                } else {
                    l.scanner(pair.clone(), now, self.rec.id.clone(), self.rec.src.ip());
                }
            }
            if let Some((sid, sip)) = self.rec.linked.clone() {
                shared.stats.linked.fetch_add(1, Ordering::Relaxed);
                let pair = format!("{}:{}", pair.0, pair.1);
                self.emit(EventKind::Linked {
                    scanner_session: sid,
                    scanner_ip: sip.to_string(),
                    pair,
                })
                .await;
            }
        }
        self.emit(EventKind::Closed {
            duration: self.started.elapsed(),
            reason,
        })
        .await;
        let _ = shared.tx.send(Record::Session(Box::new(self.rec))).await;
    }
}

/// One telnet connection, from greeting to record.
async fn telnet_session(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let lim = shared.config.limits.clone();
    let mut log = Log::open(shared.clone(), peer, local, "telnet").await;
    let mut t = TelnetSession::new(
        shared.config.deployment.clone(),
        shared.config.accepted.clone(),
        log.uptime(),
        lim.max_attempts,
    );
    let _ = stream.set_nodelay(true);
    let mut closing = shared.closing.clone();
    let started = log.started;
    let mut input = 0usize;
    let mut buf = vec![0u8; 4096];
    let reason: &'static str = 'talk: {
        if write_all(&mut stream, &t.greeting(), lim.idle_timeout)
            .await
            .is_err()
        {
            break 'talk "client";
        }
        loop {
            let now = Instant::now();
            let mut deadline = now + lim.idle_timeout;
            let mut why = "idle";
            if log.rec.login.is_none() && started + lim.login_timeout < deadline {
                deadline = started + lim.login_timeout;
                why = "login timeout";
            }
            if started + lim.session_max < deadline {
                deadline = started + lim.session_max;
                why = "session length";
            }
            let n = tokio::select! {
                r = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)) => match r {
                    Err(_) => break 'talk why,
                    Ok(Err(_)) | Ok(Ok(0)) => break 'talk "client",
                    Ok(Ok(n)) => n,
                },
                _ = closing.changed() => break 'talk "shutdown",
            };
            input += n;
            if input > lim.max_input {
                break 'talk "input limit";
            }
            let step = t.feed(&buf[..n]);
            for ev in step.events {
                if !log.note(ev).await {
                    break 'talk "shutdown";
                }
            }
            if step.login_failed && !lim.login_fail_delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(lim.login_fail_delay) => {}
                    _ = closing.changed() => break 'talk "shutdown",
                }
            }
            // A client that stops reading must not hold up a shutdown.
            tokio::select! {
                r = write_all(&mut stream, &step.reply, lim.idle_timeout) => {
                    if r.is_err() {
                        break 'talk "client";
                    }
                }
                _ = closing.changed() => break 'talk "shutdown",
            }
            if step.close {
                break 'talk if log.rec.login.is_some() {
                    "exit"
                } else {
                    "login attempts"
                };
            }
        }
    };
    let _ = stream.shutdown().await;
    let sha = t.input_sha256();
    log.finish(t.shell(), sha, reason).await;
}

fn push<T>(v: &mut Vec<T>, truncated: &mut u64, max: usize, x: T) {
    if v.len() < max {
        v.push(x);
    } else {
        *truncated += 1;
    }
}

/// Keeps a payload as `DIR/SHA256` within the budget: (outfile, duplicate).
fn keep_payload(shared: &Shared, sha: &str, bytes: &[u8]) -> (Option<String>, bool) {
    let Some(p) = &shared.config.payloads else {
        return (None, false);
    };
    let path = p.dir.join(sha);
    if path.exists() {
        return (Some(path.display().to_string()), true);
    }
    let mut used = shared
        .payload_bytes
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *used + bytes.len() as u64 > p.budget {
        return (None, false);
    }
    // Written under a temporary name and renamed: a reader never sees half a sample.
    let tmp = p.dir.join(format!(".{sha}.part"));
    match std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path)) {
        Ok(()) => {
            *used += bytes.len() as u64;
            (Some(path.display().to_string()), false)
        }
        Err(_) => {
            let _ = std::fs::remove_file(&tmp);
            (None, false)
        }
    }
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scanners older than the link window are forgotten, in order, and a
    /// loader is linked to the newest one with its pair from another address.
    #[test]
    fn the_linker_forgets_in_order_and_links_the_newest() {
        let t0 = Instant::now();
        let pair = |u: &str| (u.to_string(), "x".to_string());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut l = Linker::default();
        l.scanner(pair("a"), t0, "s1".into(), ip("198.51.100.1"));
        l.scanner(
            pair("b"),
            t0 + Duration::from_secs(5),
            "s2".into(),
            ip("198.51.100.2"),
        );
        l.scanner(
            pair("a"),
            t0 + Duration::from_secs(10),
            "s3".into(),
            ip("198.51.100.3"),
        );
        assert_eq!(
            l.loader(&pair("a"), ip("198.51.100.9")),
            Some(("s3".into(), ip("198.51.100.3")))
        );
        // The loader's own address is not its scanner.
        assert_eq!(
            l.loader(&pair("a"), ip("198.51.100.3")),
            Some(("s1".into(), ip("198.51.100.1")))
        );
        l.expire(t0 + Duration::from_secs(14), Duration::from_secs(6));
        assert_eq!(l.order.len(), 1);
        assert_eq!(l.loader(&pair("b"), ip("198.51.100.9")), None);
        assert_eq!(l.loader(&pair("a"), ip("198.51.100.3")), None);
        assert!(l.loader(&pair("a"), ip("198.51.100.9")).is_some());
        l.expire(t0 + Duration::from_secs(100), Duration::from_secs(6));
        assert!(l.scanners.is_empty() && l.order.is_empty());
    }
}
