//! `iotscope check HOST`: the owner's self-check of one device. Which
//! services it exposes, what it probably is, each finding in plain words
//! with what to do, in English or Japanese; `--baseline` adds a pass/fail
//! table for what a network check can verify of ETSI EN 303 645 and
//! JC-STAR ★1. Exit 0 when nothing is found, 1 with findings or when a
//! signal (SIGINT, SIGTERM) stopped the check (`"interrupted": true`;
//! what was found is still reported), 2 on error.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use iotscope_checks::findings::{explain, mask, Kind, Lang, Severity};
use iotscope_checks::rules::Seen;
use iotscope_checks::run::{check_host_until, HostReport};
use iotscope_export::terminal as term;
use iotscope_survey::{probe, ProbeSettings, Status};

/// The ports a home or office IoT device usually exposes.
pub const DEFAULT_PORTS: &str =
    "21,22,23,80,81,443,502,554,1883,2323,7547,8000,8080,8081,8443,8554,8888";

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The device: an address or a name (one host).
    host: String,
    /// Language of the report (default: from LANG / LC_ALL).
    #[arg(long, value_parser = ["ja", "en"])]
    lang: Option<String>,
    /// text (for people) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Add a certification-style table (ETSI EN 303 645, JC-STAR ★1).
    #[arg(long)]
    baseline: bool,
    /// Allow a public address (only for a device you own or run).
    #[arg(long)]
    i_own_this: bool,
    /// Exclusion (opt-out) file(s), ZMap's blocklist format, on top of the
    /// config's `[scope] exclude`: an excluded device is not checked.
    #[arg(long, value_name = "FILE")]
    exclude: Vec<std::path::PathBuf>,
    /// Ports to look at.
    #[arg(long, default_value = DEFAULT_PORTS)]
    ports: String,
    /// Connect and read timeout.
    #[arg(long, default_value = "3s", value_parser = crate::args::timeout)]
    timeout: Duration,
    #[command(flatten)]
    flags: super::checks::CheckFlags,
}

/// The owner's own network: loopback, private, link-local, unique-local.
fn is_own_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            let s = v.segments()[0];
            v.is_loopback() || (s & 0xffc0) == 0xfe80 || (s & 0xfe00) == 0xfc00
        }
    }
}

fn resolve(host: &str) -> anyhow::Result<IpAddr> {
    let host = host.trim();
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host:?}"))?
        .next()
        .map(|a| a.ip())
        .with_context(|| format!("{host:?} has no address"))
}

/// Probes `ports` of `ip` and runs the checks on what answers: the
/// services seen (by port) and the report. `stop` turning true ends every
/// phase at once (probes and logins in flight are dropped with their
/// connections). Used by `iotscope check` and by the gateway for each new
/// LAN device.
pub async fn examine(
    ip: IpAddr,
    ports: &[u16],
    settings: &ProbeSettings,
    rules: &iotscope_checks::rules::Rules,
    opts: &iotscope_checks::run::CheckOptions,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Seen>, HostReport) {
    let mut tasks = tokio::task::JoinSet::new();
    for &port in ports {
        let s = settings.clone();
        tasks.spawn(async move { probe(SocketAddr::new(ip, port), &s).await });
    }
    let mut seen = Vec::new();
    loop {
        let row = tokio::select! {
            r = tasks.join_next() => match r {
                Some(Ok(row)) => row,
                Some(Err(_)) => continue,
                None => break,
            },
            _ = stop.wait_for(|s| *s) => {
                tasks.abort_all();
                break;
            }
        };
        if let (Status::Open, Some(service), Some(banner)) = (row.status, row.service, row.banner) {
            seen.push(Seen {
                port: row.port,
                service: service.to_string(),
                banner,
            });
        }
    }
    seen.sort_by_key(|s| s.port);
    let mut stop_checks = stop.clone();
    let report = check_host_until(ip, &seen, rules, opts, async move {
        let _ = stop_checks.wait_for(|s| *s).await;
    })
    .await;
    (seen, report)
}

