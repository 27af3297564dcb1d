//! Rendering a telescope [`Summary`] as a table, JSON or CSV.

use std::io::{BufWriter, Write};

use clap::ValueEnum;
use iotscope_telescope::Summary;
use iotscope_wire::ALL_CLASSES;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable tables.
    Table,
    /// One JSON object (schema: docs/telescope-json.md).
    Json,
    /// Long-format CSV: section,name,proto,port,start,packets,sources.
    Csv,
}

pub fn print_summary(s: &Summary, format: OutputFormat, top: usize) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        OutputFormat::Json => {
            serde_json::to_writer(&mut out, s)?;
            writeln!(out)?;
        }
        OutputFormat::Csv => csv(s, &mut out)?,
        OutputFormat::Table => table(s, &mut out, top)?,
    }
    out.flush()?;
    Ok(())
}

fn csv(s: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "section,name,proto,port,start,packets,sources")?;
    writeln!(
        out,
        "total,all,,,{},{},{}",
        s.first_ts.as_deref().unwrap_or(""),
        s.packets,
        s.sources
    )?;
    for c in ALL_CLASSES {
        let n = s.classes.0[c.index()];
        writeln!(out, "class,{},,,,{},{}", c.name(), n.packets, n.sources)?;
    }
    let f = &s.fingerprints;
    for (name, c) in [
        ("mirai", f.mirai),
        ("zmap", f.zmap),
        ("masscan", f.masscan),
        ("backscatter", f.backscatter),
    ] {
        writeln!(out, "fingerprint,{name},,,,{},{}", c.packets, c.sources)?;
    }
    for p in &s.ports {
        writeln!(
            out,
            "port,,{},{},,{},{}",
            p.proto, p.port, p.packets, p.sources
        )?;
    }
    for b in &s.series {
        writeln!(out, "bucket,,,,{},{},{}", b.start, b.packets, b.sources)?;
        // A live capture's drops in the bucket (packets column: frames).
        if b.dropped > 0 {
            writeln!(out, "bucket_dropped,,,,{},{},", b.start, b.dropped)?;
        }
        for p in &b.ports {
            writeln!(
                out,
                "bucket_port,,{},{},{},{},{}",
                p.proto, p.port, b.start, p.packets, p.sources
            )?;
        }
    }
    for i in &s.infected {
        writeln!(out, "infected,{},,,{},{},1", i.ip, i.first_ts, i.packets)?;
    }
    // With enrichment: one row per AS (name AS<n>; 0: not in the table) and
    // per country (ISO code; empty: unknown).
    for r in &s.by_as {
        writeln!(out, "as,AS{},,,,{},{}", r.asn, r.packets, r.sources)?;
    }
    for r in &s.by_country {
        // Country codes come from a database file: one safe cell.
        writeln!(
            out,
            "country,{},,,,{},{}",
            iotscope_export::csv_cell(&r.country),
            r.packets,
            r.sources
        )?;
    }
    Ok(())
}

