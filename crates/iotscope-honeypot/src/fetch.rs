//! Fetching what a bot asked to download (off unless configured): plain
//! HTTP GET of `wget`/`curl` URLs, rate-limited, size-capped and timed
//! out, refusing every address that is not globally routable in any of its
//! spellings (a URL naming 127.0.0.1, 10.x, 169.254.169.254 or
//! `::ffff:10.0.0.1` must not make the honeypot reach into its own
//! network: a server-side request forgery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use iotscope_survey::scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How downloads are fetched.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Bytes of a body at most; a larger one is cut there and recorded as
    /// truncated.
    pub max_bytes: usize,
    /// Fetches per minute at most, over all sessions.
    pub per_minute: u32,
    /// Connect, send and read, in all.
    pub timeout: Duration,
    /// Fetch from non-global addresses too (tests on loopback only).
    pub allow_private: bool,
}

/// Why an address is not fetched from, if it is not globally routable:
/// RFC 6890's special-purpose registries (loopback, private, shared,
/// link-local, documentation, benchmarking, multicast, reserved, ULA).
/// IPv6 spellings of an IPv4 address (mapped, compatible, NAT64 well-known
/// and local-use, SIIT) are judged as that address, by the survey scope's
/// own reading of them (`iotscope_survey::scope`), so the honeypot and the
/// scanner agree on what an address is.
pub fn not_global(ip: IpAddr) -> Option<&'static str> {
    let v4 = |a: Ipv4Addr| -> Option<&'static str> {
        let o = a.octets();
        let why = match o {
            [0, ..] => "this network (0.0.0.0/8)",
            [10, ..] => "private (10.0.0.0/8)",
            [100, b, ..] if (64..128).contains(&b) => "shared address space (100.64.0.0/10)",
            [127, ..] => "loopback (127.0.0.0/8)",
            [169, 254, ..] => "link-local (169.254.0.0/16)",
            [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
            [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation (RFC 5737)",
            [192, 168, ..] => "private (192.168.0.0/16)",
            [198, b, ..] if b == 18 || b == 19 => "benchmarking (198.18.0.0/15)",
            [a, ..] if a >= 224 => "multicast or reserved (224.0.0.0/3)",
            _ => return None,
        };
        Some(why)
    };
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            if let Some(embedded) = scope::embedded_spelling(a).or_else(|| scope::nat64_target(a)) {
                return v4(embedded);
            }
            let s = a.segments();
            if u128::from(a) >> 1 == 0 {
                return Some("unspecified or loopback (::, ::1)");
            }
            match s[0] {
                0xfc00..=0xfdff => Some("unique local (fc00::/7)"),
                0xfe80..=0xfebf => Some("link-local (fe80::/10)"),
                0xfec0..=0xfeff => Some("site-local (fec0::/10)"),
                0xff00..=0xffff => Some("multicast (ff00::/8)"),
                0x2001 if s[1] == 0x0db8 => Some("documentation (2001:db8::/32)"),
                _ if a == Ipv6Addr::LOCALHOST => Some("loopback (::1)"),
                _ => None,
            }
        }
    }
}

/// A token bucket: `per_minute` fetches a minute, as a burst at most.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: u32,
    state: Mutex<(Instant, f64)>,
}

