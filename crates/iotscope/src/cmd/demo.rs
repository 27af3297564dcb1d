//! `iotscope demo`: the main job on embedded defaults, for a first run.
//!
//! Generates a realistic darknet capture with the lab, analyses it with the
//! telescope into a store and prints the report; starts a small lab of
//! emulated devices on loopback, surveys it with the checks, builds alerts
//! and per-ISP reports; then serves the dashboard over all of it on
//! loopback with a fresh operator login. No root, no network.

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
    /// Days the sample capture spans (hourly buckets on the dashboard).
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// Where the dashboard listens (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Build everything but do not serve the dashboard.
    #[arg(long)]
    no_serve: bool,
}

pub fn run(a: DemoArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    // Find out now, not after a minute of work, if the dashboard's port is taken.
    if !a.no_serve {
        drop(std::net::TcpListener::bind(a.listen).with_context(|| {
            format!(
                "cannot listen on {} for the dashboard: give --listen 127.0.0.1:PORT (or --no-serve)",
                a.listen
            )
        })?);
    }
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
        duration_s: i64::from(a.days.max(1)) * 86_400,
        // The series should show what NICTER's did: infections spreading.
        outbreak: true,
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
    let cfg_path = alerts_for_isps(&a.dir, &db)?;
    eprintln!(
        "\niotscope demo: done. Ground truth: {}. Query the store again with\n  iotscope telescope report --db {} --port 23/tcp\n  iotscope findings --db {}",
        truth_path.display(),
        db.display(),
        db.display()
    );
    if a.no_serve {
        return Ok(code);
    }
    serve_dashboard(&cfg_path, &db, a.listen)?;
    Ok(code)
}

/// Accounts for the demo (a fresh operator password each run, and one ISP
/// account), then the dashboard until Ctrl-C.
fn serve_dashboard(
    cfg_path: &std::path::Path,
    db: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let cfg = Config::load(Some(cfg_path))?;
    let mut store = iotscope_store::SqliteStore::open(db)?;
    let operator = super::users::add_user(&mut store, "operator", "operator", None, None, &cfg)?
        .context("a new password")?;
    let isp = super::users::add_user(
        &mut store,
        "east",
        "isp",
        Some("Demo ISP East".into()),
        None,
        &cfg,
    )?
    .context("a new password")?;
    drop(store);
    let settings = super::serve::settings(db.to_path_buf(), listen, None, &cfg)?;
    let router = iotscope_web::router(settings)?;
    let url = if listen.port() == 0 {
        "(the address below)".to_string()
    } else {
        format!("http://{listen}/")
    };
    println!(
        "\nDashboard: {url}  (world map, time series, findings, alerts; /check for owners)\n  \
         operator login: operator / {operator}\n  ISP login (Demo ISP East only): east / {isp}\n  \
         again later: iotscope --config {} serve --db {} --listen {listen}\n  Ctrl-C stops.",
        cfg_path.display(),
        db.display()
    );
    super::serve::run_server(listen, router, &cfg.web.trusted_proxies)
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
            targets: iotscope_survey::TargetSet::new(
                &["127.79.0.0/24".to_string()],
                &iotscope_survey::Exclusions::none(),
            )?,
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
        let (_never, no_stop) = tokio::sync::watch::channel(false);
        let reports = super::checks::check_hosts(hosts, rules, opts, 64, Default::default(), no_stop)
            .await
            .reports;
        let _ = stop_lab.send(true);
        let _ = served.await;
        Ok::<_, anyhow::Error>((rows, reports))
    })?;
    let (rows, reports) = rows;
    let findings: Vec<&iotscope_checks::findings::Finding> =
        reports.iter().flat_map(|r| &r.findings).collect();
    let mut store = iotscope_store::SqliteStore::open(db)?;
    iotscope_store::Store::save_services(
        &mut store,
        &rows
            .iter()
            .map(super::survey::observation)
            .collect::<Vec<_>>(),
    )?;
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
fn alerts_for_isps(dir: &std::path::Path, db: &std::path::Path) -> anyhow::Result<PathBuf> {
    let geo = dir.join("demo-geo.csv");
    std::fs::write(&geo, demo_geography())?;
    // Absolute: the config is read from wherever the user runs iotscope next.
    let geo = std::fs::canonicalize(&geo)?;
    let isps = format!(
        "# The demo's settings. [enrich] geo is a SYNTHETIC location table for the\n\
         # demo's random source addresses (each /8 placed in one city): it is not\n\
         # real geolocation. Use GeoLite2-City or ip-location-db for real data.\n\
         [enrich]\ngeo = [{geo:?}]\n\n\
         [[isp]]\nname = \"Demo ISP East\"\nasn = [64500]\nprefixes = [\"127.79.0.0/25\"]\nabuse = \"abuse@east.example\"\n\n\
         [[isp]]\nname = \"Demo ISP West\"\nasn = [64501]\nprefixes = [\"127.79.0.128/25\", \"127.79.0.16/28\"]\nabuse = \"abuse@west.example\"\n"
    );
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
    Ok(cfg_path)
}

