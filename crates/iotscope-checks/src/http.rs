//! HTTP: the Basic and Digest login worker (the rules in [`crate::auth`]), and
//! the read-only look at a web interface that finds open control panels.
//! Requests are GET and HEAD only: a login form is never submitted, a
//! control is never pressed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Attempt, CheckSettings, LoginWorker, PairQueue, WorkerFuture};

/// Most bytes read from a response.
const MAX_RESPONSE: usize = 64 * 1024;

/// A response, head parsed.
#[derive(Clone, Debug, Default)]
pub struct Response {
    /// Status code.
    pub code: u16,
    /// Headers (name lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body (lossy text, bounded).
    pub body: String,
}

impl Response {
    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A web interface: its address, and whether HTTP goes inside TLS (a
/// device that serves HTTPS on a port we expected plain HTTP on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Web {
    /// Address and port.
    pub addr: SocketAddr,
    /// HTTP inside TLS.
    pub tls: bool,
}

/// Accepts any certificate: the check records what answered (the survey
/// kept the certificate) and trusts nothing; signatures are still checked
/// by rustls's provider so the handshake is a real one.
#[derive(Debug)]
struct RecordDontTrust(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for RecordDontTrust {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordDontTrust(provider)))
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// A connection to a web interface, plain or inside TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `web`; inside TLS when asked (TLS 1.2 or 1.3: devices
/// that speak only older versions fail the handshake, and the caller says
/// it could not check).
async fn connect(web: Web, s: &CheckSettings) -> Option<Box<dyn Io>> {
    let tcp = tokio::time::timeout(s.connect_timeout, TcpStream::connect(web.addr))
        .await
        .ok()?
        .ok()?;
    if !web.tls {
        return Some(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::IpAddress(web.addr.ip().into());
    let tls = tokio::time::timeout(s.read_timeout, tls_connector().connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    Some(Box::new(tls))
}

/// Sends one GET or HEAD (never anything else) over plain HTTP and reads
/// the response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    s: &CheckSettings,
) -> Option<Response> {
    request_to(Web { addr, tls: false }, method, path, authorization, s).await
}

/// Sends one GET or HEAD (never anything else) to `web` and reads the
/// response; `None` when there is no connection (or no TLS handshake) or
/// no HTTP answer.
pub async fn request_to(
    web: Web,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    s: &CheckSettings,
) -> Option<Response> {
    assert!(
        method == "GET" || method == "HEAD",
        "read-only requests only"
    );
    let addr = web.addr;
    let mut stream = connect(web, s).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: close\r\n",
        addr.ip(),
        s.user_agent
    );
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let head_only = method == "HEAD";
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The response ends where its framing says (a server that ignores
    // `Connection: close` keeps the connection open, and waiting for the
    // close would cost a read timeout per request), at the close, or at an
    // absolute deadline against a server that trickles.
    let deadline = tokio::time::Instant::now() + s.read_timeout * 3;
    loop {
        if response_end(&buf, head_only).is_some() || buf.len() >= MAX_RESPONSE {
            break;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(s.read_timeout.min(left), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(end) = response_end(&buf, head_only) {
        buf.truncate(end);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let at = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = if chunked {
        walk_chunks(&buf[at..]).map_or_else(|| buf[at..].to_vec(), |(_, data)| data)
    } else {
        buf[at..].to_vec()
    };
    Some(Response {
        code: resp.code.unwrap_or(0),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Where the HTTP/1.1 response at the start of `buf` ends, once it is
/// all there (RFC 9112 section 6.3): after the head for a HEAD request
/// and for 1xx, 204 and 304; after the last chunk and trailers for
/// `Transfer-Encoding: chunked`; after `Content-Length` bytes. `None`
/// while incomplete, and for a response framed by the close of the
/// connection (no length).
pub fn response_end(buf: &[u8], head_request: bool) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let at = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let code = resp.code.unwrap_or(0);
    if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
        return Some(at);
    }
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if let Some(te) = value("transfer-encoding") {
        return if te.ends_with("chunked") {
            walk_chunks(&buf[at..]).map(|(end, _)| at + end)
        } else {
            None
        };
    }
    let length: usize = value("content-length")?.parse().ok()?;
    (buf.len() >= at.checked_add(length)?).then_some(at + length)
}

/// Walks a chunked body (RFC 9112 section 7.1): where it ends (after the
/// last chunk and its trailers) and its data; `None` while incomplete or
/// malformed.
fn walk_chunks(body: &[u8]) -> Option<(usize, Vec<u8>)> {
    let line_end = |from: usize| -> Option<usize> {
        body.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let eol = line_end(at)?;
        let line = std::str::from_utf8(&body[at..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = eol + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let eol = line_end(at)?;
                let empty = eol == at;
                at = eol + 2;
                if empty {
                    return Some((at, data));
                }
            }
        }
        let end = at.checked_add(size)?;
        data.extend_from_slice(body.get(at..end)?);
        if body.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        at = end + 2;
    }
}

/// Base64 (RFC 4648) of `input`, for Basic credentials.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// HTTP Basic or Digest logins on a path that answered 401.
pub struct HttpLogin {
    /// The path that asked for a login.
    pub path: String,
    /// HTTP inside TLS.
    pub tls: bool,
}

impl LoginWorker for HttpLogin {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        queue: &'a PairQueue,
        s: &'a CheckSettings,
    ) -> WorkerFuture<'a> {
        let web = Web {
            addr,
            tls: self.tls,
        };
        Box::pin(async move {
            let mut nc = 0u32;
            // Every challenge of the 401 (RFC 7235 §4.1), refreshed when a
            // refusal brings a new nonce.
            let mut challenges: Option<Vec<crate::auth::Challenge>> = None;
            while let Some(pair) = queue.next() {
                if challenges.is_none() {
                    challenges = request_to(web, "GET", &self.path, None, s)
                        .await
                        .filter(|r| r.code == 401)
                        .map(|r| {
                            crate::auth::parse_challenges(r.headers_named("www-authenticate"))
                        });
                }
                let Some(offered) = challenges.clone() else {
                    if queue.report(&pair, Attempt::Unreachable) {
                        break;
                    }
                    continue;
                };
                let Some(ch) = crate::auth::choose(&offered) else {
                    let schemes: Vec<&str> = offered.iter().map(|c| c.scheme.as_str()).collect();
                    queue.report(
                        &pair,
                        Attempt::Unsupported(format!(
                            "HTTP authentication {:?} offered: no Basic or Digest form we can answer",
                            schemes
                        )),
                    );
                    break;
                };
                nc += 1;
                // A client nonce no one can predict (RFC 7616 §3.4).
                let cnonce = crate::control_pair().password;
                let Some(auth) =
                    crate::auth::authorization(ch, &pair, "GET", &self.path, nc, &cnonce, b"")
                else {
                    break;
                };
                let outcome = match request_to(web, "GET", &self.path, Some(&auth), s).await {
                    Some(r)
                        if crate::auth::login_worked(
                            r.code,
                            r.header("www-authenticate").is_some(),
                            r.header("location"),
                            &r.body,
                        ) =>
                    {
                        Attempt::Success {
                            no_password: false,
                            evidence: format!(
                                "HTTP {} to {} with the pair ({})",
                                r.code, self.path, ch.scheme
                            ),
                        }
                    }
                    Some(r) if r.code == 401 => {
                        // A fresh challenge (a stale nonce) for the next pair.
                        let fresh =
                            crate::auth::parse_challenges(r.headers_named("www-authenticate"));
                        if !fresh.is_empty() {
                            challenges = Some(fresh);
                        }
                        Attempt::Failed
                    }
                    Some(r) if r.code == 429 || r.code == 423 => {
                        Attempt::Locked(format!("HTTP {}", r.code))
                    }
                    Some(_) => Attempt::Failed,
                    None => Attempt::Retry,
                };
                if queue.report(&pair, outcome) {
                    break;
                }
            }
        })
    }
}

/// Words of a control on a panel: what an operator presses or sets.
const CONTROL_WORDS: &[&str] = &[
    "run",
    "stop",
    "start",
    "threshold",
    "setpoint",
    "set point",
    "alarm reset",
    "reboot",
    "restart",
    "pump",
    "valve",
    "breaker",
    "delete logs",
    "proxy",
    "shutdown",
    "reset",
];

/// What a panel exposes without a login: the controls of its forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panel {
    /// Page title.
    pub title: Option<String>,
    /// Controls found (form actions and control words).
    pub controls: Vec<String>,
}

/// The attributes of one tag (`<input type=password name='pwd'>`), names
/// lower-cased, values as written: double-quoted, single-quoted or bare,
/// the three ways firmware writes HTML (HTML Living Standard, 13.1.2.3).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let b = tag.as_bytes();
    let mut out = Vec::new();
    // Skip "<name".
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
        i += 1;
    }
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            return out;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>') {
            i += 1;
        }
        let name = tag[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let v = i + 1;
                i = v;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = tag[v..i.min(b.len())].to_string();
                i += 1;
            } else {
                let v = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = tag[v..i].to_string();
            }
        }
        if name.is_empty() {
            i += 1;
            continue;
        }
        out.push((name, value));
    }
}