impl RateLimit {
    /// Full at first.
    pub fn new(per_minute: u32) -> Self {
        RateLimit {
            per_minute,
            state: Mutex::new((Instant::now(), per_minute as f64)),
        }
    }
    /// Takes a token if there is one.
    pub fn take(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.0).as_secs_f64() * self.per_minute as f64 / 60.0;
        s.1 = (s.1 + refill).min(self.per_minute as f64);
        s.0 = now;
        if s.1 >= 1.0 {
            s.1 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A fetched body.
#[derive(Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The body (at most `max_bytes`).
    pub body: Vec<u8>,
    /// Cut at `max_bytes`.
    pub truncated: bool,
}

/// GETs `url` (http only) as BusyBox wget would, within `cfg`'s bounds:
/// [`prepare`] then [`get`].
///
/// Errors: a message saying why nothing was fetched (not http, a bad URL,
/// a name that does not resolve, an address that is not global, a timeout,
/// a status other than 200).
pub async fn fetch_http(url: &str, cfg: &FetchConfig) -> Result<Fetched, String> {
    let target = prepare(url, cfg).await?;
    get(&target, cfg).await
}

/// Where a fetch would go: checked, resolved, not yet contacted.
#[derive(Clone, Debug)]
pub struct Target {
    addr: SocketAddr,
    request: String,
}

/// Parses `url` and resolves its host, refusing what [`not_global`] names
/// (unless `cfg.allow_private`), within `cfg.timeout`: nothing is sent. A
/// caller charges its rate limit only for a URL that passed.
///
/// Errors: why the URL will not be fetched.
pub async fn prepare(url: &str, cfg: &FetchConfig) -> Result<Target, String> {
    tokio::time::timeout(cfg.timeout, prepare_inner(url, cfg))
        .await
        .map_err(|_| format!("no answer within {} s", cfg.timeout.as_secs()))?
}

/// GETs a prepared target within `cfg`'s bounds.
///
/// Errors: a timeout, a refused connection, a status other than 200.
pub async fn get(t: &Target, cfg: &FetchConfig) -> Result<Fetched, String> {
    tokio::time::timeout(cfg.timeout, get_inner(t, cfg))
        .await
        .map_err(|_| format!("no answer within {} s", cfg.timeout.as_secs()))?
}

async fn prepare_inner(url: &str, cfg: &FetchConfig) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("HTTP://"))
        .ok_or("only http:// URLs are fetched")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match crate::extract::url_host(url) {
        (Some(h), p) => (h, p.unwrap_or(80)),
        _ => return Err("no host in the URL".into()),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) || authority.bytes().any(|b| b <= b' ') {
        return Err("the URL holds spaces or control bytes".into());
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !cfg.allow_private {
        if let Some(why) = addrs.iter().find_map(|a| not_global(a.ip())) {
            return Err(format!("{host} is not a global address: {why}"));
        }
    }
    let host_header = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n");
    Ok(Target { addr, request })
}

async fn get_inner(t: &Target, cfg: &FetchConfig) -> Result<Fetched, String> {
    let addr = t.addr;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.write_all(t.request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let head_cap = 16 * 1024;
    let cap = cfg.max_bytes + head_cap;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut truncated = false;
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > cap {
            truncated = true;
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the answer's head is incomplete".into()),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    if resp.code != Some(200) {
        return Err(format!(
            "server returned error: HTTP/1.{} {}",
            resp.version.unwrap_or(0),
            resp.code.unwrap_or(0)
        ));
    }
    let mut body = buf[head..].to_vec();
    if body.len() > cfg.max_bytes {
        body.truncate(cfg.max_bytes);
        truncated = true;
    }
    Ok(Fetched { body, truncated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "172.20.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "198.51.100.7",
            "2001:db8::1",
            "::10.0.0.1",
            // NAT64 local-use and SIIT spellings of 10.0.0.1.
            "64:ff9b:1:a00:0:100::",
            "::ffff:0:a00:1",
        ] {
            assert!(not_global(a.parse().unwrap()).is_some(), "{a}");
        }
        for a in [
            "8.8.8.8",
            "11.0.9.7",
            "2600::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(not_global(a.parse().unwrap()), None, "{a}");
        }
    }

    #[test]
    fn the_rate_limit_holds() {
        let r = RateLimit::new(3);
        assert!(r.take() && r.take() && r.take());
        assert!(!r.take());
    }

    #[tokio::test]
    async fn fetches_are_bounded_and_private_addresses_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for _ in 0..3 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).await.unwrap();
                let req = String::from_utf8_lossy(&b[..n]).to_string();
                let body = if req.starts_with("GET /big") {
                    vec![b'A'; 100_000]
                } else {
                    b"\x7fELF-sample".to_vec()
                };
                let status = if req.starts_with("GET /missing") {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = s.write_all(&body).await;
            }
        });
        let mut cfg = FetchConfig {
            max_bytes: 10_000,
            per_minute: 10,
            timeout: Duration::from_secs(5),
            allow_private: false,
        };
        let e = fetch_http(&format!("http://127.0.0.1:{port}/x"), &cfg)
            .await
            .unwrap_err();
        assert!(e.contains("not a global address"), "{e}");
        cfg.allow_private = true;
        let f = fetch_http(&format!("http://127.0.0.1:{port}/x.arm7"), &cfg)
            .await
            .unwrap();
        assert_eq!(
            f,
            Fetched {
                body: b"\x7fELF-sample".to_vec(),
                truncated: false
            }
        );
        let f = fetch_http(&format!("http://127.0.0.1:{port}/big"), &cfg)
            .await
            .unwrap();
        assert!(f.truncated && f.body.len() == 10_000);
        let e = fetch_http(&format!("http://127.0.0.1:{port}/missing"), &cfg)
            .await
            .unwrap_err();
        assert!(e.contains("404"), "{e}");
        assert!(fetch_http("tftp://127.0.0.1/x", &cfg).await.is_err());
        assert!(fetch_http("http://127.0.0.1:1/a b", &cfg)
            .await
            .unwrap_err()
            .contains("spaces"));
    }
}
