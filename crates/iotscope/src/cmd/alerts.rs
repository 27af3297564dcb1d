//! `iotscope alerts`: alerts for ISPs from survey findings and the
//! telescope's infected hosts, and one report per ISP.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::files::write_atomically;
use iotscope_alerts::{
    csv_row, from_finding, from_infected, Alert, EvidenceLevel, IspTable, CSV_COLUMNS,
};
use iotscope_store::{AlertRecord, ReportQuery};

#[derive(clap::Subcommand, Debug)]
pub enum AlertsCommand {
    /// Build or merge alerts from the store's findings and infected hosts.
    Build {
        /// The store (default: the config's [store] db).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// List the alerts.
    List {
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// table or json.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Re-run the original check of every open survey alert (that check only,
    /// on that address and port only) and mark it fixed or persisting;
    /// infected-host alerts close when the host has not been seen for
    /// `--infected-ttl` before the newest telescope data.
    Recheck {
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Connect and read timeout.
        #[arg(long, default_value = "3s", value_parser = crate::args::timeout)]
        timeout: std::time::Duration,
        /// Infected hosts unseen this long are fixed.
        #[arg(long, default_value = "7d", value_parser = crate::args::span)]
        infected_ttl: std::time::Duration,
        /// Exclusion (opt-out) file(s), ZMap's blocklist format, on top of
        /// the config's `[scope] exclude`: alerts on excluded addresses are
        /// skipped (left as they are, never marked fixed) and nothing is
        /// sent to them.
        #[arg(long, value_name = "FILE")]
        exclude: Vec<PathBuf>,
    },
    /// Mail each ISP of the table (its `abuse` address) a report of its
    /// `new` and `persisting` alerts through the configured relay; the
    /// alerts become `notified` only when the relay accepted the message.
    ///
    /// Only alerts whose evidence is `confirmed` (a survey check) or
    /// `corroborated` are mailed: a host seen only in darknet packets is
    /// `observed`, and darknet packets can be forged from any address.
    Send {
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Print what would be sent, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also mail alerts whose evidence is only `observed` (darknet
        /// packets below the corroboration rule, which anyone can forge).
        #[arg(long)]
        include_observed: bool,
    },
    /// Move an alert along its life by hand (notified, acknowledged, fixed).
    Status {
        /// Address.
        ip: String,
        /// Problem (default_credential, infected_mirai, ...).
        problem: String,
        /// The alert's port (each service has its own alert); may be left
        /// out when the address has that problem on one port only.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, value_parser = ["new", "notified", "acknowledged", "fixed", "persisting"])]
        set: String,
        /// Why (kept in the history).
        #[arg(long, default_value = "set by hand")]
        note: String,
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Write one report per ISP of the config's table (`DIR/<isp-id>.csv`),
    /// each with only that ISP's addresses (longest prefix, else the ISP of
    /// the address's AS when enrichment is configured); other addresses go
    /// to `DIR/as<N>.csv` by AS, or `DIR/unassigned.csv`.
    Export {
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// csv (Shadowserver-like columns) or json.
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
    },
}

fn open(db: Option<PathBuf>, cfg: &crate::config::Config) -> anyhow::Result<super::StoreBox> {
    super::existing_store(db, cfg)
}

fn to_alert(r: &AlertRecord) -> Alert {
    Alert {
        ip: r.ip.clone(),
        problem: r.problem.clone(),
        port: r.port,
        service: r.service.clone(),
        severity: r.severity.clone(),
        device: r
            .device
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
        evidence: serde_json::from_str(&r.evidence).unwrap_or_default(),
        advice: r.advice.clone(),
        first_seen: r.first_seen.clone(),
        last_seen: r.last_seen.clone(),
    }
}

pub fn run(c: AlertsCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let table = IspTable::new(cfg.isp.clone())?;
    let asn = cfg.enrich.load_asn()?;
    let as_of = |ip: &str| -> Option<(u32, String)> {
        let t = asn.as_ref()?;
        let info = t.lookup(ip.parse().ok()?)?;
        Some((info.asn, info.org.to_string()))
    };
    // Who an address belongs to, decided in one place for build, send and
    // export: the ISP of the longest prefix, else the ISP of its AS; and
    // its AS, if the table knows it.
    let owner_of = |ip: &str| -> (Option<&iotscope_alerts::Isp>, Option<u32>) {
        let asn_here = as_of(ip).map(|x| x.0);
        let isp = ip.parse().ok().and_then(|ip| table.isp_of(ip, asn_here));
        (isp, asn_here)
    };
    match c {
        AlertsCommand::Build { db } => {
            let mut store = open(db, cfg)?;
            // Pages of findings, each merged in its own transaction: a million
            // findings never sit in memory at once.
            const PAGE: usize = 20_000;
            let to_record = |a: &Alert| AlertRecord {
                ip: a.ip.clone(),
                problem: a.problem.clone(),
                port: a.port,
                service: a.service.clone(),
                severity: a.severity.clone(),
                // `with_as` already put the AS in the evidence: no second lookup.
                isp: a
                    .ip
                    .parse()
                    .ok()
                    .and_then(|ip| table.isp_of(ip, a.evidence["asn"].as_u64().map(|n| n as u32)))
                    .map(|i| i.name.clone()),
                device: a.device.as_ref().map(|d| d.to_string()),
                evidence: a.evidence.to_string(),
                advice: a.advice.clone(),
                first_seen: a.first_seen.clone(),
                last_seen: a.last_seen.clone(),
                status: String::new(),
            };
            let geo = cfg.enrich.load_geo()?;
            // The AS and the location, when the tables are configured: an
            // ISP's report says where each device is, as Shadowserver's do.
            let with_as = |mut a: Alert| {
                if let Some((n, org)) = as_of(&a.ip) {
                    a.evidence["asn"] = n.into();
                    a.evidence["as_org"] = org.into();
                }
                if let Some(g) = geo.as_ref().and_then(|db| db.lookup(a.ip.parse().ok()?)) {
                    a.evidence["geo"] = serde_json::to_value(g).unwrap_or_default();
                }
                a
            };
            // The telescope's infected hosts first (a store without
            // telescope runs has none), so that the survey findings paged
            // below can corroborate them.
            let infected: Vec<serde_json::Value> = match store.report(&ReportQuery {
                top: 1,
                ..Default::default()
            }) {
                Ok(summary) => serde_json::to_value(summary)?["infected"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            // Research scanners (the published prefixes of issue 20) are not
            // infections, whatever fingerprint their tools leave.
            let research = super::detect::research(&cfg.detect, &[])?;
            let before = infected.len();
            let infected: Vec<serde_json::Value> = infected
                .into_iter()
                .filter(|h| {
                    let ip = h["ip"]
                        .as_str()
                        .and_then(|i| i.parse::<std::net::IpAddr>().ok());
                    ip.is_none_or(|ip| research.lookup(iotscope_wire::Addr::from(ip)).is_none())
                })
                .collect();
            if infected.len() < before {
                eprintln!(
                    "iotscope alerts: {} flagged hosts are published research scanners: no alert",
                    before - infected.len()
                );
            }
            let mut survey_seen: std::collections::HashMap<
                String,
                Vec<iotscope_alerts::SurveyEvidence>,
            > = infected
                .iter()
                .filter_map(|h| Some((h["ip"].as_str()?.to_string(), Vec::new())))
                .collect();
            let (mut created, mut updated) = (0, 0);
            let mut after: Option<(String, u16, String)> = None;
            loop {
                let page = store.findings_page(after.as_ref(), PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some((last.ip.clone(), last.port, last.kind.clone()));
                for f in &page {
                    if let Some(seen) = survey_seen.get_mut(&f.ip) {
                        if iotscope_alerts::CORROBORATING_KINDS.contains(&f.kind.as_str()) {
                            seen.push(iotscope_alerts::SurveyEvidence {
                                kind: f.kind.clone(),
                                port: f.port,
                                ts: f.ts.clone(),
                            });
                        }
                    }
                }
                let records: Vec<AlertRecord> = page
                    .iter()
                    .filter_map(|f| {
                        let evidence: serde_json::Value =
                            serde_json::from_str(&f.evidence).unwrap_or_default();
                        let device = f
                            .device
                            .as_deref()
                            .and_then(|d| serde_json::from_str(d).ok());
                        from_finding(iotscope_alerts::FindingInput {
                            ip: &f.ip,
                            port: f.port,
                            service: &f.service,
                            kind: &f.kind,
                            severity: &f.severity,
                            device,
                            evidence,
                            first_seen: &f.first_seen,
                            last_seen: &f.ts,
                        })
                    })
                    .map(|a| to_record(&with_as(a)))
                    .collect();
                let (c, u) = store.merge_alerts(&records)?;
                created += c;
                updated += u;
            }
            if !infected.is_empty() {
                let persistence: std::collections::HashMap<String, iotscope_alerts::Persistence> =
                    store
                        .fingerprint_persistence()?
                        .into_iter()
                        .map(|p| {
                            let span_secs = (p.last_bucket_ns - p.first_bucket_ns).max(0) as u64
                                / 1_000_000_000;
                            let persistence = iotscope_alerts::Persistence {
                                buckets: p.buckets,
                                packets: p.packets,
                                span_secs,
                            };
                            (p.ip, persistence)
                        })
                        .collect();
                let rule = cfg.alerts.corroboration;
                let records: Vec<AlertRecord> = infected
                    .iter()
                    .filter_map(|h| {
                        let ip = h["ip"].as_str()?;
                        let seen = survey_seen.get(ip).map(Vec::as_slice).unwrap_or_default();
                        from_infected(
                            h,
                            persistence.get(ip).copied().unwrap_or_default(),
                            seen,
                            &rule,
                        )
                    })
                    .map(|a| to_record(&with_as(a)))
                    .collect();
                let (c, u) = store.merge_alerts(&records)?;
                created += c;
                updated += u;
            }
            // Honeypot sessions, a page at a time by start time (sessions
            // starting in the same nanosecond as the page's last are read
            // again and skipped by id).
            let mut since: Option<i64> = None;
            let mut seen_at_edge: Vec<(String, String)> = Vec::new();
            loop {
                let page = store.honeypot_sessions(since, None, PAGE)?;
                let fresh: Vec<_> = page
                    .iter()
                    .filter(|h| !seen_at_edge.contains(&(h.sensor.clone(), h.id.clone())))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                let rfc = |ns: i64| {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64),
                    )
                    .to_string()
                };
                let inputs: Vec<iotscope_alerts::HoneypotInput> = fresh
                    .iter()
                    .map(|h| iotscope_alerts::HoneypotInput {
                        ip: h.src_ip.clone(),
                        sensor: h.sensor.clone(),
                        session: h.id.clone(),
                        login: h.login.clone(),
                        lines: h.commands.iter().map(|c| c.1.clone()).collect(),
                        downloads: h.downloads.iter().map(|d| d.1.clone()).collect(),
                        payloads: h.payloads.iter().map(|p| p.1.clone()).collect(),
                        input_sha256: h.input_sha256.clone(),
                        linked: h.linked.clone(),
                        first_seen: rfc(h.start_ns),
                        last_seen: rfc(h.end_ns),
                    })
                    .collect();
                let records: Vec<AlertRecord> = iotscope_alerts::from_honeypot(&inputs)
                    .into_iter()
                    .map(|a| to_record(&with_as(a)))
                    .collect();
                let (c, u) = store.merge_alerts(&records)?;
                created += c;
                updated += u;
                let last_ns = page.last().map_or(0, |h| h.start_ns);
                seen_at_edge = page
                    .iter()
                    .filter(|h| h.start_ns == last_ns)
                    .map(|h| (h.sensor.clone(), h.id.clone()))
                    .collect();
                since = Some(last_ns);
                if page.len() < PAGE {
                    break;
                }
            }
            eprintln!("iotscope alerts: {created} new, {updated} updated");
        }
        AlertsCommand::Send {
            db,
            dry_run,
            include_observed,
        } => {
            let mut store = open(db, cfg)?;
            let relay = cfg.smtp.relay()?;
            let from = cfg
                .smtp
                .from
                .clone()
                .context("set [smtp] from in the config")?;
            let rows = store.alerts()?;
            let mut failures = Vec::new();
            // Each open alert's ISP, looked up once.
            let mut by_isp: std::collections::HashMap<&str, Vec<&AlertRecord>> = Default::default();
            let mut held_back = 0usize;
            for r in rows
                .iter()
                .filter(|r| r.status == "new" || r.status == "persisting")
            {
                let evidence: serde_json::Value =
                    serde_json::from_str(&r.evidence).unwrap_or_default();
                if !include_observed
                    && EvidenceLevel::of_evidence(&evidence) < EvidenceLevel::Corroborated
                {
                    held_back += 1;
                    continue;
                }
                if let Some(isp) = owner_of(&r.ip).0 {
                    by_isp.entry(isp.id()).or_default().push(r);
                }
            }
            for isp in table.isps().iter().filter(|i| !i.abuse.is_empty()) {
                let mine = by_isp.remove(isp.id()).unwrap_or_default();
                if mine.is_empty() {
                    continue;
                }
                let mut csv = CSV_COLUMNS.join(",");
                csv.push('\n');
                for r in &mine {
                    csv.push_str(&csv_row(&to_alert(r), &r.status));
                    csv.push('\n');
                }
                let message = iotscope_alerts::smtp::Message {
                    from: from.clone(),
                    to: isp.abuse.clone(),
                    subject: format!(
                        "[iotscope] {} vulnerable or infected devices in your network",
                        mine.len()
                    ),
                    body: format!(
                        "To {}:\n\nThe attached report lists {} devices among your subscribers' addresses that\n\
                         a survey found vulnerable (for example logins with factory-default passwords or\n\
                         open control panels) or that a darknet saw scanning like infected devices. Each\n\
                         row holds the evidence and the advice to pass on to the subscriber.\n",
                        isp.name,
                        mine.len()
                    ),
                    attachment_name: format!("{}.csv", isp.id()),
                    attachment: csv.into_bytes(),
                    attachment_type: "text/csv",
                };
                if dry_run {
                    println!(
                        "would send {} alerts to {} <{}>",
                        mine.len(),
                        isp.name,
                        isp.abuse
                    );
                    continue;
                }
                let date = iotscope_alerts::smtp::rfc5322_date(std::time::SystemTime::now());
                match iotscope_alerts::smtp::send(&relay, &message, &date) {
                    Ok((reply, travelled)) => {
                        for r in &mine {
                            store.set_alert_status(
                                &r.ip,
                                r.port,
                                &r.problem,
                                "notified",
                                &format!(
                                    "report sent to {} <{}> ({travelled}): {reply}",
                                    isp.name, isp.abuse
                                ),
                            )?;
                        }
                        eprintln!(
                            "iotscope alerts: {} alerts sent to {} <{}> ({travelled})",
                            mine.len(),
                            isp.name,
                            isp.abuse
                        );
                    }
                    Err(e) => {
                        eprintln!("iotscope alerts: not sent to {}: {e}", isp.name);
                        failures.push(isp.name.clone());
                    }
                }
            }
            if held_back > 0 {
                eprintln!(
                    "iotscope alerts: {held_back} open alerts not sent: their evidence is only observed \
                     (darknet packets, which can be forged; --include-observed sends them too)"
                );
            }
            anyhow::ensure!(
                failures.is_empty(),
                "reports not accepted for: {}",
                failures.join(", ")
            );
        }
        AlertsCommand::Status {
            ip,
            problem,
            port,
            set,
            note,
            db,
        } => {
            let mut store = open(db, cfg)?;
            let ports: Vec<Option<u16>> = store
                .alerts_for_ip(&ip)?
                .into_iter()
                .filter(|a| a.problem == problem && (port.is_none() || a.port == port))
                .map(|a| a.port)
                .collect();
            let port = match ports.as_slice() {
                [] => anyhow::bail!(
                    "no alert for {ip} {problem}{}",
                    port.map(|p| format!(" on port {p}")).unwrap_or_default()
                ),
                [one] => *one,
                many => anyhow::bail!(
                    "{ip} has {problem} on ports {}: give --port",
                    many.iter()
                        .map(|p| p.unwrap_or(0).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            store.set_alert_status(&ip, port, &problem, &set, &note)?;
        }
        AlertsCommand::Recheck {
            db,
            timeout,
            infected_ttl,
            exclude,
        } => {
            let exclusions = crate::config::read_exclusions(&cfg.scope.files(&exclude))?;
            let mut store = open(db, cfg)?;
            let open_alerts: Vec<AlertRecord> = store
                .alerts()?
                .into_iter()
                .filter(|a| a.status != "fixed")
                .collect();
            // Infected hosts: measured against the newest telescope data, so
            // an old capture does not close everything at once.
            let newest = store
                .report(&ReportQuery {
                    top: 1,
                    ..Default::default()
                })
                .ok()
                .and_then(|s| s.last_ts)
                .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                .unwrap_or_else(std::time::SystemTime::now);
            let (opts, rules) = super::checks::options(
                &super::checks::CheckFlags {
                    credentials: None,
                    extra_credentials: None,
                    rules: None,
                    per_host: 3,
                    max_attempts: 100,
                    hosts_at_once: 16,
                },
                (true, true),
                "iotscope-recheck/0.1",
                timeout,
            )?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let (mut fixed, mut persisting, mut skipped) = (0, 0, 0);
            for a in &open_alerts {
                let verdict: Option<(bool, String)> = if a.problem.starts_with("infected_") {
                    let last = humantime::parse_rfc3339_weak(&a.last_seen).ok();
                    last.map(|l| {
                        let quiet = newest.duration_since(l).unwrap_or_default();
                        if quiet >= infected_ttl {
                            (
                                true,
                                format!(
                                    "not seen for {} before the newest data",
                                    humantime::format_duration(std::time::Duration::from_secs(
                                        quiet.as_secs()
                                    ))
                                ),
                            )
                        } else {
                            (
                                false,
                                format!(
                                    "seen {} before the newest data",
                                    humantime::format_duration(std::time::Duration::from_secs(
                                        quiet.as_secs()
                                    ))
                                ),
                            )
                        }
                    })
                } else if let (Some(port), Ok(ip)) = (a.port, a.ip.parse::<std::net::IpAddr>()) {
                    // The scope gate before any packet: an owner who opted
                    // out after the survey gets no more logins.
                    let gate = iotscope_survey::verdict(ip, &exclusions);
                    if !gate.allowed() {
                        skipped += 1;
                        eprintln!(
                            "iotscope alerts: skipped {}:{port} {}: {gate}",
                            a.ip, a.problem
                        );
                        continue;
                    }
                    let mut opts = opts.clone();
                    opts.credentials =
                        iotscope_alerts::ANYONE_LOGS_IN.contains(&a.problem.as_str());
                    opts.panels = matches!(
                        a.problem.as_str(),
                        "open_control_panel" | "no_authentication"
                    );
                    Some(runtime.block_on(async {
                        let settings = iotscope_survey::ProbeSettings {
                            connect_timeout: timeout,
                            read_timeout: timeout,
                            user_agent: opts.settings.user_agent.clone(),
                            grab: true,
                        };
                        let row =
                            iotscope_survey::probe(std::net::SocketAddr::new(ip, port), &settings)
                                .await;
                        let (Some(service), Some(banner)) = (row.service, row.banner) else {
                            return (
                                true,
                                format!("{}:{port} no longer answers ({:?})", a.ip, row.status)
                                    .to_lowercase(),
                            );
                        };
                        let seen = [iotscope_checks::rules::Seen {
                            port,
                            service: service.to_string(),
                            banner,
                        }];
                        let report =
                            iotscope_checks::run::check_host(ip, &seen, &rules, &opts).await;
                        if report.findings.iter().any(|f| {
                            f.port == port
                                && iotscope_alerts::still_present(&a.problem, f.kind.as_str())
                        }) {
                            (
                                false,
                                format!("{} still found on {}:{port}", a.problem, a.ip),
                            )
                        } else {
                            (
                                true,
                                format!("{} no longer found on {}:{port}", a.problem, a.ip),
                            )
                        }
                    }))
                } else {
                    None
                };
                let Some((is_fixed, note)) = verdict else {
                    continue;
                };
                let status = if is_fixed { "fixed" } else { "persisting" };
                if is_fixed {
                    fixed += 1;
                } else {
                    persisting += 1;
                }
                if status != a.status {
                    store.set_alert_status(&a.ip, a.port, &a.problem, status, &note)?;
                }
            }
            eprintln!(
                "iotscope alerts: {} open alerts: {fixed} fixed, {persisting} persisting, {skipped} skipped (excluded)",
                open_alerts.len()
            );
        }
        AlertsCommand::List { db, format } => {
            let store = open(db, cfg)?;
            let rows = store.alerts()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if format == "json" {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        let mut a = serde_json::to_value(to_alert(r)).unwrap_or_default();
                        a["status"] = r.status.clone().into();
                        a["isp"] = r.isp.clone().into();
                        a["history"] = store
                            .alert_history(&r.ip, r.port, &r.problem)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(ts, status, note)| serde_json::json!({"ts": ts, "status": status, "note": note}))
                            .collect();
                        a
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<11} {:<9} {:<24} {:<26} {:<20} LAST SEEN",
                    "STATUS", "SEVERITY", "ADDRESS", "PROBLEM", "ISP"
                )?;
                for r in &rows {
                    let addr = match r.port {
                        Some(p) => format!("{}:{p}", r.ip),
                        None => r.ip.clone(),
                    };
                    writeln!(
                        out,
                        "{:<11} {:<9} {:<24} {:<26} {:<20} {}",
                        r.status,
                        r.severity,
                        addr,
                        r.problem,
                        r.isp.as_deref().unwrap_or("-"),
                        r.last_seen
                    )?;
                }
                writeln!(out, "{} alerts", rows.len())?;
            }
            out.flush()?;
        }
        AlertsCommand::Export { db, out, format } => {
            let store = open(db, cfg)?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let rows = store.alerts()?;
            // Membership is decided now, from the table as configured.
            let mut groups: std::collections::BTreeMap<String, Vec<&AlertRecord>> =
                Default::default();
            for isp in table.isps() {
                groups.entry(isp.id().to_string()).or_default();
            }
            for r in &rows {
                // The ISP of the longest prefix, else of the AS; else grouped
                // by AS; else unassigned.
                let (isp, asn_here) = owner_of(&r.ip);
                let key = isp
                    .map(|i| i.id().to_string())
                    .or_else(|| asn_here.map(|n| format!("as{n}")))
                    .unwrap_or_else(|| "unassigned".to_string());
                groups.entry(key).or_default().push(r);
            }
            for (name, alerts) in &groups {
                let path = out.join(format!("{name}.{format}"));
                let body = if format == "json" {
                    let v: Vec<serde_json::Value> = alerts
                        .iter()
                        .map(|r| {
                            let mut a = serde_json::to_value(to_alert(r)).unwrap_or_default();
                            a["status"] = r.status.clone().into();
                            a
                        })
                        .collect();
                    serde_json::to_string_pretty(&v)?
                } else {
                    let mut s = CSV_COLUMNS.join(",");
                    s.push('\n');
                    for r in alerts {
                        s.push_str(&csv_row(&to_alert(r), &r.status));
                        s.push('\n');
                    }
                    s
                };
                write_atomically(&path, body.as_bytes())?;
                eprintln!(
                    "iotscope alerts: {} alerts -> {}",
                    alerts.len(),
                    path.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
