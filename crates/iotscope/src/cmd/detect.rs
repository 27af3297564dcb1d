//! `iotscope detect`: run the detectors over stored buckets, list their
//! alerts, deliver them (issue 20). The rules live in `iotscope-detect`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use iotscope_detect::{Enricher, ResearchScanners, Settings};
use iotscope_store::{DetectionRecord, Store};
use iotscope_telescope::time::rfc3339;
use serde::Deserialize;

/// `iotscope detect ...`.
#[derive(clap::Subcommand, Debug)]
pub enum DetectCommand {
    /// Run the detectors over stored buckets (each judged on the history
    /// before it), store the alerts and deliver new ones.
    Run(RunArgs),
    /// List stored detection alerts, newest first.
    List(ListArgs),
}

/// `detect run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The store (default: [store] db in the config).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Judge buckets starting at or after this time (RFC 3339); history
    /// before it is read as baseline. Default: every stored bucket.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Judge buckets starting before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// More research-scanner prefixes (the shipped list's TOML shape);
    /// repeatable, added to the shipped list and `[detect] research`.
    #[arg(long, value_name = "FILE")]
    research: Vec<PathBuf>,
    /// Store and list, but deliver nothing (webhook, mail).
    #[arg(long)]
    no_deliver: bool,
    /// table or json.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// `detect list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// The store (default: [store] db in the config).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Episodes that last into or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Episodes that start before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// table or json.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// `[detect]` in the config: the detectors' parameters (docs/detect.md) and
/// delivery.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectDefaults {
    /// Run the detectors after `telescope analyze --db` and each sensor
    /// commit (default true).
    pub auto: Option<bool>,
    /// History compared with ("7d").
    pub baseline: Option<String>,
    /// Season length ("1d"; "0s": none).
    pub period: Option<String>,
    /// How long a source must be absent from a port to be new on it ("1d").
    pub lookback: Option<String>,
    /// Alerts of one key within this of an episode update it ("6h").
    pub cooldown: Option<String>,
    /// Fewest recorded buckets of history (a day's worth, at least 6).
    pub min_history: Option<usize>,
    /// Robust z-score threshold (6).
    pub z: Option<f64>,
    /// Times the expected value (3).
    pub ratio: Option<f64>,
    /// Fewest sources on a port (10).
    pub min_sources: Option<f64>,
    /// Fewest packets for a packet surge (50).
    pub min_packets: Option<f64>,
    /// New port: most sources per baseline bucket (1).
    pub new_port_quiet: Option<f64>,
    /// New port: fewest sources now (8).
    pub new_port_min: Option<f64>,
    /// A DoS victim counts with at least this many backscatter packets in a bucket (200).
    pub backscatter_victim_packets: Option<f64>,
    /// Fewest such victims at once (3).
    pub backscatter_min_victims: Option<f64>,
    /// Fewest backscatter packets of those victims per bucket (1000).
    pub backscatter_min_packets: Option<f64>,
    /// Research-scanner lists added to the shipped one.
    #[serde(default)]
    pub research: Vec<PathBuf>,
    /// Webhook: new episodes are POSTed here as JSON.
    pub webhook: Option<String>,
    /// PEM CA bundle for an https webhook (default: the system's).
    pub webhook_ca_file: Option<PathBuf>,
    /// Mailboxes new episodes are mailed to, through `[smtp]`.
    #[serde(default)]
    pub mail_to: Vec<String>,
}

fn duration_ns(name: &str, v: &Option<String>, default_ns: i64) -> anyhow::Result<i64> {
    match v {
        None => Ok(default_ns),
        Some(t) => {
            let d = humantime::parse_duration(t)
                .with_context(|| format!("[detect] {name} = {t:?} is not a duration such as 6h"))?;
            i64::try_from(d.as_nanos())
                .ok()
                .filter(|&ns| ns <= 100 * 365 * 86_400_000_000_000)
                .with_context(|| format!("[detect] {name} = {t:?} is too long (at most 100 years)"))
        }
    }
}

