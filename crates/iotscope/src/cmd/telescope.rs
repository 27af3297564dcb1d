//! `iotscope telescope analyze|report`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use iotscope_capture::CaptureError;
use iotscope_store::{now_rfc3339, IngestedFile, ReportQuery, StoreError};
use iotscope_telescope::time::{parse_rfc3339, rfc3339};
use iotscope_telescope::{
    parse_port, FileInfo, PlausibleTime, Prefix, Summary, Telescope, TelescopeConfig,
};

use crate::config::Config;
use crate::output::{print_summary, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum TelescopeCommand {
    /// Analyse capture files (pcap, pcapng, gzip; `-` for standard input).
    Analyze(AnalyzeArgs),
    /// Report over the aggregates kept in the store.
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Capture files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Analyse only packets to these prefixes (repeatable); others count as `outside`.
    #[arg(long, value_name = "CIDR")]
    darknet: Vec<String>,
    /// Time bucket length (e.g. 1h, 15m, 1d), aligned to the epoch.
    #[arg(long, value_name = "DURATION")]
    bucket: Option<String>,
    /// Rows in tables, top sources and each bucket's ports.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Keep per-bucket aggregates in this store (an SQLite path or a
    /// `postgres://` URL).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// With --db: do not run the detectors over the run's buckets
    /// afterwards (`[detect] auto = false` does the same).
    #[arg(long)]
    no_detect: bool,
    /// Threads (default: all cores): one reads, decodes and counts a share
    /// of the sources, the others count the rest, each for its own sources.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Frames stamped before this time (RFC 3339 or YYYY-MM-DD) are counted
    /// but put in no time bucket (`implausible_time`); default 1990-01-01.
    #[arg(long, value_name = "T")]
    plausible_from: Option<String>,
    /// Frames stamped at or after this time are counted but put in no time
    /// bucket; default one day after this machine's clock.
    #[arg(long, value_name = "T")]
    plausible_until: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The store to read (default: config's store.db, else ./iotscope.db).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Buckets starting at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Buckets starting before this time.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only these destination ports in `ports` and the series (e.g. 2323/tcp; repeatable).
    #[arg(long, value_name = "PORT/PROTO")]
    port: Vec<String>,
    /// Rows in tables, top sources and each bucket's ports.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// The store's tier to read: `bucket` (its own buckets), `hour` or
    /// `day` (their rollups: a series per hour or day, and fewer rows to
    /// read), or `coarsest` (the coarsest that answers the period exactly);
    /// default: the finest that answers it exactly (the buckets, unless
    /// retention removed those of the period). Totals, sources and ports
    /// are the same from every tier; the report says which it read.
    #[arg(long, value_name = "TIER", value_parser = ["bucket", "hour", "day", "coarsest", "finest"])]
    tier: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub fn run(cmd: TelescopeCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        TelescopeCommand::Analyze(a) => analyze(a, cfg),
        TelescopeCommand::Report(r) => report(r, cfg),
    }
}

/// The plausible window from the flags, else the config, else 1990-01-01
/// to one day after now.
fn plausible(a: &AnalyzeArgs, cfg: &Config) -> anyhow::Result<PlausibleTime> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
    let mut window = PlausibleTime::until_tomorrow(now_ns);
    let from = a
        .plausible_from
        .as_deref()
        .or(cfg.telescope.plausible_from.as_deref());
    let until = a
        .plausible_until
        .as_deref()
        .or(cfg.telescope.plausible_until.as_deref());
    for (name, text, slot) in [
        ("--plausible-from", from, &mut window.from_ns),
        ("--plausible-until", until, &mut window.until_ns),
    ] {
        if let Some(text) = text {
            *slot = parse_rfc3339(text).with_context(|| {
                format!("{name} {text:?} is not a time such as 2016-10-01 or 2016-10-01T00:00:00Z (1970 to 2262)")
            })?;
        }
    }
    if window.from_ns >= window.until_ns {
        bail!("--plausible-from must be before --plausible-until");
    }
    Ok(window)
}

pub(crate) fn bucket_ns(flag: Option<&str>, cfg: &Config) -> anyhow::Result<i64> {
    let text = flag.or(cfg.telescope.bucket.as_deref()).unwrap_or("1h");
    let d = humantime::parse_duration(text)
        .with_context(|| format!("--bucket {text:?} is not a duration such as 1h or 15m"))?;
    if d.is_zero() {
        bail!("--bucket must be longer than zero");
    }
    Ok(d.as_nanos().min(i64::MAX as u128) as i64)
}

/// Opens the store at `path` for telescope data in buckets of `bucket_ns`;
/// refuses a store that keeps buckets of another length.
pub(crate) fn open_store(path: &Path, bucket_ns: i64) -> anyhow::Result<super::StoreBox> {
    let s = super::open_store(path)?;
    if let Some(stored) = s.bucket_ns()? {
        if stored != bucket_ns {
            let kept = humantime::format_duration(Duration::from_nanos(stored as u64));
            bail!(
                "store {} keeps {kept} buckets; run with --bucket {kept} or use another --db",
                super::shown(path)
            );
        }
    }
    Ok(s)
}

/// Shows progress on standard error when it is a terminal.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(wanted: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, path: &Path, raw_bytes: u64, size: Option<u64>, frames: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = size
            .filter(|&s| s > 0)
            .map(|s| format!("{:5.1}%", raw_bytes as f64 * 100.0 / s as f64))
            .unwrap_or_default();
        eprint!(
            "\r{}: {pct} {frames} frames, {:.2} M frames/s   ",
            path.display(),
            frames as f64 / secs / 1e6
        );
        let _ = std::io::stderr().flush();
    }

    fn done(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}

