//! Line-based text protocols: FTP (the greeting) and RTSP (OPTIONS).

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{read_some, Grab, GrabError, ProbeCtx, ProbeModule, MAX_BANNER};

/// FTP: the server's greeting (RFC 959 reply 220, possibly multi-line).
/// Nothing is sent: no USER, no anonymous login.
pub struct Ftp;

/// Whether `text` holds a complete FTP reply: a line `DDD ` (or just `DDD`)
/// after any `DDD-` continuation lines (RFC 959 4.2).
fn ftp_reply_complete(text: &str) -> bool {
    let mut lines = text.split("\r\n").collect::<Vec<_>>();
    if !text.ends_with('\n') {
        lines.pop(); // the last line is not finished
    }
    // Bytes, not characters: a device's text may put a multi-byte
    // character anywhere, and slicing a str there panics.
    let Some(code) = lines.first().and_then(|l| l.as_bytes().get(..3)) else {
        return false;
    };
    lines.iter().any(|l| {
        let l = l.as_bytes();
        l.get(..3) == Some(code) && matches!(l.get(3), None | Some(b' '))
    })
}

impl ProbeModule for Ftp {
    fn name(&self) -> &'static str {
        "ftp"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(async move {
            let mut buf = Vec::new();
            loop {
                match read_some(stream, &mut buf, ctx).await {
                    Ok(0) => break,
                    Ok(_) if buf.len() >= MAX_BANNER => break,
                    Ok(_) if ftp_reply_complete(&String::from_utf8_lossy(&buf)) => break,
                    Ok(_) => {}
                    Err(GrabError::Timeout) if !buf.is_empty() => break,
                    Err(e) => return Err(e),
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            let code: Option<u16> = text.get(..3).and_then(|c| c.parse().ok());
            let Some(code) = code.filter(|c| (100..600).contains(c)) else {
                return Err(GrabError::Protocol("FTP"));
            };
            // Be polite: say goodbye instead of dropping the line.
            let _ = stream.write_all(b"QUIT\r\n").await;
            Ok(json!({"code": code, "greeting": text.trim_end()}))
        })
    }
}

/// RTSP (RFC 2326): `OPTIONS *`; status, Server and the methods offered.
/// No DESCRIBE, so no stream is ever set up.
pub struct Rtsp;

fn rtsp_response(text: &str) -> Option<Value> {
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    let mut parts = status.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("RTSP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("");
    let mut server = None;
    let mut public = None;
    let mut auth = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "server" => server = Some(value),
            "public" => public = Some(value),
            "www-authenticate" => auth = Some(value),
            _ => {}
        }
    }
    let methods: Option<Vec<String>> =
        public.map(|p| p.split(',').map(|m| m.trim().to_string()).collect());
    Some(json!({
        "status_code": code,
        "status_line": format!("{code} {reason}"),
        "server": server,
        "methods": methods,
        "www_authenticate": auth,
    }))
}

impl ProbeModule for Rtsp {
    fn name(&self) -> &'static str {
        "rtsp"
    }

    fn grab<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Grab<'a> {
        Box::pin(rtsp_options(stream, ctx, "*"))
    }

    /// Cameras that drop `OPTIONS *` answer it with a URL, as ffmpeg and
    /// VLC send it (ZoneMinder PR #608).
    fn again<'a>(&'a self, stream: &'a mut TcpStream, ctx: &'a ProbeCtx) -> Option<Grab<'a>> {
        Some(Box::pin(async move {
            let url = if ctx.host.contains(':') {
                format!("rtsp://[{}]/", ctx.host)
            } else {
                format!("rtsp://{}/", ctx.host)
            };
            rtsp_options(stream, ctx, &url).await
        }))
    }

    fn asks_again(&self, _silent: bool) -> bool {
        true
    }
}

/// One `OPTIONS <target> RTSP/1.0` and its answer.
async fn rtsp_options(
    stream: &mut TcpStream,
    ctx: &ProbeCtx,
    target: &str,
) -> Result<serde_json::Value, GrabError> {
    {
        {
            let req = format!(
                "OPTIONS {target} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: {}\r\n\r\n",
                ctx.user_agent
            );
            stream.write_all(req.as_bytes()).await?;
            let mut buf = Vec::new();
            loop {
                match read_some(stream, &mut buf, ctx).await {
                    Ok(0) => break,
                    Ok(_)
                        if buf.len() >= MAX_BANNER || buf.windows(4).any(|w| w == b"\r\n\r\n") =>
                    {
                        break
                    }
                    Ok(_) => {}
                    Err(GrabError::Timeout) if !buf.is_empty() => break,
                    Err(e) => return Err(e),
                }
            }
            rtsp_response(&String::from_utf8_lossy(&buf)).ok_or(GrabError::Protocol("RTSP"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_replies_with_multi_byte_characters_anywhere_are_read() {
        for text in [
            "22\u{e9} x\r\n",
            "2\u{e9}0 x\r\n",
            "220-\u{e9}\r\n22\u{e9}\r\n",
            "\u{e9}\r\n",
        ] {
            let _ = ftp_reply_complete(text);
        }
        assert!(ftp_reply_complete("220-caf\u{e9}\r\n220 ok\r\n"));
        assert!(!ftp_reply_complete("22\u{e9} x\r\n220-x\r\n"));
    }

    #[test]
    fn ftp_replies_end_at_the_line_with_the_code_and_a_space() {
        assert!(ftp_reply_complete("220 (vsFTPd 3.0.3)\r\n"));
        assert!(!ftp_reply_complete("220-Welcome\r\n220-to the device\r\n"));
        assert!(ftp_reply_complete("220-Welcome\r\n more\r\n220 ready\r\n"));
        assert!(!ftp_reply_complete("220 partial"));
    }

    #[test]
    fn rtsp_options_answers_are_parsed() {
        let v = rtsp_response(
            "RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Hipcam RealServer/V1.0\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n",
        )
        .unwrap();
        assert_eq!(v["status_code"], 200);
        assert_eq!(v["server"], "Hipcam RealServer/V1.0");
        assert_eq!(v["methods"][1], "DESCRIBE");
        assert!(rtsp_response("HTTP/1.1 200 OK\r\n\r\n").is_none());
    }
}
