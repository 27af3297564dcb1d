//! The emulated devices: what each one is, what it runs and what is weak
//! about it. This is also the manifest, the ground truth tests check the
//! survey against.
//!
//! Invariant: every behaviour a device's listeners show is decided here,
//! from the seed, so the manifest describes exactly what answers.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The Mirai scanner's default credentials, one `user:password` a line.
pub const MIRAI_CREDENTIALS: &str = include_str!("../../../data/mirai-creds.txt");

/// Parsed [`MIRAI_CREDENTIALS`], in file order, duplicates removed.
pub fn mirai_pairs() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in MIRAI_CREDENTIALS.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((u, p)) = line.split_once(':') {
            let pair = (u.to_string(), p.to_string());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// Kind of device, as the manifest names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Home router: telnet and a web admin.
    Router,
    /// IP camera: telnet and a web admin.
    Camera,
    /// Digital video recorder: telnet and a web admin.
    Dvr,
    /// The seed's hospital water-equipment data logger: an open web panel with RUN/STOP.
    WaterLogger,
    /// The seed's factory power monitor: an open web panel for alarms, proxy, reboot, logs.
    PowerMonitor,
    /// Industrial controller on Modbus/TCP.
    Plc,
    /// MQTT broker accepting anonymous clients.
    MqttBroker,
    /// A device with an SSH server (version banner).
    SshDevice,
    /// Nothing useful: closed, accept-and-close, garbage or a tarpit.
    Noise,
    /// A telnet login that takes any user and password (a honeypot, or a
    /// device whose authentication is broken), after hydra's and Cowrie's
    /// reports. A correct check reports `accepts_any_credentials` after one
    /// login, never a default credential. Only in a `--spec` lab.
    AnyLogin,
    /// A DVR whose web front page is a login form written the way old
    /// firmware writes HTML (unquoted attributes, a Reset button), after
    /// nuclei-templates' false positives. A correct check reports a login
    /// over cleartext HTTP, never an open control panel. Only in a `--spec` lab.
    LegacyLoginPage,
    /// A router console that asks for a password only, behind a banner of
    /// `#` lines ("User Access Verification", Cisco `line vty`), and asks
    /// again after a wrong one, after thc-hydra PRs #1053 and #675. A
    /// correct check sends no user name and reports `default_credential`.
    /// Only in a `--spec` lab.
    ConsoleRouter,
    /// A camera whose legal banner says "access is denied; failed logins
    /// are recorded" and whose post-login MOTD says "There were 3 failed
    /// login attempts", with the shell prompt two seconds after it, after
    /// thc-hydra PR #1078. A correct check reports `default_credential`.
    /// Only in a `--spec` lab.
    MotdCamera,
    /// A DVR of old Chinese firmware: silent until it receives a line,
    /// then prompts and messages in GBK (`用户名：`, `密码：`, `密码错误`).
    /// A correct check reports `default_credential`. Only in a `--spec` lab.
    LegacyConsoleDvr,
    /// A Dropbear radio with an RSA host key only (Ubiquiti airOS, AREDN
    /// issue #312) and a password login ubnt:ubnt. A correct check reports
    /// `default_credential`. Only in a `--spec` lab built with SSH.
    RsaRadio,
    /// An sshd that offers keyboard-interactive and publickey, not
    /// password (FreeBSD's default, PAM-based embedded servers; nmap issue
    /// #1091), with a default login. A correct check answers the
    /// `Password:` prompt and reports `default_credential`. Only in a
    /// `--spec` lab built with SSH.
    KbdintSshd,
    /// An IP camera that serves its web interface over TLS on port 8080,
    /// where clients expect plain HTTP, with a self-signed certificate and
    /// a Basic login with a default pair. A correct check retries with
    /// TLS, records the certificate and reports `default_credential`,
    /// `self_signed_certificate`. Only in a `--spec` lab.
    HttpsCamera,
    /// An NVR whose 401 offers Negotiate first and Digest SHA-256 second
    /// (RFC 7616), with a default login. A correct check answers the
    /// Digest challenge and reports `default_credential` and
    /// `cleartext_admin`. Only in a `--spec` lab.
    EnterpriseNvr,
    /// A router with a strong Basic password whose refusals are a 302 to
    /// `/login?error=1` (after hydra's and medusa's false positives). A
    /// correct check reports `cleartext_admin` only. Only in a `--spec` lab.
    RedirectingRouter,
    /// A Modbus/TCP controller without Read Device Identification (function
    /// 43): it hangs up on it, as many older PLC stacks do, and answers
    /// register reads. A correct check still reports `exposed_modbus` and
    /// `no_authentication`. Only in a `--spec` lab.
    LegacyPlc,
}

/// Protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// Telnet with a login prompt.
    Telnet,
    /// HTTP.
    Http,
    /// SSH (version exchange).
    Ssh,
    /// Modbus/TCP.
    Modbus,
    /// MQTT.
    Mqtt,
    /// Accepts and closes at once.
    AcceptClose,
    /// Sends random bytes and closes.
    Garbage,
    /// Accepts and never answers.
    Tarpit,
    /// HTTP inside TLS (a self-signed certificate), on whatever port the
    /// device chose, often one clients expect plain HTTP on.
    Https,
}

/// How a device's web server asks for credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebAuth {
    /// HTTP Basic.
    Basic,
    /// HTTP Digest (RFC 7616, MD5, qop=auth).
    Digest,
    /// An HTML login form posting to /login.
    Form,
    /// No authentication at all (the panels).
    None,
}

/// One listener of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// TCP port.
    pub port: u16,
    /// Always "tcp".
    pub proto: String,
    /// What answers there.
    pub service: Service,
}

/// A login the device accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Port of the service it opens.
    pub port: u16,
    /// Service it opens.
    pub service: Service,
    /// User name.
    pub user: String,
    /// Password ("" when none is asked).
    pub password: String,
}

/// Behaviour knobs of a device's telnet service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelnetBehaviour {
    /// Text sent before the first prompt ("" for none).
    pub banner: String,
    /// The login prompt, e.g. "dvr login: ".
    pub login_prompt: String,
    /// The password prompt.
    pub password_prompt: String,
    /// Shell prompt after a successful login.
    pub shell_prompt: String,
    /// Seconds to wait before saying "Login incorrect".
    pub fail_delay_ms: u64,
    /// Seconds to wait before the first byte (slow devices).
    pub greeting_delay_ms: u64,
    /// Failed logins (over all connections) after which the device locks
    /// every login for `lockout_secs`; 0 for never.
    pub lockout_after: u32,
    /// How long a lockout lasts.
    pub lockout_secs: u64,
    /// Failed attempts per connection before it is closed.
    pub attempts_per_connection: u32,
    /// True when the user name alone opens a shell.
    pub no_password: bool,
    /// True when any user and any password open a shell.
    #[serde(default)]
    pub accept_any: bool,
    /// True when the console asks for a password only (Cisco `line vty`):
    /// the first prompt is the password prompt and the user is "".
    #[serde(default)]
    pub password_only: bool,
    /// Text after a login, before the shell banner (a lastlog MOTD).
    #[serde(default)]
    pub motd: String,
    /// Milliseconds between the MOTD and the shell prompt (slow devices).
    #[serde(default)]
    pub shell_delay_ms: u64,
    /// True when the console shows nothing until it receives a line.
    #[serde(default)]
    pub enter_first: bool,
    /// What a refused login prints ("" for a bare re-prompt).
    #[serde(default = "login_incorrect")]
    pub failure_message: String,
    /// How the prompts and messages are encoded on the wire: "utf-8"
    /// (default) or "gbk" (old Chinese firmware).
    #[serde(default = "utf8")]
    pub encoding: String,
}

fn login_incorrect() -> String {
    "Login incorrect".into()
}

fn utf8() -> String {
    "utf-8".into()
}

impl Default for TelnetBehaviour {
    fn default() -> Self {
        TelnetBehaviour {
            banner: String::new(),
            login_prompt: "login: ".into(),
            password_prompt: "Password: ".into(),
            shell_prompt: "# ".into(),
            fail_delay_ms: 0,
            greeting_delay_ms: 0,
            lockout_after: 0,
            lockout_secs: 0,
            attempts_per_connection: 3,
            no_password: false,
            accept_any: false,
            password_only: false,
            motd: String::new(),
            shell_delay_ms: 0,
            enter_first: false,
            failure_message: login_incorrect(),
            encoding: utf8(),
        }
    }
}

/// Behaviour knobs of a device's SSH server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshBehaviour {
    /// Host key type: "ed25519" or "rsa" (2048 bits, offered as
    /// rsa-sha2-512, rsa-sha2-256 and ssh-rsa).
    pub host_key: String,
    /// Login method offered: "password", or "keyboard-interactive" (one
    /// echo-off `Password: ` prompt) beside "publickey".
    pub auth: String,
}

