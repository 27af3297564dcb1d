//! The live sensor: frames from a [`PacketSource`] counted as they come
//! and committed to the store as time buckets close.
//!
//! A bucket closes when the clock passes its end plus a grace period for
//! late frames; at that moment everything counted since the last commit is
//! added to the store in one transaction ([`Store::save_run`]) and counting
//! starts afresh. The store adds runs that share buckets exactly as it adds
//! several capture files (counts summed, per-bucket sources kept per
//! source), so a bucket committed in several parts, a frame arriving after
//! its bucket closed (it goes into the next commit, never lost) or a
//! restart in the middle of a bucket give the figures one file holding the
//! same frames gives. The open bucket is also committed when the sensor
//! stops (SIGTERM), so nothing counted is lost.
//!
//! Loss is never hidden: each commit carries the capture's drop counters
//! since the previous commit (the kernel's `PACKET_STATISTICS`, as libpcap
//! reports them in `pcap_stats`), stored per bucket beside the counts.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{Archive, ArchiveError, ClosedFile};
use std::collections::VecDeque;

use iotscope_store::{
    now_rfc3339, CaptureLoss, IngestedFile, Spool, SpoolError, SpooledRun, Store, StoreError,
};
use iotscope_telescope::{Prefix, Telescope, TelescopeConfig};
use iotscope_wire::{decode, LinkType};

/// Why the sensor stopped with an error. What was committed before it
/// stays in the store.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The capture failed (the interface went away, permission, a filter
    /// that does not compile).
    #[error("capture on {interface}: {message}")]
    Capture {
        /// The interface (or source) name.
        interface: String,
        /// What failed, from libpcap or the source.
        message: String,
    },
    /// The archive could not be written (a full disk, permissions).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A commit failed; the frames of that window are lost and the error
    /// says so.
    #[error("{frames} frames counted since the last commit were not stored: {source}")]
    Store {
        /// Frames of the window that could not be stored.
        frames: u64,
        /// The store's error.
        source: StoreError,
    },
}

/// One captured frame: its capture time (ns since the epoch), its bytes as
/// captured (up to the snap length) and its length on the wire.
pub struct CapturedFrame<'a> {
    /// Capture time, ns since the epoch.
    pub ts_ns: i64,
    /// The bytes captured.
    pub data: &'a [u8],
    /// Its length on the wire (at least `data.len()`).
    pub orig_len: u32,
}

/// A capture's counters since it was opened (as `pcap_stats` gives them):
/// frames the kernel passed the filter (including those dropped), frames
/// dropped for lack of buffer space, and frames the interface dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Frames that passed the filter, dropped or not (`ps_recv`).
    pub received: u64,
    /// Frames dropped because the capture buffer was full (`ps_drop`).
    pub dropped: u64,
    /// Frames the interface or its driver dropped (`ps_ifdrop`).
    pub if_dropped: u64,
}

impl CaptureCounters {
    /// What changed since `earlier` (counters only grow; a source that
    /// was reopened starts again from zero, and the change is then all of
    /// the new counters).
    pub fn since(&self, earlier: &CaptureCounters) -> CaptureCounters {
        let d = |now: u64, then: u64| now.checked_sub(then).unwrap_or(now);
        CaptureCounters {
            received: d(self.received, earlier.received),
            dropped: d(self.dropped, earlier.dropped),
            if_dropped: d(self.if_dropped, earlier.if_dropped),
        }
    }
}

/// Where the sensor's frames come from: a live interface
/// ([`crate::live::LiveCapture`]) or, in tests, frames in memory.
pub trait PacketSource {
    /// The interface name, as stored with each commit.
    fn name(&self) -> &str;
    /// The link type of every frame.
    fn link(&self) -> LinkType;
    /// The next frame; `Ok(None)` when none came within the source's read
    /// timeout (so the sensor can look at the clock and the stop flag).
    fn next_frame(&mut self) -> Result<Option<CapturedFrame<'_>>, SensorError>;
    /// The capture's counters since it was opened.
    fn counters(&mut self) -> Result<CaptureCounters, SensorError>;
    /// Follows a new darknet (the kernel filter, where the source has
    /// one); the default does nothing.
    ///
    /// Errors: [`SensorError::Capture`] when the new filter is refused.
    fn set_darknets(&mut self, _darknets: &[Prefix]) -> Result<(), SensorError> {
        Ok(())
    }
}

/// How a [`CommitSink`] took a commit.
#[derive(Debug)]
pub enum Saved {
    /// It is in the store, after `forwarded` runs from a spool.
    Stored {
        /// Runs forwarded from the spool before it.
        forwarded: u64,
    },
    /// It waits in the local spool, with `waiting` runs in all (itself
    /// included), after `forwarded` runs left the spool before it.
    Spooled {
        /// The store's refusal; none when the store took everything it was
        /// given but earlier runs still wait (a commit never overtakes them).
        error: Option<StoreError>,
        /// Runs forwarded from the spool before it.
        forwarded: u64,
        /// Runs in the spool now.
        waiting: u64,
    },
}

/// Where commits go: the store (any [`Store`] is one), a store behind a
/// local spool ([`Spooling`]), or in tests one that fails on purpose.
pub trait CommitSink {
    /// Adds one window's aggregates and its records in one transaction
    /// ([`Store::save_run`]).
    ///
    /// Errors: the store's; [`StoreError::Duplicate`] when a record's
    /// content hash is already there.
    fn save_run(
        &mut self,
        telescope: &Telescope,
        files: &[IngestedFile],
    ) -> Result<Saved, StoreError>;

    /// Adds a run read back from a spool ([`Store::save_spooled`]).
    ///
    /// Errors: as [`Self::save_run`].
    fn save_spooled(&mut self, run: &SpooledRun, files: &[IngestedFile]) -> Result<(), StoreError>;
}

impl<T: Store + ?Sized> CommitSink for T {
    fn save_run(
        &mut self,
        telescope: &Telescope,
        files: &[IngestedFile],
    ) -> Result<Saved, StoreError> {
        Store::save_run(self, telescope, files).map(|()| Saved::Stored { forwarded: 0 })
    }

    fn save_spooled(&mut self, run: &SpooledRun, files: &[IngestedFile]) -> Result<(), StoreError> {
        Store::save_spooled(self, run, files)
    }
}

