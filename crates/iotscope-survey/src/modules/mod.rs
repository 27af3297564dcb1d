//! Application-layer grabbers, one per protocol behind [`ProbeModule`]
//! (ZGrab2's shape: the engine connects and bounds time; a module only
//! speaks its protocol). Every module reads at most [`MAX_BANNER`] bytes and
//! sends nothing that changes a device: no logins, no writes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod text;
mod tls;
pub use text::{Ftp, Rtsp};
pub use tls::Tls;

/// Most bytes a module reads from one service.
pub const MAX_BANNER: usize = 8 * 1024;

/// What a module may use.
#[derive(Clone, Debug)]
pub struct ProbeCtx {
    /// How long to wait for data before giving up.
    pub read_timeout: Duration,
    /// User-Agent of HTTP probes (identifies the survey and its operator).
    pub user_agent: String,
    /// Address as text, for HTTP Host headers.
    pub host: String,
}

/// Why a grab failed (the connection itself was open).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrabError {
    /// No (complete) answer within the read timeout.
    #[error("read timeout")]
    Timeout,
    /// The peer closed or reset.
    #[error("connection closed: {0}")]
    Io(#[from] std::io::Error),
    /// An answer that is not the protocol.
    #[error("not {0}")]
    Protocol(&'static str),
    /// The module itself failed (a panic caught by the engine).
    #[error("{0}")]
    Internal(String),
}

/// The boxed future a module returns.
pub type Grab<'a> = Pin<Box<dyn Future<Output = Result<Value, GrabError>> + Send + 'a>>;

/// One application protocol.
pub trait ProbeModule: Send + Sync {
    /// Name written as `service` in the output.
    fn name(&self) -> &'static str;
    /// Talks to an open connection and describes what answered.
    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a>;
    /// A second, plainer way to ask, on a fresh connection, when [`grab`]
    /// got no valid answer: a real stack that does not implement our exact
    /// probe (no Modbus function 43, no `OPTIONS *`) is still that service.
    /// None (the default): the first answer stands.
    ///
    /// [`grab`]: ProbeModule::grab
    fn again<'a>(&'a self, _stream: &'a mut TcpStream, _ctx: &'a ProbeCtx) -> Option<Grab<'a>> {
        None
    }
    /// True when [`ProbeModule::again`] has a second way worth a fresh
    /// connection, given how the first ask failed (`silent`: no answer
    /// within the read timeouts).
    fn asks_again(&self, _silent: bool) -> bool {
        false
    }
}

/// The module for a port: the well-known IoT services, else a raw banner.
pub fn module_for(port: u16) -> &'static dyn ProbeModule {
    match port {
        23 | 2323 => &Telnet,
        22 | 2222 => &Ssh,
        80 | 81 | 8000 | 8008 | 8080 | 8081 | 8888 => &Http,
        1883 => &Mqtt,
        502 => &Modbus,
        21 | 2121 => &Ftp,
        554 | 8554 => &Rtsp,
        443 | 4443 | 8443 => &Tls,
        _ => &Raw,
    }
}

async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    ctx: &ProbeCtx,
) -> Result<usize, GrabError> {
    let mut chunk = [0u8; 2048];
    let n = tokio::time::timeout(ctx.read_timeout, stream.read(&mut chunk))
        .await
        .map_err(|_| GrabError::Timeout)??;
    let take = n.min(MAX_BANNER.saturating_sub(buf.len()));
    buf.extend_from_slice(&chunk[..take]);
    Ok(n)
}

/// Telnet: refuse every option (WONT/DONT, as ZGrab2 does) and read up to
/// the login prompt.
pub struct Telnet;

const IAC: u8 = 255;