/// Behaviour knobs of a device's web server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebBehaviour {
    /// Server header.
    pub server: String,
    /// Page title.
    pub title: String,
    /// Basic realm (for Basic).
    pub realm: String,
    /// How it authenticates.
    pub auth: WebAuth,
    /// The login form written as old firmware writes it: unquoted
    /// attributes and a Reset button.
    #[serde(default)]
    pub legacy_html: bool,
    /// Digest algorithm: "MD5" (default) or "SHA-256" (RFC 7616).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_algorithm: Option<String>,
    /// A `WWW-Authenticate: Negotiate` header before the Basic or Digest
    /// one (Windows-integrated NVRs, RFC 7235 section 4.1).
    #[serde(default)]
    pub negotiate_first: bool,
    /// How a refused Basic or Digest login is answered: "401" (default),
    /// "redirect" (302 to /login?error=1) or "200" (a page saying the
    /// login failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl Default for WebBehaviour {
    fn default() -> Self {
        WebBehaviour {
            server: String::new(),
            title: String::new(),
            realm: String::new(),
            auth: WebAuth::Basic,
            legacy_html: false,
            digest_algorithm: None,
            negotiate_first: false,
            refusal: None,
        }
    }
}

/// One emulated device: the manifest entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its address.
    pub ip: Ipv4Addr,
    /// What it is.
    pub kind: Kind,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Firmware version string.
    pub firmware: String,
    /// Listeners.
    pub services: Vec<ServiceEntry>,
    /// Every weak login it accepts: a default pair or no password (empty
    /// for hardened devices).
    pub credentials: Vec<Credential>,
    /// Logins with a strong, unique password (not guessable; for tests
    /// that log in with a real client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardened_logins: Vec<Credential>,
    /// Finding names (see the survey-checks issue) that apply.
    pub weaknesses: Vec<String>,
    /// Telnet behaviour, when it runs telnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telnet: Option<TelnetBehaviour>,
    /// Web behaviour, when it runs HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebBehaviour>,
    /// SSH version line, when it runs SSH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_banner: Option<String>,
    /// SSH behaviour beyond the banner (host key type, login method), when
    /// it differs from the default (Ed25519, password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshBehaviour>,
}

/// The manifest file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every device.
    pub devices: Vec<Device>,
}

/// Vendor profiles of telnet devices: (kind, vendor, model, hostname, banner, server header, title, shell prompt).
struct Profile {
    kind: Kind,
    vendor: &'static str,
    model: &'static str,
    firmware: &'static str,
    hostname: &'static str,
    banner: &'static str,
    server: &'static str,
    title: &'static str,
    shell: &'static str,
    web_port: u16,
    web_auth: WebAuth,
}