/// How long one commit may spend forwarding a spool's backlog: the
/// kernel's ring holds what arrives meanwhile.
pub const FORWARD_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// A store behind a local [`Spool`]: a commit the store refuses (its
/// server down or out of reach) waits in the spool, on this machine, and
/// the sensor goes on counting; each later commit first forwards what
/// waits (oldest first, for at most [`FORWARD_BUDGET`]), and goes to the
/// spool itself while anything still waits, so commits reach the store in
/// the order they were made, each once (see [`iotscope_store::Spool`]).
pub struct Spooling<S> {
    /// The store.
    pub store: S,
    spool: Spool,
}

impl<S: CommitSink> Spooling<S> {
    /// `store` behind `spool`.
    pub fn new(store: S, spool: Spool) -> Self {
        Spooling { store, spool }
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Forwards what waits, until `until` if given. Returns the runs
    /// forwarded.
    ///
    /// Errors: as [`Spool::forward`].
    pub fn forward(&mut self, until: Option<std::time::Instant>) -> Result<u64, SpoolError> {
        let store = &mut self.store;
        let path = self.spool.path().display().to_string();
        self.spool.forward(
            |item| match item {
                iotscope_store::SpoolItem::Run(r, f) => store.save_spooled(r, f).map(|()| true),
                iotscope_store::SpoolItem::Session(..) => {
                    Err(StoreError::Spool(Box::new(SpoolError::WrongKind {
                        path: path.clone(),
                        kind: "honeypot session",
                    })))
                }
            },
            until,
            |_| {},
        )
    }
}

impl<S: CommitSink> CommitSink for Spooling<S> {
    fn save_run(&mut self, t: &Telescope, files: &[IngestedFile]) -> Result<Saved, StoreError> {
        let spool_err = |e| StoreError::Spool(Box::new(e));
        let mut forwarded = 0;
        let mut refusal = None;
        if self.spool.waiting().map_err(spool_err)?.0 > 0 {
            match self.forward(Some(std::time::Instant::now() + FORWARD_BUDGET)) {
                Ok(n) => forwarded = n,
                Err(SpoolError::Store(e)) => refusal = Some(e),
                Err(e) => return Err(spool_err(e)),
            }
        }
        if refusal.is_none() && self.spool.waiting().map_err(spool_err)?.0 == 0 {
            match self.store.save_run(t, files) {
                Ok(Saved::Stored { forwarded: f }) => {
                    return Ok(Saved::Stored {
                        forwarded: forwarded + f,
                    })
                }
                Ok(other) => return Ok(other),
                Err(e @ StoreError::Duplicate { .. }) => return Err(e),
                Err(e) => refusal = Some(e),
            }
        }
        self.spool
            .push(&SpooledRun::of(t), files)
            .map_err(spool_err)?;
        Ok(Saved::Spooled {
            error: refusal,
            forwarded,
            waiting: self.spool.waiting().map_err(spool_err)?.0,
        })
    }

    fn save_spooled(&mut self, run: &SpooledRun, files: &[IngestedFile]) -> Result<(), StoreError> {
        self.store.save_spooled(run, files)
    }
}

/// How the sensor counts and when it commits.
#[derive(Clone, Debug)]
pub struct SensorConfig {
    /// Darknet prefixes, bucket length and plausible window, as for files;
    /// `detail` is always on (the store needs it).
    pub telescope: TelescopeConfig,
    /// How long after a bucket's end its late frames are still waited for
    /// before it is committed, ns.
    pub grace_ns: i64,
    /// How often a [`Status`] is reported, ns (0: never).
    pub status_every_ns: i64,
}

/// Where the sensor stands, reported every `status_every_ns`.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// Frames counted since the run started (committed or not).
    pub frames: u64,
    /// Frames counted per second since the previous status.
    pub per_second: f64,
    /// The capture's counters since the run started.
    pub counters: CaptureCounters,
    /// Start (ns) of the bucket the latest commit closed, if any.
    pub last_commit_bucket_ns: Option<i64>,
}

/// What SIGHUP's reading of the configuration gave; `None` keeps what is
/// in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// A new darknet: what was counted under the old one is committed, then
    /// the kernel filter and the counting follow the new.
    pub darknets: Option<Vec<Prefix>>,
    /// A new grace period, ns: from the next bucket on (the bucket in its
    /// grace period now closes when it was due to). Refused (kept) unless
    /// shorter than the bucket.
    pub grace_ns: Option<i64>,
    /// A new status interval, ns (0: none), at once.
    pub status_every_ns: Option<i64>,
}