/// The settings for a store of `bucket_ns` buckets from `[detect]`.
pub fn settings(d: &DetectDefaults, bucket_ns: i64) -> anyhow::Result<Settings> {
    let mut s = Settings::new(bucket_ns);
    s.baseline_ns = duration_ns("baseline", &d.baseline, s.baseline_ns)?;
    s.period_ns = duration_ns("period", &d.period, s.period_ns)?;
    s.lookback_ns = duration_ns("lookback", &d.lookback, s.lookback_ns)?;
    s.cooldown_ns = duration_ns("cooldown", &d.cooldown, s.cooldown_ns)?;
    s.min_history = d.min_history.unwrap_or(s.min_history);
    s.z = d.z.unwrap_or(s.z);
    s.ratio = d.ratio.unwrap_or(s.ratio);
    s.min_sources = d.min_sources.unwrap_or(s.min_sources);
    s.min_packets = d.min_packets.unwrap_or(s.min_packets);
    s.new_port_quiet = d.new_port_quiet.unwrap_or(s.new_port_quiet);
    s.new_port_min = d.new_port_min.unwrap_or(s.new_port_min);
    s.backscatter_victim_packets = d
        .backscatter_victim_packets
        .unwrap_or(s.backscatter_victim_packets);
    s.backscatter_min_victims = d
        .backscatter_min_victims
        .unwrap_or(s.backscatter_min_victims);
    s.backscatter_min_packets = d
        .backscatter_min_packets
        .unwrap_or(s.backscatter_min_packets);
    for (name, v, least) in [
        ("z", s.z, 0.0),
        ("ratio", s.ratio, 0.0),
        ("min_sources", s.min_sources, 1.0),
        ("min_packets", s.min_packets, 1.0),
        ("new_port_quiet", s.new_port_quiet, 0.0),
        ("new_port_min", s.new_port_min, 1.0),
        (
            "backscatter_victim_packets",
            s.backscatter_victim_packets,
            1.0,
        ),
        ("backscatter_min_victims", s.backscatter_min_victims, 1.0),
        ("backscatter_min_packets", s.backscatter_min_packets, 1.0),
    ] {
        if !(v.is_finite() && v >= least) {
            bail!("[detect] {name} = {v} must be a number of at least {least}");
        }
    }
    if s.baseline_ns < bucket_ns {
        bail!("[detect] baseline must be at least one bucket");
    }
    if s.period_ns != 0 && s.period_ns < 2 * bucket_ns {
        bail!("[detect] period must be 0s (no seasons) or at least two buckets");
    }
    if (s.baseline_ns / bucket_ns) < s.min_history as i64 {
        bail!(
            "[detect] baseline holds {} buckets, fewer than min_history ({}): nothing could ever be judged",
            s.baseline_ns / bucket_ns,
            s.min_history
        );
    }
    if let Some(url) = &d.webhook {
        iotscope_alerts::webhook::check_url(url)?;
    }
    for to in &d.mail_to {
        if let Some(why) = iotscope_alerts::smtp::mailbox_problem(to) {
            bail!("[detect] mail_to {to:?}: {why}");
        }
    }
    Ok(s)
}

/// The shipped research-scanner list and the configured and given ones.
pub fn research(d: &DetectDefaults, extra: &[PathBuf]) -> anyhow::Result<ResearchScanners> {
    let mut r = ResearchScanners::shipped();
    for p in d.research.iter().chain(extra) {
        // Bounded: a research list is a few hundred prefixes, not a device.
        const MAX_BYTES: u64 = 8 << 20;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
                MAX_BYTES + 1,
            ),
            &mut text,
        )
        .with_context(|| format!("cannot read {} (a UTF-8 TOML file)", p.display()))?;
        if text.len() as u64 > MAX_BYTES {
            bail!(
                "{}: larger than {} MiB: not a research-scanner list",
                p.display(),
                MAX_BYTES >> 20
            );
        }
        r.extend(ResearchScanners::parse(&text, &p.display().to_string())?);
    }
    Ok(r)
}