impl ProbeModule for Telnet {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            let mut raw = Vec::new();
            let mut text = Vec::new();
            let mut options = Vec::new();
            let mut i = 0;
            let mut poked = false;
            loop {
                match read_some(stream, &mut raw, ctx).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // Silent (or only negotiating) until someone presses
                    // Enter, as serial console servers and some DVRs are:
                    // one CR LF, as people and nmap's telnet-brute send.
                    Err(GrabError::Timeout) if text.is_empty() && !poked => {
                        poked = true;
                        stream.write_all(b"\r\n").await?;
                        continue;
                    }
                    Err(GrabError::Timeout) if !text.is_empty() || !options.is_empty() => break,
                    Err(e) => return Err(e),
                }
                let mut reply = Vec::new();
                while i < raw.len() {
                    if raw[i] == IAC && i + 1 < raw.len() {
                        match raw[i + 1] {
                            251..=254 if i + 2 < raw.len() => {
                                let (cmd, opt) = (raw[i + 1], raw[i + 2]);
                                let verb = ["WILL", "WONT", "DO", "DONT"][(cmd - 251) as usize];
                                options.push(json!({"command": verb, "option": opt}));
                                // Answer DO with WONT and WILL with DONT.
                                match cmd {
                                    253 => reply.extend_from_slice(&[IAC, 252, opt]),
                                    251 => reply.extend_from_slice(&[IAC, 254, opt]),
                                    _ => {}
                                }
                                i += 3;
                            }
                            251..=254 => break,
                            IAC => {
                                text.push(IAC);
                                i += 2;
                            }
                            _ => i += 2,
                        }
                    } else if raw[i] == IAC {
                        break;
                    } else {
                        text.push(raw[i]);
                        i += 1;
                    }
                }
                if !reply.is_empty() {
                    stream.write_all(&reply).await?;
                }
                let shown = String::from_utf8_lossy(&text);
                let tail = shown.trim_end();
                if tail.ends_with("login:")
                    || tail.ends_with("Login:")
                    || tail.ends_with("Password:")
                    || tail.ends_with("username:")
                {
                    break;
                }
                if raw.len() >= MAX_BANNER {
                    break;
                }
            }
            if raw.is_empty() {
                return Err(GrabError::Protocol("telnet: closed without a byte"));
            }
            let shown = String::from_utf8_lossy(&text).into_owned();
            let prompt = shown
                .trim_end()
                .rsplit(['\n', '\r'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let mut banner = json!({"banner": shown, "prompt": prompt, "options": options, "enter_first": poked && !shown.trim().is_empty()});
            // Firmware that predates UTF-8 (GBK, Big5, Shift_JIS, CP1251)
            // loses its words in the lossy text: keep the bytes as well.
            if std::str::from_utf8(&text).is_err() {
                banner["banner_hex"] = text
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into();
            }
            Ok(banner)
        })
    }
}

/// SSH: the version line (RFC 4253 4.2: at most 255 bytes).
pub struct Ssh;

impl ProbeModule for Ssh {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            // RFC 4253 section 4.2: a server may send other lines before
            // its version line (banners, "please wait"); each at most 255
            // bytes. Read until a line that starts with "SSH-", keeping the
            // others, within the banner budget.
            let mut buf = Vec::new();
            loop {
                if let Some(found) = ssh_version_line(&buf) {
                    let (pre, line) = found;
                    let software = line.splitn(3, '-').nth(2).unwrap_or("").to_string();
                    let mut banner = json!({"version": line, "software": software});
                    if !pre.is_empty() {
                        banner["pre_version_lines"] = pre.into();
                    }
                    return Ok(banner);
                }
                let longest = buf.rsplit(|&b| b == b'\n').next().map_or(0, <[u8]>::len);
                if buf.len() >= MAX_BANNER || longest > 255 {
                    return Err(GrabError::Protocol("SSH"));
                }
                if read_some(stream, &mut buf, ctx).await? == 0 {
                    return Err(GrabError::Protocol("SSH"));
                }
            }
        })
    }
}

/// The SSH version line among the complete lines of `buf`, with the lines
/// before it (RFC 4253 section 4.2); `None` until one has arrived.
fn ssh_version_line(buf: &[u8]) -> Option<(Vec<String>, String)> {
    let complete = &buf[..buf.iter().rposition(|&b| b == b'\n')? + 1];
    let mut pre = Vec::new();
    for line in complete.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        if text.starts_with("SSH-") {
            return Some((pre, text));
        }
        if pre.len() < 16 && !text.is_empty() {
            pre.push(text);
        }
    }
    None
}

/// HTTP: `GET /` with our User-Agent; status, Server, title,
/// WWW-Authenticate (scheme and realm) and Location. Never follows.
pub struct Http;

fn html_title(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    Some(body[open_end..end].trim().to_string())
}