/// The caller's side of a sensor run: it hears what happens and, on
/// SIGHUP, may give new settings (the configuration read again).
pub trait Hooks {
    /// Something happened (a commit, a status, an archive file, a refused
    /// commit, new settings).
    fn event(&mut self, event: Event<'_>);
    /// On SIGHUP: the settings from the configuration read again, or `None`
    /// to keep those in force.
    fn reload(&mut self) -> Option<Reload> {
        None
    }
}

/// What the sensor tells its caller as it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A commit was stored.
    Commit(&'a Commit),
    /// The periodic status.
    Status(&'a Status),
    /// An archive file was recorded in the store and got its final name.
    Archived(&'a std::path::Path),
    /// SIGHUP gave a new darknet: what was counted under the old one was
    /// committed, and the kernel filter and the counting follow the new.
    Reloaded(&'a [Prefix]),
    /// SIGHUP gave settings: the grace period (ns; from the next bucket on)
    /// and status interval (ns) now in force.
    Settings {
        /// Grace period, ns.
        grace_ns: i64,
        /// Status interval, ns.
        status_every_ns: i64,
    },
    /// The store refused a commit (or earlier ones still wait) and it went
    /// to the local spool ([`Spooling`]), where `waiting` runs wait.
    Spooled {
        /// The store's refusal, if it refused this commit.
        error: Option<&'a StoreError>,
        /// Runs in the spool now.
        waiting: u64,
    },
    /// Runs waiting in the spool went to the store.
    Forwarded {
        /// How many.
        runs: u64,
    },
    /// The store refused a commit; it is kept and tried again (`waiting`
    /// commits and archive records wait).
    CommitFailed {
        /// Why.
        error: &'a StoreError,
        /// Commits and records waiting, this one included.
        waiting: usize,
    },
}

/// What one commit stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// 1 for the first commit of this run.
    pub seq: u64,
    /// Start (ns) of the bucket that closed, or of the open bucket when the
    /// sensor stopped.
    pub bucket_start_ns: i64,
    /// Frames counted in this commit.
    pub frames: u64,
    /// The capture's counters over this commit's window.
    pub counters: CaptureCounters,
    /// Why it was made.
    pub kind: CommitKind,
}

/// Why a commit was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitKind {
    /// Its bucket closed (end + grace). Made even with no frames: a row
    /// per bucket says the sensor was up, so silence is not mistaken for
    /// an outage.
    Closed,
    /// SIGHUP changed the darknet: what was counted under the old one;
    /// the bucket stays open.
    Reload,
    /// The sensor stopped; the bucket stays open for a later run. Frames
    /// that passed the filter but were never read are counted as dropped.
    Stop,
}

/// What a whole sensor run counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SensorTotals {
    /// Frames counted (all committed: in the store, or in its spool).
    pub frames: u64,
    /// Commits made (stored, or spooled with [`Spooling`]).
    pub commits: u64,
    /// Of them, commits that went to the local spool.
    pub spooled: u64,
    /// The capture's counters over the whole run.
    pub counters: CaptureCounters,
    /// Start (ns) of the bucket the latest commit was charged to.
    pub last_commit_bucket_ns: Option<i64>,
    /// Frames that passed the filter but were still in the kernel's ring
    /// when the sensor stopped (traffic still arriving): lost, and counted
    /// in `counters.dropped` (so counted + dropped = received).
    pub unread: u64,
}

/// The kernel filter for a darknet: frames to any of `darknets`, and with
/// `vlan` also under one VLAN tag (tcpdump's `net` syntax; `vlan` shifts
/// the offsets of what follows it, hence the repeat; libpcap knows VLAN
/// tags only on Ethernet, not on `any`'s cooked link). Empty with no
/// prefix (every frame).
pub fn darknet_filter(darknets: &[Prefix], vlan: bool) -> String {
    if darknets.is_empty() {
        return String::new();
    }
    let nets = darknets
        .iter()
        .map(|p| format!("dst net {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    if vlan {
        format!("({nets}) or (vlan and ({nets}))")
    } else {
        nets
    }
}

/// Frames between two looks at the clock on a busy capture (an idle one
/// looks at every read timeout).
const CLOCK_EVERY: u32 = 256;

/// The time (ns) at which the bucket open at `now_ns`, or the one before
/// it while its grace period runs, is committed.
pub fn next_close(now_ns: i64, bucket_ns: i64, grace_ns: i64) -> i64 {
    let start = now_ns.div_euclid(bucket_ns) * bucket_ns;
    if now_ns < start.saturating_add(grace_ns) {
        start.saturating_add(grace_ns)
    } else {
        start.saturating_add(bucket_ns).saturating_add(grace_ns)
    }
}

/// What the sensor is told from outside (set by signal handlers, so plain
/// atomics): stop, or close the archive file and open a new one.
#[derive(Debug, Default)]
pub struct Signals {
    /// SIGTERM, SIGINT: commit what is open and return.
    pub stop: AtomicBool,
    /// SIGHUP: close the open archive file (so it can be moved) and go on.
    pub reopen: AtomicBool,
}

impl Signals {
    /// Neither set.
    pub const fn new() -> Signals {
        Signals {
            stop: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
        }
    }
}

/// Windows whose commit failed are kept and tried again at every later
/// commit (a `telescope analyze` holding the store's write lock, a full
/// disk); past this many the sensor stops with an error naming the frames
/// lost.
const MAX_PENDING: usize = 16;

/// The capture's counters are read at least this often, ns: libpcap's are
/// 32-bit, and 2^32 frames at 10 million a second take seven minutes.
const COUNTERS_EVERY_NS: i64 = 5_000_000_000;

/// On stop, how long the kernel's ring is still read for the frames it
/// already holds, ns.
const DRAIN_NS: i64 = 2_000_000_000;

/// Frames stamped up to this far past the clock are believed, ns: the
/// plausible window's end moves with the clock at every commit.
const FUTURE_SLACK_NS: i64 = 86_400_000_000_000;

/// Counts frames from `source` into `store` (and writes them to `archive`,
/// if any) until `signals.stop` is set, then reads what the kernel still
/// holds, commits what is open and returns the run's totals.
///
/// `clock` gives the time in ns since the epoch (the system clock; tests
/// pass their own). `hooks` hears of every commit, archive file and
/// failed commit and, every `cfg.status_every_ns`, of where the run stands
/// (for a status line). Frames stamped after one day past the clock, or
/// before `cfg.telescope.plausible.from_ns`, are counted as
/// `implausible_time` (in no bucket), as for files.
///
/// A commit the store refuses (locked, disk full) is kept and tried again
/// at the next commits, up to [`MAX_PENDING`] windows. Each archive file
/// is recorded in the store as soon as it closes, and only then renamed
/// from `.pcap.part` to `.pcap`, so a file with its final name is always
/// known to the store.
///
/// Errors: [`SensorError::Capture`] when the source fails and
/// [`SensorError::Archive`] when the archive cannot be written (in both
/// cases what was counted is committed first); [`SensorError::Store`] when
/// commits keep failing (their frames are named as lost; earlier commits
/// stay).
pub fn run<S: PacketSource + ?Sized>(
    source: &mut S,
    store: &mut dyn CommitSink,
    cfg: &SensorConfig,
    mut archive: Option<&mut Archive>,
    signals: &Signals,
    clock: &dyn Fn() -> i64,
    hooks: &mut dyn Hooks,
) -> Result<SensorTotals, SensorError> {
    let mut tcfg = TelescopeConfig {
        detail: true,
        shard: (0, 1),
        ..cfg.telescope.clone()
    };
    let bucket_ns = tcfg.bucket_ns;
    let link = source.link();
    let name = source.name().to_string();
    let mut out = Committer {
        store,
        pending: VecDeque::new(),
        totals: SensorTotals::default(),
        hooks,
        name: name.clone(),
        // Commit records are told apart by this run's start (wall clock,
        // ns), the process and a sequence number: the store refuses a
        // record twice.
        run_id: format!(
            "{}:{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
        seq: 0,
        tcfg: tcfg.clone(),
        last_error: None,
    };
    let started = clock();
    let mut cfg = cfg.clone();
    // A grace period from SIGHUP, applied when the pending close fires.
    let mut next_grace: Option<i64> = None;
    // The source's counters run from when it was opened, for this run: a
    // burst dropped before the first read is this run's loss too.
    let mut window = Window::new(&tcfg, CaptureCounters::default(), started);
    let mut close_at = next_close(started, bucket_ns, cfg.grace_ns);
    let mut since_clock = 0u32;
    let (mut status_at, mut status_frames) = (started, 0u64);
    let mut counters_at = started;
    let mut failure = loop {
        if signals.stop.load(Ordering::Relaxed) {
            break None;
        }
        // A load first: a swap per frame would be a locked write per frame.
        if signals.reopen.load(Ordering::Relaxed) && signals.reopen.swap(false, Ordering::Relaxed) {
            if let Some(a) = archive.as_deref_mut() {
                match a.close() {
                    Ok(closed) => out.archived(closed)?,
                    Err(e) => break Some(e.into()),
                }
            }
            // A new darknet from the configuration: what was counted under
            // the old one is committed now (to the open bucket; the store
            // adds the rest of the bucket to it), then the filter and the
            // counting change.
            let reload = out.hooks.reload().unwrap_or_default();
            let (grace, status) = (reload.grace_ns, reload.status_every_ns);
            if grace.is_some() || status.is_some() {
                if let Some(g) = grace.filter(|g| (0..bucket_ns).contains(g)) {
                    next_grace = Some(g);
                }
                if let Some(s) = status.filter(|s| *s >= 0) {
                    cfg.status_every_ns = s;
                }
                out.hooks.event(Event::Settings {
                    grace_ns: next_grace.unwrap_or(cfg.grace_ns),
                    status_every_ns: cfg.status_every_ns,
                });
            }
            if let Some(darknets) = reload.darknets.filter(|d| *d != tcfg.darknets) {
                if let Err(e) = source.set_darknets(&darknets) {
                    break Some(e);
                }
                let now = clock();
                let counters = match source.counters() {
                    Ok(c) => c,
                    Err(e) => break Some(e),
                };
                tcfg.darknets = darknets;
                out.tcfg = tcfg.clone();
                let next = Window::new(&tcfg, counters, now);
                let open = now.div_euclid(bucket_ns) * bucket_ns;
                out.commit(
                    std::mem::replace(&mut window, next),
                    open,
                    counters,
                    CommitKind::Reload,
                )?;
                out.hooks.event(Event::Reloaded(&tcfg.darknets));
            }
        }
        match source.next_frame() {
            Ok(Some(f)) => {
                if let Some(a) = archive.as_deref_mut() {
                    match a.write(f.ts_ns, f.orig_len, f.data) {
                        Ok(closed) => out.archived(closed)?,
                        Err(e) => break Some(e.into()),
                    }
                }
                window.count(f.ts_ns, link, f.data);
                since_clock += 1;
                if since_clock < CLOCK_EVERY {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => break Some(e),
        }
        since_clock = 0;
        let now = clock();
        if now >= close_at || now.saturating_sub(counters_at) >= COUNTERS_EVERY_NS {
            let counters = match source.counters() {
                Ok(c) => c,
                Err(e) => break Some(e),
            };
            counters_at = now;
            if let Some(a) = archive.as_deref_mut() {
                if let Err(e) = a.flush() {
                    break Some(e.into());
                }
            }
            if now >= close_at {
                // The bucket that closed started one bucket before the
                // grace period's start.
                let closed = close_at - cfg.grace_ns - bucket_ns;
                let next = Window::new(&tcfg, counters, now);
                out.commit(
                    std::mem::replace(&mut window, next),
                    closed,
                    counters,
                    CommitKind::Closed,
                )?;
                if let Some(g) = next_grace.take() {
                    cfg.grace_ns = g;
                }
                close_at = next_close(now, bucket_ns, cfg.grace_ns);
            }
        }
        if cfg.status_every_ns > 0 && now.saturating_sub(status_at) >= cfg.status_every_ns {
            let counters = match source.counters() {
                Ok(c) => c,
                Err(e) => break Some(e),
            };
            let frames = out.totals.frames + window.frames + out.pending_frames();
            let secs = now.saturating_sub(status_at) as f64 / 1e9;
            out.hooks.event(Event::Status(&Status {
                frames,
                per_second: (frames - status_frames) as f64 / secs,
                counters,
                last_commit_bucket_ns: out.totals.last_commit_bucket_ns,
            }));
            (status_at, status_frames) = (now, frames);
        }
    };
    // Stopped: the frames the kernel already holds are read (up to those
    // stamped at the stop), so that counted + dropped = received.
    let stop_at = clock();
    if failure.is_none() {
        let mut idle = 0;
        while idle < 2 && clock().saturating_sub(stop_at) < DRAIN_NS {
            match source.next_frame() {
                Ok(Some(f)) => {
                    idle = 0;
                    let (ts, late) = (f.ts_ns, f.ts_ns > stop_at);
                    if let Some(a) = archive.as_deref_mut() {
                        match a.write(f.ts_ns, f.orig_len, f.data) {
                            Ok(closed) => out.archived(closed)?,
                            Err(e) => {
                                failure = Some(e.into());
                                break;
                            }
                        }
                    }
                    window.count(ts, link, f.data);
                    if late {
                        break;
                    }
                }
                Ok(None) => idle += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    // The archive file is closed and what was counted is committed.
    if let Some(a) = archive {
        match a.close() {
            Ok(closed) => out.archived(closed)?,
            Err(e) => failure = failure.or(Some(e.into())),
        }
    }
    let now = clock();
    let open = now.div_euclid(bucket_ns) * bucket_ns;
    let counters = match source.counters() {
        Ok(c) => c,
        Err(e) => {
            // The last window's loss cannot be known: it is reported.
            failure = failure.or(Some(e));
            window.counters_at_start
        }
    };
    out.commit(window, open, counters, CommitKind::Stop)?;
    if let Some(e) = out.give_up_if_pending() {
        return Err(e);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(out.totals),
    }
}

/// What is counted between two commits.
struct Window {
    telescope: Telescope,
    frames: u64,
    implausible_time: u64,
    counters_at_start: CaptureCounters,
}

impl Window {
    /// A window opened at `now_ns`: frames up to a day past it are
    /// plausible.
    fn new(cfg: &TelescopeConfig, counters: CaptureCounters, now_ns: i64) -> Window {
        let mut cfg = cfg.clone();
        cfg.plausible.until_ns = now_ns.saturating_add(FUTURE_SLACK_NS);
        Window {
            telescope: Telescope::new(cfg),
            frames: 0,
            implausible_time: 0,
            counters_at_start: counters,
        }
    }

    #[inline]
    fn count(&mut self, ts_ns: i64, link: LinkType, data: &[u8]) {
        self.implausible_time += !self.telescope.config().plausible.contains(ts_ns) as u64;
        self.frames += 1;
        self.telescope
            .ingest_decoded(ts_ns, data.len() as u32, decode(link, data));
    }
}

/// A commit ready to store: a finished telescope, its records, what to
/// tell when it is stored, and archive files to rename then.
struct Ready {
    telescope: Telescope,
    records: Vec<IngestedFile>,
    commit: Option<Commit>,
    publish: Vec<ClosedFile>,
}

/// Stores commits in order, keeping those the store refuses for later.
struct Committer<'a> {
    store: &'a mut dyn CommitSink,
    pending: VecDeque<Ready>,
    totals: SensorTotals,
    hooks: &'a mut dyn Hooks,
    name: String,
    run_id: String,
    seq: u64,
    tcfg: TelescopeConfig,
    /// Why the last try failed, while commits wait.
    last_error: Option<StoreError>,
}

impl Committer<'_> {
    /// Frames of commits waiting for the store.
    fn pending_frames(&self) -> u64 {
        self.pending
            .iter()
            .filter_map(|r| r.commit.as_ref())
            .map(|c| c.frames)
            .sum()
    }

    /// Seals `w` (its frames, and the capture's counters over it as the
    /// loss of bucket `bucket_start_ns`) and stores it with any commit
    /// still waiting. A closed bucket is always stored (a row says the
    /// sensor was up); a reload or stop window with no frames and no
    /// counter movement stores nothing.
    fn commit(
        &mut self,
        mut w: Window,
        bucket_start_ns: i64,
        counters: CaptureCounters,
        kind: CommitKind,
    ) -> Result<(), SensorError> {
        let mut delta = counters.since(&w.counters_at_start);
        self.totals.counters.received += delta.received;
        self.totals.counters.dropped += delta.dropped;
        self.totals.counters.if_dropped += delta.if_dropped;
        if kind == CommitKind::Stop {
            // What passed the filter and was neither read nor dropped is
            // still in the ring: it is lost with the socket, so it is loss.
            let counted = self.totals.frames + self.pending_frames() + w.frames;
            let unread = self
                .totals
                .counters
                .received
                .saturating_sub(counted.saturating_add(self.totals.counters.dropped));
            delta.dropped += unread;
            self.totals.counters.dropped += unread;
            self.totals.unread = unread;
        }
        if kind == CommitKind::Closed || w.frames > 0 || delta != CaptureCounters::default() {
            w.telescope.finish();
            self.seq += 1;
            let record = IngestedFile {
                // Unique per commit: the store refuses a content hash twice.
                content_hash: format!("sensor:{}:{}:{}", self.name, self.run_id, self.seq),
                path: format!("interface {}", self.name),
                frames: w.frames,
                status: "complete".into(),
                ingested_at: now_rfc3339(),
                implausible_time: w.implausible_time,
                capture_loss: Some(CaptureLoss {
                    interface: self.name.clone(),
                    bucket_start_ns,
                    received: delta.received,
                    dropped: delta.dropped,
                    if_dropped: delta.if_dropped,
                }),
            };
            self.pending.push_back(Ready {
                telescope: w.telescope,
                records: vec![record],
                commit: Some(Commit {
                    seq: self.seq,
                    bucket_start_ns,
                    frames: w.frames,
                    counters: delta,
                    kind,
                }),
                publish: Vec::new(),
            });
        }
        self.flush()
    }

    /// Records an archive file that closed (its content hash, so that
    /// `telescope analyze --db` of it into this store finds its frames
    /// already counted), then gives it its final name.
    fn archived(&mut self, closed: Option<ClosedFile>) -> Result<(), SensorError> {
        let Some(c) = closed else {
            return Ok(());
        };
        let mut empty = Telescope::new(self.tcfg.clone());
        empty.finish();
        self.pending.push_back(Ready {
            telescope: empty,
            records: vec![IngestedFile {
                content_hash: c.content_hash.clone(),
                path: c.path.display().to_string(),
                frames: c.frames,
                status: "archived".into(),
                ingested_at: now_rfc3339(),
                implausible_time: 0,
                capture_loss: None,
            }],
            commit: None,
            publish: vec![c],
        });
        self.flush()
    }

    /// Stores waiting commits in order until the store refuses one (kept,
    /// with what follows it, for the next try).
    fn flush(&mut self) -> Result<(), SensorError> {
        while let Some(ready) = self.pending.front_mut() {
            match self.store.save_run(&ready.telescope, &ready.records) {
                Ok(Saved::Stored { forwarded }) => {
                    if forwarded > 0 {
                        self.hooks.event(Event::Forwarded { runs: forwarded });
                    }
                }
                Ok(Saved::Spooled {
                    error,
                    forwarded,
                    waiting,
                }) => {
                    if forwarded > 0 {
                        self.hooks.event(Event::Forwarded { runs: forwarded });
                    }
                    self.totals.spooled += 1;
                    self.hooks.event(Event::Spooled {
                        error: error.as_ref(),
                        waiting,
                    });
                }
                // A record already there was stored by an earlier try whose
                // answer was lost, or (an archive file) analysed by someone
                // else meanwhile: it is dropped and the rest tried again.
                Err(StoreError::Duplicate { content_hash, .. }) => {
                    if ready.records.first().map(|r| &r.content_hash) != Some(&content_hash) {
                        ready.records.retain(|r| r.content_hash != content_hash);
                        continue;
                    }
                }
                Err(e) => {
                    self.hooks.event(Event::CommitFailed {
                        error: &e,
                        waiting: self.pending.len(),
                    });
                    if self.pending.len() > MAX_PENDING {
                        return Err(SensorError::Store {
                            frames: self.pending_frames(),
                            source: e,
                        });
                    }
                    self.last_error = Some(e);
                    return Ok(());
                }
            }
            self.last_error = None;
            let ready = self.pending.pop_front().expect("front exists");
            for c in &ready.publish {
                crate::archive::publish(c)?;
                self.hooks.event(Event::Archived(&c.path));
            }
            if let Some(c) = ready.commit {
                self.totals.commits += 1;
                self.totals.frames += c.frames;
                self.totals.last_commit_bucket_ns = Some(c.bucket_start_ns);
                self.hooks.event(Event::Commit(&c));
            }
        }
        Ok(())
    }

    /// After the last commit: commits still waiting are lost, and said so.
    fn give_up_if_pending(&mut self) -> Option<SensorError> {
        let source = self.last_error.take()?;
        (!self.pending.is_empty()).then(|| SensorError::Store {
            frames: self.pending_frames(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotscope_store::{ReportQuery, SqliteStore};
    use std::cell::Cell;
    use std::rc::Rc;

    const MIN: i64 = 60_000_000_000;

    /// An Ethernet + IPv4 + TCP SYN frame from `src` to 198.18.0.`dst`.
    fn syn(src: u32, dst: u8, port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&src.to_be_bytes());
        f[30..34].copy_from_slice(&[198, 18, 0, dst]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x02;
        f
    }

    /// Frames in memory; the clock is the time of the last frame handed
    /// out (plus what the test adds), and the source stops the sensor once
    /// every frame is out and the clock has passed `end_ns`.
    struct Replay {
        frames: Vec<(i64, Vec<u8>)>,
        next: usize,
        now: Rc<Cell<i64>>,
        end_ns: i64,
        signals: Rc<Signals>,
        /// The drop counter once `n` frames were handed out.
        dropped: fn(usize) -> u64,
        /// SIGHUP comes after this many frames.
        hup_at: usize,
        /// Frames the "kernel" passed that are never handed out (still in
        /// the ring at the stop).
        in_ring: u64,
    }

    impl Replay {
        /// The source, its clock and the signals it sets.
        fn new(
            frames: Vec<(i64, Vec<u8>)>,
            dropped: fn(usize) -> u64,
            hup_at: usize,
        ) -> (Replay, Rc<Cell<i64>>, Rc<Signals>) {
            let now = Rc::new(Cell::new(frames[0].0));
            let signals = Rc::new(Signals::new());
            let end_ns = frames.iter().map(|f| f.0).max().unwrap() + 30_000_000_000;
            let source = Replay {
                frames,
                next: 0,
                now: now.clone(),
                end_ns,
                signals: signals.clone(),
                dropped,
                hup_at,
                in_ring: 0,
            };
            (source, now, signals)
        }
    }

    impl PacketSource for Replay {
        fn name(&self) -> &str {
            "test0"
        }
        fn link(&self) -> LinkType {
            LinkType::Ethernet
        }
        fn next_frame(&mut self) -> Result<Option<CapturedFrame<'_>>, SensorError> {
            match self.frames.get(self.next) {
                Some((ts, data)) => {
                    self.next += 1;
                    if self.next == self.hup_at {
                        self.signals.reopen.store(true, Ordering::Relaxed);
                    }
                    self.now.set(self.now.get().max(*ts));
                    Ok(Some(CapturedFrame {
                        ts_ns: *ts,
                        data,
                        orig_len: data.len() as u32,
                    }))
                }
                None => {
                    // Idle: time passes by a second per read timeout.
                    self.now.set(self.now.get() + 1_000_000_000);
                    if self.now.get() >= self.end_ns {
                        self.signals.stop.store(true, Ordering::Relaxed);
                    }
                    Ok(None)
                }
            }
        }
        fn counters(&mut self) -> Result<CaptureCounters, SensorError> {
            let dropped = (self.dropped)(self.next);
            let in_ring = if self.next == self.frames.len() {
                self.in_ring
            } else {
                0
            };
            Ok(CaptureCounters {
                received: self.next as u64 + dropped + in_ring,
                dropped,
                if_dropped: 0,
            })
        }
    }

    /// 3,000 frames over five one-minute buckets, some late (stamped in a
    /// bucket that had already closed), from 700 sources.
    fn traffic() -> Vec<(i64, Vec<u8>)> {
        let t0 = 1_700_000_000 * 1_000_000_000i64 / MIN * MIN;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::new();
        for i in 0..3000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut ts = t0 + i * (5 * MIN / 3000);
            if i % 97 == 0 && i > 1000 {
                ts -= 90_000_000_000; // 90 s late: its bucket is closed
            }
            let src = 0x0a00_0000 | (x % 700) as u32;
            let port = [23u16, 2323, 80, 5555][(x >> 20) as usize % 4];
            out.push((ts, syn(src, (x >> 30) as u8, port)));
        }
        out
    }

    fn report(store: &SqliteStore) -> serde_json::Value {
        let mut v = serde_json::to_value(
            store
                .report(&ReportQuery {
                    top: usize::MAX,
                    ..Default::default()
                })
                .unwrap(),
        )
        .unwrap();
        v.as_object_mut().unwrap().remove("files");
        v.as_object_mut().unwrap().remove("capture_loss");
        v
    }

    fn config() -> SensorConfig {
        SensorConfig {
            telescope: TelescopeConfig {
                darknets: vec!["198.18.0.0/15".parse().unwrap()],
                bucket_ns: MIN,
                ..Default::default()
            },
            grace_ns: 5_000_000_000,
            status_every_ns: MIN,
        }
    }

    fn sense(
        frames: Vec<(i64, Vec<u8>)>,
        store: &mut SqliteStore,
        dropped: fn(usize) -> u64,
    ) -> Vec<Commit> {
        sense_into(frames, store, dropped, None).0
    }

    /// What a test run heard.
    struct Heard<'a> {
        commits: &'a mut Vec<Commit>,
        statuses: &'a mut Vec<Status>,
        archived: &'a mut Vec<std::path::PathBuf>,
    }

    impl Hooks for Heard<'_> {
        fn event(&mut self, e: Event<'_>) {
            match e {
                Event::Commit(c) => self.commits.push(c.clone()),
                Event::Status(s) => self.statuses.push(s.clone()),
                Event::Archived(p) => self.archived.push(p.to_path_buf()),
                Event::CommitFailed { .. }
                | Event::Spooled { .. }
                | Event::Forwarded { .. }
                | Event::Reloaded(_)
                | Event::Settings { .. } => {}
            }
        }
    }

    /// The commits and the archive files recorded.
    fn sense_into(
        frames: Vec<(i64, Vec<u8>)>,
        store: &mut dyn CommitSink,
        dropped: fn(usize) -> u64,
        archive: Option<&mut Archive>,
    ) -> (Vec<Commit>, Vec<std::path::PathBuf>) {
        let (start_ns, end_ns) = (frames[0].0, frames.iter().map(|f| f.0).max().unwrap());
        let (mut source, now, signals) = Replay::new(frames, dropped, usize::MAX);
        let mut commits = Vec::new();
        let mut statuses = Vec::new();
        let mut archived = Vec::new();
        let clock = {
            let now = now.clone();
            move || now.get()
        };
        run(
            &mut source,
            store,
            &config(),
            archive,
            &signals,
            &clock,
            &mut Heard {
                commits: &mut commits,
                statuses: &mut statuses,
                archived: &mut archived,
            },
        )
        .unwrap();
        // Statuses at least a minute apart (the clock is looked at every
        // 256 frames), over a run of more than a minute.
        assert!(end_ns - start_ns < 2 * MIN || !statuses.is_empty());
        assert!(statuses.windows(2).all(|w| w[0].frames <= w[1].frames));
        (commits, archived)
    }

    #[test]
    fn buckets_committed_as_they_close_equal_one_analysis_of_the_same_frames() {
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let commits = sense(frames.clone(), &mut live, |_| 0);
        // One commit per minute bucket as it closes, the last at the stop.
        assert!(commits.len() >= 5, "{commits:?}");
        assert_eq!(commits.iter().map(|c| c.frames).sum::<u64>(), 3000);
        for pair in commits.windows(2) {
            assert!(pair[0].bucket_start_ns < pair[1].bucket_start_ns);
        }

        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        let mut t = Telescope::new(TelescopeConfig {
            detail: true,
            ..config().telescope
        });
        for (ts, data) in &frames {
            t.ingest_decoded(*ts, data.len() as u32, decode(LinkType::Ethernet, data));
        }
        t.finish();
        Store::save_run(&mut once, &t, &[]).unwrap();
        assert_eq!(report(&live), report(&once));
    }

    #[test]
    fn a_restart_in_the_middle_of_a_bucket_counts_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let (a, b) = frames.split_at(1234);
        sense(a.to_vec(), &mut live, |_| 0);
        sense(b.to_vec(), &mut live, |_| 0);
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        sense(frames, &mut once, |_| 0);
        assert_eq!(report(&live), report(&once));
    }

    #[test]
    fn drops_are_stored_with_the_bucket_they_happened_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        // 7 drops before the first frame was read (the source's counters
        // run from its opening: they are this run's), then one in ten.
        let commits = sense(traffic(), &mut live, |n| 7 + n as u64 / 10);
        assert_eq!(commits.iter().map(|c| c.counters.dropped).sum::<u64>(), 307);
        let loss = live.capture_loss(None, None).unwrap();
        assert_eq!(loss.iter().map(|l| l.dropped).sum::<u64>(), 307);
        // Received counts the frames counted and the frames dropped.
        assert_eq!(loss.iter().map(|l| l.received).sum::<u64>(), 3307);
        let rep = live
            .report(&ReportQuery {
                top: 10,
                ..Default::default()
            })
            .unwrap();
        let c = rep.capture_loss.expect("a sensor's store reports its loss");
        assert_eq!((c.received, c.dropped), (3307, 307));
        let marked: u64 = rep.series.iter().map(|b| b.dropped).sum();
        assert_eq!(marked, 307, "every drop is marked on its bucket");
        assert!(!c.lossy_buckets.is_empty());
    }

    #[test]
    fn the_archive_re_analysed_gives_the_stored_figures_and_is_known_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let mut archive = Archive::new(
            crate::archive::ArchiveConfig {
                dir: dir.path().join("archive"),
                rotate_ns: 2 * MIN,
                max_bytes: None,
                snaplen: 65535,
            },
            "test0",
            LinkType::Ethernet,
        )
        .unwrap();
        let (_, archived) = sense_into(frames, &mut live, |_| 0, Some(&mut archive));
        // Five minutes in two-minute files.
        assert_eq!(archived.len(), 3, "{archived:?}");
        let (again, outcomes) = crate::files::analyze_files(
            &archived,
            TelescopeConfig {
                detail: true,
                ..config().telescope
            },
            1,
            false,
            &mut |_| {},
        );
        assert!(outcomes.iter().all(|o| o.error.is_none() && o.frames > 0));
        let mut again = again;
        again.finish();
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        Store::save_run(&mut once, &again, &[]).unwrap();
        assert_eq!(report(&live), report(&once));
        // The store knows each file by its content: analysing one into it
        // again would be refused as a duplicate.
        for path in &archived {
            let bytes = std::fs::read(path).unwrap();
            let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
            let known = live
                .find_file(&hash)
                .unwrap()
                .expect("archive file recorded");
            assert_eq!(known.status, "archived");
        }
    }

    /// Fails the first `failures` commits it is given, then stores.
    struct Flaky {
        store: SqliteStore,
        failures: usize,
    }

    impl CommitSink for Flaky {
        fn save_run(&mut self, t: &Telescope, files: &[IngestedFile]) -> Result<Saved, StoreError> {
            self.fail()?;
            Store::save_run(&mut self.store, t, files).map(|()| Saved::Stored { forwarded: 0 })
        }

        fn save_spooled(
            &mut self,
            run: &SpooledRun,
            files: &[IngestedFile],
        ) -> Result<(), StoreError> {
            self.fail()?;
            Store::save_spooled(&mut self.store, run, files)
        }
    }

    impl Flaky {
        fn fail(&mut self) -> Result<(), StoreError> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(StoreError::Database {
                    path: "flaky".into(),
                    source: rusqlite::Error::InvalidQuery,
                });
            }
            Ok(())
        }
    }

    #[test]
    fn commits_the_store_refuses_are_kept_and_stored_later() {
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let mut flaky = Flaky {
            store: SqliteStore::open(&dir.path().join("live.db")).unwrap(),
            failures: 3,
        };
        let (commits, _) = sense_into(frames.clone(), &mut flaky, |_| 0, None);
        assert_eq!(commits.iter().map(|c| c.frames).sum::<u64>(), 3000);
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        sense(frames, &mut once, |_| 0);
        assert_eq!(report(&flaky.store), report(&once));
    }

    #[test]
    fn with_a_spool_an_outage_loses_nothing_and_keeps_the_order() {
        // The store refuses 40 tries in a row (more than MAX_PENDING commits
        // would survive in memory): every commit of the outage goes to the
        // spool, the later ones follow them, and the store ends as if it
        // had never been away.
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let spool = Spool::open(&dir.path().join("s.spool"), 1 << 30).unwrap();
        let mut sink = Spooling::new(
            Flaky {
                store: SqliteStore::open(&dir.path().join("live.db")).unwrap(),
                failures: 40,
            },
            spool,
        );
        let (commits, _) = sense_into(frames.clone(), &mut sink, |_| 0, None);
        assert_eq!(commits.iter().map(|c| c.frames).sum::<u64>(), 3000);
        assert!(sink.spool().waiting().unwrap().0 as usize >= commits.len());
        // The store comes back: what waits goes with the next forwards.
        let tries = (0..50).take_while(|_| sink.forward(None).is_err()).count();
        assert!(tries < 50);
        assert_eq!(sink.spool().waiting().unwrap().0, 0);
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        sense(frames, &mut once, |_| 0);
        assert_eq!(report(&sink.store.store), report(&once));
    }

    #[test]
    fn a_spool_left_by_one_run_is_forwarded_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let frames = traffic();
        let (first, second) = frames.split_at(1500);
        let path = dir.path().join("s.spool");
        let live = dir.path().join("live.db");
        {
            let mut down = Spooling::new(
                Flaky {
                    store: SqliteStore::open(&live).unwrap(),
                    failures: usize::MAX,
                },
                Spool::open(&path, 1 << 30).unwrap(),
            );
            sense_into(first.to_vec(), &mut down, |_| 0, None);
            assert!(down.spool().waiting().unwrap().0 > 0);
        }
        let mut up = Spooling::new(
            SqliteStore::open(&live).unwrap(),
            Spool::open(&path, 1 << 30).unwrap(),
        );
        sense_into(second.to_vec(), &mut up, |_| 0, None);
        assert_eq!(up.spool().waiting().unwrap().0, 0);
        let mut once = SqliteStore::open(&dir.path().join("once.db")).unwrap();
        sense(frames, &mut once, |_| 0);
        assert_eq!(report(&up.store), report(&once));
    }