/// Country and AS from the configured enrichment tables.
struct ConfigEnricher {
    asn: Option<iotscope_enrich::AsnTable>,
    geo: Option<iotscope_enrich::GeoDb>,
}

impl Enricher for ConfigEnricher {
    fn country(&self, ip: IpAddr) -> Option<String> {
        self.geo
            .as_ref()?
            .lookup(ip)
            .map(|g| g.country)
            .filter(|c| !c.is_empty())
    }

    fn asn(&self, ip: IpAddr) -> Option<(u32, String)> {
        self.asn
            .as_ref()?
            .lookup(ip)
            .map(|i| (i.asn, i.org.to_string()))
    }
}

/// What one detection pass did.
#[derive(serde::Serialize)]
pub struct Pass {
    /// The runner's counts.
    #[serde(flatten)]
    pub outcome: iotscope_detect::Outcome,
    /// Alerts (campaign and bucket) raised.
    pub alerts: usize,
    /// Episodes started.
    pub created: usize,
    /// Episodes widened or renewed.
    pub updated: usize,
    /// Episodes delivered now (webhook or mail).
    pub delivered: usize,
    /// Delivery failures (kept undelivered, retried on the next pass).
    pub failures: Vec<String>,
}

/// Runs the detectors over the buckets starting in `[since_ns, until_ns)`,
/// stores their alerts and, unless `deliver` is false, delivers every
/// episode not yet delivered. Used by `detect run`, `telescope analyze
/// --db` and the sensor.
pub fn pass(
    store: &mut dyn Store,
    cfg: &crate::config::Config,
    extra_research: &[PathBuf],
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    deliver: bool,
) -> anyhow::Result<Pass> {
    let Some(bucket_ns) = store.bucket_ns()? else {
        return Ok(Pass {
            outcome: Default::default(),
            alerts: 0,
            created: 0,
            updated: 0,
            delivered: 0,
            failures: Vec::new(),
        });
    };
    let d = &cfg.detect;
    let s = settings(d, bucket_ns)?;
    let research = research(d, extra_research)?;
    let enrich = ConfigEnricher {
        asn: cfg.enrich.load_asn()?,
        geo: cfg.enrich.load_geo()?,
    };
    let enrich_ref: Option<&dyn Enricher> =
        (enrich.asn.is_some() || enrich.geo.is_some()).then_some(&enrich as &dyn Enricher);
    let outcome = iotscope_detect::run(&*store, &s, &research, enrich_ref, since_ns, until_ns)?;
    let rows: Vec<DetectionRecord> = outcome.alerts.iter().map(|a| a.record()).collect();
    let merged = store.merge_detections(&rows, s.cooldown_ns)?;
    let created = merged.iter().filter(|m| m.2).count();
    let mut episodes: Vec<(String, i64)> = merged.iter().map(|m| (m.0.clone(), m.1)).collect();
    episodes.sort();
    episodes.dedup();
    let (mut delivered, mut failures) = (0, Vec::new());
    if deliver && (d.webhook.is_some() || !d.mail_to.is_empty()) {
        let pending: Vec<DetectionRecord> = store
            .detections(None, None, usize::MAX)?
            .into_iter()
            .filter(|r| r.notified_at.is_none())
            .collect();
        let total = pending.len();
        for (i, r) in pending.into_iter().enumerate() {
            match deliver_one(&r, cfg) {
                Ok(()) => {
                    store.mark_detection_notified(
                        &r.key,
                        r.first_bucket_ns,
                        &iotscope_store::now_rfc3339(),
                    )?;
                    delivered += 1;
                }
                Err(e) => {
                    // A receiver that refused the alert for good (4xx) will
                    // not take it later either: recorded as refused, not
                    // tried again.
                    if let Some(iotscope_alerts::webhook::WebhookError::Refused {
                        status, ..
                    }) = e.downcast_ref::<iotscope_alerts::webhook::WebhookError>()
                    {
                        store.mark_detection_notified(
                            &r.key,
                            r.first_bucket_ns,
                            &format!("refused (HTTP {status}) {}", iotscope_store::now_rfc3339()),
                        )?;
                        failures.push(format!(
                            "{} at {}: {e:#}; recorded as refused, not tried again",
                            r.key,
                            rfc3339(r.first_bucket_ns)
                        ));
                        continue;
                    }
                    failures.push(format!(
                        "{} at {}: {e:#}; kept for the next run",
                        r.key,
                        rfc3339(r.first_bucket_ns)
                    ));
                    // A channel that is down stays down for this pass: the
                    // others wait for the next rather than each waiting out
                    // its retries.
                    if total > i + 1 {
                        failures.push(format!(
                            "{} more episodes kept for the next run without trying",
                            total - i - 1
                        ));
                    }
                    break;
                }
            }
        }
    }
    Ok(Pass {
        alerts: outcome.alerts.len(),
        outcome,
        created,
        updated: episodes.len() - created.min(episodes.len()),
        delivered,
        failures,
    })
}

