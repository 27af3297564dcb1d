//! Device web servers: admin pages behind Basic auth or a login form, and
//! the seed's two open control panels (a hospital water-equipment data
//! logger with RUN/STOP, a factory power monitor with alarm thresholds,
//! alarm reset, proxy, reboot and log deletion). Every change is audited.
//!
//! One request per connection (`Connection: close`), head at most 8 KiB,
//! body at most 4 KiB.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Served;
use crate::audit::{Audit, Event};
use crate::devices::{Kind, Service, WebAuth};

const MAX_HEAD: usize = 8 * 1024;
const MAX_BODY: usize = 4 * 1024;

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A field of an `application/x-www-form-urlencoded` body.
    fn form(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        text.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (url_decode(k) == name).then(|| url_decode(v))
        })
    }
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True while `buf` can still be the start of `METHOD SP`.
fn plausible_start(buf: &[u8]) -> bool {
    for (i, &c) in buf.iter().enumerate().take(12) {
        if c == b' ' {
            return i > 0;
        }
        if !c.is_ascii_uppercase() {
            return false;
        }
    }
    buf.len() < 12
}

/// Reads one request; `Err(())` when the bytes are not HTTP at all, which a
/// real embedded server answers with 400 at once.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<Request>, ()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if !plausible_start(&buf) {
            return Err(());
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Ok(None),
        };
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(path)) = (first.next(), first.next()) else {
        return Err(());
    };
    let (method, path) = (method.to_string(), path.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let want = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    while body.len() < want {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    body.truncate(want);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

struct Response {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: String,
}

fn page(title: &str, body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n{body}\n</body></html>\n")
}

fn ok(body: String) -> Response {
    Response {
        status: "200 OK",
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body,
    }
}

fn redirect(to: &str, extra: Option<(String, String)>) -> Response {
    let mut headers = vec![("Location".into(), to.to_string())];
    headers.extend(extra);
    Response {
        status: "303 See Other",
        headers,
        body: String::new(),
    }
}

fn not_found() -> Response {
    Response {
        status: "404 Not Found",
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: page("404 Not Found", "<h1>Not Found</h1>"),
    }
}

/// Serves one request on `stream` (plain TCP or TLS), which arrived on
/// the device's `port`.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    port: u16,
    peer: SocketAddr,
    served: &Served,
    audit: &Audit,
) {
    let d = &served.device;
    let Some(web) = d.web.clone() else { return };
    let req = match read_request(&mut stream).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(()) => {
            let body = page("400 Bad Request", "<h1>400 Bad Request</h1>");
            let head = format!(
                "HTTP/1.1 400 Bad Request\r\nServer: {}\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                web.server,
                body.len()
            );
            let _ = stream.write_all(format!("{head}{body}").as_bytes()).await;
            return;
        }
    };
    let login = d
        .credentials
        .iter()
        .chain(&d.hardened_logins)
        .find(|c| matches!(c.service, Service::Http | Service::Https))
        .cloned();
    let change = |what: &str| audit.record(d, "http", port, peer, Event::StateChange, what);
    let is_post = req.method == "POST";
    let mut resp = match d.kind {
        Kind::WaterLogger => {
            if is_post && req.path == "/control" {
                let mode = req.form("mode").unwrap_or_default();
                if mode == "RUN" || mode == "STOP" {
                    served.state.lock().expect("state lock").running = mode == "RUN";
                    change(&format!("mode={mode}"));
                }
                redirect("/", None)
            } else if req.path == "/" || req.path == "/index.html" {
                let running = served.state.lock().expect("state lock").running;
                let status = if running { "RUN" } else { "STOP" };
                ok(page(
                    &web.title,
                    &format!(
                        "<h1>{}</h1>\n<table><tr><th>Operating status</th><td id=\"status\">{status}</td></tr>\
                         <tr><th>Supply pressure</th><td>0.32 MPa</td></tr><tr><th>Water temperature</th><td>18.4 &deg;C</td></tr>\
                         <tr><th>Conductivity</th><td>1.2 &micro;S/cm</td></tr></table>\n\
                         <form method=\"POST\" action=\"/control\"><button name=\"mode\" value=\"RUN\">RUN</button>\
                         <button name=\"mode\" value=\"STOP\">STOP</button></form>",
                        web.title
                    ),
                ))
            } else {
                not_found()
            }
        }
        Kind::PowerMonitor => {
            let action = match (is_post, req.path.as_str()) {
                (true, "/settings/alarm") => Some(format!(
                    "alarm_threshold_kw={}",
                    req.form("threshold").unwrap_or_default()
                )),
                (true, "/alarm/reset") => Some("alarm_reset".to_string()),
                (true, "/settings/proxy") => {
                    Some(format!("proxy={}", req.form("proxy").unwrap_or_default()))
                }
                (true, "/system/reboot") => Some("reboot".to_string()),
                (true, "/logs/delete") => Some("logs_deleted".to_string()),
                _ => None,
            };
            if let Some(what) = action {
                {
                    let mut st = served.state.lock().expect("state lock");
                    match req.path.as_str() {
                        "/settings/alarm" => {
                            st.alarm_threshold_kw = req
                                .form("threshold")
                                .and_then(|t| t.parse().ok())
                                .unwrap_or(st.alarm_threshold_kw)
                        }
                        "/settings/proxy" => st.proxy = req.form("proxy").unwrap_or_default(),
                        "/logs/delete" => st.log_lines = 0,
                        _ => {}
                    }
                }
                change(&what);
                redirect("/", None)
            } else if req.path == "/" || req.path == "/index.html" {
                let (threshold, proxy, logs) = {
                    let st = served.state.lock().expect("state lock");
                    (st.alarm_threshold_kw, st.proxy.clone(), st.log_lines)
                };
                ok(page(
                    &web.title,
                    &format!(
                        "<h1>{}</h1>\n<p>Demand: 412 kW &nbsp; Power factor: 0.94 &nbsp; Log entries: {logs}</p>\n\
                         <form method=\"POST\" action=\"/settings/alarm\">Alarm threshold (kW) <input name=\"threshold\" value=\"{threshold}\"><button>Set</button></form>\n\
                         <form method=\"POST\" action=\"/alarm/reset\"><button>Alarm reset</button></form>\n\
                         <form method=\"POST\" action=\"/settings/proxy\">Proxy <input name=\"proxy\" value=\"{proxy}\"><button>Save</button></form>\n\
                         <form method=\"POST\" action=\"/system/reboot\"><button>Reboot</button></form>\n\
                         <form method=\"POST\" action=\"/logs/delete\"><button>Delete logs</button></form>",
                        web.title
                    ),
                ))
            } else {
                not_found()
            }
        }
        _ => match web.auth {
            WebAuth::Basic => {
                let good = req
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Basic "))
                    .and_then(|b| base64_decode(b.trim()))
                    .map(|raw| String::from_utf8_lossy(&raw).into_owned());
                match (good, &login) {
                    (Some(pair), Some(l)) if pair == format!("{}:{}", l.user, l.password) => {
                        audit.record(d, "http", port, peer, Event::Login, &l.user);
                        admin_page(d, &web.title)
                    }
                    (tried, _) => {
                        let refused = tried.is_some();
                        if let Some(t) = tried {
                            audit.record(d, "http", port, peer, Event::LoginFailed, &t);
                        }
                        refusal(&web, refused, format!("Basic realm=\"{}\"", web.realm))
                    }
                }
            }
            WebAuth::Digest => {
                let nonce = format!(
                    "{:016x}",
                    (u32::from(d.ip) as u64 * 0x9e37_79b9) ^ 0x1d0c_5eed
                );
                let header = req
                    .header("authorization")
                    .and_then(|v| v.strip_prefix("Digest "));
                let verdict = header.map(|h| {
                    let user = digest_param(h, "username").unwrap_or_default();
                    let good = login.as_ref().is_some_and(|l| {
                        l.user == user
                            && digest_response(h, &req.method, &l.password, digest_algorithm(&web))
                                == digest_param(h, "response")
                            && digest_param(h, "nonce").as_deref() == Some(nonce.as_str())
                    });
                    (user, good)
                });
                match verdict {
                    Some((user, true)) => {
                        audit.record(d, "http", port, peer, Event::Login, &user);
                        admin_page(d, &web.title)
                    }
                    other => {
                        let refused = other.is_some();
                        if let Some((user, false)) = other {
                            audit.record(d, "http", port, peer, Event::LoginFailed, &user);
                        }
                        refusal(
                            &web,
                            refused,
                            format!(
                                "Digest realm=\"{}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{nonce}\", algorithm={}",
                                web.realm,
                                digest_algorithm(&web)
                            ),
                        )
                    }
                }
            }
            WebAuth::Form | WebAuth::None => {
                let session = format!("sid{:08x}", u32::from(d.ip).rotate_left(7) ^ 0x5a5a_1234);
                let has_session = req.header("cookie").is_some_and(|c| c.contains(&session));
                match (is_post, req.path.as_str()) {
                    (true, "/login") => {
                        let (u, p) = (
                            req.form("username").unwrap_or_default(),
                            req.form("password").unwrap_or_default(),
                        );
                        if login
                            .as_ref()
                            .is_some_and(|l| l.user == u && l.password == p)
                        {
                            audit.record(d, "http", port, peer, Event::Login, &u);
                            redirect(
                                "/main.html",
                                Some(("Set-Cookie".into(), format!("session={session}; HttpOnly"))),
                            )
                        } else {
                            audit.record(
                                d,
                                "http",
                                port,
                                peer,
                                Event::LoginFailed,
                                &format!("{u}:{p}"),
                            );
                            ok(login_page(&web.title, true, web.legacy_html))
                        }
                    }
                    (_, "/main.html") if has_session => admin_page(d, &web.title),
                    (_, "/main.html") => redirect("/", None),
                    (_, "/" | "/index.html" | "/login.htm") => {
                        ok(login_page(&web.title, false, web.legacy_html))
                    }
                    _ => not_found(),
                }
            }
        },
    };
    resp.headers.push(("Server".into(), web.server.clone()));
    resp.headers.push(("Connection".into(), "close".into()));
    let mut out = format!("HTTP/1.1 {}\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", resp.body.len()));
    if req.method != "HEAD" {
        out.push_str(&resp.body);
    } else {
        resp.body.clear();
    }
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A parameter of a Digest `Authorization` header, quotes removed.
fn digest_param(header: &str, name: &str) -> Option<String> {
    header.split(',').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The answer to a request without a (good) login: the challenge(s) with
/// a 401, or, for a refused login on a device that answers refusals its
/// own way, a 302 to an error page or a 200 page that says so.
fn refusal(web: &crate::devices::WebBehaviour, refused: bool, challenge: String) -> Response {
    match web.refusal.as_deref() {
        Some("redirect") if refused => return redirect("/login?error=1", None),
        Some("200") if refused => {
            return ok(page(
                &web.title,
                "<p class=\"error\">Login failed: wrong user name or password.</p>",
            ))
        }
        _ => {}
    }
    let mut headers = Vec::new();
    if web.negotiate_first {
        headers.push(("WWW-Authenticate".into(), "Negotiate".into()));
    }
    headers.push(("WWW-Authenticate".into(), challenge));
    headers.push(("Content-Type".into(), "text/html".into()));
    Response {
        status: "401 Unauthorized",
        headers,
        body: page("401 Unauthorized", "<h1>401 Unauthorized</h1>"),
    }
}

/// The device's Digest algorithm: "MD5" unless it says "SHA-256".
fn digest_algorithm(web: &crate::devices::WebBehaviour) -> &'static str {
    match web.digest_algorithm.as_deref() {
        Some(a) if a.eq_ignore_ascii_case("SHA-256") => "SHA-256",
        _ => "MD5",
    }
}

