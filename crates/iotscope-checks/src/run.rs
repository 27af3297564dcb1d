//! The checks of one host, from what the survey saw on it: identify the
//! device, derive the findings its banners already prove, then run the
//! credential and panel checks that were asked for.

use std::net::{IpAddr, SocketAddr};

use crate::dict::Pair;
use crate::findings::{severity, Evidence, Finding, Kind};
use crate::http::{panel_of, request, HttpLogin};
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

/// Runs the checks of one host.
pub async fn check_host(
    ip: IpAddr,
    seen: &[Seen],
    rules: &Rules,
    opts: &CheckOptions,
) -> HostReport {
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
    let http_login = HttpLogin { path: "/".into() };
    let mut groups: std::collections::BTreeMap<
        &str,
        Vec<(usize, &dyn crate::LoginWorker, SocketAddr)>,
    > = Default::default();
    for (i, s) in seen.iter().enumerate() {
        let worker: Option<&dyn crate::LoginWorker> = match s.service.as_str() {
            "telnet" if opts.credentials => Some(&TelnetLogin),
            "ssh" if opts.credentials => Some(&crate::ssh::SshLogin),
            "http" if opts.credentials && http_challenged(&s.banner) => Some(&http_login),
            _ => None,
        };
        if let Some(w) = worker {
            groups
                .entry(w.name())
                .or_default()
                .push((i, w, SocketAddr::new(ip, s.port)));
        }
    }
    let jobs: Vec<crate::BoxFuture<'_, Vec<(usize, LoginResult)>>> = groups
        .into_values()
        .map(|group| -> crate::BoxFuture<'_, Vec<(usize, LoginResult)>> {
            Box::pin(async move {
                let mut out = Vec::new();
                for (i, w, addr) in group {
                    out.push((
                        i,
                        check_logins(w, addr, opts.pairs.clone(), &opts.settings).await,
                    ));
                }
                out
            })
        })
        .collect();
    let mut logins: Vec<Option<LoginResult>> = vec![None; seen.len()];
    for (i, r) in crate::join_all(jobs).await.into_iter().flatten() {
        logins[i] = Some(r);
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
                let offered = offered_schemes(b);
                if http_challenged(b) {
                    if let Some(plain) = offered.iter().find(|s| *s == "basic" || *s == "digest") {
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
                } else if opts.panels || opts.credentials {
                    // One read-only look at the front page: a control panel,
                    // or a login form (which is never submitted).
                    if let Some(page) = request(addr, "GET", "/", None, &opts.settings).await {
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
                            c.add(
                                s.port,
                                "http",
                                Kind::CleartextAdmin,
                                ev("http", "an administration page over cleartext HTTP"),
                            );
                        } else if crate::http::has_password_field(&lower) {
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
                let what = b["device_identification"].to_string();
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
            "tls" => {
                let cert = &b["certificate"];
                if cert["self_signed"] == true {
                    c.add(
                        s.port,
                        "tls",
                        Kind::SelfSignedCertificate,
                        ev("tls", cert["subject"].as_str().unwrap_or("")),
                    );
                }
                if let Some(after) = cert["not_after"].as_str() {
                    if after < now().as_str() {
                        c.add(
                            s.port,
                            "tls",
                            Kind::ExpiredCertificate,
                            ev("tls", format!("not after {after}")),
                        );
                    }
                }
            }
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
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
    }
}