// Written from public descriptions of how such devices answer (BusyBox
// telnetd prompts, well-known embedded web servers); the names are the
// families Mirai-era reports list.
const PROFILES: &[Profile] = &[
    Profile {
        kind: Kind::Dvr,
        vendor: "Xiongmai",
        model: "AHB7008T-MH",
        firmware: "V4.02.R11.34500140",
        hostname: "LocalHost",
        banner: "",
        server: "uc-httpd 1.0.0",
        title: "NETSurveillance WEB",
        shell: "# ",
        web_port: 80,
        web_auth: WebAuth::Form,
    },
    Profile {
        kind: Kind::Dvr,
        vendor: "Dahua",
        model: "DH-XVR4104C",
        firmware: "V3.216.0000000.0",
        hostname: "dvr",
        banner: "\r\n",
        server: "Boa/0.94.13",
        title: "WEB SERVICE",
        shell: "~ # ",
        web_port: 80,
        web_auth: WebAuth::Form,
    },
    Profile {
        kind: Kind::Camera,
        vendor: "Hikvision",
        model: "DS-2CD2032-I",
        firmware: "V5.2.0 build 140721",
        hostname: "dvrdvs",
        banner: "",
        server: "Hikvision-Webs",
        title: "Hikvision Digital Technology",
        shell: "# ",
        web_port: 80,
        web_auth: WebAuth::Basic,
    },
    Profile {
        kind: Kind::Camera,
        vendor: "Foscam",
        model: "FI9821W",
        firmware: "1.11.1.8",
        hostname: "IPCamera",
        banner: "",
        server: "lighttpd/1.4.35",
        title: "IPCam Client",
        shell: "$ ",
        web_port: 8080,
        web_auth: WebAuth::Basic,
    },
    Profile {
        kind: Kind::Camera,
        vendor: "Generic",
        model: "IPC-HD720P",
        firmware: "2.4.5",
        hostname: "(none)",
        banner: "\r\nWelcome to HiLinux.\r\n",
        server: "GoAhead-Webs",
        title: "IP CAMERA Viewer",
        shell: "# ",
        web_port: 81,
        web_auth: WebAuth::Basic,
    },
    Profile {
        kind: Kind::Router,
        vendor: "ZTE",
        model: "ZXHN H108N",
        firmware: "V2.5.0_EG3T1",
        hostname: "ZXHN H108N",
        banner: "\r\n",
        server: "Mini web server 1.0 ZTE corp 2005.",
        title: "ZXHN H108N",
        shell: "# ",
        web_port: 80,
        web_auth: WebAuth::Form,
    },
    Profile {
        kind: Kind::Router,
        vendor: "Huawei",
        model: "HG532e",
        firmware: "V100R001C02B017",
        hostname: "HG532e",
        banner: "",
        server: "mini_httpd/1.19 19dec2003",
        title: "HG532e",
        shell: "ATP>",
        web_port: 80,
        web_auth: WebAuth::Form,
    },
    Profile {
        kind: Kind::Router,
        vendor: "TP-LINK",
        model: "TL-WR740N",
        firmware: "3.17.0 Build 140520",
        hostname: "TL-WR740N",
        banner: "",
        server: "Router Webserver",
        title: "TL-WR740N",
        shell: "# ",
        web_port: 80,
        web_auth: WebAuth::Basic,
    },
    Profile {
        kind: Kind::Router,
        vendor: "D-Link",
        model: "DIR-300",
        firmware: "2.05",
        hostname: "dlinkrouter",
        banner: "\r\nBusyBox v1.01 (2010.03.31-10:05+0000) Built-in shell (msh)\r\n",
        server: "Linux, HTTP/1.1, DIR-300 Ver 2.05",
        title: "D-LINK SYSTEMS, INC. | WIRELESS ROUTER | HOME",
        shell: "# ",
        web_port: 8081,
        web_auth: WebAuth::Basic,
    },
];

/// What to draw: devices per kind, or a count and a seed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Devices of each kind, e.g. `{ router = 10, water_logger = 1 }`.
    #[serde(default)]
    pub kinds: std::collections::BTreeMap<Kind, u32>,
}

/// The realistic default mix: mostly consumer devices, a few critical ones.
const DEFAULT_MIX: &[(Kind, u32)] = &[
    (Kind::Router, 30),
    (Kind::Camera, 22),
    (Kind::Dvr, 18),
    (Kind::WaterLogger, 3),
    (Kind::PowerMonitor, 3),
    (Kind::Plc, 4),
    (Kind::MqttBroker, 5),
    (Kind::SshDevice, 7),
    (Kind::Noise, 8),
];

/// Draws `n` devices with the default mix (every kind at least once when
/// n allows), numbered from `first_ip`.
pub fn draw_default(n: u32, seed: u64, first_ip: Ipv4Addr) -> Vec<Device> {
    let total: u32 = DEFAULT_MIX.iter().map(|k| k.1).sum();
    let mut rng = Rng::new(seed);
    let kinds: Vec<Kind> = (0..n)
        .map(|i| {
            if (i as usize) < DEFAULT_MIX.len() && n as usize >= DEFAULT_MIX.len() {
                return DEFAULT_MIX[i as usize].0;
            }
            let mut x = rng.below(total as u64) as u32;
            for &(k, w) in DEFAULT_MIX {
                if x < w {
                    return k;
                }
                x -= w;
            }
            Kind::Noise
        })
        .collect();
    build(&kinds, &mut rng, first_ip)
}

/// Draws the devices a spec asks for.
pub fn draw_spec(spec: &LabSpec, seed: u64, first_ip: Ipv4Addr) -> Vec<Device> {
    let mut rng = Rng::new(seed);
    let kinds: Vec<Kind> = spec
        .kinds
        .iter()
        .flat_map(|(&k, &n)| std::iter::repeat_n(k, n as usize))
        .collect();
    build(&kinds, &mut rng, first_ip)
}

