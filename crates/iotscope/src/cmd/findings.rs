//! `iotscope findings`: what the survey checks found, from the store.

use std::io::Write;

use iotscope_export::terminal as term;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct FindingsArgs {
    /// The store (default: the config's [store] db, else ./iotscope.db).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// table, json (an array of objects) or csv.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    format: String,
    /// Only this kind (default_credential, open_control_panel, ...).
    #[arg(long)]
    kind: Option<String>,
    /// Show working passwords instead of masking them.
    #[arg(long)]
    reveal: bool,
}

pub fn run(a: FindingsArgs, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let db =
        a.db.or_else(|| cfg.store.db.clone())
            .unwrap_or_else(|| PathBuf::from("iotscope.db"));
    let store = super::open_existing(&db)?;
    let mut rows = store.findings()?;
    if let Some(k) = &a.kind {
        rows.retain(|r| &r.kind == k);
    }
    let rank = |s: &str| {
        ["critical", "high", "medium", "low", "info"]
            .iter()
            .position(|x| *x == s)
    };
    rows.sort_by(|x, y| {
        rank(&x.severity)
            .cmp(&rank(&y.severity))
            .then(x.ip.cmp(&y.ip))
            .then(x.port.cmp(&y.port))
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut evidence: serde_json::Value =
                serde_json::from_str(&r.evidence).unwrap_or_default();
            if !a.reveal {
                iotscope_checks::findings::redact_evidence(&mut evidence);
            }
            serde_json::json!({
                "ip": r.ip,
                "port": r.port,
                "service": r.service,
                "kind": r.kind,
                "severity": r.severity,
                "device": r.device.as_deref().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()),
                "evidence": evidence,
                "first_seen": r.first_seen,
                "last_seen": r.ts,
            })
        })
        .collect();
    match a.format.as_str() {
        "json" => {
            serde_json::to_writer_pretty(&mut out, &objects)?;
            writeln!(out)?;
        }
        "csv" => {
            writeln!(out, "ip,port,service,kind,severity,vendor,model,device_type,criticality,user,password,matched,last_seen")?;
            for o in &objects {
                let f = |v: &serde_json::Value| {
                    let s = v.as_str().map(String::from).unwrap_or_else(|| {
                        if v.is_null() {
                            String::new()
                        } else {
                            v.to_string()
                        }
                    });
                    // One spreadsheet-safe cell (device text can hold formulas).
                    iotscope_export::csv_cell(&s).into_owned()
                };
                let d = &o["device"];
                let e = &o["evidence"];
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    f(&o["ip"]),
                    o["port"],
                    f(&o["service"]),
                    f(&o["kind"]),
                    f(&o["severity"]),
                    f(&d["vendor"]),
                    f(&d["model"]),
                    f(&d["device_type"]),
                    f(&d["criticality"]),
                    f(&e["user"]),
                    f(&e["password"]),
                    f(&e["matched"]),
                    f(&o["last_seen"])
                )?;
            }
        }
        _ => {
            writeln!(
                out,
                "{:<9} {:<21} {:<8} {:<24} {:<34} EVIDENCE",
                "SEVERITY", "ADDRESS", "SERVICE", "KIND", "DEVICE"
            )?;
            for o in &objects {
                let d = &o["device"];
                let device = if d.is_null() {
                    "?".to_string()
                } else {
                    format!(
                        "{} {} ({})",
                        d["vendor"].as_str().unwrap_or(""),
                        d["model"].as_str().unwrap_or(""),
                        d["device_type"].as_str().unwrap_or("")
                    )
                };
                let e = &o["evidence"];
                let login = match (e["user"].as_str(), e["password"].as_str()) {
                    (Some(u), Some(p)) => format!("{}:{} ", term(u), term(p)),
                    (Some(u), None) => format!("{} (no password) ", term(u)),
                    _ => String::new(),
                };
                let matched: String = term(e["matched"].as_str().unwrap_or(""))
                    .chars()
                    .take(60)
                    .collect();
                writeln!(
                    out,
                    "{:<9} {:<21} {:<8} {:<24} {:<34} {login}{matched}",
                    o["severity"].as_str().unwrap_or(""),
                    format!("{}:{}", o["ip"].as_str().unwrap_or(""), o["port"]),
                    o["service"].as_str().unwrap_or(""),
                    o["kind"].as_str().unwrap_or(""),
                    // Device text (a model from a realm or title) is escaped:
                    // no control character reaches the terminal.
                    term(&device).chars().take(34).collect::<String>(),
                )?;
            }
            writeln!(out, "{} findings", objects.len())?;
        }
    }
    out.flush().context("writing findings")?;
    Ok(ExitCode::SUCCESS)
}
