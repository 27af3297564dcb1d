//! A small SMTP client (RFC 5321) for sending ISP reports: one message per
//! connection, the report as a base64 CSV attachment. It speaks to the
//! relay the operator configures and to nothing else. STARTTLS (RFC 3207)
//! is used whenever the relay offers it, with the certificate checked
//! against the system's or the operator's CA bundle; a relay that offers it
//! and then fails the handshake gets nothing, never the message in clear.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// Connection or I/O failure.
    #[error("SMTP {server}: {source}")]
    Io {
        /// Server.
        server: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The server refused a step.
    #[error("SMTP {server} refused {step}: {reply}")]
    Refused {
        /// Server.
        server: SocketAddr,
        /// MAIL, RCPT, DATA, ...
        step: &'static str,
        /// Its reply.
        reply: String,
    },
    /// A header value or address that would inject SMTP commands or mail
    /// headers (a line break, a control character, not an RFC 5321
    /// mailbox): nothing was sent.
    #[error("SMTP: {field} {value:?} is not allowed: {why}")]
    Invalid {
        /// Which field (from, to, subject, attachment name).
        field: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// TLS could not be set up (no STARTTLS when required, a bad CA file,
    /// a certificate that does not verify).
    #[error("SMTP {server}: TLS: {what}")]
    Tls {
        /// Server.
        server: SocketAddr,
        /// What went wrong.
        what: String,
    },
}

/// When to use STARTTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Whenever the relay offers it (the default).
    #[default]
    WhenOffered,
    /// Always: a relay that does not offer it gets no message.
    Required,
    /// Never (a relay on the same host, say).
    Never,
}

/// How to reach the relay.
#[derive(Clone, Debug)]
pub struct Relay {
    /// Its address.
    pub server: SocketAddr,
    /// The name its certificate must carry (a DNS name or an IP address).
    pub tls_name: String,
    /// STARTTLS policy.
    pub tls: TlsMode,
    /// PEM bundle of trusted CAs; None: the system bundle.
    pub ca_file: Option<PathBuf>,
    /// Name given in EHLO.
    pub helo: String,
    /// Per-step timeout.
    pub timeout: Duration,
}

/// The system CA bundle on Debian and its relatives.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The connection, in clear or under TLS after STARTTLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn tls_config(relay: &Relay) -> Result<Arc<rustls::ClientConfig>, String> {
    client_tls(relay.ca_file.as_deref())
}

/// A TLS client configuration trusting the PEM bundle `ca_file`, or the
/// system's (`/etc/ssl/certs/ca-certificates.crt`), with the ring provider.
pub(crate) fn client_tls(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let path = ca_file
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("cannot read CA bundle {}: {e}", path.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("CA bundle {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("CA bundle {} holds no certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why `addr` is not an RFC 5321 mailbox (`local@domain`, dot-atom local
/// part of at most 64 bytes, a domain of LDH labels or an address literal,
/// at most 254 bytes in all, no space, control character, `<` or `>`), if
/// it is not. Quoted local parts are refused: no abuse desk needs one.
pub fn mailbox_problem(addr: &str) -> Option<&'static str> {
    if addr.len() > 254 {
        return Some("longer than 254 bytes");
    }
    if addr.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("holds a line break, space or control character");
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Some("no @");
    };
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
    let atom_ok = |a: &str| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || ATEXT.contains(c))
    };
    if local.is_empty() || local.len() > 64 || !local.split('.').all(atom_ok) {
        return Some("the part before @ is not a dot-atom of at most 64 bytes");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let literal = domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|d| {
            d.parse::<std::net::Ipv4Addr>().is_ok()
                || d.strip_prefix("IPv6:")
                    .is_some_and(|v| v.parse::<std::net::Ipv6Addr>().is_ok())
        });
    if !literal && !domain.split('.').all(label_ok) {
        return Some("the domain is not a host name or address literal");
    }
    None
}

/// Checks every configured value that goes into the envelope or headers.
///
/// # Errors
/// [`SmtpError::Invalid`] naming the field.
pub fn validate_message(m: &Message) -> Result<(), SmtpError> {
    let invalid = |field, value: &str, why| SmtpError::Invalid {
        field,
        value: value.to_string(),
        why,
    };
    for (field, value) in [("from", &m.from), ("to", &m.to)] {
        if let Some(why) = mailbox_problem(value) {
            return Err(invalid(field, value, why));
        }
    }
    for (field, value) in [
        ("subject", &m.subject),
        ("attachment name", &m.attachment_name),
    ] {
        if value.chars().any(char::is_control) {
            return Err(invalid(
                field,
                value,
                "holds a line break or control character",
            ));
        }
    }
    if m.attachment_name.contains(['"', '\\', '/']) {
        return Err(invalid(
            "attachment name",
            &m.attachment_name,
            "holds a quote, backslash or slash",
        ));
    }
    Ok(())
}