impl ProbeModule for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            let req = format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                ctx.host, ctx.user_agent
            );
            stream.write_all(req.as_bytes()).await?;
            let mut buf = Vec::new();
            loop {
                match read_some(stream, &mut buf, ctx).await {
                    Ok(0) => break,
                    Ok(_) if buf.len() >= MAX_BANNER => break,
                    Ok(_) => {}
                    Err(GrabError::Timeout) if !buf.is_empty() => break,
                    Err(e) => return Err(e),
                }
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let body_at = match resp.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => n,
                _ => return Err(GrabError::Protocol("HTTP")),
            };
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            // Every scheme of every WWW-Authenticate header (RFC 7235 §4.1:
            // Negotiate may come first, Basic second), for the checks.
            let schemes: Vec<String> = resp
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
                .flat_map(|h| {
                    String::from_utf8_lossy(h.value)
                        .split(',')
                        .filter_map(|item| {
                            let first = item.split_whitespace().next()?;
                            (!first.contains(['=', '"'])).then(|| first.to_ascii_lowercase())
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            // `scheme`: the first scheme offered; `realm`: the first realm
            // of any challenge (Negotiate, often first, has none).
            let auth = header("www-authenticate").map(|v| {
                let scheme = v
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let realm = resp
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("www-authenticate"))
                    .find_map(|h| {
                        String::from_utf8_lossy(h.value)
                            .split("realm=\"")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .map(String::from)
                    });
                json!({"scheme": scheme, "realm": realm, "schemes": schemes})
            });
            let body = String::from_utf8_lossy(&buf[body_at..]);
            // nginx and Apache answer a plain request on a TLS port with a
            // 400 that says so: the port speaks HTTPS (asked again).
            if resp.code == Some(400) {
                let lower = body.to_ascii_lowercase();
                if lower.contains("plain http request was sent to https port")
                    || lower.contains("speaking plain http to an ssl-enabled server")
                {
                    return Err(GrabError::Protocol("plain HTTP: the port speaks HTTPS"));
                }
            }
            Ok(json!({
                "status_code": resp.code,
                "status_line": format!("{} {}", resp.code.unwrap_or(0), resp.reason.unwrap_or("")),
                "server": header("server"),
                "title": html_title(&body),
                "www_authenticate": auth,
                "location": header("location"),
                "body_bytes": buf.len() - body_at,
            }))
        })
    }

    /// A port that did not answer plain HTTP may speak TLS (cameras and
    /// routers that moved their interface to HTTPS on 8080 or 8000): the
    /// TLS module's first flight on a fresh connection, the certificate
    /// recorded and never trusted, and `"tls": true` so the checks speak
    /// HTTP inside TLS there.
    fn again<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Option<Grab<'a>> {
        Some(Box::pin(async move {
            let mut banner = Tls.grab(stream, ctx).await?;
            banner["tls"] = true.into();
            Ok(banner)
        }))
    }

    /// Only after an answer that was not HTTP (a TLS stack answers a plain
    /// request with an alert or a close at once): a silent port (a tarpit)
    /// would hold a second connection for nothing.
    fn asks_again(&self, silent: bool) -> bool {
        !silent
    }
}

/// MQTT 3.1.1: an anonymous CONNECT; the CONNACK return code (0: anyone may use the broker).
pub struct Mqtt;

impl ProbeModule for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            let client = b"iotscope";
            let mut pkt = vec![
                0x10,
                (10 + 2 + client.len()) as u8,
                0,
                4,
                b'M',
                b'Q',
                b'T',
                b'T',
                4,
                0x02,
                0,
                30,
                0,
                client.len() as u8,
            ];
            pkt.extend_from_slice(client);
            stream.write_all(&pkt).await?;
            let mut buf = Vec::new();
            while buf.len() < 4 {
                if read_some(stream, &mut buf, ctx).await? == 0 {
                    break;
                }
            }
            if buf.len() < 4 || buf[0] != 0x20 || buf[1] != 2 {
                return Err(GrabError::Protocol("MQTT"));
            }
            let _ = stream.write_all(&[0xe0, 0x00]).await; // DISCONNECT
            Ok(json!({"return_code": buf[3], "anonymous_accepted": buf[3] == 0}))
        })
    }
}

/// Modbus/TCP: Read Device Identification (43/14), basic objects. A read:
/// it changes nothing on the controller.
pub struct Modbus;

impl ProbeModule for Modbus {
    fn name(&self) -> &'static str {
        "modbus"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            stream
                .write_all(&[0x49, 0x53, 0, 0, 0, 5, 1, 43, 14, 1, 0])
                .await?;
            let mut buf = Vec::new();
            loop {
                if buf.len() >= 7 && buf.len() >= 6 + u16::from_be_bytes([buf[4], buf[5]]) as usize
                {
                    break;
                }
                if read_some(stream, &mut buf, ctx).await? == 0 {
                    break;
                }
            }
            if buf.len() < 9 || buf[2..4] != [0, 0] {
                return Err(GrabError::Protocol("Modbus/TCP"));
            }
            let pdu = &buf[7..];
            if pdu[0] == 43 | 0x80 {
                return Ok(json!({"exception": pdu.get(1)}));
            }
            let mut objects = serde_json::Map::new();
            if pdu.len() > 6 && pdu[0] == 43 && pdu[1] == 14 {
                let count = pdu[6] as usize;
                let mut i = 7;
                for _ in 0..count {
                    let (Some(&id), Some(&len)) = (pdu.get(i), pdu.get(i + 1)) else {
                        break;
                    };
                    let Some(text) = pdu.get(i + 2..i + 2 + len as usize) else {
                        break;
                    };
                    let key = match id {
                        0 => "vendor",
                        1 => "product_code",
                        2 => "revision",
                        _ => "other",
                    };
                    objects.insert(
                        key.into(),
                        Value::String(String::from_utf8_lossy(text).into_owned()),
                    );
                    i += 2 + len as usize;
                }
            }
            Ok(json!({"device_identification": objects}))
        })
    }

    fn again<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Option<Grab<'a>> {
        Some(Box::pin(Modbus::read_one(stream, ctx)))
    }

    /// Also after silence: stacks without function 43 often say nothing.
    fn asks_again(&self, _silent: bool) -> bool {
        true
    }
}