/// Analyses `files` with the darknet prefixes given, keeping aggregates in
/// `db`, and prints a table (the demo's telescope step).
pub fn analyze_for_demo(
    files: Vec<PathBuf>,
    darknet: Vec<String>,
    db: PathBuf,
    cfg: &Config,
) -> anyhow::Result<ExitCode> {
    analyze(
        AnalyzeArgs {
            files,
            darknet,
            bucket: None,
            top: None,
            format: OutputFormat::Table,
            db: Some(db),
            no_detect: false,
            threads: None,
            plausible_from: None,
            plausible_until: None,
        },
        cfg,
    )
}

/// `telescope analyze`: reads the inputs into one report and, with `--db`,
/// adds them to the store.
///
/// With a store each capture's content counts once: a file whose content
/// the store holds, or an earlier file of the same run has, is skipped and
/// listed as `duplicate` (exit 0). When another process ingests one of the
/// run's captures while this run reads it, the store refuses the run
/// ([`StoreError::Duplicate`]) and the run is read again without that file,
/// which is then listed as `duplicate`: the other files are kept, nothing
/// is counted twice, and the exit code is 0 as for any duplicate. Standard
/// input cannot be read again, so a run with `-` that loses that race, or
/// whose standard input repeats another input, fails (exit 2) with nothing
/// stored.
fn analyze(a: AnalyzeArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let darknet_texts = if a.darknet.is_empty() {
        cfg.telescope.darknet.clone()
    } else {
        a.darknet.clone()
    };
    let darknets = darknet_texts
        .iter()
        .map(|t| t.parse::<Prefix>().map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bucket_ns = bucket_ns(a.bucket.as_deref(), cfg)?;
    let plausible = plausible(&a, cfg)?;
    let top = a.top.or(cfg.telescope.top).unwrap_or(10);
    let mut store = match &a.db {
        Some(p) => Some(open_store(p, bucket_ns)?),
        None => None,
    };
    let mut timings = Timings::new();

    // With a store, every file is hashed before it is read: one whose
    // content the store holds, or an earlier file of this run has, is
    // skipped and listed as `duplicate`. Standard input can only be hashed
    // while it is read.
    // Every input is opened before any is read: a path that cannot be
    // opened refuses the run at once, with every input listed, rather than
    // after hours of reading the ones before it.
    let unreadable: Vec<(usize, String)> = a
        .files
        .iter()
        .enumerate()
        .filter(|(_, p)| p.as_path() != Path::new("-"))
        .filter_map(
            |(i, p)| match std::fs::File::open(p).and_then(|f| f.metadata()) {
                Ok(m) if m.is_dir() => Some((i, "cannot open: is a directory".to_string())),
                Ok(_) => None,
                Err(e) => Some((i, format!("cannot open: {e}"))),
            },
        )
        .collect();
    if !unreadable.is_empty() {
        let mut empty = Telescope::new(TelescopeConfig {
            bucket_ns,
            ..Default::default()
        });
        empty.finish();
        let mut summary = empty.summary(top);
        summary.files = a
            .files
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let error = unreadable
                    .iter()
                    .find(|(j, _)| *j == i)
                    .map(|(_, e)| e.clone());
                FileInfo {
                    path: p.display().to_string(),
                    status: if error.is_some() {
                        "unreadable"
                    } else {
                        "skipped"
                    },
                    frames: 0,
                    content_hash: None,
                    error,
                    implausible_time: 0,
                }
            })
            .collect();
        print_summary(&summary, a.format, top)?;
        for (i, e) in &unreadable {
            eprintln!("iotscope: error: {}: {e}", a.files[*i].display());
        }
        eprintln!("iotscope: nothing was read: every input must open before the run starts");
        return Ok(ExitCode::from(2));
    }
    let mut inputs = Vec::with_capacity(a.files.len());
    for path in &a.files {
        let shown = path.display().to_string();
        let hash = match (&store, path == Path::new("-")) {
            (Some(_), false) => {
                Some(hash_file(path).with_context(|| format!("{shown}: cannot read"))?)
            }
            _ => None,
        };
        inputs.push(Input {
            path: path.clone(),
            shown,
            hash,
            duplicate: None,
        });
    }

    // One thread reads, decodes and counts a share of the sources; the
    // others count the rest, each for the sources that hash to it (exact
    // to merge).
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let base = TelescopeConfig {
        darknets,
        bucket_ns,
        detail: store.is_some(),
        shard: (0, 1),
        plausible,
    };
    let hash_stdin = store.is_some();

    // The store checks the content hashes again inside its write
    // transaction. When another process ingested one of this run's
    // captures while it was read, the store refuses the whole run (its
    // counts cannot be split per file); the run is then read again without
    // that capture, which is listed as `duplicate`, so the other files are
    // kept and nothing is counted twice. Standard input cannot be read
    // again: such a run fails with nothing stored. Every retry drops at
    // least one file, so the loop ends.
    let mut attempts = 0;
    let (telescope, files, failure, unknown_links) = loop {
        attempts += 1;
        let mut plan: Vec<(PathBuf, Option<String>)> = Vec::new();
        let mut planned: HashMap<String, String> = HashMap::new();
        for input in inputs.iter_mut().filter(|i| i.duplicate.is_none()) {
            let (Some(s), Some(hash)) = (&store, &input.hash) else {
                plan.push((input.path.clone(), None));
                continue;
            };
            let earlier = match planned.get(hash) {
                Some(other) => Some(format!("as {other} earlier in this run")),
                None => s.find_file(hash)?.map(|prev| {
                    format!(
                        "already ingested from {} at {}",
                        prev.path, prev.ingested_at
                    )
                }),
            };
            match earlier {
                Some(why) => {
                    eprintln!("iotscope: {}: skipped, same content {why}", input.shown);
                    input.duplicate = Some(FileInfo {
                        path: input.shown.clone(),
                        status: "duplicate",
                        frames: 0,
                        content_hash: Some(hash.clone()),
                        error: None,
                        implausible_time: 0,
                    });
                }
                None => {
                    planned.insert(hash.clone(), input.shown.clone());
                    plan.push((input.path.clone(), Some(hash.clone())));
                }
            }
        }

        let inputs_read: Vec<PathBuf> = plan.iter().map(|(p, _)| p.clone()).collect();
        let mut progress = Progress::new(true);
        let (mut telescope, outcomes) = iotscope_ingest::files::analyze_files(
            &inputs_read,
            base.clone(),
            threads,
            hash_stdin,
            &mut |p| progress.tick(p.path, p.raw_bytes, p.size, p.frames),
        );
        progress.done();
        for o in &outcomes {
            warn_implausible(o, &plausible);
        }
        timings.mark("read");
        telescope.finish();
        timings.mark("finish");

        // Inputs in the order given; those after a damaged one were not read.
        let mut files: Vec<FileInfo> = Vec::new();
        let mut to_store: Vec<IngestedFile> = Vec::new();
        let mut failure: Option<anyhow::Error> = None;
        let mut unknown_links: std::collections::BTreeMap<String, u64> = Default::default();
        for o in &outcomes {
            for (&n, &c) in &o.unknown_links {
                *unknown_links.entry(n.to_string()).or_default() += c;
            }
        }
        let mut outcomes = outcomes.into_iter();
        let mut not_read: Vec<&str> = Vec::new();
        for input in &inputs {
            if let Some(d) = &input.duplicate {
                files.push(d.clone());
                continue;
            }
            let Some(outcome) = outcomes.next() else {
                // After a damaged input the run stops: the rest are listed.
                not_read.push(&input.shown);
                files.push(FileInfo {
                    path: input.shown.clone(),
                    status: "skipped",
                    frames: 0,
                    content_hash: input.hash.clone(),
                    error: None,
                    implausible_time: 0,
                });
                continue;
            };
            let shown = &input.shown;
            let is_stdin = input.path == Path::new("-");
            let hash = input.hash.clone().or(outcome.raw_hash);
            let frames = outcome.frames;
            files.push(FileInfo {
                path: shown.clone(),
                // A file that opened but whose header (or compression) is
                // damaged was read, up to that damage: partial, 0 frames.
                status: match &outcome.error {
                    None => "complete",
                    Some(CaptureError::Open(_)) => "unreadable",
                    Some(_) => "partial",
                },
                frames,
                content_hash: hash.clone(),
                error: outcome.error.as_ref().map(|e| e.to_string()),
                implausible_time: outcome.implausible_time,
            });
            if outcome.opened {
                if let (Some(s), Some(h), true) = (&store, &hash, is_stdin) {
                    if s.find_file(h)?.is_some() {
                        bail!("{shown}: same content already ingested; nothing stored (it would be counted twice)");
                    }
                }
                to_store.push(IngestedFile {
                    content_hash: hash.unwrap_or_default(),
                    path: shown.clone(),
                    frames,
                    status: if outcome.error.is_some() {
                        "partial".into()
                    } else {
                        "complete".into()
                    },
                    ingested_at: now_rfc3339(),
                    implausible_time: outcome.implausible_time,
                    capture_loss: None,
                });
            }
            if let Some(e) = outcome.error {
                failure = Some(if outcome.opened {
                    anyhow::anyhow!(
                        "{shown}: {e} ({frames} frames before it were analysed and kept)"
                    )
                } else {
                    anyhow::anyhow!("{shown}: {e}")
                });
            }
        }
        if !not_read.is_empty() {
            eprintln!(
                "iotscope: {} later input{} not read: {}",
                not_read.len(),
                if not_read.len() == 1 {
                    " was"
                } else {
                    "s were"
                },
                not_read.join(", ")
            );
        }
        if store.is_some() {
            // Files were de-duplicated before reading; standard input only
            // now, after it was counted with the rest.
            let mut counted: HashMap<&str, &str> = HashMap::new();
            for f in &to_store {
                if let Some(other) = counted.insert(&f.content_hash, &f.path) {
                    bail!(
                        "{}: same content as {other} in this run; nothing stored (it would be counted twice)",
                        f.path
                    );
                }
            }
        }

        // What was read is reported and stored even when a file was damaged.
        if let Some(s) = store.as_mut() {
            warn_past_retention(s.as_ref(), &telescope)?;
            match s.save_run(&telescope, &to_store) {
                Ok(()) => {}
                Err(StoreError::Duplicate { file, previous, .. })
                    if attempts <= inputs.len()
                        && !plan.iter().any(|(p, _)| p == Path::new("-")) =>
                {
                    eprintln!(
                        "iotscope: {file}: same content ingested from {previous} by another run \
                         meanwhile; analysing this run again without it"
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        timings.mark("store");
        break (telescope, files, failure, unknown_links);
    };
    let mut summary: Summary = telescope.summary(top);
    add_breakdowns(
        &mut summary,
        || anyhow::Ok(telescope.summary(usize::MAX)),
        cfg,
        top,
    )?;
    timings.mark("summary");
    summary.files = files;
    summary.unknown_link_types = unknown_links;
    print_summary(&summary, a.format, top)?;
    timings.mark("print");
    // The detectors judge the run's buckets and those after them (whose
    // baselines the run may have changed), as buckets closing.
    let mut detect_failed = false;
    let first = telescope
        .buckets()
        .map(|b| b.number)
        .filter(|&n| n != iotscope_telescope::aggregate::IMPLAUSIBLE_BUCKET)
        .min();
    // The run's counts are stored and printed: their memory goes before the
    // detectors read the store.
    drop(telescope);
    if let Some(s) = store.as_mut() {
        if let (Some(first), false) = (first, a.no_detect || cfg.detect.auto == Some(false)) {
            let since = first.saturating_mul(bucket_ns);
            match super::detect::pass(s.as_mut(), cfg, &[], Some(since), None, true) {
                Ok(p) => {
                    eprintln!(
                        "iotscope: detect: {} alerts, {} new episodes, {} updated{}",
                        p.alerts,
                        p.created,
                        p.updated,
                        if p.delivered > 0 {
                            format!(", {} delivered", p.delivered)
                        } else {
                            String::new()
                        }
                    );
                    for f in &p.failures {
                        eprintln!("iotscope: detect: delivery failed: {f}");
                    }
                }
                // Settings that cannot work for this store (a baseline of
                // too many short buckets) skip detection with a word; other
                // failures fail the command (the run is stored).
                Err(e)
                    if e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<iotscope_detect::DetectError>(),
                            Some(iotscope_detect::DetectError::Settings(_))
                        )
                    }) =>
                {
                    eprintln!("iotscope: detect: skipped: {e:#}");
                }
                Err(e) => {
                    eprintln!("iotscope: error: detect (the run is stored): {e:#}");
                    detect_failed = true;
                }
            }
        }
        timings.mark("detect");
    }
    if detect_failed && failure.is_none() {
        return Ok(ExitCode::from(2));
    }
    match failure {
        Some(e) => {
            eprintln!("iotscope: error: {e:#}");
            Ok(ExitCode::from(2))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Phase timings on standard error when IOTSCOPE_TIMINGS is set (for
/// profiling; not part of any output contract).
struct Timings {
    enabled: bool,
    last: Instant,
}

impl Timings {
    fn new() -> Self {
        Timings {
            enabled: std::env::var_os("IOTSCOPE_TIMINGS").is_some(),
            last: Instant::now(),
        }
    }

    fn mark(&mut self, phase: &str) {
        if self.enabled {
            eprintln!(
                "iotscope: timing: {phase} {:.3} s",
                self.last.elapsed().as_secs_f64()
            );
            self.last = Instant::now();
        }
    }
}

/// Says on standard error when a run has buckets older than a tier of the
/// store keeps (`store prune` moved its boundary past them): that tier
/// does not take them, and a coarser one that still keeps their period
/// holds their figures.
fn warn_past_retention(store: &dyn iotscope_store::Store, t: &Telescope) -> anyhow::Result<()> {
    let Some(first) = t.totals().first_ts else {
        return Ok(());
    };
    let kept = store.coverage()?.kept_from();
    for tier in iotscope_store::Tier::ALL {
        let from = kept[tier.index()];
        if first < from {
            eprintln!(
                "iotscope: frames from {} on are older than the store keeps its {} tier (from {}, \
                 after `store prune`): that tier does not take their periods",
                rfc3339(first),
                tier.name(),
                rfc3339(from)
            );
        }
    }
    Ok(())
}

/// Names on standard error the frames of an input stamped outside the
/// plausible window (counted, in no bucket).
fn warn_implausible(o: &iotscope_ingest::files::FileOutcome, plausible: &PlausibleTime) {
    if o.implausible_time == 0 {
        return;
    }
    // A pcapng simple packet block has no time: it takes the last time
    // seen before it, none (the epoch) before the first.
    let untimed = match o.untimed_frames {
        0 => String::new(),
        n => format!(
            " (the file has {n} frame{} from pcapng simple packet blocks, which carry \
             no time and take the last time before them: none before the first timed frame)",
            if n == 1 { "" } else { "s" }
        ),
    };
    eprintln!(
        "iotscope: {}: {} of {} frames are stamped outside {}..{}{untimed}; \
         they are counted but put in no time bucket (implausible_time; \
         see --plausible-from/--plausible-until)",
        o.path.display(),
        o.implausible_time,
        o.frames,
        rfc3339(plausible.from_ns),
        rfc3339(plausible.until_ns)
    );
}

/// One input of an analyze run, as given.
struct Input {
    path: PathBuf,
    shown: String,
    /// Content hash, known before reading (files, with a store).
    hash: Option<String>,
    /// Set when the input is skipped as a duplicate.
    duplicate: Option<FileInfo>,
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(format!("{:032x}", h.digest128()));
        }
        h.update(&buf[..n]);
    }
}

fn report(r: ReportArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let db = cfg.db_path(r.db.as_deref());
    if !iotscope_store::Locator::parse(db.as_os_str()).exists()? {
        bail!(
            "store {} does not exist; fill it with `iotscope telescope analyze --db {} FILE...`",
            super::shown(&db),
            super::shown(&db)
        );
    }
    let ports = r
        .port
        .iter()
        .map(|p| {
            parse_port(p)
                .with_context(|| format!("--port {p:?}: expected PORT/PROTO such as 2323/tcp"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let top = r.top.or(cfg.telescope.top).unwrap_or(10);
    let (since_ns, until_ns) = super::period(&r.since, &r.until, "reports")?;
    let store = super::open_store(&db)?;
    let tier = match r.tier.as_deref() {
        None | Some("finest") => iotscope_store::TierChoice::Finest,
        Some("coarsest") => iotscope_store::TierChoice::Coarsest,
        Some(t) => iotscope_store::TierChoice::Exactly(
            iotscope_store::Tier::parse(t).context("unknown tier")?,
        ),
    };
    let query = ReportQuery {
        since_ns,
        until_ns,
        ports,
        top,
        series_top: None,
        tier,
    };
    let mut summary = store.report(&query)?;
    add_breakdowns(
        &mut summary,
        || {
            store.report(&ReportQuery {
                top: usize::MAX,
                // The breakdowns need every source, not the series.
                series_top: Some(0),
                ..query
            })
        },
        cfg,
        top,
    )?;
    print_summary(&summary, r.format, top)?;
    Ok(ExitCode::SUCCESS)
}

/// The per-AS and per-country breakdowns, when the config names the
/// tables; `all` gives the summary listing every source (asked only then).
fn add_breakdowns<E: Into<anyhow::Error>>(
    summary: &mut Summary,
    all: impl FnOnce() -> Result<Summary, E>,
    cfg: &crate::config::Config,
    top: usize,
) -> anyhow::Result<()> {
    // Each listed source's scanner class (issue 20).
    let research = super::detect::research(&cfg.detect, &[])?;
    for t in &mut summary.top_sources {
        if let Ok(ip) = t.ip.parse::<std::net::IpAddr>() {
            t.scanner =
                iotscope_detect::classify_flags(ip.into(), &t.fingerprints, &research).name();
        }
    }
    let asn = cfg.enrich.load_asn()?;
    let geo = cfg.enrich.load_geo()?;
    if asn.is_none() && geo.is_none() {
        return Ok(());
    }
    let all = all().map_err(Into::into)?;
    if let Some(table) = asn {
        summary.by_as = by_as(&all, &table, top);
    }
    if let Some(db) = geo {
        summary.by_country = by_country(&all, &db, top);
    }
    Ok(())
}

/// Every source of a summary that lists them all, as the breakdowns take them.
fn sources_of(all: &Summary) -> Vec<iotscope_enrich::SourceCount> {
    let infected: std::collections::HashSet<&str> =
        all.infected.iter().map(|i| i.ip.as_str()).collect();
    all.top_sources
        .iter()
        .filter_map(|s| {
            Some((
                s.ip.parse().ok()?,
                s.packets,
                infected.contains(s.ip.as_str()),
            ))
        })
        .collect()
}

/// Sources, packets and infected sources per country, busiest first, at
/// most `top` rows.
fn by_country(
    all: &Summary,
    db: &iotscope_enrich::GeoDb,
    top: usize,
) -> Vec<iotscope_telescope::CountryRow> {
    db.count_by_country(sources_of(all))
        .into_iter()
        .take(top)
        .map(|(country, c)| iotscope_telescope::CountryRow {
            country,
            sources: c.sources,
            packets: c.packets,
            infected: c.infected,
        })
        .collect()
}

/// Sources, packets and infected sources per AS, from a summary that lists
/// every source (`top` = all), busiest ASes first, at most `top` rows.
fn by_as(
    all: &Summary,
    table: &iotscope_enrich::AsnTable,
    top: usize,
) -> Vec<iotscope_telescope::AsRow> {
    table
        .count_by_as(sources_of(all))
        .into_iter()
        .take(top)
        .map(|((asn, org), c)| iotscope_telescope::AsRow {
            asn,
            org: org.to_string(),
            sources: c.sources,
            packets: c.packets,
            infected: c.infected,
        })
        .collect()
}
