//! The checks of one host, from what the survey saw on it: identify the
//! device, derive the findings its banners already prove, then run the
//! credential and panel checks that were asked for.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use crate::dict::Pair;
use crate::findings::{severity, Evidence, Finding, Kind};
use crate::http::{panel_of, request_to, HttpLogin, Web};
use crate::rules::{Criticality, Identity, Rules, Seen};
use crate::telnet::TelnetLogin;
use crate::{check_logins, CheckSettings, LoginResult};

/// Failed attempts without any lockout or slow-down after which
/// `lockout_absent` is reported.
pub const LOCKOUT_ABSENT_AFTER: usize = 10;

/// Which checks run.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Try the dictionary on telnet and HTTP Basic/Digest.
    pub credentials: bool,
    /// Look for open control panels (GET only).
    pub panels: bool,
    /// The dictionary.
    pub pairs: Vec<Pair>,
    /// Limits.
    pub settings: CheckSettings,
}

/// What the checks of one host found.
#[derive(Clone, Debug)]
pub struct HostReport {
    /// Address.
    pub ip: IpAddr,
    /// What it probably is.
    pub device: Option<Identity>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
}

fn now() -> String {
    humantime_now()
}

fn humantime_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // RFC 3339 UTC, seconds precision, without a date library.
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

struct Collector<'a> {
    ip: IpAddr,
    device: &'a Option<Identity>,
    out: Vec<Finding>,
}

impl Collector<'_> {
    fn add(&mut self, port: u16, service: &str, kind: Kind, evidence: Evidence) {
        let criticality = self
            .device
            .as_ref()
            .map_or(Criticality::Unknown, |d| d.criticality);
        if self.out.iter().any(|f| f.port == port && f.kind == kind) {
            return;
        }
        self.out.push(Finding {
            ip: self.ip.to_string(),
            port,
            service: service.to_string(),
            kind,
            severity: severity(kind, criticality),
            device: self.device.clone(),
            evidence,
        });
    }
}

fn ev(protocol: &str, matched: impl Into<String>) -> Evidence {
    Evidence {
        protocol: protocol.into(),
        ts: now(),
        matched: matched.into(),
        user: None,
        password: None,
        attempts: None,
        entry: None,
    }
}

/// Every authentication scheme the survey saw offered (lower-cased): the
/// banner's `schemes` (every challenge of every header), else its first
/// `scheme`.
fn offered_schemes(banner: &serde_json::Value) -> Vec<String> {
    let auth = &banner["www_authenticate"];
    match auth["schemes"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
            .collect(),
        _ => auth["scheme"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_ascii_lowercase()])
            .unwrap_or_default(),
    }
}

/// True when the front page asked for HTTP authentication (a 401, or a
/// challenge in any header).
fn http_challenged(banner: &serde_json::Value) -> bool {
    banner["status_code"] == 401 || !offered_schemes(banner).is_empty()
}

/// A host's checks end after this many read timeouts (two services'
/// deadlines, [`crate::SERVICE_DEADLINE_READS`]): a device with many
/// telnet ports, each slow, cannot hold a run.
pub const HOST_DEADLINE_READS: u32 = 2 * crate::SERVICE_DEADLINE_READS;

/// Runs the checks of one host.
pub async fn check_host(
    ip: IpAddr,
    seen: &[Seen],
    rules: &Rules,
    opts: &CheckOptions,
) -> HostReport {
    check_host_until(ip, seen, rules, opts, std::future::pending::<()>()).await
}

/// Aborts a spawned task when dropped, so a check dropped by its caller
/// (a signal, a deadline, an opt-out) leaves no login running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}

