//! `iotscope honeypot`: wires flags and `[honeypot]` to the honeypot crate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use iotscope_honeypot::persona::{builtin_personas, extend_personas, parse_personas, Deployment};
use iotscope_honeypot::record::{Fanout, StoreRecorder};
use iotscope_honeypot::server::{
    self, HoneypotConfig, JsonLines, Limits, PayloadStore, Protocol, Recorder, Stats,
};
use iotscope_honeypot::telnet::Accepted;
use serde::Deserialize;

#[derive(clap::Args, Debug)]
pub struct HoneypotArgs {
    /// Telnet listener (repeatable), e.g. 0.0.0.0:23 or [::]:2323.
    #[arg(long, value_name = "ADDR:PORT")]
    telnet: Vec<String>,
    /// SSH listener (repeatable), e.g. 0.0.0.0:22 or [::]:2222: password
    /// logins from the same dictionary, the persona's Dropbear banner, a
    /// host key derived from the seed.
    #[arg(long, value_name = "ADDR:PORT")]
    ssh: Vec<String>,
    /// Append events in Cowrie's JSON format (one object per line) here.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// The store sessions and blocklist entries go to (default: config's
    /// store.db, else ./iotscope.db).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The device to pose as (default: the first persona).
    #[arg(long, value_name = "NAME")]
    persona: Option<String>,
    /// More personas (the format of the built-in personas.toml); one of a
    /// built-in name replaces it.
    #[arg(long, value_name = "FILE")]
    personas: Option<PathBuf>,
    /// The pairs that log in (`user:password` lines), instead of the Mirai list.
    #[arg(long, value_name = "FILE")]
    dictionary: Option<PathBuf>,
    /// Seeds the deployment's host name, PIDs, uptime and binary bytes
    /// (default: from /etc/machine-id and the sensor name, so it stays the
    /// same across restarts of one honeypot and differs between hosts).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The honeypot's name in events and the store (default: the host name).
    #[arg(long, value_name = "NAME")]
    sensor: Option<String>,
    /// Keep bytes bots write with echo here, as SHA256-named files.
    #[arg(long, value_name = "DIR")]
    payloads: Option<PathBuf>,
    /// Bytes the payload directory may hold (e.g. 500M).
    #[arg(long, value_name = "BYTES", default_value = "256M")]
    payload_budget: String,
    /// Fetch the http URLs bots give wget and curl, keeping each body in
    /// --payloads by its SHA-256 (off by default). Only globally routable
    /// addresses are fetched from, at most --fetch-per-minute a minute, each
    /// within --fetch-timeout and --fetch-max-bytes.
    #[arg(long)]
    fetch: bool,
    /// Bytes of one fetched body at most (cut there, marked truncated).
    #[arg(long, value_name = "BYTES", default_value = "8M")]
    fetch_max_bytes: String,
    /// Fetches a minute at most, over all sessions.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    fetch_per_minute: u32,
    /// One fetch, connect to last byte.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::args::timeout)]
    fetch_timeout: Duration,
    /// Sessions at once (more are closed at once and counted).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_sessions: u32,
    /// Sessions at once from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_per_source: u32,
    /// From connect to a successful login.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::args::timeout)]
    login_timeout: Duration,
    /// Without input from the client.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = crate::args::timeout)]
    idle_timeout: Duration,
    /// A whole session.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::args::run_time)]
    session_max: Duration,
    /// Wait after a failed login (as `login` does); 0s for none.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::args::span)]
    login_fail_delay: Duration,
    /// A loader logging in with a scanner's pair within this time is linked to it.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::args::span)]
    link_window: Duration,
    /// A status line (sessions, logins, links) on standard error this often; 0s for none.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::args::span)]
    status: Duration,
    /// Keep the sessions the store refuses (its server down or out of
    /// reach) in this local SQLite file and forward them, in order and once
    /// each, when it takes sessions again, or with `iotscope store forward`
    /// (default: the config's honeypot.spool; none: such a session is in
    /// --events only).
    #[arg(long, value_name = "PATH")]
    spool: Option<PathBuf>,
    /// Bytes the spool may hold (default: honeypot.spool_max, else 256M).
    #[arg(long, value_name = "BYTES")]
    spool_max: Option<String>,
    /// Stop by itself after this long (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = crate::args::run_time)]
    duration: Option<Duration>,
    /// The closing summary: table (a line on standard error) or json (an
    /// object on standard output).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// `[honeypot]` in the config; flags override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoneypotDefaults {
    /// Telnet listeners.
    #[serde(default)]
    pub telnet: Vec<String>,
    /// SSH listeners.
    #[serde(default)]
    pub ssh: Vec<String>,
    /// Events file.
    pub events: Option<PathBuf>,
    /// Persona name.
    pub persona: Option<String>,
    /// Extra personas file.
    pub personas: Option<PathBuf>,
    /// Dictionary file.
    pub dictionary: Option<PathBuf>,
    /// Deployment seed.
    pub seed: Option<u64>,
    /// Sensor name.
    pub sensor: Option<String>,
    /// Payload directory.
    pub payloads: Option<PathBuf>,
    /// Local spool for sessions the store refuses.
    pub spool: Option<PathBuf>,
    /// Bytes the spool may hold ("256M").
    pub spool_max: Option<String>,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "iotscope".into())
}

