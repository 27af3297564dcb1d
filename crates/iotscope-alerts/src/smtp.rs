//! A small SMTP client (RFC 5321) for sending ISP reports: one message per
//! connection, the report as a base64 CSV attachment. It speaks to the
//! relay the operator configures and to nothing else.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
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
    /// Attachment bytes (sent base64, text/csv).
    pub attachment: Vec<u8>,
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

/// The message as RFC 5322 + MIME text, dot-stuffed, CRLF line ends.
pub fn render(m: &Message, date: &str, boundary: &str) -> String {
    let body = m.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let text = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n\
         --{boundary}\r\nContent-Type: text/csv; charset=utf-8; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{att}\r\n\
         --{boundary}--\r\n",
        from = m.from,
        to = m.to,
        subject = m.subject,
        name = m.attachment_name,
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

/// Sends `m` through `server`; Ok with the server's final reply when it
/// accepted the message (250 after DATA), so the caller can record it.
pub fn send(
    server: SocketAddr,
    helo: &str,
    m: &Message,
    date: &str,
    timeout: Duration,
) -> Result<String, SmtpError> {
    let io = |source| SmtpError::Io { server, source };
    let stream = TcpStream::connect_timeout(&server, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut w = stream.try_clone().map_err(io)?;
    let mut r = BufReader::new(stream);
    // A reply: lines "250-..." until "250 ...".
    let reply = |r: &mut BufReader<TcpStream>| -> Result<(u16, String), SmtpError> {
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
            all.push(' ');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, all.trim_end().to_string()));
            }
        }
    };
    let step = |w: &mut TcpStream,
                r: &mut BufReader<TcpStream>,
                cmd: Option<String>,
                name: &'static str,
                ok: u16|
     -> Result<String, SmtpError> {
        if let Some(c) = cmd {
            w.write_all(format!("{c}\r\n").as_bytes()).map_err(io)?;
        }
        let (code, text) = reply(r)?;
        if code != ok {
            return Err(SmtpError::Refused {
                server,
                step: name,
                reply: text,
            });
        }
        Ok(text)
    };
    step(&mut w, &mut r, None, "the connection", 220)?;
    step(&mut w, &mut r, Some(format!("EHLO {helo}")), "EHLO", 250)?;
    step(
        &mut w,
        &mut r,
        Some(format!("MAIL FROM:<{}>", m.from)),
        "MAIL",
        250,
    )?;
    step(
        &mut w,
        &mut r,
        Some(format!("RCPT TO:<{}>", m.to)),
        "RCPT",
        250,
    )?;
    step(&mut w, &mut r, Some("DATA".into()), "DATA", 354)?;
    let boundary = format!("iotscope-{}", date.replace([' ', ':', ','], ""));
    w.write_all(render(m, date, &boundary).as_bytes())
        .map_err(io)?;
    let accepted = step(&mut w, &mut r, Some(".".into()), "the message", 250)?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_mime_with_a_base64_attachment_and_dot_stuffed() {
        let m = Message {
            from: "cert@example.net".into(),
            to: "abuse@isp.example".into(),
            subject: "report".into(),
            body: "Hello\n.hidden line\n".into(),
            attachment_name: "isp.csv".into(),
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
