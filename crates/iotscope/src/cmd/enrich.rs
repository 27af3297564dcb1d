//! `iotscope enrich`: address to AS and location from the configured
//! tables (`lookup`), and a measurement of the AS table's load time and
//! lookup rate (`bench`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

#[derive(clap::Subcommand, Debug)]
pub enum EnrichCommand {
    /// Read addresses one a line from standard input; print `ip asn
    /// organisation`, or with `--format json` one object a line with the
    /// location too (country, region, city, latitude, longitude).
    Lookup {
        #[command(flatten)]
        table: TableArgs,
        /// Location database(s), MaxMind-format mmdb (default: the config's [enrich] geo).
        #[arg(long = "geo", value_name = "FILE")]
        geo: Vec<PathBuf>,
        /// text or json.
        #[arg(long = "output", default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Load the table and time random IPv4 lookups (one core).
    Bench {
        #[command(flatten)]
        table: TableArgs,
        /// Lookups to time.
        #[arg(long, default_value_t = 10_000_000)]
        lookups: u64,
    },
}

/// The table: from the flags, else the config's `[enrich]`.
#[derive(clap::Args, Debug)]
pub struct TableArgs {
    /// AS table file(s) (default: the config's [enrich] asn).
    #[arg(long = "table", value_name = "FILE")]
    tables: Vec<PathBuf>,
    /// csv, iptoasn, pfx2as or mmdb (default: the config's, else csv).
    #[arg(long)]
    format: Option<String>,
}

fn load_optional(
    t: &TableArgs,
    cfg: &crate::config::Config,
) -> anyhow::Result<Option<iotscope_enrich::AsnTable>> {
    crate::config::EnrichConfig {
        asn: if t.tables.is_empty() {
            cfg.enrich.asn.clone()
        } else {
            t.tables.clone()
        },
        asn_format: t.format.clone().or_else(|| cfg.enrich.asn_format.clone()),
        geo: Vec::new(),
    }
    .load_asn()
}

fn load(t: &TableArgs, cfg: &crate::config::Config) -> anyhow::Result<iotscope_enrich::AsnTable> {
    load_optional(t, cfg)?.context("no AS table: give --table FILE or [enrich] asn in the config")
}

pub fn run(c: EnrichCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    match c {
        EnrichCommand::Lookup { table, geo, output } => {
            let t = load_optional(&table, cfg)?;
            let geo_db = if geo.is_empty() {
                cfg.enrich.load_geo()?
            } else {
                Some(iotscope_enrich::GeoDb::open(&geo)?)
            };
            anyhow::ensure!(
                t.is_some() || geo_db.is_some(),
                "no table: give --table FILE or --geo FILE, or [enrich] asn or geo in the config"
            );
            let json = output == "json";
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line?;
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let ip: std::net::IpAddr = match text.parse() {
                    Ok(ip) => ip,
                    Err(_) => {
                        out.flush()?;
                        anyhow::bail!("standard input, line {}: {text:?} is not an address", n + 1);
                    }
                };
                let info = t.as_ref().and_then(|t| t.lookup(ip));
                if json {
                    let g = geo_db.as_ref().and_then(|g| g.lookup(ip));
                    let row = serde_json::json!({
                        "ip": ip.to_string(),
                        "asn": info.map(|i| i.asn),
                        "org": info.map(|i| i.org),
                        "country": g.as_ref().map(|g| g.country.as_str()),
                        "region": g.as_ref().map(|g| g.region.as_str()),
                        "city": g.as_ref().map(|g| g.city.as_str()),
                        "latitude": g.as_ref().and_then(|g| g.latitude),
                        "longitude": g.as_ref().and_then(|g| g.longitude),
                    });
                    writeln!(out, "{row}")?;
                    continue;
                }
                match info {
                    Some(i) => writeln!(out, "{ip} {} {}", i.asn, i.org)?,
                    None => writeln!(out, "{ip} - -")?,
                }
            }
            out.flush()?;
        }
        EnrichCommand::Bench { table, lookups } => {
            let started = Instant::now();
            let t = load(&table, cfg)?;
            let load_s = started.elapsed().as_secs_f64();
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut found = 0u64;
            let started = Instant::now();
            for _ in 0..lookups {
                // xorshift64: addresses all over IPv4.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(x as u32));
                found += u64::from(t.lookup(ip).is_some());
            }
            let s = started.elapsed().as_secs_f64();
            println!(
                "{} ranges loaded in {load_s:.2} s; {lookups} lookups in {s:.2} s = {:.1} million/s on one core ({found} found)",
                t.len(),
                lookups as f64 / s / 1e6
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