/// The tags named `name` in `html` (lower-case), each as its text from
/// `<` to `>` and the index just past it.
fn tags<'a>(html: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, usize)> + 'a {
    let open = format!("<{name}");
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let at = from + html.get(from..)?.find(&open)?;
        let after = html.as_bytes().get(at + open.len()).copied();
        from = at + open.len();
        // "<input" but not "<inputs": the name ends at a space, '/' or '>'.
        if !after.is_some_and(|c| c.is_ascii_whitespace() || c == b'>' || c == b'/') {
            continue;
        }
        let end = html[at..].find('>').map_or(html.len(), |e| at + e + 1);
        from = end;
        return Some((&html[at..end], end));
    })
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// True if `word` occurs in `text` as a whole word ("run" in "run mode"
/// and "pump" in "pump1", not "run" in "running").
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphabetic) && !after.is_some_and(char::is_alphabetic)
    })
}

/// True if the page (lower-cased) holds a password field, however its
/// attributes are quoted: a login form.
pub fn has_password_field(lower: &str) -> bool {
    tags(lower, "input").any(|(t, _)| attr(&attributes(t), "type") == Some("password"))
}

/// Looks at a page served without a login: a form that POSTs, asks for no
/// password, and whose *controls* (buttons, submit and other inputs,
/// selects; their names, values and texts) are named like controls that
/// change the equipment's state makes an open panel. A login form (any
/// password field, however its attributes are quoted) never does, and a
/// form's own Reset button (`type=reset`, which only clears the form in the
/// browser) is not a control of the device. Words in the page's free text
/// do not count.
pub fn panel_of(body: &str) -> Option<Panel> {
    let lower = body.to_ascii_lowercase();
    let mut controls = Vec::new();
    for (form_tag, body_start) in tags(&lower, "form") {
        let form_end = lower[body_start..]
            .find("</form")
            .map_or(lower.len(), |e| body_start + e);
        let form = &lower[body_start..form_end];
        let fattrs = attributes(form_tag);
        if attr(&fattrs, "method") != Some("post") {
            continue;
        }
        let inputs: Vec<Vec<(String, String)>> =
            tags(form, "input").map(|(t, _)| attributes(t)).collect();
        // A login form is not a control panel.
        if inputs.iter().any(|a| attr(a, "type") == Some("password")) {
            continue;
        }
        let mut texts: Vec<String> = Vec::new();
        for a in &inputs {
            let kind = attr(a, "type").unwrap_or("text");
            if matches!(kind, "reset" | "file") {
                continue;
            }
            texts.extend(attr(a, "name").map(String::from));
            texts.extend(attr(a, "value").map(String::from));
        }
        for (t, end) in tags(form, "button") {
            let a = attributes(t);
            if attr(&a, "type") == Some("reset") {
                continue;
            }
            texts.extend(attr(&a, "name").map(String::from));
            texts.extend(attr(&a, "value").map(String::from));
            let label_end = form[end..].find("</button").map_or(form.len(), |e| end + e);
            texts.push(form[end..label_end].to_string());
        }
        for (t, _) in tags(form, "select") {
            texts.extend(attr(&attributes(t), "name").map(String::from));
        }
        let words: Vec<&str> = CONTROL_WORDS
            .iter()
            .copied()
            .filter(|w| texts.iter().any(|t| has_word(t, w)))
            .collect();
        if !words.is_empty() {
            let action = attr(&fattrs, "action").unwrap_or("");
            controls.push(format!(
                "{} ({})",
                if action.is_empty() { "?" } else { action },
                words.join(", ")
            ));
        }
    }
    if controls.is_empty() {
        return None;
    }
    let title = lower.find("<title>").and_then(|s| {
        let rest = &body[s + 7..];
        rest.find("</").map(|e| rest[..e].trim().to_string())
    });
    Some(Panel { title, controls })
}