pub fn run(a: CheckArgs, config: &crate::config::Config) -> anyhow::Result<ExitCode> {
    let lang = match a.lang.as_deref() {
        Some("ja") => Lang::Ja,
        Some(_) => Lang::En,
        None => Lang::from_locale(
            &std::env::var("LC_ALL")
                .or_else(|_| std::env::var("LANG"))
                .unwrap_or_default(),
        ),
    };
    // Every spelling of an address is the same device (::ffff:10.0.0.5 is
    // 10.0.0.5), and the scope gate decides before any packet.
    let ip = iotscope_survey::canonical(resolve(&a.host)?);
    let exclusions = crate::config::read_exclusions(&config.scope.files(&a.exclude))?;
    match iotscope_survey::verdict(ip, &exclusions) {
        iotscope_survey::Verdict::Allowed => {}
        v => anyhow::bail!("{ip} is not checked: {v}"),
    }
    if !is_own_network(ip) && !a.i_own_this {
        anyhow::bail!(
            "{ip} is not on a private, link-local or loopback network; `iotscope check` looks only at \
             your own devices. If you own or run this one, add --i-own-this"
        );
    }
    let ports = iotscope_survey::parse_ports(&a.ports)?;
    let (opts, rules) = super::checks::options(
        &a.flags,
        (true, true),
        "iotscope-check/0.1 (owner's self-check)",
        a.timeout,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let settings = ProbeSettings {
        connect_timeout: a.timeout,
        read_timeout: a.timeout,
        user_agent: opts.settings.user_agent.clone(),
        grab: true,
    };
    let (seen, report, interrupted) = runtime.block_on(async {
        // SIGINT or SIGTERM ends the check in any phase: probes and logins
        // in flight are dropped with their connections, and the report
        // says what was found and what was not checked.
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let signals = {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
                let _ = stop_tx.send(true);
            })
        };
        let (seen, report) = examine(ip, &ports, &settings, &rules, &opts, stop.clone()).await;
        signals.abort();
        let interrupted = *stop.borrow();
        anyhow::Ok((seen, report, interrupted))
    })?;
    let baseline = a.baseline.then(|| baseline(&report, &seen));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if a.format == "json" {
        let findings: Vec<serde_json::Value> = report
            .findings
            .iter()
            .map(|f| {
                let mut v = super::checks::finding_json(f, false);
                let (what, todo) = explain(f.kind, lang);
                v["explanation"] = what.into();
                v["advice"] = todo.to_vec().into();
                v
            })
            .collect();
        let doc = serde_json::json!({
            "host": ip.to_string(),
            "device": report.device,
            "services": seen.iter().map(|s| serde_json::json!({"port": s.port, "service": s.service, "banner": s.banner})).collect::<Vec<_>>(),
            "findings": findings,
            "interrupted": interrupted,
            "baseline": baseline.as_ref().map(|b| b.iter().map(|r| serde_json::json!({
                "standard": r.standard, "id": r.id, "requirement": r.requirement(lang), "result": r.result.as_str(), "why": r.why
            })).collect::<Vec<_>>()),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        text(&mut out, ip, &seen, &report, lang)?;
        if let Some(b) = &baseline {
            baseline_text(&mut out, b, lang)?;
        }
        if interrupted {
            writeln!(
                out,
                "{}",
                if lang == Lang::Ja {
                    "中断されました: 点検は完了していません。上の結果は途中までのものです。"
                } else {
                    "Interrupted: the check did not finish; the results above are incomplete."
                }
            )?;
        }
    }
    out.flush()?;
    Ok(
        if interrupted || report.findings.iter().any(|f| f.severity > Severity::Info) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn sev(s: Severity, lang: Lang) -> &'static str {
    match (s, lang) {
        (Severity::Critical, Lang::En) => "CRITICAL",
        (Severity::High, Lang::En) => "HIGH",
        (Severity::Medium, Lang::En) => "MEDIUM",
        (Severity::Low, Lang::En) => "LOW",
        (Severity::Info, Lang::En) => "INFO",
        (Severity::Critical, Lang::Ja) => "緊急",
        (Severity::High, Lang::Ja) => "高",
        (Severity::Medium, Lang::Ja) => "中",
        (Severity::Low, Lang::Ja) => "低",
        (Severity::Info, Lang::Ja) => "情報",
    }
}

fn text(
    out: &mut impl Write,
    ip: IpAddr,
    seen: &[Seen],
    r: &HostReport,
    lang: Lang,
) -> std::io::Result<()> {
    let ja = lang == Lang::Ja;
    writeln!(
        out,
        "{} {ip}",
        if ja {
            "iotscope 機器点検:"
        } else {
            "iotscope device check:"
        }
    )?;
    match &r.device {
        Some(d) => writeln!(
            out,
            "{} {} {} ({}, {})",
            if ja {
                "推定される機器:"
            } else {
                "Probably:"
            },
            // Device text (model from a realm or title) is hostile until
            // escaped: no control character reaches the terminal.
            term(&d.vendor),
            term(d.model.as_deref().unwrap_or("")),
            term(&d.device_type),
            serde_json::to_value(d.criticality)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        )?,
        None => writeln!(
            out,
            "{}",
            if ja {
                "推定される機器: 不明"
            } else {
                "Probably: not recognised"
            }
        )?,
    }
    if seen.is_empty() {
        writeln!(
            out,
            "{}",
            if ja {
                "外部から接続できるサービスは見つかりませんでした。"
            } else {
                "No service answered on the ports checked."
            }
        )?;
    } else {
        writeln!(
            out,
            "{}",
            if ja {
                "接続できるサービス:"
            } else {
                "Services that answer:"
            }
        )?;
        for s in seen {
            let detail = match s.service.as_str() {
                "http" => s.banner["server"]
                    .as_str()
                    .or(s.banner["title"].as_str())
                    .unwrap_or("")
                    .to_string(),
                "ssh" => s.banner["version"].as_str().unwrap_or("").to_string(),
                "telnet" => s.banner["prompt"].as_str().unwrap_or("").trim().to_string(),
                "tls" => s.banner["certificate"]["subject"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {:>5}/tcp  {:<7} {}",
                s.port,
                s.service,
                term(&detail)
            )?;
        }
    }
    if r.findings.is_empty() {
        writeln!(
            out,
            "\n{}",
            if ja {
                "問題は見つかりませんでした。"
            } else {
                "Nothing to fix was found."
            }
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "\n{} ({})",
        if ja {
            "見つかった問題"
        } else {
            "What was found"
        },
        r.findings.len()
    )?;
    for (i, f) in r.findings.iter().enumerate() {
        let (what, todo) = explain(f.kind, lang);
        writeln!(
            out,
            "\n{}. [{}] {} ({}/tcp {})",
            i + 1,
            sev(f.severity, lang),
            f.kind.as_str(),
            f.port,
            f.service
        )?;
        writeln!(out, "   {what}")?;
        if let Some(u) = &f.evidence.user {
            let u = term(u);
            let pw = f.evidence.password.as_deref().map(mask);
            match (pw, ja) {
                (Some(p), false) => writeln!(
                    out,
                    "   Logged in as {u} with password {p} (then closed at once)."
                )?,
                (Some(p), true) => writeln!(
                    out,
                    "   ID {u}・パスワード {p} でログインできました（直ちに切断しました）。"
                )?,
                (None, false) => writeln!(
                    out,
                    "   Logged in as {u} without a password (then closed at once)."
                )?,
                (None, true) => writeln!(
                    out,
                    "   ID {u} でパスワードなしにログインできました（直ちに切断しました）。"
                )?,
            }
        } else if !f.evidence.matched.is_empty() {
            let m: String = f
                .evidence
                .matched
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect();
            writeln!(out, "   {}: {m}", if ja { "根拠" } else { "Evidence" })?;
        }
        writeln!(out, "   {}", if ja { "対策:" } else { "What to do:" })?;
        for t in todo {
            writeln!(out, "   - {t}")?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    NotVerifiable,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotVerifiable => "not_verifiable",
        }
    }
}

struct Row {
    standard: &'static str,
    id: &'static str,
    en: &'static str,
    ja: &'static str,
    result: Verdict,
    why: String,
}

impl Row {
    fn requirement(&self, lang: Lang) -> &'static str {
        if lang == Lang::Ja {
            self.ja
        } else {
            self.en
        }
    }
}

/// What a network check can say about each requirement.
fn baseline(r: &HostReport, seen: &[Seen]) -> Vec<Row> {
    let has = |k: Kind| r.findings.iter().any(|f| f.kind == k);
    let list = |ks: &[Kind]| {
        r.findings
            .iter()
            .filter(|f| ks.contains(&f.kind))
            .map(|f| format!("{} on {}/tcp", f.kind.as_str(), f.port))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let logins = seen.iter().any(|s| {
        s.service == "telnet" || (s.service == "http" && !s.banner["www_authenticate"].is_null())
    });
    let default_pw = if has(Kind::DefaultCredential) {
        (Verdict::Fail, list(&[Kind::DefaultCredential]))
    } else if logins {
        (Verdict::Pass, "no dictionary pair logged in".to_string())
    } else {
        (
            Verdict::NotVerifiable,
            "no password login reachable from the network".to_string(),
        )
    };
    let brute = if has(Kind::LockoutAbsent) {
        (Verdict::Fail, list(&[Kind::LockoutAbsent]))
    } else if has(Kind::LoginLockout) {
        (Verdict::Pass, list(&[Kind::LoginLockout]))
    } else {
        (
            Verdict::NotVerifiable,
            "too few failed logins were made to tell".to_string(),
        )
    };
    let unauth = [
        Kind::NoAuthentication,
        Kind::OpenControlPanel,
        Kind::AnonymousMqtt,
        Kind::ExposedModbus,
    ];
    let access = if unauth.iter().any(|k| has(*k)) {
        (Verdict::Fail, list(&unauth))
    } else if seen.is_empty() {
        (Verdict::NotVerifiable, "no service answered".to_string())
    } else {
        (
            Verdict::Pass,
            "every service that answered asked for a login".to_string(),
        )
    };
    let clear = [
        Kind::CleartextAdmin,
        Kind::ExposedTelnet,
        Kind::AnonymousMqtt,
    ];
    let secure = if clear.iter().any(|k| has(*k)) {
        (Verdict::Fail, list(&clear))
    } else if seen.is_empty() {
        (Verdict::NotVerifiable, "no service answered".to_string())
    } else {
        (
            Verdict::Pass,
            "only encrypted administration seen".to_string(),
        )
    };
    let exposed = seen
        .iter()
        .map(|s| format!("{}/{}", s.port, s.service))
        .collect::<Vec<_>>()
        .join(", ");
    let minimal = if has(Kind::ExposedTelnet) || has(Kind::ExposedModbus) {
        (
            Verdict::Fail,
            format!(
                "legacy or debug interfaces exposed: {}",
                list(&[Kind::ExposedTelnet, Kind::ExposedModbus])
            ),
        )
    } else {
        (
            Verdict::NotVerifiable,
            format!("which interfaces are unused is the maker's to say; exposed: {exposed}"),
        )
    };
    let row = |standard, id, en, ja, (result, why): (Verdict, String)| Row {
        standard,
        id,
        en,
        ja,
        result,
        why,
    };
    let nv = |standard, id, en, ja| Row {
        standard,
        id,
        en,
        ja,
        result: Verdict::NotVerifiable,
        why: "not visible from the network".into(),
    };
    vec![
        row(
            "ETSI EN 303 645",
            "5.1-1",
            "No universal default passwords",
            "共通のデフォルトパスワードを使わない",
            default_pw.clone(),
        ),
        row(
            "ETSI EN 303 645",
            "5.1-5",
            "Brute-force protection of network logins",
            "ネットワーク経由の認証に総当たり対策がある",
            brute.clone(),
        ),
        row(
            "ETSI EN 303 645",
            "5.5-1",
            "Secure communication (security-relevant traffic encrypted)",
            "通信の安全確保（重要な通信の暗号化）",
            secure,
        ),
        row(
            "ETSI EN 303 645",
            "5.6-1",
            "Minimise exposed attack surfaces (unused interfaces disabled)",
            "攻撃対象の最小化（未使用のインターフェースを無効化）",
            minimal,
        ),
        nv(
            "ETSI EN 303 645",
            "5.2-1",
            "Vulnerability disclosure policy",
            "脆弱性開示ポリシーの公開",
        ),
        nv(
            "ETSI EN 303 645",
            "5.3",
            "Software kept updated",
            "ソフトウェアの更新",
        ),
        nv(
            "ETSI EN 303 645",
            "5.4-1",
            "Secure storage of credentials",
            "認証情報の安全な保存",
        ),
        row(
            "JC-STAR ★1",
            "S1.1-01",
            "Authenticated access control for access over IP",
            "IP 通信を介したアクセスに適切な認証に基づくアクセス制御",
            access,
        ),
        row(
            "JC-STAR ★1",
            "S1.1-02",
            "Default passwords meet the criteria (not common)",
            "デフォルトパスワードが基準を満たす（共通でない）",
            default_pw,
        ),
        nv(
            "JC-STAR ★1",
            "S1.1-03",
            "Authentication values can be changed",
            "認証値を変更できる",
        ),
        row(
            "JC-STAR ★1",
            "S1.1-04",
            "Brute-force attacks on network logins made difficult",
            "ネットワーク経由の認証への総当たり攻撃を困難にする",
            brute,
        ),
        nv(
            "JC-STAR ★1",
            "S1.1-05",
            "Vulnerability disclosure policy published",
            "脆弱性開示ポリシーの公開",
        ),
    ]
}

fn baseline_text(out: &mut impl Write, rows: &[Row], lang: Lang) -> std::io::Result<()> {
    let ja = lang == Lang::Ja;
    writeln!(
        out,
        "\n{}",
        if ja {
            "基準との対応（ネットワークから確認できる項目のみ判定）"
        } else {
            "Baseline (only what a network check can verify is judged)"
        }
    )?;
    for r in rows {
        let verdict = match (r.result, ja) {
            (Verdict::Pass, false) => "PASS",
            (Verdict::Fail, false) => "FAIL",
            (Verdict::NotVerifiable, false) => "n/v",
            (Verdict::Pass, true) => "適合",
            (Verdict::Fail, true) => "不適合",
            (Verdict::NotVerifiable, true) => "確認不可",
        };
        writeln!(
            out,
            "  {:<16} {:<8} {:<6} {}  ({})",
            r.standard,
            r.id,
            verdict,
            r.requirement(lang),
            r.why
        )?;
    }
    Ok(())
}
