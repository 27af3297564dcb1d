//! Webhook delivery (issue 20): one JSON document POSTed to an `http://` or
//! `https://` URL, retried with exponential back-off.
//!
//! HTTP/1.1 (RFC 9112) with `Connection: close`: one request per
//! connection, the status line is all that is read back (at most 8 KiB).
//! A 2xx status is delivered; 4xx but 408 and 429 is refused for good (the
//! receiver will not take this document); anything else (5xx, 408, 429, a
//! connection or TLS failure, a timeout) is tried again after 1, 2, 4, ...
//! seconds, up to the configured number of attempts.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to deliver.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// `http://host[:port]/path` or `https://...`.
    pub url: String,
    /// PEM bundle of trusted CAs for https (None: the system's).
    pub ca_file: Option<PathBuf>,
    /// Per-attempt timeout (connect, write, read).
    pub timeout: Duration,
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The first wait between attempts; doubled after each.
    pub backoff: Duration,
}

impl Webhook {
    /// `url` with the defaults: 10 s per attempt, 4 attempts, 1 s first wait.
    pub fn new(url: &str) -> Webhook {
        Webhook {
            url: url.to_string(),
            ca_file: None,
            timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Why a document was not delivered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not `http(s)://host[:port][/path]`.
    #[error("webhook URL {0:?}: expected http://HOST[:PORT]/PATH or https://...")]
    Url(String),
    /// The receiver refused it (a 4xx status other than 408 and 429).
    #[error("webhook {url} refused the alert: HTTP {status}")]
    Refused {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
    /// Every attempt failed; the last failure.
    #[error("webhook {url}: {attempts} attempts failed, the last: {last}")]
    Failed {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

/// Checks a webhook URL without sending anything (for settings read at
/// start: a bad URL is a usage error, not a delivery failure).
///
/// Errors: [`WebhookError::Url`].
pub fn check_url(url: &str) -> Result<(), WebhookError> {
    parse(url)
        .map(|_| ())
        .ok_or_else(|| WebhookError::Url(url.chars().take(200).collect()))
}

fn parse(url: &str) -> Option<Target> {
    if url.len() > 2048 {
        return None;
    }
    // The scheme is case-insensitive (RFC 3986 3.1).
    let (tls, rest) = match url.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("https") => (true, r),
        Some((s, r)) if s.eq_ignore_ascii_case("http") => (false, r),
        _ => return None,
    };
    // The fragment is the client's, never sent (RFC 9110 4.2.4).
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty()
        || authority.contains('@')
        || path.chars().any(|c| c.is_control() || c == ' ')
    {
        return None;
    }
    let default = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty()
        || port == 0
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return None;
    }
    Some(Target {
        tls,
        host,
        port,
        path,
    })
}

/// One attempt: the response's status, or why there was none.
fn attempt(w: &Webhook, t: &Target, body: &[u8]) -> Result<u16, String> {
    let addrs: Vec<_> = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .collect();
    // Each address the name has, in turn (localhost may be ::1 first while
    // the receiver listens on 127.0.0.1 only).
    let mut failures = Vec::new();
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, w.timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => failures.push(format!("connect {addr}: {e}")),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        if failures.is_empty() {
            format!("{} has no address", t.host)
        } else {
            failures.join("; ")
        }
    })?;
    // The whole attempt, not each read, is bounded: a receiver trickling a
    // byte at a time cannot hold the delivery.
    let deadline = std::time::Instant::now() + w.timeout;
    tcp.set_read_timeout(Some(w.timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(w.timeout))
        .map_err(|e| e.to_string())?;
    let host_header = if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: iotscope/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        t.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let mut head = Vec::new();
    // Reads until a final (non-1xx) status line has arrived, at most 8 KiB.
    let read_head = |s: &mut dyn Read, head: &mut Vec<u8>| -> Result<(), String> {
        let mut buf = [0u8; 1024];
        while final_status(head).is_none() && head.len() < 8192 {
            if std::time::Instant::now() >= deadline {
                return Err("the response took longer than the timeout".into());
            }
            let n = s.read(&mut buf).map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "no response within the timeout".to_string()
                }
                _ => format!("reading the response: {e}"),
            })?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    if t.tls {
        let config = crate::smtp::client_tls(w.ca_file.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("{}: {e}", t.host))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(&req).map_err(|e| format!("sending: {e}"))?;
        read_head(&mut s, &mut head)?;
    } else {
        let mut s = tcp;
        s.write_all(&req).map_err(|e| format!("sending: {e}"))?;
        read_head(&mut s, &mut head)?;
    }
    final_status(&head).unwrap_or_else(|| {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        Err(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(line)
                .chars()
                .take(80)
                .collect::<String>()
        ))
    })
}