#[cfg(test)]
mod tests {
    use super::response_end;

    #[test]
    fn a_response_ends_where_its_framing_says() {
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(response_end(cl, false), Some(cl.len()));
        assert_eq!(response_end(&cl[..cl.len() - 1], false), None);
        // Bytes after the response (a second response, garbage) are not it.
        let more = [&cl[..], b"HTTP/1.1 200"].concat();
        assert_eq!(response_end(&more, false), Some(cl.len()));
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(response_end(head, true), Some(head.len()));
        assert_eq!(response_end(head, false), None);
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(response_end(no_content, false), Some(no_content.len()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(response_end(chunked, false), Some(chunked.len()));
        assert_eq!(response_end(&chunked[..chunked.len() - 2], false), None);
        let body_at = chunked.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (_, data) = super::walk_chunks(&chunked[body_at..]).unwrap();
        assert_eq!(data, b"hello world");
        // No length: the close ends it.
        assert_eq!(response_end(b"HTTP/1.0 200 OK\r\n\r\nabc", false), None);
        // Hostile lengths neither panic nor overflow.
        assert_eq!(
            response_end(
                b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
                false
            ),
            None
        );
        assert_eq!(
            response_end(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
                false
            ),
            None
        );
    }

    #[tokio::test]
    async fn a_server_that_keeps_the_connection_open_costs_no_read_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let _ = c
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<h1>\r\n2\r\nhi\r\n0\r\n\r\n")
                .await;
            // Keep-alive regardless of `Connection: close`.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        });
        let s = crate::CheckSettings {
            read_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let r = super::request(addr, "GET", "/", None, &s).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(r.code, 200);
        assert_eq!(r.body, "<h1>hi");
    }

    use super::*;

    #[test]
    fn base64_of_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn panels_are_control_forms_not_login_forms() {
        let water = "<title>WL-200</title><form method=\"POST\" action=\"/control\"><button name=\"mode\" value=\"RUN\">RUN</button><button name=\"mode\" value=\"STOP\">STOP</button></form>";
        let p = panel_of(water).unwrap();
        assert_eq!(p.title.as_deref(), Some("WL-200"));
        assert!(
            p.controls[0].starts_with("/control (run, stop"),
            "{:?}",
            p.controls
        );
        let login = "<form method=\"POST\" action=\"/login\">User name <input name=\"username\"> <input type=\"password\" name=\"password\"><button>Login</button></form>";
        assert_eq!(panel_of(login), None);
        assert_eq!(panel_of("<html>hello</html>"), None);
    }

    /// Issue 12: a DVR's login page (unquoted attributes, a Reset button)
    /// was reported as a critical open control panel.
    #[test]
    fn login_forms_in_any_quoting_and_reset_buttons_are_not_panels() {
        for q in ["", "'", "\""] {
            let page = format!(
                "<title>NETSurveillance WEB</title><form name=frmLogin method=post action=/Login.htm>\
                 User Name <input type={q}text{q} name={q}username{q}><br>\
                 Password <input type={q}password{q} name={q}pwd{q} size=16>\
                 <input type=submit value=Login> <input type=reset value=Reset></form>"
            );
            assert_eq!(panel_of(&page), None, "quote {q:?}");
        }
        // A settings form whose only "control word" is its own Reset button.
        let settings = "<form method=post action=/save><input name=hostname value=cam1>\
                        <input type=submit value=Save><input type=reset value=Reset></form>";
        assert_eq!(panel_of(settings), None);
        let button_reset = "<form method=post action=/save><input name=ntp>\
                            <button type=reset>Reset</button><button>Apply</button></form>";
        assert_eq!(panel_of(button_reset), None);
        // Words in free text, or inside other words, are not controls.
        let prose =
            "<form method=post action=/search><p>Pump station status: running, return valve</p>\
                     <input name=q><input type=submit value=Search></form>";
        assert_eq!(panel_of(prose), None);
        // Real controls in firmware HTML, unquoted: still a panel.
        let plant = "<form method=post action=/ctl><select name=pump1><option>on</option></select>\
                     <input type=submit name=cmd value=STOP></form>";
        let p = panel_of(plant).unwrap();
        assert!(
            p.controls[0].starts_with("/ctl (stop, pump"),
            "{:?}",
            p.controls
        );
        // A hidden command posted by a submit button counts; GET search forms do not.
        let reboot = "<form method='post' action='/sys'><input type='hidden' name='do' value='reboot'><input type='submit' value='Go'></form>";
        assert!(panel_of(reboot).is_some());
        assert_eq!(
            panel_of("<form method=get action=/x><button>Stop</button></form>"),
            None
        );
        // Hostile markup never panics.
        for junk in [
            "<form method=post",
            "<form method=post><input type=",
            "<form method=post><button>",
            "<form\u{1}method=post><input name='unterminated></form>",
        ] {
            let _ = panel_of(junk);
        }
    }
}