impl Modbus {
    /// Function 3, Read Holding Registers, address 0, one register: a read
    /// every Modbus/TCP stack implements (Modbus Application Protocol
    /// v1.1b3 §6.3); any well-formed answer, an exception included, proves
    /// the service.
    async fn read_one(stream: &mut TcpStream, ctx: &ProbeCtx) -> Result<Value, GrabError> {
        stream
            .write_all(&[0x49, 0x54, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
            .await?;
        let mut buf = Vec::new();
        while buf.len() < 9 {
            if read_some(stream, &mut buf, ctx).await? == 0 {
                break;
            }
        }
        if buf.len() < 9 || buf[0..2] != [0x49, 0x54] || buf[2..4] != [0, 0] {
            return Err(GrabError::Protocol("Modbus/TCP"));
        }
        Ok(json!({
            "device_identification": null,
            "function_43": "no answer",
            "read_holding_registers": if buf[7] & 0x80 != 0 { "exception" } else { "answered" },
        }))
    }
}

/// Any other port: the first bytes the service sends unasked.
pub struct Raw;

impl ProbeModule for Raw {
    fn name(&self) -> &'static str {
        "unknown"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            let mut buf = Vec::new();
            match read_some(stream, &mut buf, ctx).await {
                Ok(_) | Err(GrabError::Timeout) => {}
                Err(e) => return Err(e),
            }
            let hex: String = buf.iter().take(256).map(|b| format!("{b:02x}")).collect();
            Ok(
                json!({"bytes": buf.len(), "hex": hex, "text": String::from_utf8_lossy(&buf).into_owned()}),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            html_title("<html><head><TITLE> WEB SERVICE </TITLE>").as_deref(),
            Some("WEB SERVICE")
        );
        assert_eq!(html_title("<title lang=x>a</title>").as_deref(), Some("a"));
        assert_eq!(html_title("no title"), None);
    }

    /// Every module takes any bytes a device sends without panicking
    /// (issue 12 item 7): random bytes, and pieces each parser looks for
    /// with multi-byte characters cut at every offset.
    #[test]
    fn every_module_takes_any_bytes() {
        use proptest::prelude::*;
        let piece = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            Just("22\u{e9} x\r\n".as_bytes().to_vec()),
            Just("\u{e9}".as_bytes()[..1].to_vec()),
            Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
            Just(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n".to_vec()),
            Just(b"<title>".to_vec()),
            Just(b"SSH-2.0-".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(vec![255, 253, 1]),
            Just(vec![22, 3, 1, 0, 5]),
            Just(vec![0, 1, 0, 0, 0, 5, 1, 43]),
            Just(vec![0x20, 2, 0, 0]),
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 48,
            ..Default::default()
        });
        runner
            .run(&prop::collection::vec(piece, 0..24), |pieces| {
                let bytes = pieces.concat();
                runtime.block_on(async {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let addr = listener.local_addr().unwrap();
                    let served = bytes.clone();
                    tokio::spawn(async move {
                        while let Ok((mut c, _)) = listener.accept().await {
                            let _ = c.write_all(&served).await;
                        }
                    });
                    let ctx = ProbeCtx {
                        read_timeout: Duration::from_millis(100),
                        user_agent: "test".into(),
                        host: "127.0.0.1".into(),
                    };
                    for port in [21, 22, 23, 80, 443, 502, 554, 1883, 9999] {
                        let module = module_for(port);
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            module.grab(&mut stream, &ctx),
                        )
                        .await;
                        drop(stream);
                        let mut second = TcpStream::connect(addr).await.unwrap();
                        {
                            let again = module.again(&mut second, &ctx);
                            if let Some(again) = again {
                                let _ = tokio::time::timeout(Duration::from_secs(2), again).await;
                            }
                        }
                    }
                });
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn ssh_version_lines_may_follow_other_lines() {
        let (pre, line) =
            ssh_version_line(b"Welcome to the AP\r\nplease wait\r\nSSH-2.0-dropbear_2019.78\r\n")
                .unwrap();
        assert_eq!(line, "SSH-2.0-dropbear_2019.78");
        assert_eq!(pre, ["Welcome to the AP", "please wait"]);
        assert!(ssh_version_line(b"Welcome\r\nSSH-2.0-dro").is_none());
        assert!(ssh_version_line(b"").is_none());
        assert_eq!(
            ssh_version_line(b"SSH-1.99-OpenSSH_3.9p1\n").unwrap().1,
            "SSH-1.99-OpenSSH_3.9p1"
        );
    }
}
