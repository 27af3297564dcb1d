//! `iotscope blocklist`: import abuse.ch feeds into the store and export the
//! C&C list for the systems that enforce it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::files::write_public;
use iotscope_blocklist::{Entry, EntryKind, Feed, Format};
use iotscope_store::BlocklistRecord;

#[derive(clap::Subcommand, Debug)]
pub enum BlocklistCommand {
    /// Import a feed export (CSV) into the store.
    Import {
        /// feodo (Feodo Tracker ipblocklist.csv), urlhaus (csv_recent/online), threatfox (CSV export).
        #[arg(long, value_parser = ["feodo", "urlhaus", "threatfox"])]
        format: String,
        /// The feed file.
        file: PathBuf,
        /// The store.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
    },
    /// Write the list: plain (one address a line), nft (an nftables table),
    /// rpz (a DNS response-policy zone), stix (a STIX 2.1 bundle of indicators).
    Export {
        #[arg(long, value_parser = ["plain", "nft", "rpz", "stix"])]
        format: String,
        /// Output file (written to a temporary name and renamed).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The store.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// nft: the table name.
        #[arg(long, default_value = "iotscope_blocklist")]
        table: String,
    },
}

pub fn run(c: BlocklistCommand) -> anyhow::Result<ExitCode> {
    match c {
        BlocklistCommand::Import { format, file, db } => {
            let feed = match format.as_str() {
                "feodo" => Feed::Feodo,
                "urlhaus" => Feed::Urlhaus,
                _ => Feed::Threatfox,
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // The whole file parses before anything is stored; values the
            // policy refuses are reported with their line and left out.
            let parsed = iotscope_blocklist::parse(feed, &text, &file.display().to_string())?;
            for r in &parsed.refused {
                eprintln!("iotscope blocklist: {r}");
            }
            let records: Vec<BlocklistRecord> = iotscope_blocklist::dedup(&parsed.entries)
                .into_iter()
                .map(|e| BlocklistRecord {
                    kind: match e.kind {
                        EntryKind::Ip => "ip".into(),
                        EntryKind::Domain => "domain".into(),
                    },
                    value: e.value,
                    port: e.port,
                    malware: e.malware,
                    source: e.source,
                    first_seen: e.first_seen,
                })
                .collect();
            let mut store = super::open_store(&db)?;
            let added = store.save_blocklist(&records)?;
            eprintln!(
                "iotscope blocklist: {} entries in {}, {} new, {} refused; {} in the store",
                records.len(),
                file.display(),
                added,
                parsed.refused.len(),
                store.blocklist()?.len()
            );
        }
        BlocklistCommand::Export {
            format,
            out,
            db,
            table,
        } => {
            let store = super::open_existing(&db)?;
            let entries: Vec<Entry> = store
                .blocklist()?
                .into_iter()
                .map(|r| Entry {
                    kind: if r.kind == "domain" {
                        EntryKind::Domain
                    } else {
                        EntryKind::Ip
                    },
                    value: r.value,
                    port: r.port,
                    malware: r.malware,
                    source: r.source,
                    first_seen: r.first_seen,
                })
                .collect();
            let fmt = match format.as_str() {
                "plain" => Format::Plain,
                "nft" => Format::Nft,
                "stix" => Format::Stix,
                _ => Format::Rpz,
            };
            anyhow::ensure!(
                fmt != Format::Nft
                    || !table.is_empty()
                        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "--table {table:?}: letters, digits and _ only"
            );
            // Every entry is checked again (the store may hold values
            // imported before the rules); what fails is left out and said.
            let vetted = iotscope_blocklist::vet(&entries, fmt);
            for x in &vetted.excluded {
                eprintln!("iotscope blocklist: {x}");
            }
            let text = match fmt {
                Format::Plain => iotscope_blocklist::to_plain(&entries)?,
                Format::Nft => iotscope_blocklist::to_nft(&entries, &table)?,
                Format::Stix => {
                    let now =
                        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
                    iotscope_blocklist::to_stix(&entries, &now)?
                }
                Format::Rpz => {
                    let serial = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as u32)
                        .unwrap_or(1);
                    iotscope_blocklist::to_rpz(&entries, "rpz", serial)?
                }
            };
            // A blocklist is meant to be handed out (mode 0644).
            write_public(&out, text.as_bytes())?;
            eprintln!(
                "iotscope blocklist: {} entries written to {} ({format}), {} refused",
                vetted.accepted.len(),
                out.display(),
                vetted.excluded.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
