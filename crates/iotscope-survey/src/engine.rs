//! The connect-mode engine: walks the permuted (address, port) space of a
//! shard at a fixed rate, connects with bounded concurrency and timeouts,
//! and hands open connections to the protocol module.
//!
//! Invariants: only addresses of the [`TargetSet`] are probed (exclusions
//! were removed when it was built); every pair of the shard is probed
//! exactly once; the loop ends by itself when the shard is done or the stop
//! signal comes; the rate is kept by scheduling probe k at start + k/rate
//! (no bursts after a stall beyond one probe).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::modules::{module_for, Grab, GrabError, ProbeCtx};
use crate::permute::{shard_positions, Permutation};
use crate::scope::LiveExclusions;
use crate::targets::TargetSet;

/// Outcome of a probe, from a closed set (stored and charted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Connected; the module ran.
    Open,
    /// Connection refused (RST).
    Refused,
    /// No answer to the connect within the timeout.
    Timeout,
    /// Connected, but the module got no valid answer.
    ProtocolError,
}

/// One output row (JSON lines, one per answering pair).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Always "tcp".
    pub proto: &'static str,
    /// When the probe ended, RFC 3339.
    pub ts: String,
    /// Outcome.
    pub status: Status,
    /// Protocol module that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    /// What the module saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<serde_json::Value>,
    /// Why the module failed, with `protocol-error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Settings of one survey run.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Addresses.
    pub targets: TargetSet,
    /// Ports.
    pub ports: Vec<u16>,
    /// Seed of the order.
    pub seed: u64,
    /// (index, count) of the shard to run.
    pub shard: (u32, u32),
    /// Probes per second; 0 for as fast as the machine allows.
    pub rate: f64,
    /// Most connections at once.
    pub concurrency: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each read of a module.
    pub read_timeout: Duration,
    /// HTTP User-Agent.
    pub user_agent: String,
    /// Rows for refused pairs too (default: open only).
    pub report_closed: bool,
    /// Positions of the shard already probed by an earlier run (resume).
    pub skip: u64,
    /// Run the protocol module on open ports (false: connect only, like `nmap -sT`).
    pub grab: bool,
    /// Exclusions added while running (checked before every probe).
    pub live_exclusions: LiveExclusions,
}

/// Counters of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Probes started.
    pub sent: AtomicU64,
    /// Open pairs.
    pub open: AtomicU64,
    /// Refused pairs.
    pub refused: AtomicU64,
    /// Connect timeouts.
    pub timeouts: AtomicU64,
    /// Pairs skipped because an exclusion reloaded during the run covers them.
    pub excluded: AtomicU64,
}

/// Now, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + d).to_string()
}

/// How one pair is probed over a kernel TCP connection.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each read of a module.
    pub read_timeout: Duration,
    /// HTTP User-Agent.
    pub user_agent: String,
    /// Run the protocol module once connected.
    pub grab: bool,
}

/// What a non-blocking connect knows the moment it returns.
enum Attempt {
    /// Refused already (a local or loopback peer answered at once).
    Refused,
    /// Failed already (unreachable and the like): no answer to report.
    Failed,
    /// Connected already.
    Open(socket2::Socket),
    /// Still in progress: wait for it.
    Pending(socket2::Socket),
}

/// Starts a connect without waiting. On loopback and local links the
/// kernel has usually finished the handshake (or taken the RST) before the
/// call returns, so most probes need no task, timer or poller at all: the
/// async machinery is kept for the connects that really wait.
fn attempt(addr: SocketAddr) -> Attempt {
    use socket2::{Domain, Socket, Type};
    let Ok(socket) = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)
    else {
        return Attempt::Failed;
    };
    let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
    match socket.connect(&addr.into()) {
        Ok(()) => Attempt::Open(socket),
        Err(e) if refused(&e) => Attempt::Refused,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => match socket.take_error() {
            Ok(Some(e)) if refused(&e) => Attempt::Refused,
            Ok(Some(_)) | Err(_) => Attempt::Failed,
            Ok(None) if socket.peer_addr().is_ok() => Attempt::Open(socket),
            Ok(None) => Attempt::Pending(socket),
        },
        Err(_) => Attempt::Failed,
    }
}