    #[test]
    fn days_of_capture_stay_in_their_buckets() {
        // The plausible window's end moves with the clock: frames of the
        // third day are not taken for a clock gone wrong.
        let dir = tempfile::tempdir().unwrap();
        let day = 24 * 60 * MIN;
        let mut frames = Vec::new();
        for (i, f) in traffic().into_iter().enumerate() {
            frames.push((f.0 + (i as i64 % 3) * day, f.1));
        }
        frames.sort_by_key(|f| f.0);
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        sense(frames, &mut live, |_| 0);
        let rep = live.report(&ReportQuery::default()).unwrap();
        assert_eq!(rep.implausible_time, 0);
        assert_eq!(rep.series.iter().map(|b| b.packets).sum::<u64>(), 3000);
    }

    /// Hears statuses and settings; on SIGHUP gives `reload`.
    struct Reloads {
        reload: Reload,
        statuses: usize,
        settings: Vec<(i64, i64)>,
    }

    impl Hooks for Reloads {
        fn event(&mut self, e: Event<'_>) {
            match e {
                Event::Status(_) => self.statuses += 1,
                Event::Settings {
                    grace_ns,
                    status_every_ns,
                } => self.settings.push((grace_ns, status_every_ns)),
                _ => {}
            }
        }
        fn reload(&mut self) -> Option<Reload> {
            Some(self.reload.clone())
        }
    }

