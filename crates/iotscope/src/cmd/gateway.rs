//! `iotscope gateway`: the IoT secure gateway's nftables table, planned
//! from `[gateway]` in `--config`, applied and rolled back safely, and
//! `gateway run`, which watches the LAN (quarantine, new devices) and keeps
//! the sets fresh. The rules live in `iotscope-gateway`; this wires them to
//! the store, the checks, `nft` and the live capture.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use iotscope_gateway::nft::{self, Netfilter, NftCli};
use iotscope_gateway::status::{self, SeenDevice};
use iotscope_gateway::{Gateway, Inputs, Plan};

#[derive(clap::Subcommand, Debug)]
pub enum GatewayCommand {
    /// Print the nftables table the configuration makes (nothing is changed).
    Plan {
        /// text (the nft script) or json (script, sets, refused entries, warnings).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// The store the C&C blocklist comes from (default: [gateway] db, then [store] db).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Check the table with `nft -c`, keep the one in force for rollback, load it in one transaction.
    Apply {
        /// The store the C&C blocklist comes from.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// A management connection that must survive (ADDR:PORT of the client and the
        /// gateway's port); $SSH_CONNECTION is always checked.
        #[arg(long, value_name = "ADDR:PORT")]
        keep: Vec<String>,
    },
    /// Refresh the C&C and MUD-name sets in place (counters and quarantine stay).
    Refresh {
        /// The store the C&C blocklist comes from.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Counters, sets, quarantined hosts with their evidence, devices seen and their checks.
    Status {
        /// text or json.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Delete the table (nothing else in the ruleset is touched).
    Remove,
    /// Load the table in force before the last apply.
    Rollback {
        /// A management connection that must survive (ADDR:PORT); $SSH_CONNECTION is always checked.
        #[arg(long, value_name = "ADDR:PORT")]
        keep: Vec<String>,
    },
    /// Watch the LAN: quarantine hosts that scan, check new devices, refresh the sets.
    Run {
        /// The store (blocklist; new devices' findings are added to it).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Stop after this long (default: until SIGINT or SIGTERM).
        #[arg(long, value_parser = crate::args::timeout)]
        duration: Option<Duration>,
        /// How often the neighbour table is read for new devices.
        #[arg(long, default_value = "2s", value_parser = crate::args::timeout)]
        neighbour_poll: Duration,
        /// Do not check new devices (only record them).
        #[arg(long)]
        no_checks: bool,
        /// Connect and read timeout of the new-device check.
        #[arg(long, default_value = "3s", value_parser = crate::args::timeout)]
        timeout: Duration,
        #[command(flatten)]
        flags: super::checks::CheckFlags,
    },
}

fn gateway(cfg: &crate::config::Config) -> anyhow::Result<Gateway> {
    let g = cfg
        .gateway
        .as_ref()
        .context("no [gateway] table: give --config FILE with one (see docs/gateway.md)")?;
    Ok(g.check()?)
}

/// The store: `--db`, then `[gateway] db`, then `[store] db`; none is fine
/// (the C&C sets then hold `[gateway] block` only).
fn store_path(db: Option<PathBuf>, gw: &Gateway, cfg: &crate::config::Config) -> Option<PathBuf> {
    db.or_else(|| gw.db.clone())
        .or_else(|| cfg.store.db.clone())
}

/// What the sets hold: the store's C&C addresses and honeypot download
/// hosts, `[gateway] block`, the MUD files and their names' addresses.
fn inputs(gw: &Gateway, db: Option<&Path>) -> anyhow::Result<(Inputs, usize)> {
    let mut flagged = Vec::new();
    let mut values: Vec<(String, String)> = gw
        .block
        .iter()
        .map(|a| (a.to_string(), "[gateway] block".to_string()))
        .collect();
    if let Some(db) = db {
        let store = super::open_existing(db)?;
        for r in store.blocklist()? {
            values.push((r.value, r.source));
        }
        // What the checks flagged on the forwards' targets: never forwarded.
        for f in store.findings()? {
            let target = f.ip.parse::<IpAddr>().ok();
            if let Some(ip) = target.filter(|ip| gw.forward.iter().any(|fw| fw.to == *ip)) {
                if f.severity != "info" {
                    flagged.push((ip, f.port, f.kind));
                }
            }
        }
        for s in store.honeypot_sessions(None, None, 100_000)? {
            for d in s.downloads {
                if let Some(h) = d.2 {
                    values.push((h, format!("honeypot {}", s.sensor)));
                }
            }
        }
    }
    let (cc, names_left) =
        iotscope_gateway::cc_addresses(values.iter().map(|(v, s)| (v.as_str(), s.as_str())));
    let muds = iotscope_gateway::load_muds(gw)?;
    let names = iotscope_gateway::resolve_names(
        &iotscope_gateway::mud_names(&muds),
        &gw.hosts,
        &iotscope_gateway::SystemResolver {
            timeout: Duration::from_secs(5),
        },
    );
    Ok((
        Inputs {
            cc,
            muds,
            names,
            flagged,
        },
        names_left,
    ))
}

fn plan(gw: &Gateway, db: Option<&Path>) -> anyhow::Result<(Plan, usize)> {
    let (inputs, names_left) = inputs(gw, db)?;
    Ok((Plan::new(gw, &inputs), names_left))
}

fn say_plan(p: &Plan, names_left: usize) {
    for (ip, why) in &p.refused {
        eprintln!("iotscope gateway: {ip} not blocked: {why}");
    }
    for w in &p.warnings {
        eprintln!("iotscope gateway: warning: {w}");
    }
    if names_left > 0 {
        eprintln!(
            "iotscope gateway: {names_left} C&C names are not in the sets (nft blocks addresses): \
             serve them to the LAN's resolver with `iotscope blocklist export --format rpz`"
        );
    }
}

/// The connections `apply` and `rollback` must not cut: each `--keep`, and
/// the SSH session this runs in. `SSH_CONNECTION` is "client address,
/// client port, server address, server port" (OpenSSH's sshd(8)); a
/// link-local client carries its zone (`fe80::1%eth0`), dropped here. A
/// value that is set but cannot be read stops the command: guessing could
/// cut the session.
fn management_to_keep(keep: &[String]) -> anyhow::Result<Vec<(IpAddr, u16)>> {
    let mut out = keep
        .iter()
        .map(|k| parse_keep(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(ssh) = std::env::var_os("SSH_CONNECTION") {
        let ssh = ssh.to_string_lossy().into_owned();
        let f: Vec<&str> = ssh.split_whitespace().collect();
        let ip = f
            .first()
            .map(|a| a.split('%').next().unwrap_or(a))
            .and_then(|a| a.parse::<IpAddr>().ok());
        let port = f.get(3).and_then(|p| p.parse::<u16>().ok());
        match (f.len(), ip, port) {
            (4, Some(ip), Some(port)) => out.push((iotscope_survey::canonical(ip), port)),
            _ => anyhow::bail!(
                "SSH_CONNECTION={ssh:?} cannot be read (expected \"CLIENT CPORT SERVER SPORT\"): \
                 refusing to change the table without knowing the session to keep; \
                 unset it and name the connection with --keep ADDR:PORT"
            ),
        }
    }
    Ok(out)
}

/// A table for interfaces that do not exist protects nothing: refused.
fn check_interfaces(gw: &Gateway) -> anyhow::Result<()> {
    for (key, name) in [
        ("lan_interface", &gw.lan_interface),
        ("wan_interface", &gw.wan_interface),
    ] {
        anyhow::ensure!(
            Path::new("/sys/class/net").join(name).exists(),
            "[gateway] {key}: interface {name:?} does not exist here (ip link lists them)"
        );
    }
    Ok(())
}

/// `ADDR:PORT` or `[V6]:PORT`.
fn parse_keep(text: &str) -> anyhow::Result<(IpAddr, u16)> {
    let sa: std::net::SocketAddr = text
        .trim()
        .parse()
        .with_context(|| format!("--keep {text:?}: expected ADDR:PORT such as 192.168.1.10:22"))?;
    Ok((iotscope_survey::canonical(sa.ip()), sa.port()))
}

pub fn run(c: GatewayCommand, cfg: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let nf = NftCli::default();
    match c {
        GatewayCommand::Plan { format, db } => {
            let gw = gateway(cfg)?;
            let (p, names_left) = plan(&gw, store_path(db, &gw, cfg).as_deref())?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if format == "json" {
                let doc = serde_json::json!({
                    "table": p.table,
                    "sets": p.sets.iter().map(|s| serde_json::json!({
                        "name": s.name, "type": s.kind, "elements": s.elements,
                        "comment": s.comment, "refreshed": s.refreshed,
                    })).collect::<Vec<_>>(),
                    "refused": p.refused.iter().map(|(ip, why)| serde_json::json!({"address": ip.to_string(), "why": why})).collect::<Vec<_>>(),
                    "warnings": p.warnings,
                    "names_not_enforced": names_left,
                });
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                say_plan(&p, names_left);
                out.write_all(p.table.as_bytes())?;
            }
        }
        GatewayCommand::Apply { db, keep } => {
            let gw = gateway(cfg)?;
            let must_keep = management_to_keep(&keep)?;
            check_interfaces(&gw)?;
            for (ip, port) in &must_keep {
                anyhow::ensure!(
                    Plan::admits_management(&gw, *ip, *port),
                    "refusing to apply: the table would cut the management connection from {ip} to port {port}; \
                     add it to [gateway.management] from and ports"
                );
            }
            let (p, names_left) = plan(&gw, store_path(db, &gw, cfg).as_deref())?;
            say_plan(&p, names_left);
            let applied = nft::apply(&nf, &p, &gw.state_dir)?;
            let cc: usize = p
                .sets
                .iter()
                .filter(|s| s.name.starts_with("cc_"))
                .map(|s| s.elements.len())
                .sum();
            eprintln!(
                "iotscope gateway: table inet iotscope loaded ({} C&C addresses, {} devices){}",
                cc,
                gw.device.len(),
                if applied.kept_previous {
                    format!(
                        "; the previous one is kept for `gateway rollback` in {}",
                        nft::previous_path(&gw.state_dir).display()
                    )
                } else {
                    String::new()
                }
            );
        }
        GatewayCommand::Refresh { db } => {
            let gw = gateway(cfg)?;
            let (p, names_left) = plan(&gw, store_path(db, &gw, cfg).as_deref())?;
            say_plan(&p, names_left);
            refresh(&nf, &p, &gw.state_dir)?;
            eprintln!("iotscope gateway: sets refreshed");
        }
        GatewayCommand::Status { format } => {
            let gw = gateway(cfg)?;
            return status(&gw, &nf, &format);
        }
        GatewayCommand::Remove => {
            let removed = nft::remove(&nf)?;
            eprintln!(
                "iotscope gateway: {}",
                if removed {
                    "table inet iotscope deleted"
                } else {
                    "table inet iotscope was not loaded"
                }
            );
        }
        GatewayCommand::Rollback { keep } => {
            let gw = gateway(cfg)?;
            nft::rollback(&nf, &gw.state_dir, &management_to_keep(&keep)?)?;
            eprintln!("iotscope gateway: the previous table is loaded again");
        }
        GatewayCommand::Run {
            db,
            duration,
            neighbour_poll,
            no_checks,
            timeout,
            flags,
        } => {
            let gw = gateway(cfg)?;
            let db = store_path(db, &gw, cfg);
            return watch(
                &gw,
                &nf,
                db,
                duration,
                neighbour_poll,
                (!no_checks).then_some((flags, timeout)),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Replaces the refreshed sets' elements, after checking that the loaded
/// table is ours and has the structure this plan has: a changed MUD file,
/// forward or key needs new rules, which only `apply` writes.
fn refresh(nf: &NftCli, p: &Plan, state_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        nft::current(nf)?.is_some(),
        "table inet iotscope is not loaded: run `iotscope gateway apply` first"
    );
    let applied = std::fs::read_to_string(nft::structure_path(state_dir)).unwrap_or_default();
    anyhow::ensure!(
        applied.trim() == p.structure(),
        "the configuration or the MUD files changed since the table was applied (or it was rolled back): \
         refresh only changes addresses; run `iotscope gateway apply`"
    );
    nf.run(&p.refresh_script(), false)?;
    Ok(())
}

/// The last quarantine of each host in the log (its evidence).
fn last_quarantines(state_dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(status::quarantine_log_path(state_dir)) {
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if let Some(src) = v.get("src").and_then(|s| s.as_str()) {
                    out.insert(src.to_string(), v);
                }
            }
        }
    }
    out
}

fn status(gw: &Gateway, nf: &dyn Netfilter, format: &str) -> anyhow::Result<ExitCode> {
    let table = match nft::current(nf)? {
        Some(_) => Some(
            status::parse_table(&nf.list_table(true)?.unwrap_or_default())
                .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let devices = status::read_devices(&gw.state_dir).map_err(|e| anyhow::anyhow!(e))?;
    let evidence = last_quarantines(&gw.state_dir);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if format == "json" {
        let doc = serde_json::json!({
            "loaded": table.is_some(),
            "rules": table.as_ref().map(|t| &t.rules),
            "sets": table.as_ref().map(|t| &t.sets),
            "quarantined": table.as_ref().map(|t| t.quarantined.iter().map(|q| serde_json::json!({
                "address": q.address, "expires_s": q.expires_s, "evidence": evidence.get(&q.address),
            })).collect::<Vec<_>>()),
            "devices": devices,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(t) = table else {
        writeln!(
            out,
            "table inet iotscope: not loaded (iotscope gateway apply)"
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(out, "table inet iotscope: loaded")?;
    writeln!(out, "rules (packets):")?;
    for r in &t.rules {
        writeln!(out, "  {:<12} {:<36} {:>10}", r.chain, r.comment, r.packets)?;
    }
    writeln!(
        out,
        "sets: {}",
        t.sets
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out, "quarantined: {}", t.quarantined.len())?;
    for q in &t.quarantined {
        let why = evidence
            .get(&q.address)
            .map(|e| e["reason"].to_string())
            .unwrap_or_default();
        writeln!(out, "  {:<40} {:>6}s left  {why}", q.address, q.expires_s)?;
    }
    writeln!(out, "devices seen: {}", devices.len())?;
    for (addr, d) in &devices {
        let result = match (&d.checked, &d.error) {
            (_, Some(e)) => format!("check failed: {e}"),
            (None, None) => "not checked yet".to_string(),
            (Some(_), None) if d.findings.is_empty() => "checked: nothing found".to_string(),
            (Some(_), None) => format!(
                "checked: {}",
                d.findings
                    .iter()
                    .map(|f| format!(
                        "{} on {}/{}",
                        f["kind"].as_str().unwrap_or("?"),
                        f["port"],
                        f["service"].as_str().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        writeln!(out, "  {addr:<40} {}  {result}", d.mac)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Set by SIGINT and SIGTERM: `gateway run` stops.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

#[cfg(not(feature = "live-capture"))]
fn open_capture(_iface: &str) -> anyhow::Result<Box<dyn iotscope_ingest::sensor::PacketSource>> {
    anyhow::bail!(
        "this iotscope was built without live capture; `gateway run` needs it: \
         `cargo build --release -p iotscope --features live-capture` (needs libpcap-dev)"
    )
}

#[cfg(feature = "live-capture")]
fn open_capture(iface: &str) -> anyhow::Result<Box<dyn iotscope_ingest::sensor::PacketSource>> {
    use iotscope_ingest::live::{LiveCapture, LiveOptions};
    Ok(Box::new(LiveCapture::open(&LiveOptions {
        interface: iface.to_string(),
        filter: Some(iotscope_gateway::quarantine::SYN_FILTER.to_string()),
        // Headers are enough: Ethernet, IPv6 with a few extension headers, TCP.
        snaplen: 256,
        buffer_bytes: 8 << 20,
        ..Default::default()
    })?))
}

/// The notice page a quarantined host's web requests are sent to.
fn notice_page(gw: &Gateway) -> String {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Device quarantined</title></head><body>\
         <h1>This device has been quarantined</h1>\
         <p>It was sending connection attempts to many addresses, the way devices infected by malware such as Mirai do. \
         The network gateway now lets it reach only DNS and this page, for {} minutes.</p>\
         <ol><li>Turn the device off and on again (this removes Mirai-like malware from memory).</li>\
         <li>Change its password to a long one of your own before it is infected again.</li>\
         <li>Update its firmware.</li></ol>\
         <p lang=\"ja\">この機器はマルウェア感染の疑いがあるため隔離されました。再起動し、パスワードを変更し、ファームウェアを更新してください。</p>\
         </body></html>",
        gw.timeout.as_secs() / 60
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Serves the notice page on the gateway's LAN address: each client gets
/// the page whatever it sends (read at most 8 KiB for 3 s), at most 32 at
/// once.
fn serve_notice(gw: &Gateway) -> anyhow::Result<()> {
    let Some(addr) = gw.lan_address else {
        return Ok(());
    };
    let listener = std::net::TcpListener::bind((addr, gw.notice_port))
        .with_context(|| format!("notice page on {addr} port {}", gw.notice_port))?;
    listener.set_nonblocking(true)?;
    let page = std::sync::Arc::new(notice_page(gw));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    if busy.fetch_add(1, Ordering::Relaxed) >= 32 {
                        busy.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    let (page, busy) = (page.clone(), busy.clone());
                    std::thread::spawn(move || {
                        use std::io::Read;
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
                        let _ = conn.set_write_timeout(Some(Duration::from_secs(3)));
                        let mut buf = [0u8; 8192];
                        let _ = conn.read(&mut buf);
                        let _ = conn.write_all(page.as_bytes());
                        busy.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    Ok(())
}

/// Checks one new device with the self-check's probes and checks.
fn check_device(
    ip: IpAddr,
    flags: &super::checks::CheckFlags,
    timeout: Duration,
) -> anyhow::Result<(
    Vec<iotscope_checks::rules::Seen>,
    iotscope_checks::run::HostReport,
)> {
    let ports = iotscope_survey::parse_ports(super::check::DEFAULT_PORTS)?;
    let (opts, rules) = super::checks::options(
        flags,
        (true, true),
        "iotscope-gateway/0.1 (new-device check by the owner's gateway)",
        timeout,
    )?;
    let settings = iotscope_survey::ProbeSettings {
        connect_timeout: timeout,
        read_timeout: timeout,
        user_agent: opts.settings.user_agent.clone(),
        grab: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    Ok(runtime.block_on(async move {
        let stopper = tokio::spawn(async move {
            while !STOP.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = tx.send(true);
        });
        let r = super::check::examine(ip, &ports, &settings, &rules, &opts, rx).await;
        stopper.abort();
        r
    }))
}

/// `gateway run`: the scan watch on the LAN interface, the neighbour
/// table for new devices (each checked once, in the background), the sets
/// refreshed every `[gateway] refresh`, the notice page.
fn watch(
    gw: &Gateway,
    nf: &NftCli,
    db: Option<PathBuf>,
    duration: Option<Duration>,
    neighbour_poll: Duration,
    checks: Option<(super::checks::CheckFlags, Duration)>,
) -> anyhow::Result<ExitCode> {
    use iotscope_gateway::quarantine::{ScanWatch, WatchSettings};
    use iotscope_wire::{decode, Decoded};

    anyhow::ensure!(
        nft::current(nf)?.is_some(),
        "table inet iotscope is not loaded: run `iotscope gateway apply` first"
    );
    std::fs::create_dir_all(&gw.state_dir)
        .with_context(|| format!("state_dir {}", gw.state_dir.display()))?;
    let mut source = open_capture(&gw.lan_interface)?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    if let Some(d) = duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            STOP.store(true, Ordering::Relaxed);
        });
    }
    serve_notice(gw)?;
    let mut scan = ScanWatch::new(WatchSettings {
        threshold: gw.threshold,
        window_ns: gw.window.as_nanos() as i64,
        timeout_ns: gw.timeout.as_nanos() as i64,
        ports: gw.quarantine_ports.clone(),
        lan: gw.lan_prefixes.clone(),
        exempt: gw.exempt.clone(),
    });
    let log_path = status::quarantine_log_path(&gw.state_dir);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("{}", log_path.display()))?;
    let devices = std::sync::Arc::new(std::sync::Mutex::new(
        status::read_devices(&gw.state_dir).map_err(|e| anyhow::anyhow!(e))?,
    ));
    // New devices wait here for the one checking thread.
    let (queue, pending) = std::sync::mpsc::channel::<IpAddr>();
    if let Some((flags, timeout)) = checks {
        let (devices, state_dir, db) = (devices.clone(), gw.state_dir.clone(), db.clone());
        std::thread::spawn(move || {
            while let Ok(ip) = pending.recv() {
                if STOP.load(Ordering::Relaxed) {
                    break;
                }
                let result = check_device(ip, &flags, timeout);
                let mut found = Vec::new();
                let mut d = devices.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(dev) = d.get_mut(&ip.to_string()) {
                    match result {
                        Ok((seen, report)) => {
                            dev.checked = Some(iotscope_survey::now_rfc3339());
                            dev.services = seen
                                .iter()
                                .map(|s| format!("{}/{}", s.port, s.service))
                                .collect();
                            dev.findings = report
                                .findings
                                .iter()
                                .map(|f| super::checks::finding_json(f, false))
                                .collect();
                            found = report.findings.iter().map(super::checks::record).collect();
                            eprintln!(
                                "iotscope gateway: checked new device {ip}: {} services, {} findings",
                                seen.len(),
                                report.findings.len()
                            );
                        }
                        Err(e) => dev.error = Some(format!("{e:#}")),
                    }
                }
                if let Err(e) = status::write_devices(&state_dir, &d) {
                    eprintln!(
                        "iotscope gateway: {}: {e}",
                        status::devices_path(&state_dir).display()
                    );
                }
                drop(d);
                if let (Some(db), false) = (&db, found.is_empty()) {
                    let saved =
                        super::open_store(db).and_then(|mut s| Ok(s.save_findings(&found)?));
                    if let Err(e) = saved {
                        eprintln!("iotscope gateway: findings of {ip} not stored: {e:#}");
                    }
                }
            }
        });
    }
    eprintln!(
        "iotscope gateway: watching {} (quarantine at {} destinations in {}s for {}s)",
        gw.lan_interface,
        gw.threshold,
        gw.window.as_secs(),
        gw.timeout.as_secs()
    );
    let mut next_refresh = std::time::Instant::now() + gw.refresh;
    let mut next_neigh = std::time::Instant::now();
    let mut quarantined = 0u64;
    // Address -> MAC from the kernel's neighbour tables, as bytes: compared
    // with each frame's source without formatting anything per frame.
    let mut neigh: std::collections::HashMap<IpAddr, [u8; 6]> = std::collections::HashMap::new();
    let link = source.link();
    while !STOP.load(Ordering::Relaxed) {
        if let Some(frame) = source.next_frame()? {
            let ts = frame.ts_ns;
            let decoded = decode(link, frame.data);
            // A frame whose source MAC is not the one the neighbour table
            // has for its source address is forged (or relayed): it must
            // not quarantine the host it names.
            let forged = match (&decoded, link, frame.data.get(6..12)) {
                (Decoded::Ip(p), iotscope_wire::LinkType::Ethernet, Some(mac)) => neigh
                    .get(&p.src.to_ip())
                    .is_some_and(|known| known[..] != *mac),
                _ => false,
            };
            if let (Decoded::Ip(p), false) = (decoded, forged) {
                if let Some(v) = scan.observe(ts, &p) {
                    let fam = if v.src.is_ipv4() { "v4" } else { "v6" };
                    let script = format!(
                        "add element inet iotscope quarantine_{fam} {{ {} timeout {}s }}\n",
                        v.src,
                        gw.timeout.as_secs()
                    );
                    // The table may have been removed or replaced since the
                    // run began: never add to a set that is not ours.
                    let applied = match nft::current(nf) {
                        Ok(Some(_)) => nf.run(&script, false),
                        Ok(None) => Err(nft::NftError::Refused {
                            what: "add element".into(),
                            message: "table inet iotscope is not loaded".into(),
                        }),
                        Err(e) => Err(e),
                    };
                    let mut line = serde_json::to_value(&v)?;
                    line["ts"] = iotscope_telescope::time::rfc3339(ts).into();
                    line["src"] = v.src.to_string().into();
                    line["timeout_s"] = gw.timeout.as_secs().into();
                    line["applied"] = applied.is_ok().into();
                    if let Err(e) = writeln!(log, "{line}").and_then(|()| log.flush()) {
                        eprintln!(
                            "iotscope gateway: {}: {e}; the quarantine was: {line}",
                            log_path.display()
                        );
                    }
                    match applied {
                        Ok(()) => {
                            quarantined += 1;
                            eprintln!(
                                "iotscope gateway: quarantined {}: {}",
                                v.src, line["reason"]
                            );
                        }
                        Err(e) => {
                            // Not spared for a timeout it never served.
                            scan.forget(v.src);
                            eprintln!("iotscope gateway: could not quarantine {}: {e}", v.src)
                        }
                    }
                }
            }
        }
        let now = std::time::Instant::now();
        if now >= next_neigh {
            next_neigh = now + neighbour_poll;
            let text = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
            let mut d = devices.lock().unwrap_or_else(|e| e.into_inner());
            let mut changed = false;
            let mut entries = status::parse_proc_arp(&text, &gw.lan_interface);
            // IPv6 neighbours: iproute2 reads them over netlink.
            if let Ok(out) = std::process::Command::new("ip")
                .args(["-j", "-6", "neigh", "show", "dev", &gw.lan_interface])
                .stderr(std::process::Stdio::null())
                .output()
            {
                entries.extend(status::parse_ip_neigh_json(&String::from_utf8_lossy(
                    &out.stdout,
                )));
            }
            // The forged-frame check trusts the kernel's tables only.
            neigh = entries
                .iter()
                .filter_map(|(ip, mac)| Some((*ip, iotscope_survey::syn::netif::parse_mac(mac)?)))
                .collect();
            if let Some(path) = &gw.leases {
                match std::fs::read_to_string(path) {
                    Ok(t) => entries.extend(status::parse_dnsmasq_leases(&t)),
                    Err(e) => eprintln!("iotscope gateway: {}: {e}", path.display()),
                }
            }
            for (ip, mac) in entries {
                if !iotscope_gateway::config::within(&gw.lan_prefixes, ip)
                    || Some(ip) == gw.lan_address
                {
                    continue;
                }
                if d.contains_key(&ip.to_string()) {
                    continue;
                }
                eprintln!("iotscope gateway: new device {ip} ({mac})");
                d.insert(
                    ip.to_string(),
                    SeenDevice {
                        mac,
                        first_seen: iotscope_survey::now_rfc3339(),
                        ..Default::default()
                    },
                );
                changed = true;
                let _ = queue.send(ip);
            }
            if changed {
                if let Err(e) = status::write_devices(&gw.state_dir, &d) {
                    eprintln!(
                        "iotscope gateway: {}: {e}",
                        status::devices_path(&gw.state_dir).display()
                    );
                }
            }
        }
        if now >= next_refresh {
            next_refresh = now + gw.refresh;
            match plan(gw, db.as_deref()) {
                Ok((p, _)) => {
                    if let Err(e) = refresh(nf, &p, &gw.state_dir) {
                        eprintln!("iotscope gateway: refresh failed: {e:#}");
                    }
                }
                Err(e) => eprintln!("iotscope gateway: refresh failed: {e:#}"),
            }
        }
    }
    eprintln!("iotscope gateway: stopped ({quarantined} quarantined)");
    Ok(ExitCode::SUCCESS)
}