/// FNV-1a (64-bit) of the machine id and the sensor name: stable per host.
fn default_seed(sensor: &str) -> u64 {
    let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in machine.trim().bytes().chain([0]).chain(sensor.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn run(a: HoneypotArgs, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let d = &cfg.honeypot;
    let given = !a.telnet.is_empty() || !a.ssh.is_empty();
    let telnet = if given {
        a.telnet.clone()
    } else {
        d.telnet.clone()
    };
    let ssh = if given { a.ssh.clone() } else { d.ssh.clone() };
    if telnet.is_empty() && ssh.is_empty() {
        anyhow::bail!(
            "give at least one listener: --telnet ADDR:PORT or --ssh ADDR:PORT (or telnet = [...] / ssh = [...] in [honeypot])"
        );
    }
    let mut addrs = Vec::new();
    for (flag, list, protocol) in [
        ("--telnet", &telnet, Protocol::Telnet),
        ("--ssh", &ssh, Protocol::Ssh),
    ] {
        for t in list {
            let addr: std::net::SocketAddr = t.parse().with_context(|| {
                format!("{flag} {t:?}: expected ADDR:PORT such as 0.0.0.0:23 or [::]:2323")
            })?;
            addrs.push((addr, protocol));
        }
    }
    let mut personas = builtin_personas();
    if let Some(p) = a.personas.as_ref().or(d.personas.as_ref()) {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        personas = extend_personas(personas, parse_personas(&text, &p.display().to_string())?);
    }
    let persona = match a.persona.as_ref().or(d.persona.as_ref()) {
        Some(name) => personas
            .iter()
            .find(|p| &p.name == name)
            .cloned()
            .with_context(|| {
                format!(
                    "--persona {name:?}: no such persona; there are {}",
                    personas
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        None => personas[0].clone(),
    };
    let pairs = match a.dictionary.as_ref().or(d.dictionary.as_ref()) {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            iotscope_checks::dict::parse(&text, &p.display().to_string())?
        }
        None => iotscope_checks::dict::builtin(),
    };
    if pairs.is_empty() {
        anyhow::bail!("the dictionary has no user:password pair: no login would ever work");
    }
    let sensor = a
        .sensor
        .clone()
        .or(d.sensor.clone())
        .unwrap_or_else(host_name);
    let seed = a.seed.or(d.seed).unwrap_or_else(|| default_seed(&sensor));
    let payloads = match a.payloads.as_ref().or(d.payloads.as_ref()) {
        Some(dir) => Some(PayloadStore {
            dir: dir.clone(),
            budget: iotscope_ingest::archive::parse_bytes(&a.payload_budget)
                .map_err(|e| anyhow::anyhow!("--payload-budget: {e}"))?,
        }),
        None => None,
    };
    let config = HoneypotConfig {
        deployment: Arc::new(Deployment::new(persona, seed)),
        accepted: Arc::new(Accepted::new(&pairs)),
        limits: Limits {
            max_sessions: a.max_sessions as usize,
            max_per_source: a.max_per_source as usize,
            login_timeout: a.login_timeout,
            idle_timeout: a.idle_timeout,
            session_max: a.session_max,
            login_fail_delay: a.login_fail_delay,
            ..Limits::default()
        },
        link_window: a.link_window,
        payloads,
        seed,
        fetch: if a.fetch {
            if a.payloads.is_none() && d.payloads.is_none() {
                anyhow::bail!("--fetch keeps what it fetches in --payloads DIR (or payloads = \"DIR\" in [honeypot]): give one");
            }
            let max = iotscope_ingest::archive::parse_bytes(&a.fetch_max_bytes)
                .map_err(|e| anyhow::anyhow!("--fetch-max-bytes: {e}"))?;
            Some(iotscope_honeypot::fetch::FetchConfig {
                max_bytes: usize::try_from(max).unwrap_or(usize::MAX).min(1 << 30),
                per_minute: a.fetch_per_minute,
                timeout: a.fetch_timeout,
                allow_private: false,
            })
        } else {
            None
        },
    };
    let db = cfg.db_path(a.db.as_deref());
    if let Some(spool) = a.spool.as_ref().or(d.spool.as_ref()) {
        super::spool_apart(&db, spool)?;
    }
    let store = super::open_store(&db)?;
    let mut recorder = StoreRecorder::new(store, &sensor)
        .with_notice(|text| eprintln!("iotscope honeypot: {text}"));
    let spool_path = a.spool.clone().or(d.spool.clone());
    let mut spool_max = 0;
    if let Some(path) = &spool_path {
        let text = a
            .spool_max
            .clone()
            .or(d.spool_max.clone())
            .unwrap_or_else(|| "256M".into());
        spool_max = iotscope_ingest::archive::parse_bytes(&text)
            .map_err(|e| anyhow::anyhow!("--spool-max {e}"))?;
        anyhow::ensure!(spool_max > 0, "--spool-max must be more than 0");
        let spool = iotscope_store::Spool::open(path, spool_max)?;
        let waiting = spool.waiting()?.0;
        if waiting > 0 {
            eprintln!(
                "iotscope honeypot: {waiting} entries wait in the spool {}: forwarding them now",
                path.display()
            );
        }
        recorder = recorder.with_spool(spool);
        // A spool left by an earlier run goes now, not at the next session.
        recorder.forward(None);
    }
    let spooled = recorder.spooled();
    let mut recorders: Vec<Box<dyn Recorder>> = vec![Box::new(recorder)];
    let events = a.events.clone().or(d.events.clone());
    if let Some(p) = &events {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open {} for appending", p.display()))?;
        recorders.push(Box::new(JsonLines::new(
            std::io::BufWriter::new(f),
            &sensor,
        )));
    }
    let wanted = config.limits.max_sessions as u64 * 2 + 64;
    let limit = crate::sys::raise_open_file_limit(wanted);
    if limit < wanted {
        eprintln!(
            "iotscope honeypot: the open-file limit is {limit}, below the {wanted} that {} sessions need; \
             raise it (ulimit -n, LimitNOFILE=) or lower --max-sessions",
            config.limits.max_sessions
        );
    }
    let stats = Arc::new(Stats::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let persona_name = config.deployment.persona.name.clone();
    let started = std::time::Instant::now();
    rt.block_on(async {
        let mut listeners = Vec::new();
        // Every listener bound before any is announced: a failure names its
        // address alone.
        for (addr, protocol) in &addrs {
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
                    " (ports below 1024 need CAP_NET_BIND_SERVICE: setcap cap_net_bind_service=+ep, or a redirect to a higher port)"
                } else {
                    ""
                };
                anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
            })?;
            listeners.push((l, *protocol));
        }
        for (l, protocol) in &listeners {
            let name = if *protocol == Protocol::Ssh { "ssh" } else { "telnet" };
            eprintln!(
                "iotscope honeypot: {name} on {} as {persona_name} ({sensor})",
                l.local_addr()?
            );
        }
        let status_stats = stats.clone();
        let status_every = a.status;
        let status = tokio::spawn(async move {
            if status_every.is_zero() {
                return;
            }
            let mut t = tokio::time::interval(status_every);
            t.tick().await;
            loop {
                t.tick().await;
                let s = &status_stats;
                eprintln!(
                    "iotscope honeypot: {} sessions ({} open, {} refused), {} logins, {} loaders linked",
                    s.sessions.load(Ordering::Relaxed),
                    s.active.load(Ordering::Relaxed),
                    s.refused.load(Ordering::Relaxed),
                    s.logins.load(Ordering::Relaxed),
                    s.linked.load(Ordering::Relaxed)
                );
            }
        });
        let duration = a.duration;
        let shutdown = crate::sys::stop_signal(duration);
        server::run(listeners, config, Box::new(Fanout(recorders)), stats.clone(), shutdown).await?;
        status.abort();
        anyhow::Ok(())
    })?;
    let s = &stats;
    let spool_waiting = match &spool_path {
        Some(p) => iotscope_store::Spool::open(p, spool_max)?.waiting()?.0,
        None => 0,
    };
    let summary = serde_json::json!({
        "sensor": sensor,
        "seconds": started.elapsed().as_secs_f64(),
        "sessions": s.sessions.load(Ordering::Relaxed),
        "refused": s.refused.load(Ordering::Relaxed),
        "logins": s.logins.load(Ordering::Relaxed),
        "linked": s.linked.load(Ordering::Relaxed),
        "record_errors": s.record_errors.load(Ordering::Relaxed),
        // Sessions that went to the spool, and entries still waiting there.
        "spooled": spooled.load(Ordering::Relaxed),
        "spool_waiting": spool_waiting,
        "db": super::shown(&db),
        "events": events.map(|p| p.display().to_string()),
    });
    match a.format.as_str() {
        "json" => println!("{summary}"),
        _ => eprintln!(
            "iotscope honeypot: stopped after {:.0} s: {} sessions ({} refused), {} logins, {} loaders linked; recorded to {}",
            started.elapsed().as_secs_f64(),
            summary["sessions"],
            summary["refused"],
            summary["logins"],
            summary["linked"],
            super::shown(&db)
        ),
    }
    if let (Some(p), true) = (&spool_path, spool_waiting > 0) {
        eprintln!(
            "iotscope honeypot: {spool_waiting} entries wait in the spool {} for the store: they go at the next start \
             with this spool, or now with `iotscope store forward --spool {0} --db STORE`",
            p.display()
        );
    }
    Ok(if s.record_errors.load(Ordering::Relaxed) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