/// The first final status of a response head: `None` while only interim
/// (1xx) responses, their headers or part of a line have arrived; an error
/// for a status line that does not parse.
fn final_status(head: &[u8]) -> Option<Result<u16, String>> {
    let text = String::from_utf8_lossy(head);
    let mut rest: &str = &text;
    loop {
        let (line, after) = rest.split_once("\r\n")?;
        rest = after;
        if !line.starts_with("HTTP/") {
            // A blank line or a header of an interim response.
            continue;
        }
        let mut parts = line.split_whitespace();
        let _version = parts.next();
        match parts.next().and_then(|c| c.parse::<u16>().ok()) {
            Some(code) if (200..600).contains(&code) => return Some(Ok(code)),
            Some(code) if (100..200).contains(&code) => continue,
            _ => {
                return Some(Err(format!(
                    "not an HTTP status line: {:?}",
                    line.chars().take(80).collect::<String>()
                )))
            }
        }
    }
}

/// POSTs `body` (JSON) to the webhook, retrying as the module says; the
/// status of the delivery.
///
/// Errors: [`WebhookError::Url`], [`WebhookError::Refused`],
/// [`WebhookError::Failed`].
pub fn post(w: &Webhook, body: &[u8]) -> Result<u16, WebhookError> {
    let t = parse(&w.url).ok_or_else(|| WebhookError::Url(w.url.clone()))?;
    let attempts = w.attempts.max(1);
    let mut wait = w.backoff;
    let mut last = String::new();
    for i in 0..attempts {
        if i > 0 {
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
        match attempt(w, &t, body) {
            Ok(code) if (200..300).contains(&code) => return Ok(code),
            Ok(code) if (400..500).contains(&code) && code != 408 && code != 429 => {
                return Err(WebhookError::Refused {
                    url: w.url.clone(),
                    status: code,
                })
            }
            Ok(code) => last = format!("HTTP {code}"),
            Err(e) => last = e,
        }
    }
    Err(WebhookError::Failed {
        url: w.url.clone(),
        attempts,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A receiver on 127.0.0.1 answering each connection with the next
    /// status of `script` and keeping the requests.
    fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook?x=1", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for code in script {
                let Ok((mut s, _)) = l.accept() else { return };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body its Content-Length says.
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                keep.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).to_string());
                let _ = s.write_all(
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        (url, seen)
    }

    fn quick(url: &str) -> Webhook {
        Webhook {
            backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(5),
            ..Webhook::new(url)
        }
    }

    #[test]
    fn a_failing_receiver_is_tried_again_until_it_takes_the_alert() {
        let (url, seen) = receiver(vec![503, 429, 204]);
        assert_eq!(post(&quick(&url), br#"{"a":1}"#), Ok(204));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen[2].starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
            "{}",
            seen[2]
        );
        assert!(seen[2].contains("Content-Type: application/json\r\n"));
        assert!(seen[2].ends_with("\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn a_refusal_is_final_and_attempts_are_bounded() {
        let (url, seen) = receiver(vec![400, 204]);
        assert!(matches!(
            post(&quick(&url), b"{}"),
            Err(WebhookError::Refused { status: 400, .. })
        ));
        assert_eq!(seen.lock().unwrap().len(), 1);
        let (url, seen) = receiver(vec![500, 500, 500, 500, 500]);
        let e = post(&quick(&url), b"{}").unwrap_err();
        assert!(matches!(e, WebhookError::Failed { attempts: 4, .. }), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 4);
        // Nobody listening: a connection failure, retried, then given up.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        assert!(matches!(
            post(&quick(&dead), b"{}"),
            Err(WebhookError::Failed { .. })
        ));
    }

    #[test]
    fn urls_that_are_not_plain_http_are_refused() {
        for bad in [
            "ftp://x/",
            "http://",
            "http://user@host/",
            "http://host:99999/",
            "http://ho st/",
            "http://host/a b",
            "http://host/\r\nX: y",
            "http://host:0/",
            "gopher://host/",
        ] {
            assert!(
                matches!(post(&quick(bad), b"{}"), Err(WebhookError::Url(_))),
                "{bad}"
            );
        }
        assert!(parse("https://[::1]:8443/h")
            .is_some_and(|t| t.tls && t.port == 8443 && t.host == "::1"));
        assert!(parse("http://example.org").is_some_and(|t| t.port == 80 && t.path == "/"));
        assert!(parse("HTTP://Example.org:8080/x").is_some_and(|t| t.port == 8080 && !t.tls));
        assert!(check_url(&format!("http://h/{}", "a".repeat(3000))).is_err());
        assert!(parse("http://example.org/a?b=1#frag").is_some_and(|t| t.path == "/a?b=1"));
        assert!(parse("http://example.org?b=1")
            .is_some_and(|t| t.host == "example.org" && t.path == "/?b=1"));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let both = b"HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.1 204 No Content\r\n";
        assert_eq!(final_status(both), Some(Ok(204)));
        assert_eq!(
            final_status(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"),
            None
        );
        assert_eq!(final_status(b"HTTP/1.1 503 Busy\r\n"), Some(Ok(503)));
        assert!(matches!(final_status(b"HTTP/1.1 abc\r\n"), Some(Err(_))));
    }
}
