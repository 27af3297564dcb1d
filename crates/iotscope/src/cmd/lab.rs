//! `iotscope lab ...`: test material.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use iotscope_lab::{generate, CaptureFormat, DarknetSpec};

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Write a realistic darknet capture and its ground truth (FILE.truth.json).
    Darknet(DarknetArgs),
}

#[derive(clap::Args, Debug)]
pub struct DarknetArgs {
    /// Capture file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Number of frames.
    #[arg(long, default_value_t = 100_000)]
    packets: u64,
    /// Seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Container format.
    #[arg(long, value_enum, default_value_t = Fmt::Pcap)]
    format: Fmt,
    /// Capture length.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Capture start, RFC 3339.
    #[arg(long, default_value = "2016-10-01T00:00:00Z")]
    start: String,
    /// Number of source hosts (default: 20,000 + packets/200, at most 80,000).
    #[arg(long, default_value_t = 0)]
    sources: u32,
    /// Where to write the truth (default: OUT.truth.json).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fmt {
    Pcap,
    Pcapng,
}

pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Darknet(a) => {
            let start_ns = iotscope_telescope::time::parse_rfc3339(&a.start)
                .with_context(|| format!("--start {:?} is not an RFC 3339 time", a.start))?;
            let spec = DarknetSpec {
                packets: a.packets,
                seed: a.seed,
                start_s: start_ns / 1_000_000_000,
                duration_s: a.duration.as_secs().max(1) as i64,
                sources: a.sources,
                bucket_s: 3600,
            };
            let format = match a.format {
                Fmt::Pcap => CaptureFormat::Pcap,
                Fmt::Pcapng => CaptureFormat::Pcapng,
            };
            let file = File::create(&a.out)
                .with_context(|| format!("cannot create {}", a.out.display()))?;
            let truth = generate(&spec, format, file)
                .with_context(|| format!("writing {}", a.out.display()))?;
            let truth_path = a.truth.unwrap_or_else(|| {
                let mut p = a.out.clone().into_os_string();
                p.push(".truth.json");
                p.into()
            });
            let f = File::create(&truth_path)
                .with_context(|| format!("cannot create {}", truth_path.display()))?;
            serde_json::to_writer_pretty(std::io::BufWriter::new(f), &truth)?;
            eprintln!(
                "wrote {} ({} frames, {} sources, {} infected) and {}",
                a.out.display(),
                a.packets,
                truth.sources,
                truth.infected.len(),
                truth_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
