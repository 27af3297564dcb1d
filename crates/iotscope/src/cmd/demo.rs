//! `iotscope demo`: the main job on embedded defaults, for a first run.
//!
//! Today: generate a realistic darknet capture with the lab, analyse it with
//! the telescope into a store and print the report; then start a small lab
//! of emulated devices on loopback, survey it (connect mode, banners) and
//! summarise what answered. Later issues add the checks, alerts and the
//! dashboard.

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
    survey_a_lab(&a.dir, a.seed, &db)?;
    alerts_for_isps(&a.dir, &db)?;
    eprintln!(
        "\niotscope demo: done. Ground truth: {}. Query the store again with\n  iotscope telescope report --db {} --port 23/tcp\n  iotscope findings --db {}",
        truth_path.display(),
        db.display(),
        db.display()
    );
    Ok(code)
}

/// Starts 30 emulated devices on 127.79.0.0/24, surveys them and prints
/// what answered; the lab stops when the survey is done.
fn survey_a_lab(dir: &std::path::Path, seed: u64, db: &std::path::Path) -> anyhow::Result<()> {
    use iotscope_lab::devices::{draw_default, Manifest};
    use std::sync::Arc;
    let devices = draw_default(30, seed, std::net::Ipv4Addr::new(127, 79, 0, 1));
    let lab = iotscope_lab::server::Lab::bind(&devices, false)?;
    std::fs::write(
        dir.join("lab-manifest.json"),
        serde_json::to_vec_pretty(&Manifest {
            devices: devices.clone(),
        })?,
    )?;
    let audit = iotscope_lab::audit::Audit::to_file(&dir.join("lab-audit.jsonl"))?;
    eprintln!(
        "\niotscope demo: {} emulated devices on 127.79.0.0/24 ({} listeners); surveying them ...",
        devices.len(),
        lab.listeners()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let (stop_lab, lab_stop) = tokio::sync::watch::channel(false);
        let served = tokio::spawn(lab.serve(audit, lab_stop));
        let cfg = iotscope_survey::ScanConfig {
            live_exclusions: Default::default(),
            targets: iotscope_survey::TargetSet::new(&["127.79.0.0/24".to_string()], &[])?,
            ports: iotscope_survey::parse_ports("22,23,80,81,502,1883,2323,8080,8081")?,
            seed,
            shard: (0, 1),
            rate: 0.0,
            concurrency: 200,
            connect_timeout: std::time::Duration::from_secs(2),
            read_timeout: std::time::Duration::from_secs(2),
            user_agent: "iotscope-demo".into(),
            report_closed: false,
            skip: 0,
            grab: true,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let stats = Arc::new(iotscope_survey::Stats::default());
        let scan = tokio::spawn(iotscope_survey::run(cfg, tx, stats, stop_rx));
        let mut rows = Vec::new();
        while let Some(r) = rx.recv().await {
            rows.push(r);
        }
        let _ = scan.await;
        // The checks, as `survey --checks all` runs them.
        let mut hosts: std::collections::BTreeMap<std::net::IpAddr, Vec<iotscope_checks::rules::Seen>> =
            Default::default();
        for r in rows.iter().filter(|r| r.status == iotscope_survey::Status::Open) {
            if let (Some(service), Some(banner)) = (r.service, r.banner.clone()) {
                hosts.entry(r.ip).or_default().push(iotscope_checks::rules::Seen {
                    port: r.port,
                    service: service.to_string(),
                    banner,
                });
            }
        }
        eprintln!(
            "iotscope demo: checking {} hosts (default credentials over telnet, SSH and HTTP; open panels) ...",
            hosts.len()
        );
        let (opts, rules) = super::checks::options(
            &super::checks::CheckFlags {
                credentials: None,
                extra_credentials: None,
                rules: None,
                per_host: 3,
                max_attempts: 100,
                hosts_at_once: 64,
            },
            (true, true),
            "iotscope-demo",
            std::time::Duration::from_secs(3),
        )?;
        let reports = super::checks::check_hosts(hosts, rules, opts, 64).await;
        let _ = stop_lab.send(true);
        let _ = served.await;
        Ok::<_, anyhow::Error>((rows, reports))
    })?;
    let (rows, reports) = rows;
    let findings: Vec<&iotscope_checks::findings::Finding> =
        reports.iter().flat_map(|r| &r.findings).collect();
    let mut store = iotscope_store::SqliteStore::open(db)?;
    iotscope_store::Store::save_findings(
        &mut store,
        &findings
            .iter()
            .map(|f| super::checks::record(f))
            .collect::<Vec<_>>(),
    )?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("survey.jsonl"))?);
    for r in &rows {
        serde_json::to_writer(&mut file, r)?;
        std::io::Write::write_all(&mut file, b"\n")?;
    }
    let mut by_service: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &rows {
        *by_service.entry(r.service.unwrap_or("?")).or_default() += 1;
    }
    println!("\nSurvey of the lab: {} open services", rows.len());
    for (svc, n) in &by_service {
        println!("  {svc:<10} {n}");
    }
    println!("\nWhat a survey sees (one line per kind of answer):");
    let mut shown = std::collections::BTreeSet::new();
    for r in &rows {
        let Some(b) = &r.banner else { continue };
        let line = match r.service {
            Some("http") => format!(
                "Server: {}  title: {}",
                b["server"].as_str().unwrap_or("-"),
                b["title"].as_str().unwrap_or("-")
            ),
            Some("telnet") => format!("prompt {:?}", b["prompt"].as_str().unwrap_or("")),
            Some("ssh") => b["version"].as_str().unwrap_or("").to_string(),
            Some("mqtt") => format!(
                "CONNACK return code {} (anonymous accepted: {})",
                b["return_code"], b["anonymous_accepted"]
            ),
            Some("modbus") => format!("device identification {}", b["device_identification"]),
            _ => continue,
        };
        // One line per kind of answer: per service, and per page title.
        let kind = format!(
            "{}{}",
            r.service.unwrap_or(""),
            b["title"].as_str().unwrap_or("")
        );
        if shown.insert(kind) {
            println!(
                "  {:<20} {:<7} {line}",
                format!("{}:{}", r.ip, r.port),
                r.service.unwrap_or("")
            );
        }
    }
    let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &findings {
        *by_kind.entry(f.kind.as_str()).or_default() += 1;
    }
    println!(
        "\nChecks: {} findings on {} of {} hosts (every login closed at once, nothing changed; see {})",
        findings.len(),
        reports.iter().filter(|r| !r.findings.is_empty()).count(),
        reports.len(),
        dir.join("lab-audit.jsonl").display()
    );
    for (k, n) in &by_kind {
        println!("  {k:<24} {n}");
    }
    println!("\nCritical devices anyone can operate or log into:");
    for f in findings
        .iter()
        .filter(|f| f.severity == iotscope_checks::findings::Severity::Critical)
    {
        let d = f.device.as_ref();
        println!(
            "  {:<20} {:<20} {} {}",
            format!("{}:{}", f.ip, f.port),
            f.kind.as_str(),
            d.map_or("?", |d| d.vendor.as_str()),
            d.and_then(|d| d.model.as_deref()).unwrap_or("")
        );
    }
    println!(
        "\n(rows in {}; ground truth in {})",
        dir.join("survey.jsonl").display(),
        dir.join("lab-manifest.json").display()
    );
    Ok(())
}