fn table(s: &Summary, out: &mut impl Write, top: usize) -> std::io::Result<()> {
    let pct = |n: u64| {
        if s.packets == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.packets as f64
        }
    };
    writeln!(out, "iotscope telescope report")?;
    writeln!(
        out,
        "  {} packets, {} bytes, {} unique sources, {} to {}",
        s.packets,
        s.bytes,
        s.sources,
        s.first_ts.as_deref().unwrap_or("-"),
        s.last_ts.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "  outside the darknet: {}   malformed: {}",
        s.outside, s.malformed
    )?;
    if !s.unknown_link_types.is_empty() {
        let list: Vec<String> = s
            .unknown_link_types
            .iter()
            .map(|(t, n)| format!("{t} ({n} frames)"))
            .collect();
        writeln!(
            out,
            "  link types not decoded (counted non_ip): {}",
            list.join(", ")
        )?;
    }
    if let Some(c) = &s.capture_loss {
        writeln!(
            out,
            "  live capture: {} frames passed the filter, {} dropped by the capture buffer, \
             {} by the interface{}",
            c.received,
            c.dropped,
            c.if_dropped,
            match c.lossy_buckets.len() {
                0 => String::new(),
                n => format!(
                    "; {n} bucket{} with drops (their counts are a lower bound)",
                    if n == 1 { "" } else { "s" }
                ),
            }
        )?;
    }
    if s.implausible_time > 0 {
        writeln!(
            out,
            "  implausible time: {} frames (counted, in no bucket of the series)",
            s.implausible_time
        )?;
    }
    for f in &s.files {
        writeln!(
            out,
            "  file {}: {} ({} frames){}",
            f.path,
            f.status,
            f.frames,
            f.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )?;
    }
    if !s.estimated.is_empty() {
        writeln!(out, "  estimated figures: {}", s.estimated.join("; "))?;
    }
    writeln!(
        out,
        "\nPacket classes\n  {:<12} {:>12} {:>7} {:>10}",
        "class", "packets", "%", "sources"
    )?;
    for c in ALL_CLASSES {
        let n = s.classes.0[c.index()];
        writeln!(
            out,
            "  {:<12} {:>12} {:>6.2}% {:>10}",
            c.name(),
            n.packets,
            pct(n.packets),
            n.sources
        )?;
    }
    writeln!(out, "\nFingerprints (packets matching / sources flagged)")?;
    let f = &s.fingerprints;
    for (name, c) in [
        ("mirai", f.mirai),
        ("zmap", f.zmap),
        ("masscan", f.masscan),
        ("backscatter", f.backscatter),
    ] {
        writeln!(out, "  {:<12} {:>12} {:>10}", name, c.packets, c.sources)?;
    }
    writeln!(
        out,
        "\nTop destination ports ({} of {})\n  {:<11} {:>12} {:>7} {:>10}",
        top.min(s.ports.len()),
        s.ports.len(),
        "port",
        "packets",
        "%",
        "sources"
    )?;
    for p in s.ports.iter().take(top) {
        let est = if p.sources_estimated { "~" } else { "" };
        writeln!(
            out,
            "  {:<11} {:>12} {:>6.2}% {:>10}",
            format!("{}/{}", p.port, p.proto),
            p.packets,
            pct(p.packets),
            format!("{est}{}", p.sources)
        )?;
    }
    writeln!(
        out,
        "\nInfected hosts (Mirai fingerprint): {}",
        s.infected.len()
    )?;
    for i in s.infected.iter().take(top) {
        let ports: Vec<String> = i.ports.iter().map(u16::to_string).collect();
        writeln!(
            out,
            "  {:<39} {:>9} packets  {} .. {}  ports {}",
            i.ip,
            i.packets,
            i.first_ts,
            i.last_ts,
            ports.join(",")
        )?;
    }
    if !s.by_as.is_empty() {
        writeln!(out, "\nBy AS (sources, packets, infected sources)")?;
        for r in &s.by_as {
            let name = if r.asn == 0 {
                "not in the AS table".to_string()
            } else {
                format!("AS{} {}", r.asn, r.org)
            };
            writeln!(
                out,
                "  {name:<46} {:>8} {:>11} {:>8}",
                r.sources, r.packets, r.infected
            )?;
        }
    }
    if !s.by_country.is_empty() {
        writeln!(out, "\nBy country (sources, packets, infected sources)")?;
        for r in &s.by_country {
            let name = if r.country.is_empty() {
                "not in the location database"
            } else {
                r.country.as_str()
            };
            writeln!(
                out,
                "  {name:<46} {:>8} {:>11} {:>8}",
                r.sources, r.packets, r.infected
            )?;
        }
    }
    writeln!(out, "\nTop sources")?;
    for t in &s.top_sources {
        writeln!(
            out,
            "  {:<39} {:>9} packets  {}  {}{}",
            t.ip,
            t.packets,
            t.classes.join(","),
            t.fingerprints.join(","),
            if t.scanner.is_empty() {
                String::new()
            } else {
                format!("  [{}]", t.scanner)
            }
        )?;
    }
    let tier = match s.tier.as_deref() {
        Some("hour") => ", read from the store's hourly rollups",
        Some("day") => ", read from the store's daily rollups",
        Some(_) => ", read from the store's buckets",
        None => "",
    };
    writeln!(
        out,
        "\nTime series ({} s buckets{tier})\n  {:<22} {:>12} {:>10}  busiest ports",
        s.bucket_seconds, "start", "packets", "sources"
    )?;
    for b in &s.series {
        let ports: Vec<String> = b
            .ports
            .iter()
            .take(3)
            .map(|p| format!("{}/{} {}", p.port, p.proto, p.packets))
            .collect();
        let dropped = match b.dropped {
            0 => String::new(),
            n => format!("  [{n} frames dropped by the capture: a lower bound]"),
        };
        writeln!(
            out,
            "  {:<22} {:>12} {:>10}  {}{dropped}",
            b.start,
            b.packets,
            b.sources,
            ports.join(", ")
        )?;
    }
    Ok(())
}