/// Delivers one episode: POSTed to `[detect] webhook` (retried with
/// back-off) and mailed to each of `[detect] mail_to` through `[smtp]`.
fn deliver_one(r: &DetectionRecord, cfg: &crate::config::Config) -> anyhow::Result<()> {
    let doc = iotscope_detect::episode_json(r);
    let json = serde_json::to_vec_pretty(&doc)?;
    if let Some(url) = &cfg.detect.webhook {
        let mut w = iotscope_alerts::webhook::Webhook::new(url);
        w.ca_file = cfg.detect.webhook_ca_file.clone();
        iotscope_alerts::webhook::post(&w, &json)?;
    }
    if !cfg.detect.mail_to.is_empty() {
        let relay = cfg.smtp.relay()?;
        let from = cfg
            .smtp
            .from
            .clone()
            .context("set [smtp] from in the config to mail detection alerts")?;
        let latest = &doc["latest"];
        let ports = if r.ports.is_empty() {
            "the whole darknet".to_string()
        } else {
            format!("{}/{}", r.ports, r.proto)
        };
        for to in &cfg.detect.mail_to {
            let message = iotscope_alerts::smtp::Message {
                from: from.clone(),
                to: to.clone(),
                subject: format!("[iotscope] {} {} on {ports}", r.severity, r.kind.replace('_', " ")),
                body: format!(
                    "The darknet telescope raised a {} alert ({}) on {ports}.\n\n\
                     First bucket: {}\nLatest bucket: {}\nSources in the latest bucket: {} ({} new), packets: {}\n\
                     Peak score: {:.1}\n\nThe attached JSON holds the detectors, their parameters and\n\
                     baselines, the share of each scanner class and example sources.\n",
                    r.severity,
                    r.kind,
                    rfc3339(r.first_bucket_ns),
                    rfc3339(r.last_bucket_ns),
                    latest["sources"],
                    latest["new_sources"],
                    latest["packets"],
                    r.peak_score
                ),
                attachment_name: "detection.json".into(),
                attachment: json.clone(),
                attachment_type: "application/json",
            };
            let date = iotscope_alerts::smtp::rfc5322_date(std::time::SystemTime::now());
            iotscope_alerts::smtp::send(&relay, &message, &date)
                .map_err(|e| anyhow::anyhow!("mail to {to}: {e}"))?;
        }
    }
    Ok(())
}

/// At most `n` characters, an ellipsis marking a cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n - 1).collect();
        c.push('…');
        c
    }
}

