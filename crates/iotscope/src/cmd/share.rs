//! `iotscope share`: anonymised exports for sharing with other
//! organisations (keygen, anonymize, export).

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::files::write_public;
use iotscope_share::{parse_key, Anonymizer, CryptoPan};
use iotscope_store::ReportQuery;

#[derive(clap::Subcommand, Debug)]
pub enum ShareCommand {
    /// Make a Crypto-PAn key (64 hex characters).
    Keygen {
        /// Write it here (mode 0600; an existing file is never overwritten).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Map addresses read one a line from standard input to their images.
    Anonymize {
        #[command(flatten)]
        how: How,
    },
    /// Write telescope aggregates, infected hosts, survey services and
    /// findings from the store with every address anonymised (credentials
    /// and free-text evidence left out).
    Export {
        #[command(flatten)]
        how: How,
        /// The store.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// The JSON document to write (written to a temporary file and renamed).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Rows of the telescope's top sources.
        #[arg(long, default_value_t = 100)]
        top: usize,
    },
}

/// How addresses are replaced.
#[derive(clap::Args, Debug)]
pub struct How {
    /// cryptopan (prefix-preserving), truncate (keep a prefix) or hash (keyed).
    #[arg(long = "anonymize", alias = "mode", default_value = "cryptopan", value_parser = ["cryptopan", "truncate", "hash"])]
    mode: String,
    /// The key (64 hex characters or 32 raw bytes); cryptopan and hash.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// truncate: IPv4 prefix length kept.
    #[arg(long, default_value_t = 24)]
    prefix_v4: u8,
    /// truncate: IPv6 prefix length kept.
    #[arg(long, default_value_t = 48)]
    prefix_v6: u8,
}

fn anonymizer(h: &How) -> anyhow::Result<Anonymizer> {
    let key = || -> anyhow::Result<[u8; 32]> {
        let path = h.key_file.as_ref().with_context(|| {
            format!(
                "--anonymize {} needs --key-file (make one with `iotscope share keygen`)",
                h.mode
            )
        })?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(parse_key(&bytes, &path.display().to_string())?)
    };
    Ok(match h.mode.as_str() {
        "cryptopan" => Anonymizer::CryptoPan(Box::new(CryptoPan::new(&key()?))),
        "hash" => Anonymizer::Hash(key()?),
        _ => {
            anyhow::ensure!(
                h.prefix_v4 <= 32 && h.prefix_v6 <= 128,
                "prefix lengths: IPv4 0-32, IPv6 0-128"
            );
            Anonymizer::Truncate {
                v4: h.prefix_v4,
                v6: h.prefix_v6,
            }
        }
    })
}

pub fn run(c: ShareCommand) -> anyhow::Result<ExitCode> {
    match c {
        ShareCommand::Keygen { out } => {
            let key = iotscope_share::keygen()?;
            match out {
                None => println!("{key}"),
                Some(path) => {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .with_context(|| {
                            format!(
                                "cannot create {} (an existing key is never overwritten)",
                                path.display()
                            )
                        })?;
                    writeln!(f, "{key}")?;
                    eprintln!("iotscope share: key written to {} (keep it secret; the same key gives the same images)", path.display());
                }
            }
        }
        ShareCommand::Anonymize { how } => {
            let a = anonymizer(&how)?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (n, line) in stdin.lock().lines().enumerate() {
                let line = line.context("reading standard input")?;
                let text = line.trim();
                if text.is_empty() {
                    writeln!(out)?;
                    continue;
                }
                match text.parse::<IpAddr>() {
                    Ok(ip) => writeln!(out, "{}", a.ip(ip))?,
                    Err(_) => {
                        out.flush()?; // everything before the bad line stays written
                        anyhow::bail!(
                            "standard input, line {}: {text:?} is not an IPv4 or IPv6 address",
                            n + 1
                        );
                    }
                }
            }
            out.flush()?;
        }
        ShareCommand::Export { how, db, out, top } => {
            let a = anonymizer(&how)?;
            let store = super::open_existing(&db)?;
            let telescope = match store.report(&ReportQuery {
                top,
                ..Default::default()
            }) {
                Ok(s) => serde_json::to_value(s)?,
                Err(_) => serde_json::Value::Null, // no telescope runs in this store
            };
            let services: Vec<serde_json::Value> = store
                .services()?
                .into_iter()
                .map(|s| {
                    serde_json::json!({
                        "ip": s.ip, "port": s.port, "proto": s.proto, "status": s.status, "service": s.service,
                        "last_seen": s.ts,
                        "banner": s.banner.as_deref().and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok()),
                    })
                })
                .collect();
            let findings: Vec<serde_json::Value> = store
                .findings()?
                .into_iter()
                .map(|f| {
                    let ev: serde_json::Value = serde_json::from_str(&f.evidence).unwrap_or_default();
                    serde_json::json!({
                        "ip": f.ip, "port": f.port, "service": f.service, "kind": f.kind, "severity": f.severity,
                        "device": f.device.as_deref().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()),
                        // What showed it and when; never the pair that worked or free text.
                        "evidence": {"protocol": ev["protocol"], "ts": ev["ts"], "attempts": ev["attempts"]},
                        "first_seen": f.first_seen, "last_seen": f.ts,
                    })
                })
                .collect();
            let mut doc = serde_json::json!({
                "format": "iotscope-share/1",
                "anonymization": match &a {
                    Anonymizer::CryptoPan(_) => "cryptopan".to_string(),
                    Anonymizer::Hash(_) => "keyed-hash-sha256".to_string(),
                    Anonymizer::Truncate { v4, v6 } => format!("truncate/{v4}/{v6}"),
                },
                "generated": iotscope_survey::now_rfc3339(),
                "telescope": telescope,
                "services": services,
                "findings": findings,
            });
            // Every address in values, keys and text inside them (banners,
            // titles, URLs) is replaced: iotscope_share::find_addresses.
            let replaced = a.json(&mut doc);
            // Meant to be handed to partners (mode 0644).
            write_public(&out, serde_json::to_string_pretty(&doc)?.as_bytes())?;
            eprintln!(
                "iotscope share: {} addresses replaced ({}); wrote {}",
                replaced,
                doc["anonymization"].as_str().unwrap_or(""),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