/// Runs the checks of one host until they end, the host's deadline
/// ([`HOST_DEADLINE_READS`] read timeouts) passes, or `stop` resolves (a
/// signal). What was found is kept either way: every service whose check
/// did not reach a verdict is `check_incomplete` with the reason, and a
/// check that failed inside iotscope (a panic on bytes nobody foresaw)
/// costs that service's verdict, not the host.
pub async fn check_host_until<F>(
    ip: IpAddr,
    seen: &[Seen],
    rules: &Rules,
    opts: &CheckOptions,
    stop: F,
) -> HostReport
where
    F: std::future::Future<Output = ()> + Send,
{
    let device = rules.identify(seen);
    let mut c = Collector {
        ip,
        device: &device,
        out: Vec::new(),
    };
    // Protocols are checked at once, the services of one protocol one after
    // another: devices count failed logins per device and protocol (a
    // BusyBox lockout covers telnet on 23 and 2323 alike), so checking two
    // telnet ports in parallel would lock a device out of both faster.
    // A web interface the survey found inside TLS (`"tls": true`: HTTPS on
    // a port we expected plain HTTP on) has its front page fetched over
    // TLS here; its answer stands in for the plain HTTP banner.
    let mut fronts: Vec<Option<crate::http::Response>> = vec![None; seen.len()];
    let mut banners: Vec<serde_json::Value> = seen.iter().map(|s| s.banner.clone()).collect();
    for (i, s) in seen.iter().enumerate() {
        if s.service == "http" && s.banner["tls"] == true && (opts.credentials || opts.panels) {
            let web = Web {
                addr: SocketAddr::new(ip, s.port),
                tls: true,
            };
            if let Some(r) = request_to(web, "GET", "/", None, &opts.settings).await {
                let schemes: Vec<String> =
                    crate::auth::parse_challenges(r.headers_named("www-authenticate"))
                        .into_iter()
                        .map(|c| c.scheme.to_ascii_lowercase())
                        .collect();
                banners[i]["status_code"] = r.code.into();
                banners[i]["www_authenticate"] = serde_json::json!({ "schemes": schemes });
                fronts[i] = Some(r);
            }
        }
    }
    type Job = (usize, Arc<dyn crate::LoginWorker>, SocketAddr);
    let mut groups: std::collections::BTreeMap<&str, Vec<Job>> = Default::default();
    let mut checked = vec![false; seen.len()];
    for (i, s) in seen.iter().enumerate() {
        let worker: Option<Arc<dyn crate::LoginWorker>> = match s.service.as_str() {
            "telnet" if opts.credentials => Some(Arc::new(TelnetLogin)),
            "ssh" if opts.credentials => Some(Arc::new(crate::ssh::SshLogin)),
            "http" if opts.credentials && http_challenged(&banners[i]) => {
                Some(Arc::new(HttpLogin {
                    path: "/".into(),
                    tls: s.banner["tls"] == true,
                }))
            }
            _ => None,
        };
        if let Some(w) = worker {
            checked[i] = true;
            groups
                .entry(w.name())
                .or_default()
                .push((i, w, SocketAddr::new(ip, s.port)));
        }
    }
    let results: Arc<Mutex<Vec<Option<LoginResult>>>> =
        Arc::new(Mutex::new(vec![None; seen.len()]));
    let mut set = tokio::task::JoinSet::new();
    for group in groups.into_values() {
        let (results, pairs, settings) =
            (results.clone(), opts.pairs.clone(), opts.settings.clone());
        set.spawn(async move {
            for (i, w, addr) in group {
                let name = w.name();
                let (pairs, settings) = (pairs.clone(), settings.clone());
                let mut task = AbortOnDrop(tokio::spawn(async move {
                    check_logins(&*w, addr, pairs, &settings).await
                }));
                let r = match (&mut task.0).await {
                    Ok(r) => r,
                    Err(e) => LoginResult::Incomplete {
                        attempts: 0,
                        reason: format!(
                            "the {name} check failed inside iotscope ({}); please report it",
                            panic_text(e)
                        ),
                    },
                };
                results.lock().expect("results")[i] = Some(r);
            }
        });
    }
    let deadline = opts.settings.read_timeout * HOST_DEADLINE_READS;
    let stopped: Option<String> = {
        let all = async { while set.join_next().await.is_some() {} };
        tokio::select! {
            _ = all => None,
            _ = stop => Some("stopped by a signal before a verdict".to_string()),
            _ = tokio::time::sleep(deadline) => Some(format!(
                "no verdict within the host's deadline of {} s",
                deadline.as_secs()
            )),
        }
    };
    // Dropping the set aborts the logins still running, and with them
    // their connections.
    drop(set);
    let mut logins = std::mem::take(&mut *results.lock().expect("results"));
    if let Some(why) = &stopped {
        for (i, slot) in logins.iter_mut().enumerate() {
            if checked[i] && slot.is_none() {
                *slot = Some(LoginResult::Incomplete {
                    attempts: 0,
                    reason: why.clone(),
                });
            }
        }
    }
    for (i, s) in seen.iter().enumerate() {
        let addr = SocketAddr::new(ip, s.port);
        let b = &s.banner;
        let login = logins[i].take();
        match s.service.as_str() {
            "telnet" => {
                c.add(
                    s.port,
                    "telnet",
                    Kind::ExposedTelnet,
                    ev("telnet", b["prompt"].as_str().unwrap_or("").trim()),
                );
                c.add(
                    s.port,
                    "telnet",
                    Kind::CleartextAdmin,
                    ev("telnet", "a login over telnet (cleartext)"),
                );
                if let Some(r) = login {
                    login_findings(&mut c, s.port, "telnet", r, &opts.pairs);
                }
            }
            "http" => {
                let tls = b["tls"] == true;
                if tls {
                    certificate_findings(&mut c, s.port, "http", &b["certificate"]);
                    if fronts[i].is_none() && (opts.credentials || opts.panels) {
                        c.add(
                            s.port,
                            "http",
                            Kind::CheckIncomplete,
                            ev(
                                "http",
                                "HTTPS on a port we expected plain HTTP on: no TLS 1.2 or 1.3 \
                                 handshake, or no HTTP answer inside it",
                            ),
                        );
                        continue;
                    }
                }
                let b = &banners[i];
                let web = Web { addr, tls };
                let offered = offered_schemes(b);
                if http_challenged(b) {
                    if let Some(plain) = offered
                        .iter()
                        .find(|s| !tls && (*s == "basic" || *s == "digest"))
                    {
                        c.add(
                            s.port,
                            "http",
                            Kind::CleartextAdmin,
                            ev("http", format!("HTTP {plain} login over cleartext HTTP")),
                        );
                    }
                    // The worker read every challenge: a login, a refusal,
                    // or "could not check" (Negotiate, NTLM, Bearer only).
                    if let Some(r) = login {
                        login_findings(&mut c, s.port, "http", r, &opts.pairs);
                    }
                } else if let (Some(why), true) = (&stopped, opts.panels) {
                    c.add(
                        s.port,
                        "http",
                        Kind::CheckIncomplete,
                        ev("http", format!("the panel check did not run: {why}")),
                    );
                } else if opts.panels || opts.credentials {
                    // One read-only look at the front page: a control panel,
                    // or a login form (which is never submitted).
                    let page = match fronts[i].take() {
                        Some(front) => Some(front),
                        None => request_to(web, "GET", "/", None, &opts.settings).await,
                    };
                    if let Some(page) = page {
                        let lower = page.body.to_ascii_lowercase();
                        if let Some(panel) = panel_of(&page.body).filter(|_| page.code == 200) {
                            if opts.panels {
                                let what = format!(
                                    "{} : {}",
                                    panel.title.unwrap_or_default(),
                                    panel.controls.join("; ")
                                );
                                c.add(
                                    s.port,
                                    "http",
                                    Kind::OpenControlPanel,
                                    ev("http", what.clone()),
                                );
                                c.add(
                                    s.port,
                                    "http",
                                    Kind::NoAuthentication,
                                    ev("http", format!("the panel needs no login: {what}")),
                                );
                            }
                            if !tls {
                                c.add(
                                    s.port,
                                    "http",
                                    Kind::CleartextAdmin,
                                    ev("http", "an administration page over cleartext HTTP"),
                                );
                            }
                        } else if !tls && crate::http::has_password_field(&lower) {
                            c.add(
                                s.port,
                                "http",
                                Kind::CleartextAdmin,
                                ev("http", "a login form over cleartext HTTP (not submitted)"),
                            );
                        }
                    }
                }
            }
            "ssh" => {
                if let Some(r) = login {
                    login_findings(&mut c, s.port, "ssh", r, &opts.pairs);
                }
            }
            "mqtt" if b["anonymous_accepted"] == true => {
                c.add(
                    s.port,
                    "mqtt",
                    Kind::AnonymousMqtt,
                    ev("mqtt", "CONNACK return code 0 to an anonymous CONNECT"),
                );
            }
            "modbus"
                if b.get("device_identification").is_some() || b.get("exception").is_some() =>
            {
                // What proved it: the identification, else the plainer
                // answer (an exception, a register read).
                let what = match &b["device_identification"] {
                    serde_json::Value::Null => b.to_string(),
                    id => id.to_string(),
                };
                c.add(
                    s.port,
                    "modbus",
                    Kind::ExposedModbus,
                    ev("modbus", format!("Modbus/TCP answered: {what}")),
                );
                c.add(
                    s.port,
                    "modbus",
                    Kind::NoAuthentication,
                    ev("modbus", "Modbus/TCP has no authentication"),
                );
            }
            "tls" => certificate_findings(&mut c, s.port, "tls", &b["certificate"]),
            _ => {}
        }
    }
    let mut findings = c.out;
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.port.cmp(&b.port)));
    HostReport {
        ip,
        device,
        findings,
    }
}

