//! `iotscope sensor`: the live darknet sensor (wiring only; the loop is
//! `iotscope_ingest::sensor`, the capture `iotscope_ingest::live`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::output::OutputFormat;

#[derive(clap::Args, Debug)]
pub struct SensorArgs {
    /// Interface to capture on (`eth0`; `any` for all).
    #[arg(long, value_name = "IF")]
    interface: String,
    /// Darknet prefixes (repeatable; default: the config's telescope.darknet).
    /// The kernel passes only frames to them (bare or under one VLAN tag);
    /// the rest of the telescope's rules are those of `telescope analyze`.
    #[arg(long, value_name = "CIDR")]
    darknet: Vec<String>,
    /// The store each closed bucket is committed to (default: config's
    /// store.db, else ./iotscope.db).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Time bucket length (e.g. 1m, 1h), aligned to the epoch; a store keeps
    /// one length.
    #[arg(long, value_name = "DURATION")]
    bucket: Option<String>,
    /// How long after a bucket's end late frames are waited for before the
    /// bucket is committed (later ones go to the next commit, never lost);
    /// default: the config's sensor.grace, else 5s.
    #[arg(long, value_name = "DURATION")]
    grace: Option<String>,
    /// Kernel filter (tcpdump syntax) instead of the darknet filter, for
    /// encapsulations it does not see through (MPLS, PPPoE, several VLAN
    /// tags); frames outside the darknet still count as `outside`.
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    /// Kernel capture buffer in MiB: it holds the frames that arrive while a
    /// bucket is committed.
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=2047))]
    buffer_mib: u32,
    /// Write every captured frame to rotating pcap files in this directory
    /// (`IF-YYYYMMDDTHHMMSSZ.pcap`, nanosecond stamps); each closed file's
    /// content hash is recorded in the store.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Period of one archive file, aligned to the epoch.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        requires = "archive"
    )]
    archive_rotate: String,
    /// Bytes the archive may keep (e.g. 500G); the oldest files are deleted
    /// past it.
    #[arg(long, value_name = "BYTES", requires = "archive")]
    archive_max_bytes: Option<String>,
    /// A status line (frames/s, drops, last committed bucket) on standard
    /// error this often; 0 for none; default: the config's sensor.status,
    /// else 1m.
    #[arg(long, value_name = "DURATION")]
    status: Option<String>,
    /// Capture with N sockets in a PACKET_FANOUT group, one thread each
    /// (the kernel spreads flows over them); each commits its own share and
    /// the store adds them up. Not with --archive.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    fanout: u16,
    /// Keep commits the store refuses (its server down or out of reach) in
    /// this local SQLite file and go on counting; they are forwarded, in
    /// order and once each, as soon as the store takes commits again, or at
    /// the next start with this spool, or by `iotscope store forward`
    /// (default: the config's sensor.spool; none: a refused commit waits in
    /// memory, at most 16).
    #[arg(long, value_name = "PATH")]
    spool: Option<PathBuf>,
    /// Bytes the spool may hold (e.g. 2G); a commit past it stops the
    /// sensor, naming the frames not stored (default: the config's
    /// sensor.spool_max, else 1G).
    #[arg(long, value_name = "BYTES")]
    spool_max: Option<String>,
    /// Stop by itself after this long (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Output format of the closing summary.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// Set by SIGINT and SIGTERM (stop: the sensor commits what is open and
/// exits) and SIGHUP (reopen: the archive file is closed and a new one
/// opened, so log rotation can move it).
#[cfg(feature = "live-capture")]
static SIGNALS: iotscope_ingest::sensor::Signals = iotscope_ingest::sensor::Signals::new();