fn build(kinds: &[Kind], rng: &mut Rng, first_ip: Ipv4Addr) -> Vec<Device> {
    let pairs = mirai_pairs();
    let mut devices = Vec::with_capacity(kinds.len());
    let mut next = u32::from(first_ip);
    for &kind in kinds {
        // Skip .0 and .255 of every /24: some tools special-case them.
        while matches!(next & 0xff, 0 | 255) {
            next += 1;
        }
        let ip = Ipv4Addr::from(next);
        next += 1;
        devices.push(device(kind, ip, rng, &pairs));
    }
    devices
}

/// One of the first four Mirai-list pairs for "admin" with a password (a
/// web admin's factory login).
fn admin_pair(pairs: &[(String, String)], rng: &mut Rng) -> (String, String) {
    pairs
        .iter()
        .filter(|(u, p)| u == "admin" && !p.is_empty())
        .nth(rng.below(4) as usize)
        .cloned()
        .unwrap_or_else(|| ("admin".into(), "admin".into()))
}

fn strong_password(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..14)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn device(kind: Kind, ip: Ipv4Addr, rng: &mut Rng, pairs: &[(String, String)]) -> Device {
    let mut d = Device {
        ip,
        kind,
        vendor: String::new(),
        model: String::new(),
        firmware: String::new(),
        services: Vec::new(),
        credentials: Vec::new(),
        hardened_logins: Vec::new(),
        weaknesses: Vec::new(),
        telnet: None,
        web: None,
        ssh_banner: None,
        ssh: None,
    };
    let svc = |port: u16, service: Service| ServiceEntry {
        port,
        proto: "tcp".into(),
        service,
    };
    match kind {
        Kind::Router | Kind::Camera | Kind::Dvr => {
            let candidates: Vec<&Profile> = PROFILES.iter().filter(|p| p.kind == kind).collect();
            let p = candidates[rng.below(candidates.len() as u64) as usize];
            d.vendor = p.vendor.into();
            d.model = p.model.into();
            d.firmware = p.firmware.into();
            // Telnet on 23, 2323 or both.
            let telnet_ports: Vec<u16> = match rng.below(10) {
                0..=5 => vec![23],
                6..=7 => vec![2323],
                _ => vec![23, 2323],
            };
            // How the login is protected: a Mirai pair, no password, a
            // strong unique password.
            let roll = rng.below(100);
            let (user, password, no_password, hardened) = if roll < 55 {
                let (u, pw) = &pairs[rng.below(pairs.len() as u64) as usize];
                (u.clone(), pw.clone(), false, false)
            } else if roll < 65 {
                ("root".to_string(), String::new(), true, false)
            } else {
                ("admin".to_string(), strong_password(rng), false, true)
            };
            let lockout_after = if rng.chance(0.2) { 5 } else { 0 };
            let slow = rng.chance(0.1);
            d.telnet = Some(TelnetBehaviour {
                banner: p.banner.into(),
                login_prompt: format!("{} login: ", p.hostname),
                password_prompt: "Password: ".into(),
                shell_prompt: p.shell.into(),
                fail_delay_ms: if slow { 1500 } else { rng.range(0, 300) },
                greeting_delay_ms: if slow { 1000 } else { 0 },
                lockout_after,
                lockout_secs: 300,
                attempts_per_connection: 3,
                no_password,
                ..TelnetBehaviour::default()
            });
            for &port in &telnet_ports {
                d.services.push(svc(port, Service::Telnet));
                let login = Credential {
                    port,
                    service: Service::Telnet,
                    user: user.clone(),
                    password: password.clone(),
                };
                if hardened {
                    d.hardened_logins.push(login);
                } else {
                    d.credentials.push(login);
                }
            }
            d.weaknesses.push("exposed_telnet".into());
            if no_password {
                d.weaknesses.push("no_authentication".into());
            } else if !hardened {
                d.weaknesses.push("default_credential".into());
            }
            if lockout_after == 0 && !no_password {
                d.weaknesses.push("lockout_absent".into());
            }
            // The web admin: default admin/admin on some, a strong one on others.
            let web_default = rng.chance(0.5);
            let web_password = if web_default {
                "admin".to_string()
            } else {
                strong_password(rng)
            };
            d.services.push(svc(p.web_port, Service::Http));
            let login = Credential {
                port: p.web_port,
                service: Service::Http,
                user: "admin".into(),
                password: web_password.clone(),
            };
            if web_default {
                d.credentials.push(login);
            } else {
                d.hardened_logins.push(login);
            }
            // Newer firmware of the Basic families moved to Digest.
            let auth = if p.web_auth == WebAuth::Basic && rng.chance(0.4) {
                WebAuth::Digest
            } else {
                p.web_auth
            };
            d.web = Some(WebBehaviour {
                server: p.server.into(),
                title: p.title.into(),
                realm: p.model.into(),
                auth,
                legacy_html: false,
                ..WebBehaviour::default()
            });
            d.weaknesses.push("cleartext_admin".into());
            if web_password == "admin" && !d.weaknesses.iter().any(|w| w == "default_credential") {
                d.weaknesses.push("default_credential".into());
            }
        }
        Kind::WaterLogger => {
            d.vendor = "AquaTrend".into();
            d.model = "WL-200 Data Logger".into();
            d.firmware = "1.3.7".into();
            d.services.push(svc(80, Service::Http));
            d.web = Some(WebBehaviour {
                server: "Embedthis-http".into(),
                title: "WL-200 Water Equipment Data Logger".into(),
                realm: String::new(),
                auth: WebAuth::None,
                legacy_html: false,
                ..WebBehaviour::default()
            });
            d.weaknesses.extend(
                ["no_authentication", "open_control_panel", "cleartext_admin"].map(String::from),
            );
        }
        Kind::PowerMonitor => {
            d.vendor = "Densoku".into();
            d.model = "PM-5000 Power Monitoring Unit".into();
            d.firmware = "2.10".into();
            d.services.push(svc(8080, Service::Http));
            d.web = Some(WebBehaviour {
                server: "thttpd/2.25b 29dec2003".into(),
                title: "PM-5000 Power Monitoring System".into(),
                realm: String::new(),
                auth: WebAuth::None,
                legacy_html: false,
                ..WebBehaviour::default()
            });
            d.weaknesses.extend(
                ["no_authentication", "open_control_panel", "cleartext_admin"].map(String::from),
            );
        }
        Kind::Plc | Kind::LegacyPlc => {
            let (vendor, model, firmware) = if kind == Kind::Plc {
                ("Schneider Electric", "BMX P34 2020", "v2.70")
            } else {
                ("Unitronics", "V130-33-T38", "3.9.12")
            };
            (d.vendor, d.model, d.firmware) = (vendor.into(), model.into(), firmware.into());
            d.services.push(svc(502, Service::Modbus));
            d.weaknesses
                .extend(["exposed_modbus", "no_authentication"].map(String::from));
        }
        Kind::MqttBroker => {
            d.vendor = "Eclipse".into();
            d.model = "Mosquitto".into();
            d.firmware = "1.4.10".into();
            d.services.push(svc(1883, Service::Mqtt));
            d.weaknesses.push("anonymous_mqtt".into());
        }
        Kind::SshDevice => {
            const BANNERS: [(&str, &str); 3] = [
                ("SSH-2.0-dropbear_2014.63", "dropbear 2014.63"),
                ("SSH-2.0-dropbear_0.52", "dropbear 0.52"),
                ("SSH-2.0-OpenSSH_5.8p1 Debian-1ubuntu3", "OpenSSH 5.8p1"),
            ];
            let (banner, fw) = BANNERS[rng.below(3) as usize];
            d.vendor = "Ubiquiti".into();
            d.model = "AirMAX M2".into();
            d.firmware = fw.into();
            d.services.push(svc(22, Service::Ssh));
            d.ssh_banner = Some(banner.into());
            // Password logins exist only when the lab is built with SSH
            // (feature `ssh-login`, on in the iotscope binary); without it
            // the service is a version banner and the manifest lists none.
            if cfg!(feature = "ssh-login") {
                let (user, password, weak) = match rng.below(3) {
                    0 => ("ubnt".to_string(), "ubnt".to_string(), true),
                    1 => {
                        let (u, p) = &pairs[rng.below(pairs.len() as u64) as usize];
                        (u.clone(), p.clone(), true)
                    }
                    _ => ("admin".to_string(), strong_password(rng), false),
                };
                let login = Credential {
                    port: 22,
                    service: Service::Ssh,
                    user,
                    password,
                };
                if weak {
                    d.credentials.push(login);
                    d.weaknesses.push("default_credential".into());
                } else {
                    d.hardened_logins.push(login);
                }
            }
        }
        Kind::AnyLogin => {
            d.vendor = "-".into();
            d.model = "-".into();
            d.firmware = "-".into();
            d.services.push(svc(23, Service::Telnet));
            d.telnet = Some(TelnetBehaviour {
                accept_any: true,
                ..TelnetBehaviour::default()
            });
            d.weaknesses.extend(
                [
                    "exposed_telnet",
                    "cleartext_admin",
                    "accepts_any_credentials",
                ]
                .map(String::from),
            );
        }
        Kind::ConsoleRouter | Kind::MotdCamera | Kind::LegacyConsoleDvr => {
            let (_, password) = pairs
                .iter()
                .filter(|(_, p)| !p.is_empty())
                .nth(rng.below(20) as usize)
                .cloned()
                .unwrap_or_default();
            let (user, password) = match kind {
                Kind::ConsoleRouter => (String::new(), password),
                _ => pairs[rng.below(pairs.len() as u64) as usize].clone(),
            };
            let t = match kind {
                Kind::ConsoleRouter => {
                    d.vendor = "Cisco".into();
                    d.model = "C881".into();
                    d.firmware = "IOS 15.1(4)M".into();
                    TelnetBehaviour {
                        banner: "\r\n##############################\r\n# Authorized access only #\r\n##############################\r\n\r\nUser Access Verification\r\n\r\n".into(),
                        password_prompt: "Password: ".into(),
                        shell_prompt: "Router>".into(),
                        password_only: true,
                        failure_message: String::new(),
                        ..TelnetBehaviour::default()
                    }
                }
                Kind::MotdCamera => {
                    d.vendor = "Hikvision".into();
                    d.model = "DS-2CD2032-I".into();
                    d.firmware = "V5.3.0".into();
                    TelnetBehaviour {
                        banner: "\r\nWARNING: unauthorized access is denied; failed logins are recorded.\r\n".into(),
                        login_prompt: "ipcam login: ".into(),
                        motd: "Last failed login: Mon Nov 30 09:12:44 UTC 2026 from 10.0.0.9 on pts/0\r\nThere were 3 failed login attempts since the last successful login.\r\n".into(),
                        shell_delay_ms: 2000,
                        fail_delay_ms: 200,
                        ..TelnetBehaviour::default()
                    }
                }
                _ => {
                    d.vendor = "Xiongmai".into();
                    d.model = "AHB7008T".into();
                    d.firmware = "V4.02.R11.34500140".into();
                    TelnetBehaviour {
                        banner: "\r\n".into(),
                        login_prompt: "用户名：".into(),
                        password_prompt: "密码：".into(),
                        failure_message: "密码错误".into(),
                        encoding: "gbk".into(),
                        enter_first: true,
                        ..TelnetBehaviour::default()
                    }
                }
            };
            d.telnet = Some(t);
            d.services.push(svc(23, Service::Telnet));
            d.credentials.push(Credential {
                port: 23,
                service: Service::Telnet,
                user,
                password,
            });
            d.weaknesses.extend(
                ["exposed_telnet", "cleartext_admin", "default_credential"].map(String::from),
            );
        }
        Kind::RsaRadio | Kind::KbdintSshd => {
            let rsa = kind == Kind::RsaRadio;
            d.vendor = if rsa { "Ubiquiti" } else { "Supermicro" }.into();
            d.model = if rsa { "NanoStation M5" } else { "X11 BMC" }.into();
            d.firmware = if rsa { "XW.v6.3.6" } else { "1.73.06" }.into();
            d.services.push(svc(22, Service::Ssh));
            d.ssh_banner = Some(
                if rsa {
                    "SSH-2.0-dropbear_2019.78"
                } else {
                    "SSH-2.0-OpenSSH_8.8 FreeBSD-20211221"
                }
                .into(),
            );
            d.ssh = Some(SshBehaviour {
                host_key: if rsa { "rsa" } else { "ed25519" }.into(),
                auth: if rsa {
                    "password"
                } else {
                    "keyboard-interactive"
                }
                .into(),
            });
            if cfg!(feature = "ssh-login") {
                let (user, password) = if rsa {
                    ("ubnt".to_string(), "ubnt".to_string())
                } else {
                    pairs[rng.below(pairs.len() as u64) as usize].clone()
                };
                d.credentials.push(Credential {
                    port: 22,
                    service: Service::Ssh,
                    user,
                    password,
                });
                d.weaknesses.push("default_credential".into());
            }
        }
        Kind::HttpsCamera => {
            d.vendor = "Dahua".into();
            d.model = "IPC-HFW1230S".into();
            d.firmware = "V2.800.0000000.25.R".into();
            d.services.push(svc(8080, Service::Https));
            d.web = Some(WebBehaviour {
                server: "Webs".into(),
                title: "WEB SERVICE".into(),
                realm: "Login to IPC-HFW1230S".into(),
                auth: WebAuth::Basic,
                ..WebBehaviour::default()
            });
            let (user, password) = admin_pair(pairs, rng);
            d.credentials.push(Credential {
                port: 8080,
                service: Service::Https,
                user,
                password,
            });
            d.weaknesses
                .extend(["default_credential", "self_signed_certificate"].map(String::from));
        }
        Kind::EnterpriseNvr | Kind::RedirectingRouter => {
            let nvr = kind == Kind::EnterpriseNvr;
            d.vendor = if nvr { "Milesight" } else { "Zyxel" }.into();
            d.model = if nvr { "MS-N5008-UPT" } else { "VMG3625-T20A" }.into();
            d.firmware = if nvr { "71.8.0.5" } else { "V5.50(ABPM.6)C0" }.into();
            d.services.push(svc(80, Service::Http));
            d.web = Some(WebBehaviour {
                server: if nvr {
                    "Microsoft-HTTPAPI/2.0"
                } else {
                    "RomPager/4.07"
                }
                .into(),
                title: if nvr { "NVR" } else { "Router" }.into(),
                realm: if nvr { "NVR" } else { "Router admin" }.into(),
                auth: if nvr { WebAuth::Digest } else { WebAuth::Basic },
                digest_algorithm: nvr.then(|| "SHA-256".to_string()),
                negotiate_first: nvr,
                refusal: (!nvr).then(|| "redirect".to_string()),
                ..WebBehaviour::default()
            });
            let login = if nvr {
                let (user, password) = admin_pair(pairs, rng);
                Credential {
                    port: 80,
                    service: Service::Http,
                    user,
                    password,
                }
            } else {
                Credential {
                    port: 80,
                    service: Service::Http,
                    user: "admin".into(),
                    password: strong_password(rng),
                }
            };
            if nvr {
                d.credentials.push(login);
                d.weaknesses
                    .extend(["default_credential", "cleartext_admin"].map(String::from));
            } else {
                d.hardened_logins.push(login);
                d.weaknesses.push("cleartext_admin".into());
            }
        }
        Kind::LegacyLoginPage => {
            d.vendor = "Xiongmai".into();
            d.model = "NBD80X16S-KL".into();
            d.firmware = "V4.02.R11".into();
            d.services.push(svc(80, Service::Http));
            d.web = Some(WebBehaviour {
                server: "uc-httpd 1.0.0".into(),
                title: "NETSurveillance WEB".into(),
                realm: String::new(),
                auth: WebAuth::Form,
                legacy_html: true,
                ..WebBehaviour::default()
            });
            d.hardened_logins.push(Credential {
                port: 80,
                service: Service::Http,
                user: "admin".into(),
                password: strong_password(rng),
            });
            d.weaknesses.push("cleartext_admin".into());
        }
        Kind::Noise => {
            d.vendor = "-".into();
            d.model = "-".into();
            match rng.below(4) {
                0 => {} // nothing open
                1 => d.services.push(svc(23, Service::AcceptClose)),
                2 => d.services.push(svc(80, Service::Garbage)),
                _ => d.services.push(svc(8080, Service::Tarpit)),
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirai_list_is_the_documented_62_distinct_pairs() {
        let pairs = mirai_pairs();
        assert_eq!(pairs.len(), 61, "62 entries, guest:12345 twice");
        assert!(pairs.contains(&("root".into(), "xc3511".into())));
        assert!(
            pairs.iter().any(|(_, p)| p.is_empty()),
            "an empty password is kept"
        );
    }

    #[test]
    fn drawing_is_deterministic_and_covers_every_kind() {
        let a = draw_default(50, 1, Ipv4Addr::new(127, 77, 0, 1));
        let b = draw_default(50, 1, Ipv4Addr::new(127, 77, 0, 1));
        assert_eq!(a, b);
        for (k, _) in DEFAULT_MIX {
            assert!(a.iter().any(|d| d.kind == *k), "{k:?} missing");
        }
        // Every telnet port has exactly one login, weak or hardened.
        for d in &a {
            let telnet = d
                .services
                .iter()
                .filter(|s| s.service == Service::Telnet)
                .count();
            let logins = d
                .credentials
                .iter()
                .chain(&d.hardened_logins)
                .filter(|c| c.service == Service::Telnet)
                .count();
            assert_eq!(telnet, logins);
        }
        let ips: std::collections::HashSet<_> = a.iter().map(|d| d.ip).collect();
        assert_eq!(ips.len(), 50);
    }
}