/// Cities the synthetic demo geography places sources in: (country, region,
/// city, latitude, longitude).
const DEMO_CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("JP", "Tokyo", "Tokyo", 35.6895, 139.6917),
    ("CN", "Beijing", "Beijing", 39.9042, 116.4074),
    ("KR", "Seoul", "Seoul", 37.5665, 126.978),
    ("VN", "Ho Chi Minh", "Ho Chi Minh City", 10.8231, 106.6297),
    ("IN", "Maharashtra", "Mumbai", 19.076, 72.8777),
    ("ID", "Jakarta", "Jakarta", -6.2088, 106.8456),
    ("TW", "Taipei", "Taipei", 25.033, 121.5654),
    ("TH", "Bangkok", "Bangkok", 13.7563, 100.5018),
    ("RU", "Moscow", "Moscow", 55.7558, 37.6173),
    ("TR", "Istanbul", "Istanbul", 41.0082, 28.9784),
    ("IR", "Tehran", "Tehran", 35.6892, 51.389),
    ("DE", "Hesse", "Frankfurt", 50.1109, 8.6821),
    ("NL", "North Holland", "Amsterdam", 52.3676, 4.9041),
    ("FR", "Île-de-France", "Paris", 48.8566, 2.3522),
    ("GB", "England", "London", 51.5074, -0.1278),
    ("IT", "Lombardy", "Milan", 45.4642, 9.19),
    ("UA", "Kyiv", "Kyiv", 50.4501, 30.5234),
    ("EG", "Cairo", "Cairo", 30.0444, 31.2357),
    ("NG", "Lagos", "Lagos", 6.5244, 3.3792),
    ("ZA", "Gauteng", "Johannesburg", -26.2041, 28.0473),
    ("US", "Virginia", "Ashburn", 39.0438, -77.4874),
    ("US", "California", "Los Angeles", 34.0522, -118.2437),
    ("US", "Texas", "Dallas", 32.7767, -96.797),
    ("CA", "Ontario", "Toronto", 43.6532, -79.3832),
    ("MX", "Mexico City", "Mexico City", 19.4326, -99.1332),
    ("BR", "São Paulo", "São Paulo", -23.5505, -46.6333),
    ("AR", "Buenos Aires", "Buenos Aires", -34.6037, -58.3816),
    ("CO", "Bogotá", "Bogotá", 4.711, -74.0721),
    ("AU", "New South Wales", "Sydney", -33.8688, 151.2093),
    ("SG", "Singapore", "Singapore", 1.3521, 103.8198),
];

/// A synthetic location table (ip-location-db city CSV layout) for the
/// demo's random sources: every IPv4 /8 in one city, a few kilometres
/// apart per /8 so the map shows clusters, and the IPv6 documentation
/// space in Tokyo.
fn demo_geography() -> String {
    let mut out = String::from(
        "ip_range_start,ip_range_end,country_code,state1,state2,city,postcode,latitude,longitude,timezone\n",
    );
    // Not 10/8 or 127/8: private and loopback addresses have no place.
    for a in (1u32..=223).filter(|a| *a != 10 && *a != 127) {
        let (cc, region, city, lat, lon) = DEMO_CITIES[(a as usize * 7) % DEMO_CITIES.len()];
        // Four /10s per /8, each a little apart, so a city is a cluster.
        for q in 0u32..4 {
            let n = a * 4 + q;
            let (dlat, dlon) = (
                ((n * 37) % 13) as f64 / 6.0 - 1.0,
                ((n * 53) % 11) as f64 / 5.0 - 1.0,
            );
            out.push_str(&format!(
                "{a}.{}.0.0,{a}.{}.255.255,{cc},{region},,{city},,{:.4},{:.4},\n",
                q * 64,
                q * 64 + 63,
                lat + dlat,
                lon + dlon
            ));
        }
    }
    out.push_str(
        "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,JP,Tokyo,,Tokyo,,35.6895,139.6917,\n",
    );
    out
}