#[cfg(feature = "live-capture")]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only atomic stores: async-signal-safe.
    let flag = if sig == libc::SIGHUP {
        &SIGNALS.reopen
    } else {
        &SIGNALS.stop
    };
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// `config_path`: the `--config` file, read again on SIGHUP.
pub fn run(
    a: SensorArgs,
    cfg: &Config,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    refuse_without_live_capture(&a)?;
    let darknet_texts = if a.darknet.is_empty() {
        cfg.telescope.darknet.clone()
    } else {
        a.darknet.clone()
    };
    if darknet_texts.is_empty() && a.filter.is_none() {
        anyhow::bail!(
            "give the darknet with --darknet CIDR (or telescope.darknet in the config), \
             or a kernel filter with --filter"
        );
    }
    let darknets = darknet_texts
        .iter()
        .map(|t| {
            t.parse::<iotscope_telescope::Prefix>()
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bucket_ns = super::telescope::bucket_ns(a.bucket.as_deref(), cfg)?;
    let grace_text = a
        .grace
        .clone()
        .or(cfg.sensor.grace.clone())
        .unwrap_or_else(|| "5s".into());
    let grace_ns = grace_of(&grace_text, bucket_ns).map_err(|e| anyhow::anyhow!("--grace {e}"))?;
    let status_text = a
        .status
        .clone()
        .or(cfg.sensor.status.clone())
        .unwrap_or_else(|| "1m".into());
    let status_every_ns = status_of(&status_text).map_err(|e| anyhow::anyhow!("--status {e}"))?;
    let duration = a
        .duration
        .as_deref()
        .map(|d| {
            humantime::parse_duration(d)
                .with_context(|| format!("--duration {d:?} is not a duration such as 10m"))
        })
        .transpose()?;
    let now_ns = now_ns();
    let sensor_cfg = iotscope_ingest::sensor::SensorConfig {
        telescope: iotscope_telescope::TelescopeConfig {
            darknets,
            bucket_ns,
            detail: true,
            shard: (0, 1),
            plausible: iotscope_telescope::PlausibleTime::until_tomorrow(now_ns),
        },
        grace_ns,
        status_every_ns,
    };
    let archive = match &a.archive {
        None => None,
        Some(dir) => {
            let rotate = humantime::parse_duration(&a.archive_rotate).with_context(|| {
                format!(
                    "--archive-rotate {:?} is not a duration such as 1h",
                    a.archive_rotate
                )
            })?;
            if rotate.is_zero() {
                anyhow::bail!("--archive-rotate must be longer than zero");
            }
            let max_bytes = a
                .archive_max_bytes
                .as_deref()
                .map(iotscope_ingest::archive::parse_bytes)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--archive-max-bytes {e}"))?;
            if max_bytes == Some(0) {
                anyhow::bail!(
                    "--archive-max-bytes must be more than 0 (leave it out for no limit)"
                );
            }
            Some(iotscope_ingest::archive::ArchiveConfig {
                dir: dir.clone(),
                rotate_ns: rotate.as_nanos().min(i64::MAX as u128) as i64,
                max_bytes,
                snaplen: 65535,
            })
        }
    };
    let db = cfg.db_path(a.db.as_deref());
    let spool = match a.spool.clone().or(cfg.sensor.spool.clone()) {
        None => None,
        Some(path) => {
            let text = a
                .spool_max
                .clone()
                .or(cfg.sensor.spool_max.clone())
                .unwrap_or_else(|| "1G".into());
            let max = iotscope_ingest::archive::parse_bytes(&text)
                .map_err(|e| anyhow::anyhow!("--spool-max {e}"))?;
            if max == 0 {
                anyhow::bail!("--spool-max must be more than 0");
            }
            super::spool_apart(&db, &path)?;
            Some((path, max))
        }
    };
    capture(&a, &sensor_cfg, &db, archive, spool, duration, config_path)
}

/// A grace period: a duration shorter than the bucket, in ns; else a
/// message naming the text.
fn grace_of(text: &str, bucket_ns: i64) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration such as 5s"))?;
    if d.as_nanos() >= bucket_ns as u128 {
        return Err(format!(
            "{text} must be shorter than the bucket ({}): a bucket is committed once its grace period ends",
            humantime::format_duration(std::time::Duration::from_nanos(bucket_ns as u64))
        ));
    }
    Ok(d.as_nanos() as i64)
}

/// A status interval in ns (0: none); else a message naming the text.
fn status_of(text: &str) -> Result<i64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    humantime::parse_duration(text.trim())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .map_err(|_| format!("{text:?} is not a duration such as 1m (0 for none)"))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

#[cfg(not(feature = "live-capture"))]
fn capture(
    a: &SensorArgs,
    _: &iotscope_ingest::sensor::SensorConfig,
    _: &std::path::Path,
    _: Option<iotscope_ingest::archive::ArchiveConfig>,
    _: Option<(PathBuf, u64)>,
    _: Option<std::time::Duration>,
    _: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    unreachable!("refused in run before {} was opened", a.interface)
}

/// A build without libpcap says how to get one, before anything is opened.
fn refuse_without_live_capture(a: &SensorArgs) -> anyhow::Result<()> {
    if cfg!(feature = "live-capture") {
        return Ok(());
    }
    let _ = (a.buffer_mib, a.format, &a.spool, &a.spool_max);
    anyhow::bail!(
        "this iotscope was built without live capture, so it cannot capture on {}; build it with \
         `cargo build --release -p iotscope --features live-capture` (needs libpcap-dev)",
        a.interface
    )
}

#[cfg(feature = "live-capture")]
fn capture(
    a: &SensorArgs,
    sensor_cfg: &iotscope_ingest::sensor::SensorConfig,
    db: &std::path::Path,
    archive: Option<iotscope_ingest::archive::ArchiveConfig>,
    spool: Option<(PathBuf, u64)>,
    duration: Option<std::time::Duration>,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use iotscope_ingest::archive::Archive;
    use iotscope_ingest::live::{LiveCapture, LiveOptions};
    use iotscope_ingest::sensor::{self, PacketSource};

    if a.fanout > 1 && archive.is_some() {
        anyhow::bail!("--archive keeps one file series per interface: use it with --fanout 1");
    }
    let group = (a.fanout > 1).then_some((std::process::id() & 0xffff) as u16);
    let open = |first: bool| {
        LiveCapture::open(&LiveOptions {
            interface: a.interface.clone(),
            filter: a.filter.clone(),
            darknets: sensor_cfg.telescope.darknets.clone(),
            buffer_bytes: (a.buffer_mib as i32) << 20,
            fanout_group: group,
            interface_drops: first,
            ..Default::default()
        })
    };
    let mut source = open(true)?;
    let mut members = (1..a.fanout)
        .map(|_| open(false))
        .collect::<Result<Vec<_>, _>>()?;
    // The capture first: a run that may not capture leaves no store behind.
    // Each member of a fan-out group has its own connections to the store
    // and the spool; SQLite serialises the spool's writers, and a run
    // forwarded by two at once is stored once (its content hashes).
    let sink = || -> anyhow::Result<Box<dyn sensor::CommitSink + Send>> {
        let store = StoreSink(super::telescope::open_store(
            db,
            sensor_cfg.telescope.bucket_ns,
        )?);
        Ok(match &spool {
            None => Box::new(store),
            Some((path, max)) => Box::new(sensor::Spooling::new(
                store,
                iotscope_store::Spool::open(path, *max)?,
            )),
        })
    };
    let mut store = sink()?;
    let mut member_stores = (1..a.fanout)
        .map(|_| sink())
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some((path, max)) = &spool {
        let waiting = iotscope_store::Spool::open(path, *max)?.waiting()?;
        if waiting.0 > 0 {
            eprintln!(
                "iotscope: sensor: {} runs ({} frames) wait in the spool {}: forwarded from the first commit on",
                waiting.0,
                waiting.2,
                path.display()
            );
        }
    }
    let mut archive = archive
        .map(|c| Archive::new(c, &a.interface, PacketSource::link(&source)))
        .transpose()?;
    // SAFETY: the handler only stores to atomics.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    if let Some(d) = duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            SIGNALS
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let filter = source.filter().to_string();
    eprintln!(
        "iotscope: sensor on {} (filter {:?}), committing each {} bucket {} after it ends",
        a.interface,
        filter,
        humantime::format_duration(std::time::Duration::from_nanos(
            sensor_cfg.telescope.bucket_ns as u64
        )),
        humantime::format_duration(std::time::Duration::from_nanos(
            sensor_cfg.grace_ns.max(0) as u64
        ))
    );
    let started = std::time::Instant::now();
    // The detectors judge each closed bucket (unless `[detect] auto = false`).
    let detector = match cfg_detect_auto(config_path) {
        true => Some(std::sync::Arc::new(super::detect::Background::new(
            db.to_path_buf(),
            config_path.map(std::path::Path::to_path_buf),
        ))),
        false => None,
    };
    let console = || Console {
        detector: detector.clone(),
        config_path: config_path.map(std::path::Path::to_path_buf),
        darknet_from_flags: !a.darknet.is_empty(),
        grace_from_flags: a.grace.is_some(),
        status_from_flags: a.status.is_some(),
        bucket_ns: sensor_cfg.telescope.bucket_ns,
    };
    // Fan-out: the other sockets of the group, each on its own thread with
    // its own store connection; the store adds their commits up exactly as
    // it adds commits of one socket.
    let (result, others) = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter_mut()
            .zip(member_stores.iter_mut())
            .map(|(src, st)| {
                let mut hooks = console();
                scope.spawn(move || {
                    let r = sensor::run(
                        src,
                        st.as_mut(),
                        sensor_cfg,
                        None,
                        &SIGNALS,
                        &now_ns,
                        &mut hooks,
                    );
                    // One member failing stops them all.
                    if r.is_err() {
                        SIGNALS
                            .stop
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let result = sensor::run(
            &mut source,
            store.as_mut(),
            sensor_cfg,
            archive.as_mut(),
            &SIGNALS,
            &now_ns,
            &mut console(),
        );
        // One member failing stops them all.
        if result.is_err() {
            SIGNALS
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let others: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("a fan-out thread panicked"))
            .collect();
        (result, others)
    });
    let mut totals = result?;
    for other in others {
        let t = other?;
        totals.frames += t.frames;
        totals.commits += t.commits;
        totals.spooled += t.spooled;
        totals.unread += t.unread;
        totals.counters.received += t.counters.received;
        totals.counters.dropped += t.counters.dropped;
        totals.counters.if_dropped += t.counters.if_dropped;
    }
    drop((store, member_stores));
    let waiting = match &spool {
        Some((path, max)) => Some((path, iotscope_store::Spool::open(path, *max)?.waiting()?)),
        None => None,
    };
    let secs = started.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "interface": a.interface,
        "filter": filter,
        "frames": totals.frames,
        "commits": totals.commits,
        // Commits that went to the local spool, and runs still waiting there.
        "spooled": totals.spooled,
        "spool_waiting": waiting.as_ref().map_or(0, |w| w.1 .0),
        "received": totals.counters.received,
        "dropped": totals.counters.dropped,
        "if_dropped": totals.counters.if_dropped,
        // Passed the filter but still in the ring when the sensor stopped
        // (traffic still arriving): lost with the socket, part of dropped.
        "unread": totals.unread,
        "archive_files_deleted": archive.as_ref().map_or(0, |a| a.deleted),
        "seconds": (secs * 1000.0).round() / 1000.0,
    });
    match a.format {
        OutputFormat::Json => println!("{report}"),
        _ => println!(
            "iotscope sensor: {} frames in {} commits over {:.1} s on {}; {} passed the filter, \
             {} dropped by the capture (buffer full, or {} still unread at the stop), {} by the interface",
            totals.frames,
            totals.commits,
            secs,
            a.interface,
            totals.counters.received,
            totals.counters.dropped,
            totals.unread,
            totals.counters.if_dropped
        ),
    }
    if let Some((path, (runs, _, frames))) = waiting.filter(|w| w.1 .0 > 0) {
        eprintln!(
            "iotscope: sensor: {runs} runs ({frames} frames) wait in the spool {} for the store: \
             they go at the next start with --spool {0}, or now with `iotscope store forward --spool {0} --db STORE`",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The sensor's status lines on standard error, and SIGHUP's new darknet
/// from the configuration file (unless `--darknet` gave it).
/// Whether `[detect] auto` (in the file at `config_path`) lets the sensor
/// run the detectors (default yes; an unreadable file was refused earlier).
#[cfg(feature = "live-capture")]
fn cfg_detect_auto(config_path: Option<&std::path::Path>) -> bool {
    Config::load(config_path).map_or(true, |c| c.detect.auto != Some(false))
}

#[cfg(feature = "live-capture")]
struct Console {
    detector: Option<std::sync::Arc<super::detect::Background>>,
    config_path: Option<PathBuf>,
    darknet_from_flags: bool,
    grace_from_flags: bool,
    status_from_flags: bool,
    bucket_ns: i64,
}

#[cfg(feature = "live-capture")]
impl iotscope_ingest::sensor::Hooks for Console {
    fn event(&mut self, e: iotscope_ingest::sensor::Event<'_>) {
        use iotscope_ingest::sensor::Event;
        use iotscope_telescope::time::rfc3339;
        match e {
            Event::Commit(c) => {
                if let (Some(d), iotscope_ingest::sensor::CommitKind::Closed) = (&self.detector, c.kind) {
                    d.closed(c.bucket_start_ns);
                }
                eprintln!(
                "iotscope: sensor: committed {} frames {} bucket {}; {} dropped by the buffer, {} by the interface",
                c.frames,
                match c.kind {
                    iotscope_ingest::sensor::CommitKind::Closed => "since the last commit, closing",
                    iotscope_ingest::sensor::CommitKind::Reload => "counted under the old darknet, in the open",
                    iotscope_ingest::sensor::CommitKind::Stop => "at the stop, in the open",
                },
                rfc3339(c.bucket_start_ns),
                c.counters.dropped,
                c.counters.if_dropped
                )
            }
            Event::Archived(path) => eprintln!("iotscope: sensor: archived {}", path.display()),
            Event::Spooled { error, waiting } => match error {
                Some(e) => eprintln!(
                    "iotscope: sensor: the store refused a commit ({e}); it waits in the spool ({waiting} runs there)"
                ),
                None => eprintln!(
                    "iotscope: sensor: commit spooled behind {} earlier runs still being forwarded",
                    waiting.saturating_sub(1)
                ),
            },
            Event::Forwarded { runs } => {
                eprintln!("iotscope: sensor: forwarded {runs} spooled runs to the store")
            }
            Event::CommitFailed { error, waiting } => eprintln!(
                "iotscope: sensor: the store refused a commit ({error}); {waiting} kept, tried again at the next"
            ),
            Event::Settings {
                grace_ns,
                status_every_ns,
            } => eprintln!(
                "iotscope: sensor: grace {} (from the next bucket), status every {}",
                humantime::format_duration(std::time::Duration::from_nanos(grace_ns.max(0) as u64)),
                humantime::format_duration(std::time::Duration::from_nanos(status_every_ns.max(0) as u64))
            ),
            Event::Reloaded(darknets) => eprintln!(
                "iotscope: sensor: darknet now {}",
                darknets.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ),
            Event::Status(s) => eprintln!(
                "iotscope: sensor: {} frames ({:.0}/s), {} dropped by the buffer, {} by the interface; last commit: {}",
                s.frames,
                s.per_second,
                s.counters.dropped,
                s.counters.if_dropped,
                s.last_commit_bucket_ns
                    .map_or("none yet".to_string(), |b| format!("bucket {}", rfc3339(b)))
            ),
        }
    }

    /// SIGHUP: the configuration read again; what flags gave stays.
    fn reload(&mut self) -> Option<iotscope_ingest::sensor::Reload> {
        let path = self.config_path.as_deref()?;
        let cfg = match Config::load(Some(path)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "iotscope: sensor: {}: {e:#}; the settings stay",
                    path.display()
                );
                return None;
            }
        };
        let mut out = iotscope_ingest::sensor::Reload::default();
        if !self.darknet_from_flags {
            let read = cfg
                .telescope
                .darknet
                .iter()
                .map(|t| {
                    t.parse::<iotscope_telescope::Prefix>()
                        .map_err(anyhow::Error::from)
                })
                .collect::<anyhow::Result<Vec<_>>>();
            match read {
                Ok(d) if !d.is_empty() => out.darknets = Some(d),
                Ok(_) => eprintln!(
                    "iotscope: sensor: {} gives no telescope.darknet; the darknet stays",
                    path.display()
                ),
                Err(e) => eprintln!(
                    "iotscope: sensor: {}: {e:#}; the darknet stays",
                    path.display()
                ),
            }
        }
        if let Some(g) = cfg
            .sensor
            .grace
            .as_deref()
            .filter(|_| !self.grace_from_flags)
        {
            match grace_of(g, self.bucket_ns) {
                Ok(ns) => out.grace_ns = Some(ns),
                Err(e) => eprintln!(
                    "iotscope: sensor: {}: sensor.grace {e}; the grace stays",
                    path.display()
                ),
            }
        }
        if let Some(st) = cfg
            .sensor
            .status
            .as_deref()
            .filter(|_| !self.status_from_flags)
        {
            match status_of(st) {
                Ok(ns) => out.status_every_ns = Some(ns),
                Err(e) => eprintln!(
                    "iotscope: sensor: {}: sensor.status {e}; the interval stays",
                    path.display()
                ),
            }
        }
        Some(out)
    }
}

/// The store, of either engine, as the sensor's commit sink.
#[cfg(feature = "live-capture")]
struct StoreSink(super::StoreBox);

#[cfg(feature = "live-capture")]
impl iotscope_ingest::sensor::CommitSink for StoreSink {
    fn save_run(
        &mut self,
        telescope: &iotscope_telescope::Telescope,
        files: &[iotscope_store::IngestedFile],
    ) -> Result<iotscope_ingest::sensor::Saved, iotscope_store::StoreError> {
        self.0
            .save_run(telescope, files)
            .map(|()| iotscope_ingest::sensor::Saved::Stored { forwarded: 0 })
    }

    fn save_spooled(
        &mut self,
        run: &iotscope_store::SpooledRun,
        files: &[iotscope_store::IngestedFile],
    ) -> Result<(), iotscope_store::StoreError> {
        self.0.save_spooled(run, files)
    }
}
