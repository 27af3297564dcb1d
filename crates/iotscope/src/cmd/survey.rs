//! `iotscope survey`: sweep authorised ranges in connect mode and grab banners.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use iotscope_checks::rules::Seen;
use iotscope_store::{ServiceObservation, SurveyRunStatus, SurveyShard};
use iotscope_survey::resume::{ExclusionChange, ExclusionRecord, PendingService, ResumeState};
use iotscope_survey::{parse_ports, ScanConfig, Stats, TargetSet};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Default User-Agent: says what this is and where to ask for an opt-out.
const USER_AGENT: &str = "iotscope-survey/0.1 (research scan of authorised ranges; opt-out: see the operator's published scanner page)";

#[derive(clap::Args, Debug)]
pub struct SurveyArgs {
    #[command(subcommand)]
    action: Option<SurveyAction>,
    /// Targets: addresses, CIDRs or ranges (repeatable). No targets, no scan.
    #[arg(long = "targets", value_name = "SPEC", num_args = 1..)]
    targets: Vec<String>,
    /// A file of targets, one a line (`#` comments).
    #[arg(long, value_name = "FILE")]
    targets_file: Option<PathBuf>,
    /// Ports: list and ranges, e.g. 23,80,8080-8081 (required to sweep).
    // An Option only so that `survey status` needs none.
    #[arg(long, value_name = "LIST")]
    ports: Option<String>,
    /// Exclusion file(s) in ZMap's blocklist format (one CIDR a line, `#` comments).
    #[arg(long, value_name = "FILE")]
    exclude: Vec<PathBuf>,
    /// Probes per second (0: as fast as the machine allows).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Probe mode: `connect` (unprivileged, async kernel connects) or `syn`
    /// (stateless raw SYN probes; root or CAP_NET_RAW).
    #[arg(long, default_value = "connect", value_parser = ["connect", "syn"])]
    mode: String,
    /// SYN mode: extra passes over the pairs that have not answered yet.
    #[arg(long, default_value_t = 0, value_name = "K")]
    retries: u32,
    /// SYN mode: send from this interface (default: the route to the first target).
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// SYN mode: source address of the probes (default: the interface's).
    #[arg(long, value_name = "IP")]
    source_ip: Option<std::net::Ipv4Addr>,
    /// SYN mode: MAC of the next hop (default: the gateway's entry in the neighbour table).
    #[arg(long, value_name = "MAC")]
    gateway_mac: Option<String>,
    /// Run shard I of N (0-based): disjoint parts whose union is the whole sweep.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    shard: String,
    /// Seed of the probe order (the same seed and shards give the same order).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Connect timeout and module reads; in SYN mode also how long to
    /// listen for answers after the last probe.
    #[arg(long, default_value = "2s", value_parser = crate::args::timeout)]
    timeout: Duration,
    /// Most connections at once.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// Write JSON lines here (default: standard output).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write rows for refused (closed) pairs.
    #[arg(long)]
    report_closed: bool,
    /// Only find open ports; grab no banners (what `nmap -sT` does).
    #[arg(long)]
    no_grab: bool,
    /// HTTP User-Agent (put a contact URL in it).
    #[arg(long, default_value = USER_AGENT)]
    user_agent: String,
    /// Resume state: read it to continue an interrupted run (same targets,
    /// ports, seed and shard), and write it when interrupted. With --output,
    /// rows are appended.
    #[arg(long, value_name = "STATE")]
    resume: Option<PathBuf>,
    /// Also keep every answering pair in this store (latest observation per
    /// address and port, with first and last seen); with --checks, the
    /// findings too.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// With --db: the run this shard reports its progress under (default:
    /// `run-` and a digest of the targets, ports, seed and number of
    /// shards: the same on every scanner of one sweep). `survey status`
    /// reads it.
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Checks on what answered: `all`, or a list of `credentials` (the
    /// dictionary on telnet and HTTP Basic/Digest; first success ends a
    /// service's check) and `panels` (open control panels, GET only).
    #[arg(long, value_name = "LIST")]
    checks: Option<String>,
    /// Write the findings here as JSON lines (passwords masked).
    #[arg(long, value_name = "FILE")]
    findings: Option<PathBuf>,
    #[command(flatten)]
    check_flags: super::checks::CheckFlags,
}

/// What `survey` does besides sweeping.
#[derive(clap::Subcommand, Debug)]
pub enum SurveyAction {
    /// A sharded run's progress: each shard's last report (host, probes
    /// sent of its pairs, open, findings, state) and whether the run is
    /// complete (every shard 0..N reported final counts).
    Status(StatusArgs),
}

/// `survey status` flags.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The store the shards report to (a path or a `postgres://` URL).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Only this run (default: every run in the store).
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// `text` or `json` (one object a run: `run`, `shards`, `complete`,
    /// `consistent`, `missing`, `pairs`, `sent`, `open`, `findings`,
    /// `reported`: the shards' rows).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// `iotscope survey status`.
fn status(a: StatusArgs, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let store = super::existing_store(a.db, config)?;
    let runs = SurveyRunStatus::of(store.survey_shards(a.run.as_deref())?);
    if let Some(run) = &a.run {
        anyhow::ensure!(
            !runs.is_empty(),
            "no shard of run {run} has reported to this store"
        );
    }
    if a.format == "json" {
        let out: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "run": r.run, "shards": r.shards, "complete": r.complete,
                    "consistent": r.consistent, "missing": r.missing, "pairs": r.pairs,
                    "sent": r.sent, "open": r.open, "findings": r.findings,
                    "reported": r.reported.iter().map(|s| serde_json::json!({
                        "shard": s.shard, "shards": s.shards, "seed": s.seed, "host": s.host,
                        "pairs": s.pairs, "sent": s.sent, "open": s.open,
                        "findings": s.findings, "state": s.state, "started": s.started,
                        "updated": s.updated,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &runs {
        let finals = r.reported.iter().filter(|s| s.state == "final").count();
        println!(
            "run {}: {} shards, {} ({finals} of {} final{}); {} of {} pairs probed, {} open, {} findings",
            r.run,
            r.shards,
            if r.complete { "complete" } else { "not complete" },
            r.shards,
            if r.consistent { "" } else { "; shards disagree on N or the seed" },
            r.sent,
            r.pairs,
            r.open,
            r.findings
        );
        for s in &r.reported {
            println!(
                "  shard {}/{}  {:<8} {}/{} sent  {} open  {} findings  {}  updated {}",
                s.shard, s.shards, s.state, s.sent, s.pairs, s.open, s.findings, s.host, s.updated
            );
        }
        for m in &r.missing {
            println!("  shard {m}/{}  not reported", r.shards);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stores a batch of observations, once more after a failure (a
/// PostgreSQL store connects again after its server restarted; the failed
/// batch stored nothing).
fn save_services(
    s: &mut dyn iotscope_store::Store,
    rows: &[ServiceObservation],
) -> Result<(), iotscope_store::StoreError> {
    s.save_services(rows).or_else(|e| {
        eprintln!("iotscope survey: observations not stored ({e}); trying once more");
        s.save_services(rows)
    })
}

/// This machine's host name, for a shard's report.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub fn observation(r: &iotscope_survey::Row) -> ServiceObservation {
    ServiceObservation {
        ip: r.ip.to_string(),
        port: r.port,
        proto: r.proto.to_string(),
        ts: r.ts.clone(),
        status: serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        service: r.service.map(String::from),
        banner: r.banner.as_ref().map(|b| b.to_string()),
    }
}

pub fn run(mut a: SurveyArgs, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    if let Some(SurveyAction::Status(s)) = a.action.take() {
        return status(s, config);
    }
    let checks = match &a.checks {
        Some(text) => {
            let which = super::checks::parse_checks(text)?;
            Some(super::checks::options(
                &a.check_flags,
                which,
                &a.user_agent,
                a.timeout,
            )?)
        }
        None => None,
    };
    if checks.is_some() && a.no_grab {
        anyhow::bail!("--checks needs the banners: drop --no-grab");
    }
    // A rate must be a number of probes per second that a schedule can be
    // kept with: `nan` is not "unlimited" and 1e-300 is not a schedule.
    if !(a.rate == 0.0 || (a.rate.is_finite() && (0.001..=100_000_000.0).contains(&a.rate))) {
        anyhow::bail!(
            "--rate {}: give probes per second between 0.001 and 100000000, or 0 for as fast as the machine allows",
            a.rate
        );
    }
    let mut targets = a.targets.clone();
    if let Some(f) = &a.targets_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        targets.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty()),
        );
    }
    let exclude_files = config.scope.files(&a.exclude);
    let current = crate::config::read_exclusions(&exclude_files)?;
    let ports_text = a
        .ports
        .clone()
        .context("the following required argument was not provided: --ports <LIST>")?;
    let ports = parse_ports(&ports_text)?;
    let shard = a
        .shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
        .filter(|(i, n)| *n > 0 && i < n)
        .with_context(|| format!("--shard {:?}: expected I/N with 0 <= I < N", a.shard))?;
    let mut state = ResumeState {
        version: iotscope_survey::resume::STATE_VERSION,
        targets: targets.clone(),
        ports: ports_text.clone(),
        seed: a.seed,
        shard: a.shard.clone(),
        mode: a.mode.clone(),
        checks: a.checks.clone(),
        exclusions: ExclusionRecord::of(&current),
        done: 0,
        pending_checks: Vec::new(),
    };
    // The plan (target set and order) is built from the exclusions of the
    // first run; the exclusions in force now apply to every probe.
    let mut plan = current.clone();
    let mut hosts: BTreeMap<IpAddr, Vec<Seen>> = Default::default();
    let resuming = a.resume.as_ref().is_some_and(|p| p.exists());
    if let Some(path) = a.resume.as_ref().filter(|_| resuming) {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read resume state {name}"))?;
        let saved = ResumeState::parse(&text, &name)?;
        saved.continues(&state, &name)?;
        plan = saved.plan_exclusions(&name)?;
        state.exclusions = saved.exclusions.clone();
        state.done = saved.done;
        for p in &saved.pending_checks {
            hosts.entry(p.ip).or_default().push(Seen {
                port: p.port,
                service: p.service.clone(),
                banner: p.banner.clone(),
            });
        }
        eprintln!(
            "iotscope survey: resuming after {} probes, {} services waiting for checks; {}",
            saved.done,
            saved.pending_checks.len(),
            ExclusionChange::between(&plan, &current)
        );
    }
    let set = TargetSet::new(&targets, &plan)?;
    // Services carried in a state are checked only if they belong to this
    // survey's targets (a state is a file anyone with access can edit).
    let carried = hosts.len();
    hosts.retain(|ip, _| set.contains(*ip));
    if hosts.len() < carried {
        eprintln!(
            "iotscope survey: {} hosts of the resume state are not among the targets: not checked",
            carried - hosts.len()
        );
    }
    let live_exclusions = iotscope_survey::LiveExclusions::new(current);
    let cfg = ScanConfig {
        targets: set.clone(),
        ports: ports.clone(),
        seed: a.seed,
        shard,
        rate: a.rate,
        concurrency: a.concurrency.max(1),
        connect_timeout: a.timeout,
        read_timeout: a.timeout,
        user_agent: a.user_agent.clone(),
        report_closed: a.report_closed,
        skip: state.done,
        grab: !a.no_grab,
        live_exclusions: live_exclusions.clone(),
    };
    let egress = if a.mode == "syn" {
        let gateway_mac = a
            .gateway_mac
            .as_deref()
            .map(|m| {
                iotscope_survey::syn::netif::parse_mac(m)
                    .with_context(|| format!("--gateway-mac {m:?}: expected aa:bb:cc:dd:ee:ff"))
            })
            .transpose()?;
        if set.has_v6() {
            anyhow::bail!("SYN mode is IPv4 only: survey IPv6 addresses with --mode connect");
        }
        Some(iotscope_survey::syn::netif::resolve(
            set.get_v4(0),
            a.interface.as_deref(),
            a.source_ip,
            gateway_mac,
        )?)
    } else {
        None
    };
    let total = set.len() * ports.len() as u64;
    let in_shard = total
        .saturating_sub(shard.0 as u64)
        .div_ceil(shard.1 as u64);
    if let Some(path) = a.resume.as_ref().filter(|_| resuming) {
        state.check_done(in_shard, &path.display().to_string())?;
    }
    eprintln!(
        "iotscope survey: {} addresses x {} ports = {total} pairs (shard {}/{}: {in_shard}), rate {}/s, {} mode{}",
        set.len(),
        ports.len(),
        shard.0,
        shard.1,
        if a.rate > 0.0 { a.rate.to_string() } else { "unlimited".into() },
        a.mode,
        egress
            .as_ref()
            .map(|e| format!(" on {} from {}", e.interface, e.link.src_ip))
            .unwrap_or_default()
    );
    // Rows and findings name hosts and their weaknesses: a new file is
    // made readable by its owner only (0600), and a link at the name is
    // refused, not followed.
    let append = |p: &std::path::Path| crate::files::create_output(p, 0o600, resuming);
    let mut out: Box<dyn Write + Send> = match &a.output {
        Some(p) => Box::new(BufWriter::new(append(p)?)),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let mut store = a.db.as_deref().map(super::open_store).transpose()?;
    // The shard's own report in the store, for `survey status` when
    // several scanners share it: at the start, every few seconds, and with
    // its final counts.
    let now = iotscope_store::now_rfc3339();
    let mut report = SurveyShard {
        run: a.run.clone().unwrap_or_else(|| state.run_id()),
        shard: shard.0,
        shards: shard.1,
        seed: a.seed,
        host: host_name(),
        pairs: in_shard,
        sent: state.done,
        open: 0,
        findings: 0,
        state: "running".into(),
        started: now.clone(),
        updated: now,
    };
    anyhow::ensure!(
        !report.run.is_empty()
            && report.run.chars().count() <= 128
            && !report.run.chars().any(char::is_control),
        "--run: give 1 to 128 characters, none of them control characters"
    );
    let mut open_before = 0;
    if let Some(s) = store.as_mut() {
        for other in s.survey_shards(Some(&report.run))? {
            anyhow::ensure!(
                other.shards == shard.1 && other.seed == a.seed,
                "run {}: shard {}/{} reported with seed {}, and this is shard {}/{} with seed {}: \
                 one run has one number of shards and one seed (give another --run)",
                report.run,
                other.shard,
                other.shards,
                other.seed,
                shard.0,
                shard.1,
                a.seed
            );
            if other.shard == shard.0 && resuming {
                open_before = other.open;
                report.findings = other.findings;
            }
        }
        s.put_survey_shard(&report)?;
    }
    let done_before = state.done;
    let mut pending: Vec<ServiceObservation> = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut checked_excluded = 0usize;
    let result = runtime.block_on(async {
        // Signals for the whole run, sweep and checks alike: SIGINT and
        // SIGTERM stop it (what is done is kept, the rest goes to the
        // resume state); SIGHUP re-reads the exclusion files.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let signals = tokio::spawn({
            let (live, files) = (live_exclusions.clone(), exclude_files.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = interrupt.recv() => break,
                        _ = term.recv() => break,
                        _ = hangup.recv() => {
                            // Opt-out requests: a file that does not parse
                            // keeps the old set in force.
                            match crate::config::read_exclusions(&files) {
                                Ok(set) => {
                                    eprintln!("iotscope survey: SIGHUP: {} exclusion ranges in force from {} file(s)", set.len(), files.len());
                                    live.replace(set);
                                }
                                Err(e) => eprintln!("iotscope survey: SIGHUP: kept the previous exclusions: {e:#}"),
                            }
                        }
                    }
                }
                let _ = stop_tx.send(true);
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let engine = match egress {
            None => {
                let connect = iotscope_survey::run(cfg, tx, stats.clone(), stop_rx.clone());
                tokio::spawn(async move { Ok(connect.await) })
            }
            Some(egress) => tokio::spawn(syn_driver(cfg, egress, a.retries, tx, stats.clone(), stop_rx.clone())),
        };
        let progress = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut report_tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                row = rx.recv() => match row {
                    Some(row) => {
                        if checks.is_some() && row.status == iotscope_survey::Status::Open {
                            if let (Some(service), Some(banner)) = (row.service, row.banner.clone()) {
                                hosts.entry(row.ip).or_default().push(Seen {
                                    port: row.port,
                                    service: service.to_string(),
                                    banner,
                                });
                            }
                        }
                        serde_json::to_writer(&mut out, &row)?;
                        out.write_all(b"\n")?;
                        if let Some(s) = store.as_mut() {
                            pending.push(observation(&row));
                            // Batches: one transaction per 500 rows.
                            if pending.len() >= 500 {
                                save_services(s.as_mut(), &pending)?;
                                pending.clear();
                            }
                        }
                    }
                    None => break,
                },
                _ = report_tick.tick(), if store.is_some() => {
                    if let Some(s) = store.as_mut() {
                        report.sent = done_before + stats.sent.load(Ordering::Relaxed);
                        report.open = open_before + stats.open.load(Ordering::Relaxed);
                        report.updated = iotscope_store::now_rfc3339();
                        // Progress is news, not a result: a store that is
                        // away for a moment does not stop the sweep.
                        if let Err(e) = s.put_survey_shard(&report) {
                            eprintln!("iotscope survey: progress not stored: {e}");
                        }
                    }
                }
                _ = tick.tick(), if progress => {
                    let sent = stats.sent.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    let rate = sent as f64 / secs;
                    let eta = if rate > 0.0 { (in_shard.saturating_sub(sent)) as f64 / rate } else { 0.0 };
                    eprint!("\r{sent}/{in_shard} sent, {rate:.0}/s, {} open, ETA {eta:.0} s   ", stats.open.load(Ordering::Relaxed));
                }
            }
        }
        let probed = engine.await.map_err(|e| anyhow::anyhow!("survey engine: {e}"))??;
        out.flush()?;
        if let Some(s) = store.as_mut() {
            save_services(s.as_mut(), &pending)?;
        }
        let mut interrupted = *stop_rx.borrow();
        if let (Some((opts, rules)), false) = (checks.clone(), interrupted) {
            let n = hosts.len();
            eprintln!("iotscope survey: checking {n} hosts ({})", a.checks.as_deref().unwrap_or(""));
            let checked = super::checks::check_hosts(
                std::mem::take(&mut hosts),
                rules,
                opts,
                a.check_flags.hosts_at_once,
                live_exclusions.clone(),
                stop_rx.clone(),
            )
            .await;
            // Hosts a stop left unchecked go back to the resume state.
            hosts = checked.unfinished;
            interrupted = !hosts.is_empty();
            checked_excluded = checked.excluded;
            let reports = checked.reports;
            let findings: Vec<&iotscope_checks::findings::Finding> =
                reports.iter().flat_map(|r| &r.findings).collect();
            if let Some(s) = store.as_mut() {
                let records: Vec<_> = findings.iter().map(|f| super::checks::record(f)).collect();
                s.save_findings(&records)?;
            }
            report.findings += findings.len() as u64;
            if let Some(path) = &a.findings {
                let mut w = BufWriter::new(append(path)?);
                for f in &findings {
                    serde_json::to_writer(&mut w, &super::checks::finding_json(f, false))?;
                    w.write_all(b"\n")?;
                }
                w.flush()?;
            }
            let mut by_kind: BTreeMap<&str, usize> = Default::default();
            for f in &findings {
                *by_kind.entry(f.kind.as_str()).or_default() += 1;
            }
            eprintln!(
                "iotscope survey: {} findings on {} of {n} hosts: {}{}",
                findings.len(),
                reports.iter().filter(|r| !r.findings.is_empty()).count(),
                by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
                if hosts.is_empty() { String::new() } else { format!(" ({} hosts not checked: stopped)", hosts.len()) }
            );
        }
        signals.abort();
        if let Some(s) = store.as_mut() {
            report.sent = done_before + stats.sent.load(Ordering::Relaxed);
            report.open = open_before + stats.open.load(Ordering::Relaxed);
            report.state = if interrupted { "stopped" } else { "final" }.into();
            report.updated = iotscope_store::now_rfc3339();
            s.put_survey_shard(&report)?;
        }
        Ok::<(bool, u64), anyhow::Error>((interrupted, probed))
    });
    let (interrupted, probed) = result?;
    if let Some(path) = &a.resume {
        if interrupted {
            state.done += probed;
            state.pending_checks = hosts
                .iter()
                .flat_map(|(ip, seen)| {
                    seen.iter().map(|s| PendingService {
                        ip: *ip,
                        port: s.port,
                        service: s.service.clone(),
                        banner: s.banner.clone(),
                    })
                })
                .collect();
            crate::files::write_atomically(path, &serde_json::to_vec(&state)?)?;
            eprintln!(
                "iotscope survey: stopped after {} probes ({} services waiting for checks); continue with the same command (state in {})",
                state.done,
                state.pending_checks.len(),
                path.display()
            );
        } else if path.exists() {
            // Finished: the state is spent.
            let _ = std::fs::remove_file(path);
        }
    }
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let skipped = stats.excluded.load(Ordering::Relaxed);
    eprintln!(
        "iotscope survey: {} probes in {:.1} s: {} open, {} refused, {} no answer{}{}{}",
        stats.sent.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        stats.open.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.timeouts.load(Ordering::Relaxed),
        if skipped > 0 {
            format!(", {skipped} skipped by exclusions in force now")
        } else {
            String::new()
        },
        if checked_excluded > 0 {
            format!(", {checked_excluded} hosts not checked: excluded now")
        } else {
            String::new()
        },
        if interrupted { " (interrupted)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// SYN mode inside the async pipeline: the raw scan runs on blocking
/// threads, each answering pair comes back here, and open ports get their
/// banner grabbed over a kernel connection (ZMap's and ZGrab2's jobs in one
/// run) while the sweep goes on. Returns the positions probed (for resume).
async fn syn_driver(
    cfg: ScanConfig,
    egress: iotscope_survey::syn::Egress,
    retries: u32,
    rows: tokio::sync::mpsc::Sender<iotscope_survey::Row>,
    stats: Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    use iotscope_survey::syn::{self, Answer};
    use iotscope_survey::{probe, ProbeSettings, Row, Status};
    let syn_cfg = syn::SynConfig {
        targets: cfg.targets.clone(),
        ports: cfg.ports.clone(),
        seed: cfg.seed,
        shard: cfg.shard,
        rate: cfg.rate,
        retries,
        cooldown: cfg.connect_timeout,
        egress,
        skip: cfg.skip,
        live_exclusions: cfg.live_exclusions.clone(),
    };
    let stop_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let stop_flag = stop_flag.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
            stop_flag.store(true, Ordering::Relaxed);
        }
    });
    let (reply_tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let scan = tokio::task::spawn_blocking({
        let stats = stats.clone();
        let stop_flag = stop_flag.clone();
        move || {
            syn::run(&syn_cfg, &stats, &stop_flag, |batch| {
                let _ = reply_tx.send(batch.to_vec());
            })
        }
    });
    let settings = Arc::new(ProbeSettings {
        connect_timeout: cfg.connect_timeout,
        read_timeout: cfg.read_timeout,
        user_agent: cfg.user_agent.clone(),
        grab: true,
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
    while let Some(batch) = replies.recv().await {
        for reply in batch {
            let addr = std::net::SocketAddr::new(reply.ip.into(), reply.port);
            let status = match reply.answer {
                Answer::Open => Status::Open,
                Answer::Refused => Status::Refused,
            };
            // The SYN/ACK says the port is open; the banner grab is a new
            // connection, so it passes the scope gate of this moment.
            let grab = cfg.grab && cfg.live_exclusions.verdict(addr.ip()).allowed();
            if status == Status::Open && grab {
                let permit = slots.clone().acquire_owned().await?;
                let (rows, settings) = (rows.clone(), settings.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut row = probe(addr, &settings).await;
                    // The SYN/ACK proved the port open; a grab that cannot
                    // connect again says so instead of hiding the finding.
                    if matches!(row.status, Status::Refused | Status::Timeout) {
                        row.error = Some(
                            format!("open to SYN, then {:?} to connect", row.status).to_lowercase(),
                        );
                        row.status = Status::ProtocolError;
                    }
                    let _ = rows.send(row).await;
                });
            } else if status == Status::Open || cfg.report_closed {
                let row = Row {
                    ip: addr.ip(),
                    port: addr.port(),
                    proto: "tcp",
                    ts: iotscope_survey::now_rfc3339(),
                    status,
                    service: None,
                    banner: None,
                    error: None,
                };
                rows.send(row).await?;
            }
        }
    }
    let probed = scan.await??;
    let _ = slots.acquire_many(cfg.concurrency.max(1) as u32).await;
    Ok(probed)
}