    /// The traffic replayed with SIGHUP after 1,000 frames giving `reload`:
    /// the store's report and what the hooks heard.
    fn sense_reloading(reload: Reload) -> (iotscope_telescope::Summary, Reloads) {
        let dir = tempfile::tempdir().unwrap();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let (mut source, now, signals) = Replay::new(traffic(), |_| 0, 1000);
        let clock = move || now.get();
        let mut hooks = Reloads {
            reload,
            statuses: 0,
            settings: Vec::new(),
        };
        run(
            &mut source,
            &mut live,
            &config(),
            None,
            &signals,
            &clock,
            &mut hooks,
        )
        .unwrap();
        (live.report(&ReportQuery::default()).unwrap(), hooks)
    }

    #[test]
    fn sighup_with_a_new_darknet_commits_the_old_and_counts_by_the_new() {
        // The new darknet holds none of the frames' destinations.
        let (rep, _) = sense_reloading(Reload {
            darknets: Some(vec!["10.99.0.0/16".parse().unwrap()]),
            ..Default::default()
        });
        // The signal is seen before the next frame is read.
        assert_eq!(rep.packets, 1000);
        assert_eq!(rep.packets + rep.outside, 3000);
    }

    /// SIGHUP's grace period and status interval: the status comes as the
    /// new interval says, every frame is still committed once, and a grace
    /// period as long as the bucket is refused.
    #[test]
    fn sighup_with_new_grace_and_status_intervals() {
        let (rep, hooks) = sense_reloading(Reload {
            darknets: None,
            grace_ns: Some(MIN),
            status_every_ns: Some(MIN),
        });
        assert_eq!(rep.packets, 3000);
        // A grace as long as the bucket is refused: the old one stays.
        assert_eq!(hooks.settings, vec![(config().grace_ns, MIN)]);
        // The traffic spans several minutes: statuses came once a minute.
        assert!(hooks.statuses >= 3, "{}", hooks.statuses);

        let (rep, hooks) = sense_reloading(Reload {
            darknets: None,
            grace_ns: Some(2_000_000_000),
            status_every_ns: Some(MIN),
        });
        assert_eq!(hooks.settings, vec![(2_000_000_000, MIN)]);
        assert_eq!(rep.packets, 3000);
    }