/// `algorithm`'s hash of `text`, in lower-case hex (RFC 7616 3.4.2).
fn hash_hex(algorithm: &str, text: &str) -> String {
    let bytes: Vec<u8> = if algorithm == "SHA-256" {
        use sha2::{Digest, Sha256};
        Sha256::digest(text.as_bytes()).to_vec()
    } else {
        use md5::{Digest, Md5};
        Md5::digest(text.as_bytes()).to_vec()
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The response a client knowing `password` sends (RFC 7616 3.4.1, MD5
/// or SHA-256, qop auth or none).
fn digest_response(header: &str, method: &str, password: &str, algorithm: &str) -> Option<String> {
    let p = |n| digest_param(header, n);
    let h = |t: String| hash_hex(algorithm, &t);
    let ha1 = h(format!("{}:{}:{password}", p("username")?, p("realm")?));
    let ha2 = h(format!("{method}:{}", p("uri")?));
    Some(match p("qop") {
        Some(qop) => h(format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            p("nonce")?,
            p("nc")?,
            p("cnonce")?
        )),
        None => h(format!("{ha1}:{}:{ha2}", p("nonce")?)),
    })
}

fn login_page(title: &str, failed: bool, legacy: bool) -> String {
    let msg = if failed {
        "<p class=\"error\">Login failed: user name or password is wrong.</p>"
    } else {
        ""
    };
    if legacy {
        // As old DVR firmware writes it: no quotes, a Reset button.
        return page(
            title,
            &format!(
                "{msg}<form name=frmLogin method=post action=/login>\n\
                 User Name <input type=text name=username size=16><br>\n\
                 Password <input type=password name=password size=16><br>\n\
                 <input type=submit value=Login> <input type=reset value=Reset>\n</form>"
            ),
        );
    }
    page(
        title,
        &format!(
            "<h1>{title}</h1>{msg}\n<form method=\"POST\" action=\"/login\">User name <input name=\"username\"> \
             Password <input type=\"password\" name=\"password\"> <button>Login</button></form>"
        ),
    )
}

fn admin_page(d: &crate::devices::Device, title: &str) -> Response {
    ok(page(
        title,
        &format!(
            "<h1>{title}</h1>\n<table><tr><th>Model</th><td>{}</td></tr><tr><th>Firmware</th><td>{}</td></tr>\
             <tr><th>Uptime</th><td>12 days 03:14</td></tr></table>",
            d.model, d.firmware
        ),
    ))
}