/// What a certificate the survey recorded proves: self-signed, expired.
fn certificate_findings(c: &mut Collector<'_>, port: u16, service: &str, cert: &serde_json::Value) {
    if cert["self_signed"] == true {
        c.add(
            port,
            service,
            Kind::SelfSignedCertificate,
            ev("tls", cert["subject"].as_str().unwrap_or("")),
        );
    }
    if let Some(after) = cert["not_after"].as_str() {
        if after < now().as_str() {
            c.add(
                port,
                service,
                Kind::ExpiredCertificate,
                ev("tls", format!("not after {after}")),
            );
        }
    }
}

fn login_findings(c: &mut Collector<'_>, port: u16, service: &str, r: LoginResult, pairs: &[Pair]) {
    match r {
        LoginResult::Success {
            pair,
            no_password,
            evidence,
            attempts,
        } => {
            let kind = if no_password {
                Kind::NoAuthentication
            } else {
                Kind::DefaultCredential
            };
            let mut e = ev(service, evidence);
            // A password-only login has no user: its entry is the first
            // pair with that password.
            e.entry = pairs
                .iter()
                .position(|p| *p == pair || pair.user.is_empty() && p.password == pair.password)
                .map(|i| i + 1);
            e.user = (!pair.user.is_empty()).then_some(pair.user);
            e.password = (!no_password).then_some(pair.password);
            e.attempts = Some(attempts);
            c.add(port, service, kind, e);
        }
        LoginResult::Locked { attempts, evidence } => {
            let mut e = ev(service, evidence);
            e.attempts = Some(attempts);
            c.add(port, service, Kind::LoginLockout, e);
        }
        LoginResult::Exhausted { attempts } => {
            if attempts >= LOCKOUT_ABSENT_AFTER && service == "telnet" {
                let mut e = ev(
                    service,
                    format!("{attempts} failed logins, no lockout or slow-down"),
                );
                e.attempts = Some(attempts);
                c.add(port, service, Kind::LockoutAbsent, e);
            }
        }
        LoginResult::Unreachable { attempts } => {
            let mut e = ev(
                service,
                format!("no verdict: the service stopped answering or showed no login prompt we recognise ({attempts} attempts judged)"),
            );
            e.attempts = Some(attempts);
            c.add(port, service, Kind::CheckIncomplete, e);
        }
        LoginResult::Incomplete { reason, .. } => {
            c.add(port, service, Kind::CheckIncomplete, ev(service, reason));
        }
        LoginResult::AcceptsAny { pair, evidence } => {
            let mut e = ev(
                service,
                format!("a random pair no device ships logged in: {evidence}"),
            );
            e.user = Some(pair.user);
            e.attempts = Some(1);
            c.add(port, service, Kind::AcceptsAnyCredentials, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A telnet service that shows a login prompt, then trickles a byte
    /// every `every` for ever (a console streaming logs).
    async fn trickler(every: Duration) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = c.write_all(b"\r\nlogin: ").await;
                    for _ in 0..10_000 {
                        tokio::time::sleep(every).await;
                        if c.write_all(b".").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn opts(read_timeout: Duration) -> CheckOptions {
        CheckOptions {
            credentials: true,
            panels: false,
            pairs: crate::dict::builtin(),
            settings: CheckSettings {
                connect_timeout: Duration::from_secs(1),
                read_timeout,
                max_attempts: 100,
                per_host: 1,
                user_agent: "test".into(),
            },
        }
    }

    fn telnet(port: u16) -> Seen {
        Seen {
            port,
            service: "telnet".into(),
            banner: serde_json::json!({"banner": "login: ", "prompt": "login:"}),
        }
    }

    fn incomplete(r: &HostReport) -> Vec<(u16, String)> {
        r.findings
            .iter()
            .filter(|f| f.kind == Kind::CheckIncomplete)
            .map(|f| (f.port, f.evidence.matched.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_host_ends_at_its_deadline_with_what_was_found() {
        // Three trickling telnet ports are checked one after another, each
        // up to its service deadline (30 reads of 40 ms = 1.2 s); the host's
        // deadline (60 reads = 2.4 s) ends the third.
        let read = Duration::from_millis(40);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(telnet(trickler(Duration::from_millis(10)).await));
        }
        let started = Instant::now();
        let r = check_host(
            "127.0.0.1".parse().unwrap(),
            &seen,
            &Rules::shipped(),
            &opts(read),
        )
        .await;
        let took = started.elapsed();
        assert!(
            took < read * HOST_DEADLINE_READS + Duration::from_secs(1),
            "{took:?}"
        );
        let inc = incomplete(&r);
        assert_eq!(inc.len(), 3, "{inc:?}");
        assert!(
            inc.iter().any(|(_, why)| why.contains("host's deadline")),
            "{inc:?}"
        );
        // The banner findings stay.
        assert_eq!(
            r.findings
                .iter()
                .filter(|f| f.kind == Kind::ExposedTelnet)
                .count(),
            3
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_checks_at_once_keeping_what_was_found() {
        let port = trickler(Duration::from_millis(10)).await;
        let started = Instant::now();
        let r = check_host_until(
            "127.0.0.1".parse().unwrap(),
            &[telnet(port)],
            &Rules::shipped(),
            &opts(Duration::from_secs(5)),
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let inc = incomplete(&r);
        assert_eq!(inc.len(), 1, "{inc:?}");
        assert!(inc[0].1.contains("signal"), "{inc:?}");
        assert!(r.findings.iter().any(|f| f.kind == Kind::ExposedTelnet));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