fn row_for(addr: SocketAddr, status: Status) -> Row {
    Row {
        ip: addr.ip(),
        port: addr.port(),
        proto: "tcp",
        ts: now_rfc3339(),
        status,
        service: None,
        banner: None,
        error: None,
    }
}

/// Connects to `addr` and, when `settings.grab`, runs the port's protocol
/// module: the whole connect-mode probe, and SYN mode's banner grab.
pub async fn probe(addr: SocketAddr, settings: &ProbeSettings) -> Row {
    match attempt(addr) {
        Attempt::Refused => row_for(addr, Status::Refused),
        Attempt::Failed => row_for(addr, Status::Timeout),
        Attempt::Open(s) => finish(addr, s, false, settings).await,
        Attempt::Pending(s) => finish(addr, s, true, settings).await,
    }
}

/// Runs a module's grab, turning a panic inside it (a bug meeting bytes
/// nobody foresaw) into a grab error: the open port and its host stay in
/// the results, with the error, instead of vanishing with the task.
async fn caught(module: &'static str, grab: Grab<'_>) -> Result<serde_json::Value, GrabError> {
    let mut grab = grab;
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grab.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                std::task::Poll::Ready(Err(GrabError::Internal(format!(
                    "the {module} module failed inside iotscope ({what}); please report it"
                ))))
            }
        }
    })
    .await
}

