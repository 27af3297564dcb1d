//! `iotscope lab ...`: test material.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use iotscope_lab::{generate, CaptureFormat, DarknetSpec};

/// `iotscope lab [OPTIONS]` runs emulated devices; `iotscope lab darknet`
/// writes a capture.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LabArgs {
    #[command(subcommand)]
    command: Option<LabCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Write a realistic darknet capture and its ground truth (FILE.truth.json).
    Darknet(DarknetArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A TOML file choosing the mix: `[kinds]` with a count per kind
    /// (router, camera, dvr, water_logger, power_monitor, plc, mqtt_broker, ssh_device, noise).
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Number of devices in the default mix (ignored with --spec).
    #[arg(long, default_value_t = 50)]
    devices: u32,
    /// Addresses to use; devices are numbered from its first host address.
    #[arg(long, default_value = "127.77.0.0/16", value_name = "CIDR")]
    subnet: String,
    /// Seed of the mix and of every device's behaviour.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the manifest (the ground truth) here once every device listens.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Append every login, command and state change here (JSON lines).
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    /// Allow addresses outside 127.0.0.0/8 (only inside a network namespace you created).
    #[arg(long)]
    allow_non_loopback: bool,
    /// Stop by itself after this long (default: run until SIGINT or SIGTERM).
    #[arg(long, value_parser = crate::args::run_time, value_name = "DURATION")]
    duration: Option<std::time::Duration>,
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
    #[arg(long, default_value = "6h", value_parser = crate::args::span)]
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
    /// Mirai-infected hosts start scanning over the capture, more of them
    /// later: the 23/2323 series rise as in autumn 2016.
    #[arg(long)]
    outbreak: bool,
    /// A spoofed-source SYN flood: every frame from a source no other
    /// frame uses (--sources is ignored); the worst case for per-source
    /// state, as `bench/telescope.sh` uses it.
    #[arg(long, conflicts_with_all = ["sources", "outbreak"])]
    flood: bool,
    /// Scripted campaigns with known onsets, for measuring detection:
    /// `default` (one Mirai outbreak on 23/2323, one new-port campaign on
    /// 37215, one research sweep, one backscatter burst, spread over the
    /// capture and moved by the seed) or KIND@OFFSET,... such as
    /// `mirai_outbreak@3d5h,backscatter@5d`. Onsets go to the truth's
    /// `campaigns`.
    #[arg(long, value_name = "SPEC", conflicts_with = "flood")]
    campaigns: Option<String>,
    /// Day-night cycle of the background, 0 (none, the default) to 1: the
    /// rate follows 1 + A·sin, busiest at noon UTC, quietest at midnight.
    #[arg(long, value_name = "A", default_value_t = 0.0, value_parser = diurnal)]
    diurnal: f64,
}

fn diurnal(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        _ => Err(format!("{text:?}: a number from 0 to 1")),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fmt {
    Pcap,
    Pcapng,
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        None => run_devices(args.run),
        Some(cmd) => run_command(cmd),
    }
}

fn run_devices(a: RunArgs) -> anyhow::Result<ExitCode> {
    use iotscope_lab::devices::{draw_default, draw_spec, LabSpec, Manifest};
    let (net, len) = a
        .subnet
        .split_once('/')
        .and_then(|(ip, len)| {
            Some((
                ip.parse::<std::net::Ipv4Addr>().ok()?,
                len.parse::<u32>().ok().filter(|l| *l <= 32)?,
            ))
        })
        .with_context(|| {
            format!(
                "--subnet {:?} is not an IPv4 CIDR such as 127.77.0.0/16",
                a.subnet
            )
        })?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let first = std::net::Ipv4Addr::from((u32::from(net) & mask) + 1);
    let devices = match &a.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let spec: LabSpec = toml::from_str(&text)
                .with_context(|| format!("invalid lab spec {}", path.display()))?;
            draw_spec(&spec, a.seed, first)
        }
        None => draw_default(a.devices, a.seed, first),
    };
    if let Some(last) = devices.last() {
        if u32::from(last.ip) & mask != u32::from(net) & mask {
            anyhow::bail!("{} devices do not fit in {}", devices.len(), a.subnet);
        }
    }
    let wanted: usize = devices.iter().map(|d| d.services.len()).sum::<usize>() + 64;
    let got = crate::sys::raise_open_file_limit(wanted as u64);
    if got < wanted as u64 {
        eprintln!(
            "iotscope lab: needs {wanted} open files but the limit is {got}; raise it (ulimit -n) or run fewer devices"
        );
    }
    let started = std::time::Instant::now();
    let lab = iotscope_lab::server::Lab::bind(&devices, a.allow_non_loopback)?;
    let audit = match &a.audit {
        Some(p) => iotscope_lab::audit::Audit::to_file(p)
            .with_context(|| format!("cannot open audit log {}", p.display()))?,
        None => iotscope_lab::audit::Audit::default(),
    };
    let listeners = lab.listeners();
    if let Some(path) = &a.manifest {
        // Written to a temporary name and renamed, so a script waiting for
        // the file never reads half of it.
        let tmp = path.with_extension("json.partial");
        let manifest = Manifest {
            devices: devices.clone(),
        };
        std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "iotscope lab: {} devices, {listeners} listeners on {} up in {:.2} s{}; Ctrl-C to stop",
        devices.len(),
        a.subnet,
        started.elapsed().as_secs_f64(),
        a.manifest
            .as_ref()
            .map(|p| format!(", manifest {}", p.display()))
            .unwrap_or_default()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let duration = a.duration;
        tokio::spawn(async move {
            crate::sys::stop_signal(duration).await;
            let _ = tx.send(true);
        });
        lab.serve(audit, rx).await;
    });
    eprintln!("iotscope lab: stopped");
    Ok(ExitCode::SUCCESS)
}

fn run_command(cmd: LabCommand) -> anyhow::Result<ExitCode> {
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
                outbreak: a.outbreak,
                flood: a.flood,
                campaigns: match a.campaigns.as_deref() {
                    None => Vec::new(),
                    Some("default") => iotscope_lab::darknet::default_campaigns(
                        a.duration.as_secs().max(1) as i64,
                        a.seed,
                    ),
                    Some(list) => list
                        .split(',')
                        .map(|c| c.parse::<iotscope_lab::darknet::Campaign>())
                        .collect::<Result<_, _>>()
                        .context("--campaigns")?,
                },
                diurnal: a.diurnal,
            };
            let format = match a.format {
                Fmt::Pcap => CaptureFormat::Pcap,
                Fmt::Pcapng => CaptureFormat::Pcapng,
            };
            let file = crate::files::create_output(&a.out, 0o644, false)?;
            let truth = generate(&spec, format, file)
                .with_context(|| format!("writing {}", a.out.display()))?;
            let truth_path = a.truth.unwrap_or_else(|| {
                let mut p = a.out.clone().into_os_string();
                p.push(".truth.json");
                p.into()
            });
            let f = crate::files::create_output(&truth_path, 0o644, false)?;
            serde_json::to_writer_pretty(std::io::BufWriter::new(f), &truth)?;
            eprintln!(
                "wrote {} ({} frames, {} sources, {} infected, {} campaigns) and {}",
                a.out.display(),
                truth.packets + truth.outside,
                truth.sources,
                truth.infected.len(),
                truth.campaigns.len(),
                truth_path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
