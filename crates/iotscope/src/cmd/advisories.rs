//! `iotscope advisories export`: CSAF 2.0 advisories for manufacturers from
//! the store's findings, one per vendor.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::files::write_public;
use iotscope_advisories::{advisories, Observed, Publisher};

#[derive(clap::Subcommand, Debug)]
pub enum AdvisoriesCommand {
    /// Write `DIR/<vendor>.json`, one CSAF 2.0 security advisory per vendor.
    Export {
        /// The store.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Output folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Publisher name.
        #[arg(long, default_value = "iotscope operator")]
        publisher: String,
        /// Publisher namespace (a URL that identifies it).
        #[arg(long, default_value = "https://iotscope.invalid/")]
        namespace: String,
    },
}

pub fn run(c: AdvisoriesCommand) -> anyhow::Result<ExitCode> {
    let AdvisoriesCommand::Export {
        db,
        out,
        publisher,
        namespace,
    } = c;
    let store = super::open_existing(&db)?;
    let observed: Vec<Observed> = store
        .findings()?
        .into_iter()
        .filter_map(|f| {
            let d: serde_json::Value = serde_json::from_str(f.device.as_deref()?).ok()?;
            Some(Observed {
                vendor: d["vendor"].as_str()?.to_string(),
                model: d["model"].as_str().unwrap_or("").to_string(),
                kind: f.kind,
                last_seen: f.ts,
            })
        })
        .collect();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let docs = advisories(
        &observed,
        &Publisher {
            name: publisher,
            namespace,
        },
        &now,
    );
    // The last gate, for every document before any is written: an advisory
    // that would carry an address, or two vendors whose names simplify to
    // one file, fail the run closed.
    let mut files: std::collections::BTreeMap<String, (&String, String)> = Default::default();
    for (vendor, doc) in &docs {
        let text = serde_json::to_string_pretty(doc)?;
        iotscope_advisories::check_no_address(vendor, &text)?;
        let name: String = vendor
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let name = name.trim_matches('-').to_string();
        let name = if name.is_empty() {
            "vendor".to_string()
        } else {
            name
        };
        if let Some((other, _)) = files.get(&name) {
            anyhow::bail!("vendors {other:?} and {vendor:?} would share {name}.json");
        }
        files.insert(name, (vendor, text));
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, (vendor, text)) in files {
        let path = out.join(format!("{name}.json"));
        write_public(&path, text.as_bytes())?;
        eprintln!("iotscope advisories: {vendor} -> {}", path.display());
    }
    eprintln!("iotscope advisories: {} advisories", docs.len());
    Ok(ExitCode::SUCCESS)
}