/// The rest of a probe once the connect has started: wait for it if
/// `pending`, then grab.
async fn finish(
    addr: SocketAddr,
    socket: socket2::Socket,
    pending: bool,
    settings: &ProbeSettings,
) -> Row {
    let row = |status, service, banner, error| Row {
        ip: addr.ip(),
        port: addr.port(),
        proto: "tcp",
        ts: now_rfc3339(),
        status,
        service,
        banner,
        error,
    };
    let Ok(mut stream) = TcpStream::from_std(std::net::TcpStream::from(socket)) else {
        return row(Status::Timeout, None, None, None);
    };
    if pending {
        match tokio::time::timeout(settings.connect_timeout, stream.writable()).await {
            Err(_) | Ok(Err(_)) => return row(Status::Timeout, None, None, None),
            Ok(Ok(())) => match stream.take_error() {
                Ok(Some(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return row(Status::Refused, None, None, None)
                }
                Ok(Some(_)) | Err(_) => return row(Status::Timeout, None, None, None),
                Ok(None) => {}
            },
        }
    }
    if !settings.grab {
        return row(Status::Open, None, None, None);
    }
    let module = module_for(addr.port());
    let ctx = ProbeCtx {
        read_timeout: settings.read_timeout,
        user_agent: settings.user_agent.clone(),
        host: addr.ip().to_string(),
    };
    let mut grabbed = tokio::time::timeout(
        settings.read_timeout * 4,
        caught(module.name(), module.grab(&mut stream, &ctx)),
    )
    .await;
    let silent = matches!(grabbed, Err(_) | Ok(Err(GrabError::Timeout)));
    if !matches!(grabbed, Ok(Ok(_))) && module.asks_again(silent) {
        // No valid answer to our exact probe: ask once more, the plainer
        // way the module knows, on a fresh connection (the first may have
        // been closed on us). Bounded like the first.
        drop(stream);
        let fresh = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await;
        if let Ok(Ok(mut again_stream)) = fresh {
            if let Some(again) = module.again(&mut again_stream, &ctx) {
                let second =
                    tokio::time::timeout(settings.read_timeout * 4, caught(module.name(), again))
                        .await;
                if matches!(second, Ok(Ok(_))) {
                    grabbed = second;
                }
            }
        }
    }
    let (status, banner, error) = match grabbed {
        Ok(Ok(b)) => (Status::Open, Some(b), None),
        Ok(Err(e)) => (Status::ProtocolError, None, Some(e.to_string())),
        Err(_) => (
            Status::ProtocolError,
            None,
            Some("read timeout".to_string()),
        ),
    };
    row(status, Some(module.name()), banner, error)
}

/// Runs the shard, sending rows to `rows`, until done or `stop` is true.
/// Returns how many positions of the shard were probed in this run (after
/// the `skip` of a resumed run); every one of them has finished.
pub async fn run(
    cfg: ScanConfig,
    rows: mpsc::Sender<Row>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let ports = Arc::new(cfg.ports.clone());
    let n = cfg.targets.len() * ports.len() as u64;
    let perm = Permutation::new(n, cfg.seed);
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let start = Instant::now();
    let interval = if cfg.rate > 0.0 {
        Some(Duration::from_secs_f64(1.0 / cfg.rate))
    } else {
        None
    };
    // Positions finished (for resume) and probes sent (for the schedule).
    let (mut planned, mut paced) = (0u64, 0u64);
    let settings = Arc::new(ProbeSettings {
        connect_timeout: cfg.connect_timeout,
        read_timeout: cfg.read_timeout,
        user_agent: cfg.user_agent.clone(),
        grab: cfg.grab,
    });
    // Every probe of a stopped run has finished before `run` returns, so
    // the first `skip` positions are exactly the pairs already done.
    for pos in shard_positions(n, cfg.shard.0, cfg.shard.1).skip(cfg.skip as usize) {
        if *stop.borrow() {
            break;
        }
        let idx = perm.get(pos);
        let ip = cfg.targets.get(idx / ports.len() as u64);
        let port = ports[(idx % ports.len() as u64) as usize];
        if !cfg.live_exclusions.verdict(ip).allowed() {
            // Done for the resume count, but no probe and no time slot.
            planned += 1;
            stats.excluded.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Some(iv) = interval {
            let due = start + iv.mul_f64(paced as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let addr = SocketAddr::new(ip, port);
        if paced % 256 == 255 {
            // Answers that come at once never await: let the other tasks run.
            tokio::task::yield_now().await;
        }
        // The slot is taken before the connect starts: a stop that comes
        // while waiting for one leaves this pair unsent (and not counted as
        // done), never sent but forgotten, which a resume would send again.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = stop.wait_for(|s| *s) => break,
        };
        // Decided again at the moment of sending: the rate wait and the
        // slot wait can be long, and an opt-out reloaded meanwhile holds.
        if !cfg.live_exclusions.verdict(ip).allowed() {
            planned += 1;
            stats.excluded.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        stats.sent.fetch_add(1, Ordering::Relaxed);
        planned += 1;
        paced += 1;
        let (socket, pending) = match attempt(addr) {
            Attempt::Refused => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                if cfg.report_closed {
                    let _ = rows.send(row_for(addr, Status::Refused)).await;
                }
                continue;
            }
            Attempt::Failed => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Attempt::Open(s) => (s, false),
            Attempt::Pending(s) => (s, true),
        };
        let (rows, stats, settings, report_closed) = (
            rows.clone(),
            stats.clone(),
            settings.clone(),
            cfg.report_closed,
        );
        tokio::spawn(async move {
            let _permit = permit;
            let row = finish(addr, socket, pending, &settings).await;
            let counter = match row.status {
                Status::Open | Status::ProtocolError => &stats.open,
                Status::Refused => &stats.refused,
                Status::Timeout => &stats.timeouts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let wanted = match row.status {
                Status::Open | Status::ProtocolError => true,
                Status::Refused => report_closed,
                Status::Timeout => false,
            };
            if wanted {
                let _ = rows.send(row).await;
            }
        });
    }
    // Wait for the probes in flight.
    let _ = slots.acquire_many(cfg.concurrency.max(1) as u32).await;
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_module_is_a_grab_error_not_a_lost_host() {
        let r = caught(
            "telnet",
            Box::pin(async {
                let text = "caf\u{e9}";
                // A slice through the middle of a character: the kind of
                // bug hostile bytes find.
                let cut = text.len() - 1;
                Ok(serde_json::json!({ "banner": &text[..cut] }))
            }),
        )
        .await;
        match r {
            Err(GrabError::Internal(why)) => {
                assert!(why.contains("telnet module"), "{why}");
                assert!(why.contains("char boundary"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let fine = caught("http", Box::pin(async { Ok(serde_json::json!({})) })).await;
        assert!(fine.is_ok());
    }
}