    #[test]
    fn frames_left_in_the_ring_at_the_stop_are_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut live = SqliteStore::open(&dir.path().join("live.db")).unwrap();
        let (mut source, now, signals) = Replay::new(traffic(), |_| 0, usize::MAX);
        source.in_ring = 5;
        let clock = move || now.get();
        let (mut commits, mut statuses, mut archived) = (Vec::new(), Vec::new(), Vec::new());
        let mut heard = Heard {
            commits: &mut commits,
            statuses: &mut statuses,
            archived: &mut archived,
        };
        let totals = run(
            &mut source,
            &mut live,
            &config(),
            None,
            &signals,
            &clock,
            &mut heard,
        )
        .unwrap();
        assert_eq!(totals.unread, 5);
        assert_eq!(
            totals.frames + totals.counters.dropped,
            totals.counters.received
        );
        let rep = live.report(&ReportQuery::default()).unwrap();
        let loss = rep.capture_loss.unwrap();
        assert_eq!((loss.received, loss.dropped), (3005, 5));
        assert_eq!(rep.packets + loss.dropped, loss.received);
        // Every bucket that closed has its row, with frames or not.
        assert!(
            commits
                .iter()
                .filter(|c| c.kind == CommitKind::Closed)
                .count()
                >= 5
        );
    }

    #[test]
    fn the_darknet_filter_names_every_prefix_bare_and_tagged() {
        let nets = [
            "198.18.0.0/15".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(
            darknet_filter(&nets, true),
            "(dst net 198.18.0.0/15 or dst net 2001:db8::/32) or \
             (vlan and (dst net 198.18.0.0/15 or dst net 2001:db8::/32))"
        );
        assert_eq!(
            darknet_filter(&nets, false),
            "dst net 198.18.0.0/15 or dst net 2001:db8::/32"
        );
        assert_eq!(darknet_filter(&[], true), "");
    }

    #[test]
    fn the_commit_time_waits_for_the_grace_period() {
        let (b, g) = (MIN, 5_000_000_000);
        // During the grace period the previous bucket is still open.
        assert_eq!(next_close(10 * b + 1, b, g), 10 * b + g);
        assert_eq!(next_close(10 * b + g, b, g), 11 * b + g);
        assert_eq!(next_close(10 * b + 30_000_000_000, b, g), 11 * b + g);
        assert_eq!(next_close(-1, b, g), g);
    }
}