/// A message to send.
#[derive(Clone, Debug)]
pub struct Message {
    /// Envelope and header sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Attachment file name.
    pub attachment_name: String,
    /// Attachment bytes (sent base64).
    pub attachment: Vec<u8>,
    /// The attachment's media type: `text/csv` for ISP reports,
    /// `application/json` for detection alerts.
    pub attachment_type: &'static str,
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in input.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n"); // 76-character lines
        }
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `t` as an RFC 5322 §3.3 date ("Mon, 30 Nov 2026 17:05:47 +0000").
pub fn rfc5322_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The message as RFC 5322 + MIME text, dot-stuffed, CRLF line ends.
pub fn render(m: &Message, date: &str, boundary: &str) -> String {
    let body = m.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{boundary}@iotscope.invalid>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n\
         --{boundary}\r\nContent-Type: {kind}; charset=utf-8; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{att}\r\n\
         --{boundary}--\r\n",
        from = m.from,
        to = m.to,
        subject = m.subject,
        name = m.attachment_name,
        kind = m.attachment_type,
        att = base64(&m.attachment),
    );
    // Dot-stuffing (RFC 5321 4.5.2).
    text.split("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Sends `m` through the relay; Ok with the server's final reply when it
/// accepted the message (250 after DATA), and how it travelled ("STARTTLS
/// TLSv1_3" or "in clear"), so the caller can record both.
pub fn send(relay: &Relay, m: &Message, date: &str) -> Result<(String, String), SmtpError> {
    // The last gate before any byte goes out: the envelope and the headers
    // carry configured text, which must not add commands or headers.
    validate_message(m)?;
    let server = relay.server;
    let io = |source| SmtpError::Io { server, source };
    let tls_err = |what: String| SmtpError::Tls { server, what };
    let stream = TcpStream::connect_timeout(&server, relay.timeout).map_err(io)?;
    stream.set_read_timeout(Some(relay.timeout)).map_err(io)?;
    stream.set_write_timeout(Some(relay.timeout)).map_err(io)?;
    let mut conn = BufReader::new(Conn::Plain(stream));
    // A reply: lines "250-..." until "250 ...".
    let reply = |r: &mut BufReader<Conn>| -> Result<(u16, String), SmtpError> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).map_err(io)? == 0 {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                )));
            }
            all.push_str(line.trim_end());
            all.push('\n');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, all.trim_end().to_string()));
            }
        }
    };
    let step = |r: &mut BufReader<Conn>,
                cmd: Option<String>,
                name: &'static str,
                ok: u16|
     -> Result<String, SmtpError> {
        if let Some(c) = cmd {
            let w = r.get_mut();
            w.write_all(format!("{c}\r\n").as_bytes()).map_err(io)?;
            w.flush().map_err(io)?;
        }
        let (code, text) = reply(r)?;
        if code != ok {
            return Err(SmtpError::Refused {
                server,
                step: name,
                reply: text.replace('\n', " "),
            });
        }
        Ok(text)
    };
    step(&mut conn, None, "the connection", 220)?;
    let ehlo = step(&mut conn, Some(format!("EHLO {}", relay.helo)), "EHLO", 250)?;
    // Extension keywords follow the code and separator on each line.
    let offers_starttls = ehlo.lines().any(|l| {
        l.get(4..)
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    let mut travelled = "in clear".to_string();
    let use_tls = match relay.tls {
        TlsMode::Never => false,
        TlsMode::WhenOffered => offers_starttls,
        TlsMode::Required if !offers_starttls => {
            let _ = conn.get_mut().write_all(b"QUIT\r\n");
            return Err(tls_err(
                "the relay does not offer STARTTLS and [smtp] tls = \"require\"".into(),
            ));
        }
        TlsMode::Required => true,
    };
    if use_tls {
        let config = tls_config(relay).map_err(tls_err)?;
        step(&mut conn, Some("STARTTLS".into()), "STARTTLS", 220)?;
        // Anything already buffered arrived before the handshake, in clear:
        // an injection (CVE-2011-0411), not part of the TLS session.
        if !conn.buffer().is_empty() {
            return Err(tls_err(
                "the relay sent data in clear after STARTTLS".into(),
            ));
        }
        let Conn::Plain(tcp) = conn.into_inner() else {
            unreachable!("STARTTLS on a connection that is already TLS")
        };
        let name = rustls::pki_types::ServerName::try_from(relay.tls_name.clone())
            .map_err(|e| tls_err(format!("{:?} is not a server name: {e}", relay.tls_name)))?;
        let mut session =
            rustls::ClientConnection::new(config, name).map_err(|e| tls_err(e.to_string()))?;
        let mut tcp = tcp;
        while session.is_handshaking() {
            session
                .complete_io(&mut tcp)
                .map_err(|e| tls_err(format!("handshake with {}: {e}", relay.tls_name)))?;
        }
        travelled = format!(
            "STARTTLS {}",
            session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default()
        );
        conn = BufReader::new(Conn::Tls(Box::new(rustls::StreamOwned::new(session, tcp))));
        // RFC 3207: forget what was learnt in clear and ask again.
        step(&mut conn, Some(format!("EHLO {}", relay.helo)), "EHLO", 250)?;
    }
    step(
        &mut conn,
        Some(format!("MAIL FROM:<{}>", m.from)),
        "MAIL",
        250,
    )?;
    step(&mut conn, Some(format!("RCPT TO:<{}>", m.to)), "RCPT", 250)?;
    step(&mut conn, Some("DATA".into()), "DATA", 354)?;
    // A boundary no attachment or name can guess and close early.
    let boundary = format!("iotscope-{}", crate::random_hex());
    conn.get_mut()
        .write_all(render(m, date, &boundary).as_bytes())
        .map_err(io)?;
    let accepted = step(&mut conn, Some(".".into()), "the message", 250)?;
    let _ = conn.get_mut().write_all(b"QUIT\r\n");
    let _ = conn.get_mut().flush();
    Ok((accepted.replace('\n', " "), travelled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_5322() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_058_347);
        assert_eq!(rfc5322_date(t), "Mon, 30 Nov 2026 17:05:47 +0000");
        assert_eq!(
            rfc5322_date(std::time::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
    }

    #[test]
    fn configured_addresses_cannot_add_commands_or_headers() {
        for bad in [
            "abuse@isp.example>\r\nRCPT TO:<attacker@evil.example",
            "abuse@isp.example\nBcc: x@evil.example",
            "abuse @isp.example",
            "abuse@isp..example",
            "<abuse@isp.example>",
            "abuse",
            "\"a b\"@isp.example",
            "abuse@-isp.example",
        ] {
            assert!(mailbox_problem(bad).is_some(), "{bad:?}");
        }
        for good in [
            "abuse@isp.example",
            "noc+iot@isp-a.example.jp",
            "cert@[192.0.2.1]",
        ] {
            assert_eq!(mailbox_problem(good), None, "{good:?}");
        }
        let m = Message {
            from: "cert@example.net".into(),
            to: "abuse@isp.example>\r\nRCPT TO:<attacker@evil.example".into(),
            subject: "report".into(),
            body: String::new(),
            attachment_name: "isp.csv".into(),
            attachment_type: "text/csv",
            attachment: vec![],
        };
        assert!(matches!(
            validate_message(&m),
            Err(SmtpError::Invalid { field: "to", .. })
        ));
        // Refused before connecting: the relay address is never dialled.
        let relay = Relay {
            server: "127.0.0.1:9".parse().unwrap(),
            tls_name: "x".into(),
            tls: TlsMode::Required,
            ca_file: None,
            helo: "x".into(),
            timeout: Duration::from_millis(100),
        };
        assert!(matches!(
            send(&relay, &m, "d"),
            Err(SmtpError::Invalid { .. })
        ));
        let m = Message {
            to: "abuse@isp.example".into(),
            subject: "x\r\nBcc: e@evil.example".into(),
            ..m
        };
        assert!(matches!(
            validate_message(&m),
            Err(SmtpError::Invalid {
                field: "subject",
                ..
            })
        ));
    }

    #[test]
    fn messages_are_mime_with_a_base64_attachment_and_dot_stuffed() {
        let m = Message {
            from: "cert@example.net".into(),
            to: "abuse@isp.example".into(),
            subject: "report".into(),
            body: "Hello\n.hidden line\n".into(),
            attachment_name: "isp.csv".into(),
            attachment_type: "text/csv",
            attachment: b"ip\n192.0.2.1\n".to_vec(),
        };
        let t = render(&m, "Thu, 26 Nov 2026 19:00:00 +0000", "b1");
        assert!(t.contains("\r\n..hidden line\r\n"));
        assert!(t.contains("filename=\"isp.csv\""));
        assert!(t.contains(&base64(b"ip\n192.0.2.1\n")));
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert!(!t.contains("\n\n") || t.contains("\r\n\r\n"));
    }
}