/// The alerts step on the demo's store: an ISP table of two (the lab's
/// /24 split between them), alerts built from the findings and the
/// telescope's infected hosts, one report per ISP.
fn alerts_for_isps(dir: &std::path::Path, db: &std::path::Path) -> anyhow::Result<()> {
    let isps = "[[isp]]\nname = \"Demo ISP East\"\nasn = [64500]\nprefixes = [\"127.79.0.0/25\"]\nabuse = \"abuse@east.example\"\n\n\
                [[isp]]\nname = \"Demo ISP West\"\nasn = [64501]\nprefixes = [\"127.79.0.128/25\", \"127.79.0.16/28\"]\nabuse = \"abuse@west.example\"\n";
    let cfg_path = dir.join("isps.toml");
    std::fs::write(&cfg_path, isps)?;
    let cfg = crate::config::Config::load(Some(&cfg_path))?;
    let reports = dir.join("reports");
    super::alerts::run(
        super::alerts::AlertsCommand::Build {
            db: Some(db.to_path_buf()),
        },
        &cfg,
    )?;
    super::alerts::run(
        super::alerts::AlertsCommand::Export {
            db: Some(db.to_path_buf()),
            out: reports.clone(),
            format: "csv".into(),
        },
        &cfg,
    )?;
    println!(
        "\nAlerts: one per (address, problem), reports per ISP in {} (ISP table: {});\n  \
         iotscope --config {} alerts list --db {}",
        reports.display(),
        cfg_path.display(),
        cfg_path.display(),
        db.display()
    );
    Ok(())
}
