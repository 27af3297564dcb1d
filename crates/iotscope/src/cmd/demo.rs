//! `iotscope demo`: the main job on embedded defaults, for a first run.
//!
//! Today: generate a realistic darknet capture with the lab, analyse it with
//! the telescope into a store, and print the report. Later issues add the
//! emulated devices, the survey, alerts and the dashboard.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use iotscope_lab::{generate, CaptureFormat, DarknetSpec, DARKNET_V4, DARKNET_V6};

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Folder for the sample capture, its truth and the store.
    #[arg(long, default_value = "iotscope-demo")]
    dir: PathBuf,
    /// Frames in the sample capture.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// Seed of the sample.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(a: DemoArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let capture = a.dir.join("darknet.pcap");
    let db = a.dir.join("iotscope.db");
    // A fresh store each run, so the demo's figures are those of its capture.
    for p in [
        db.clone(),
        a.dir.join("iotscope.db-wal"),
        a.dir.join("iotscope.db-shm"),
    ] {
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    eprintln!(
        "iotscope demo: generating a {}-frame darknet capture in {} ...",
        a.packets,
        capture.display()
    );
    let spec = DarknetSpec {
        packets: a.packets,
        seed: a.seed,
        ..Default::default()
    };
    let file = std::fs::File::create(&capture)
        .with_context(|| format!("cannot create {}", capture.display()))?;
    let truth = generate(&spec, CaptureFormat::Pcap, file)?;
    let truth_path = a.dir.join("darknet.pcap.truth.json");
    serde_json::to_writer_pretty(
        std::io::BufWriter::new(std::fs::File::create(&truth_path)?),
        &truth,
    )?;
    eprintln!(
        "iotscope demo: analysing it (darknet {DARKNET_V4} and {DARKNET_V6}); aggregates go to {}",
        db.display()
    );
    let code = super::telescope::analyze_for_demo(
        vec![capture.clone()],
        vec![DARKNET_V4.to_string(), DARKNET_V6.to_string()],
        db.clone(),
        cfg,
    )?;
    eprintln!(
        "\niotscope demo: done. Ground truth: {}. Query the store again with\n  iotscope telescope report --db {} --port 23/tcp",
        truth_path.display(),
        db.display()
    );
    Ok(code)
}
