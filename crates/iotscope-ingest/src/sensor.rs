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
use iotscope_store::{now_rfc3339, CaptureLoss, IngestedFile, Store, StoreError};
use iotscope_telescope::{Telescope, TelescopeConfig};
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
    /// True when this commit was made because the sensor stopped.
    pub last: bool,
    /// Archive files closed since the previous commit, recorded by this one.
    pub archived: Vec<std::path::PathBuf>,
}

/// What a whole sensor run counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SensorTotals {
    /// Frames counted (all committed).
    pub frames: u64,
    /// Commits made.
    pub commits: u64,
    /// The capture's counters over the whole run.
    pub counters: CaptureCounters,
}

/// The kernel filter for a darknet: frames to any of `darknets`, bare or
/// under one VLAN tag (tcpdump's `net` syntax; `vlan` shifts the offsets
/// of what follows it, hence the repeat). Empty with no prefix (every
/// frame).
pub fn darknet_filter(darknets: &[iotscope_telescope::Prefix]) -> String {
    if darknets.is_empty() {
        return String::new();
    }
    let nets = darknets
        .iter()
        .map(|p| format!("dst net {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("({nets}) or (vlan and ({nets}))")
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

/// Counts frames from `source` into `store` (and writes them to `archive`,
/// if any) until `signals.stop` is set, then commits what is open and
/// returns the run's totals.
///
/// `clock` gives the time in ns since the epoch (the system clock; tests
/// pass their own). `on_commit` hears of every commit (for a status line).
/// Each archive file closed is recorded in the store with its content hash
/// at the next commit.
///
/// Errors: [`SensorError::Capture`] when the source fails and
/// [`SensorError::Archive`] when the archive cannot be written (in both
/// cases what was counted since the last commit is committed first);
/// [`SensorError::Store`] when a commit fails (its frames are named as
/// lost; earlier commits stay).
pub fn run<S: PacketSource + ?Sized>(
    source: &mut S,
    store: &mut dyn Store,
    cfg: &SensorConfig,
    mut archive: Option<&mut Archive>,
    signals: &Signals,
    clock: &dyn Fn() -> i64,
    on_commit: &mut dyn FnMut(&Commit),
) -> Result<SensorTotals, SensorError> {
    let tcfg = TelescopeConfig {
        detail: true,
        shard: (0, 1),
        ..cfg.telescope.clone()
    };
    let bucket_ns = tcfg.bucket_ns;
    let link = source.link();
    let name = source.name().to_string();
    // The source's counters run from when it was opened, for this run: a
    // burst dropped before the first read is this run's loss too.
    let mut window = Window::new(&tcfg, CaptureCounters::default());
    // Commit records are told apart by this run's start (wall clock, ns),
    // the process and a sequence number: the store refuses a record twice.
    let run_id = format!(
        "{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut totals = SensorTotals::default();
    let mut close_at = next_close(clock(), bucket_ns, cfg.grace_ns);
    let mut since_clock = 0u32;
    let mut failure = loop {
        if signals.stop.load(Ordering::Relaxed) {
            break None;
        }
        if signals.reopen.swap(false, Ordering::Relaxed) {
            if let Some(a) = archive.as_deref_mut() {
                match a.close() {
                    Ok(closed) => window.archived.extend(closed),
                    Err(e) => break Some(e.into()),
                }
            }
        }
        match source.next_frame() {
            Ok(Some(f)) => {
                if let Some(a) = archive.as_deref_mut() {
                    match a.write(f.ts_ns, f.orig_len, f.data) {
                        Ok(closed) => window.archived.extend(closed),
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
        if now >= close_at {
            // The bucket that closed started one bucket before the grace
            // period's start.
            let closed = close_at - cfg.grace_ns - bucket_ns;
            let counters = match source.counters() {
                Ok(c) => c,
                Err(e) => break Some(e),
            };
            let at = Target {
                name: &name,
                run_id: &run_id,
                bucket_start_ns: closed,
            };
            window.commit(store, &at, counters, false, &mut totals, on_commit)?;
            window = Window::new(&tcfg, counters);
            close_at = next_close(now, bucket_ns, cfg.grace_ns);
        }
    };
    // Stopped, or the capture failed: the archive file is closed and what
    // was counted is committed.
    if let Some(a) = archive {
        match a.close() {
            Ok(closed) => window.archived.extend(closed),
            Err(e) => failure = failure.or(Some(e.into())),
        }
    }
    let now = clock();
    let open = now.div_euclid(bucket_ns) * bucket_ns;
    let counters = source.counters().unwrap_or(window.counters_at_start);
    let at = Target {
        name: &name,
        run_id: &run_id,
        bucket_start_ns: open,
    };
    window.commit(store, &at, counters, true, &mut totals, on_commit)?;
    match failure {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

/// Where a commit goes: the interface, this run, and the bucket charged
/// with the capture's counters.
struct Target<'a> {
    name: &'a str,
    run_id: &'a str,
    bucket_start_ns: i64,
}

/// What is counted between two commits.
struct Window {
    telescope: Telescope,
    frames: u64,
    implausible_time: u64,
    counters_at_start: CaptureCounters,
    /// Archive files closed since the last commit, to record.
    archived: Vec<ClosedFile>,
}

impl Window {
    fn new(cfg: &TelescopeConfig, counters: CaptureCounters) -> Window {
        Window {
            telescope: Telescope::new(cfg.clone()),
            frames: 0,
            implausible_time: 0,
            counters_at_start: counters,
            archived: Vec::new(),
        }
    }

    #[inline]
    fn count(&mut self, ts_ns: i64, link: LinkType, data: &[u8]) {
        self.implausible_time += !self.telescope.config().plausible.contains(ts_ns) as u64;
        self.frames += 1;
        self.telescope
            .ingest_decoded(ts_ns, data.len() as u32, decode(link, data));
    }

    /// Stores the window (its frames, and the capture's counters over it
    /// as the loss of bucket `bucket_start_ns`). A window with no frames
    /// and no loss stores nothing.
    fn commit(
        mut self,
        store: &mut dyn Store,
        at: &Target,
        counters: CaptureCounters,
        last: bool,
        totals: &mut SensorTotals,
        on_commit: &mut dyn FnMut(&Commit),
    ) -> Result<(), SensorError> {
        let delta = counters.since(&self.counters_at_start);
        totals.counters.received += delta.received;
        totals.counters.dropped += delta.dropped;
        totals.counters.if_dropped += delta.if_dropped;
        if self.frames == 0
            && delta.dropped == 0
            && delta.if_dropped == 0
            && self.archived.is_empty()
        {
            return Ok(());
        }
        self.telescope.finish();
        totals.commits += 1;
        let seq = totals.commits;
        let now = now_rfc3339();
        let record = IngestedFile {
            // Unique per commit: the store refuses a content hash twice.
            content_hash: format!("sensor:{}:{}:{seq}", at.name, at.run_id),
            path: format!("interface {}", at.name),
            frames: self.frames,
            status: "complete".into(),
            ingested_at: now,
            implausible_time: self.implausible_time,
            capture_loss: Some(CaptureLoss {
                interface: at.name.to_string(),
                bucket_start_ns: at.bucket_start_ns,
                received: delta.received,
                dropped: delta.dropped,
                if_dropped: delta.if_dropped,
            }),
        };
        // Archive files are recorded with their content hash: their frames
        // were counted by the sensor's commits, so `telescope analyze --db`
        // of one of them into this store finds it already there.
        let mut records = vec![record];
        records.extend(self.archived.iter().map(|c| IngestedFile {
            content_hash: c.content_hash.clone(),
            path: c.path.display().to_string(),
            frames: c.frames,
            status: "archived".into(),
            ingested_at: now_rfc3339(),
            implausible_time: 0,
            capture_loss: None,
        }));
        store
            .save_run(&self.telescope, &records)
            .map_err(|source| SensorError::Store {
                frames: self.frames,
                source,
            })?;
        totals.frames += self.frames;
        on_commit(&Commit {
            seq,
            bucket_start_ns: at.bucket_start_ns,
            frames: self.frames,
            counters: delta,
            last,
            archived: self.archived.into_iter().map(|c| c.path).collect(),
        });
        Ok(())
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
            Ok(CaptureCounters {
                received: self.next as u64 + dropped,
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
        }
    }

    fn sense(
        frames: Vec<(i64, Vec<u8>)>,
        store: &mut SqliteStore,
        dropped: fn(usize) -> u64,
    ) -> Vec<Commit> {
        sense_into(frames, store, dropped, None)
    }

    fn sense_into(
        frames: Vec<(i64, Vec<u8>)>,
        store: &mut SqliteStore,
        dropped: fn(usize) -> u64,
        archive: Option<&mut Archive>,
    ) -> Vec<Commit> {
        let now = Rc::new(Cell::new(frames[0].0));
        let signals = Rc::new(Signals::new());
        let end_ns = frames.iter().map(|f| f.0).max().unwrap() + 30_000_000_000;
        let mut source = Replay {
            frames,
            next: 0,
            now: now.clone(),
            end_ns,
            signals: signals.clone(),
            dropped,
        };
        let mut commits = Vec::new();
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
            &mut |c| commits.push(c.clone()),
        )
        .unwrap();
        commits
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
        once.save_run(&t, &[]).unwrap();
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
        let commits = sense_into(frames, &mut live, |_| 0, Some(&mut archive));
        let archived: Vec<_> = commits.iter().flat_map(|c| c.archived.clone()).collect();
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
        once.save_run(&again, &[]).unwrap();
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

    #[test]
    fn the_darknet_filter_names_every_prefix_bare_and_tagged() {
        let nets = [
            "198.18.0.0/15".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(
            darknet_filter(&nets),
            "(dst net 198.18.0.0/15 or dst net 2001:db8::/32) or \
             (vlan and (dst net 198.18.0.0/15 or dst net 2001:db8::/32))"
        );
        assert_eq!(darknet_filter(&[]), "");
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