/// Runs `iotscope detect`.
pub fn run(c: DetectCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    match c {
        DetectCommand::Run(a) => {
            let (since, until) = super::period(&a.since, &a.until, "judges")?;
            let mut store = super::existing_store(a.db, cfg)?;
            let p = pass(
                store.as_mut(),
                cfg,
                &a.research,
                since,
                until,
                !a.no_deliver,
            )?;
            if a.format == "json" {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!(
                    "judged {} buckets, {} candidate ports; {} alerts: {} new episodes, {} existing episodes met again; {} delivered",
                    p.outcome.buckets, p.outcome.ports, p.alerts, p.created, p.updated, p.delivered
                );
                let classes: Vec<String> = p
                    .outcome
                    .classes
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!("sources by class: {}", classes.join(", "));
            }
            for f in &p.failures {
                eprintln!("iotscope: delivery failed: {f}");
            }
            Ok(if p.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DetectCommand::List(a) => {
            let (since, until) = super::period(&a.since, &a.until, "judges")?;
            let store = super::existing_store(a.db, cfg)?;
            let rows = store.detections(since, until, a.limit)?;
            if a.format == "json" {
                let v: Vec<serde_json::Value> =
                    rows.iter().map(iotscope_detect::episode_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<22} {:<22} {:<20} {:<9} {:<18} {:>8} {:>8}",
                    "first bucket", "last bucket", "kind", "severity", "ports", "sources", "score"
                );
                for r in &rows {
                    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                    let ports = if r.ports.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{}/{}", r.ports, r.proto)
                    };
                    println!(
                        "{:<22} {:<22} {:<20} {:<9} {:<18} {:>8} {:>8.1}",
                        rfc3339(r.first_bucket_ns),
                        rfc3339(r.last_bucket_ns),
                        r.kind,
                        r.severity,
                        clip(&ports, 18),
                        body["sources"].as_u64().unwrap_or(0),
                        r.peak_score
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(feature = "live-capture")]
/// Detection passes as a live sensor's buckets close: on its own thread,
/// one pass at a time (closings that arrive during a pass are judged by the
/// next, from the oldest of them), so capture never waits on it.
pub struct Background {
    db: PathBuf,
    config_path: Option<PathBuf>,
    /// (oldest closed bucket not yet judged, whether a pass is running).
    state: std::sync::Arc<std::sync::Mutex<(Option<i64>, bool)>>,
}

#[cfg(feature = "live-capture")]
impl Background {
    /// Passes over the store at `db` with the configuration at
    /// `config_path` (read again for each pass, so SIGHUP-edited
    /// parameters apply).
    pub fn new(db: PathBuf, config_path: Option<PathBuf>) -> Background {
        Background {
            db,
            config_path,
            state: Default::default(),
        }
    }

    /// The bucket starting at `bucket_start_ns` was committed closed.
    pub fn closed(&self, bucket_start_ns: i64) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = Some(g.0.map_or(bucket_start_ns, |p| p.min(bucket_start_ns)));
        if g.1 {
            return;
        }
        g.1 = true;
        drop(g);
        let (state, db, config_path) = (
            self.state.clone(),
            self.db.clone(),
            self.config_path.clone(),
        );
        std::thread::spawn(move || loop {
            let since = {
                let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                match g.0.take() {
                    Some(s) => s,
                    None => {
                        g.1 = false;
                        return;
                    }
                }
            };
            let result = crate::config::Config::load(config_path.as_deref()).and_then(|cfg| {
                let mut store = super::open_store(&db)?;
                pass(store.as_mut(), &cfg, &[], Some(since), None, true)
            });
            match result {
                Ok(p) if p.alerts > 0 || !p.failures.is_empty() => eprintln!(
                    "iotscope: sensor: detect from bucket {}: {} alerts, {} new episodes, {} updated, {} delivered{}",
                    rfc3339(since),
                    p.alerts,
                    p.created,
                    p.updated,
                    p.delivered,
                    if p.failures.is_empty() {
                        String::new()
                    } else {
                        format!("; delivery failed: {}", p.failures.join("; "))
                    }
                ),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("iotscope: sensor: detect from bucket {}: {e:#}; tried again at the next closing", rfc3339(since));
                    // The range is judged by the next pass.
                    let mut g = state.lock().unwrap_or_else(|p| p.into_inner());
                    g.0 = Some(g.0.map_or(since, |p| p.min(since)));
                    g.1 = false;
                    return;
                }
            }
        });
    }
}
