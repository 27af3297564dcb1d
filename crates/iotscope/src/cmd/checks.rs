//! The survey checks as the binary runs them: options from the command
//! line, hosts checked in parallel (bounded), findings to the store, to a
//! JSON-lines file and to people (passwords masked).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use iotscope_checks::dict;
use iotscope_checks::findings::Finding;
use iotscope_checks::rules::{Rules, Seen};
use iotscope_checks::run::{check_host, CheckOptions, HostReport};
use iotscope_checks::CheckSettings;
use iotscope_store::FindingRecord;

/// Flags shared by `survey --checks` and `check`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckFlags {
    /// A `user:password` file that replaces the built-in Mirai list.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// A `user:password` file whose pairs are tried after the dictionary's.
    #[arg(long, value_name = "FILE")]
    pub extra_credentials: Option<PathBuf>,
    /// Identification rules (TOML) tried before the shipped ones.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Login connections at once per service (per-host pacing).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub per_host: usize,
    /// Most login attempts per service.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_attempts: usize,
    /// Hosts checked at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub hosts_at_once: usize,
}

/// Which checks: "all" or a list of credentials, panels.
pub fn parse_checks(text: &str) -> anyhow::Result<(bool, bool)> {
    let mut out = (false, false);
    for part in text.split(',').map(str::trim) {
        match part {
            "all" => out = (true, true),
            "credentials" => out.0 = true,
            "panels" => out.1 = true,
            other => {
                anyhow::bail!("--checks {other:?}: expected all, or a list of credentials,panels")
            }
        }
    }
    Ok(out)
}

/// Builds the options: dictionary, rules, limits.
pub fn options(
    flags: &CheckFlags,
    which: (bool, bool),
    user_agent: &str,
    read_timeout: std::time::Duration,
) -> anyhow::Result<(CheckOptions, Rules)> {
    let read = |p: &PathBuf| -> anyhow::Result<Vec<dict::Pair>> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        Ok(dict::parse(&text, &p.display().to_string())?)
    };
    let mut pairs = match &flags.credentials {
        Some(p) => read(p)?,
        None => dict::builtin(),
    };
    if let Some(p) = &flags.extra_credentials {
        pairs = dict::extend(pairs, read(p)?);
    }
    let mut rules = Rules::shipped();
    if let Some(p) = &flags.rules {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        rules = rules.with_user_rules(Rules::parse(&text, &p.display().to_string())?);
    }
    let settings = CheckSettings {
        connect_timeout: std::time::Duration::from_secs(3),
        read_timeout: read_timeout.max(std::time::Duration::from_secs(3)),
        max_attempts: flags.max_attempts.max(1),
        per_host: flags.per_host.max(1),
        user_agent: user_agent.to_string(),
    };
    Ok((
        CheckOptions {
            credentials: which.0,
            panels: which.1,
            pairs,
            settings,
        },
        rules,
    ))
}

/// What a checks phase did: the hosts it checked, the hosts it could not
/// start or finish before a stop (to carry into a resume state), and the
/// hosts skipped because an exclusion covers them now.
pub struct Checked {
    pub reports: Vec<HostReport>,
    pub unfinished: BTreeMap<IpAddr, Vec<Seen>>,
    pub excluded: usize,
}

/// Checks every host, `at_once` at a time, until done or `stop` turns
/// true. Each host passes the scope gate (the exclusions in force when its
/// turn comes) before any login, and is watched while it is checked: an
/// opt-out reloaded during its check stops it.
pub async fn check_hosts(
    hosts: BTreeMap<IpAddr, Vec<Seen>>,
    rules: Rules,
    opts: CheckOptions,
    at_once: usize,
    gate: iotscope_survey::LiveExclusions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Checked {
    let (rules, opts) = (Arc::new(rules), Arc::new(opts));
    let slots = Arc::new(tokio::sync::Semaphore::new(at_once.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let excluded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut unfinished = hosts.clone();
    for (ip, seen) in hosts {
        let (rules, opts, slots, gate, excluded) = (
            rules.clone(),
            opts.clone(),
            slots.clone(),
            gate.clone(),
            excluded.clone(),
        );
        tasks.spawn(async move {
            let _permit = slots.acquire_owned().await.expect("semaphore open");
            if !gate.verdict(ip).allowed() {
                excluded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return (ip, None);
            }
            // An opt-out reloaded while this host is being checked stops
            // its logins within a tenth of a second: the check is dropped
            // with its connections, and its partial findings with it.
            let opted_out = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if !gate.verdict(ip).allowed() {
                        break;
                    }
                }
            };
            tokio::select! {
                report = check_host(ip, &seen, &rules, &opts) => (ip, Some(report)),
                _ = opted_out => {
                    excluded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (ip, None)
                }
            }
        });
    }
    let mut reports = Vec::new();
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                Some(Ok((ip, report))) => {
                    unfinished.remove(&ip);
                    reports.extend(report);
                }
                Some(Err(_)) => {}
                None => break,
            },
            _ = stop.wait_for(|s| *s) => {
                // Stop now: logins in flight are dropped with their
                // connections; their hosts stay unfinished.
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    reports.sort_by_key(|r| r.ip);
    Checked {
        reports,
        unfinished,
        excluded: excluded.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// The store's form of a finding (password kept).
pub fn record(f: &Finding) -> FindingRecord {
    FindingRecord {
        ip: f.ip.clone(),
        port: f.port,
        service: f.service.clone(),
        kind: f.kind.as_str().to_string(),
        severity: serde_json::to_value(f.severity)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        device: f
            .device
            .as_ref()
            .and_then(|d| serde_json::to_string(d).ok()),
        evidence: serde_json::to_string(&f.evidence).unwrap_or_default(),
        ts: f.evidence.ts.clone(),
        first_seen: f.evidence.ts.clone(),
    }
}

/// A finding as JSON for output: the password masked and its dictionary
/// entry left out unless `reveal`.
pub fn finding_json(f: &Finding, reveal: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(f).unwrap_or_default();
    if !reveal {
        iotscope_checks::findings::redact_evidence(&mut v["evidence"]);
    }
    v
}
