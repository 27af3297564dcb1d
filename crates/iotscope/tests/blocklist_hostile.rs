//! Hostile feeds (issue 14, item 2): URLhaus hosts that are RPZ trigger
//! names, public suffixes, malformed names or private addresses are
//! refused with their file and line; the exported zone loads in
//! `named-checkzone` and its owner names are exactly the listed hosts, their
//! `*.` wildcards and the `rpz-ip` names of the listed addresses; a BIND
//! resolver that loads it blocks those and nothing else. Entries that an
//! older version stored are left out of every export.
//!
//! The hostile review's two findings: a URL whose host browsers and other
//! clients read differently (`http://evil.example\@google.com/x`) is
//! refused and the innocent host never reaches the zone; feed values are
//! single addresses, so a prefix (`11.0.0.0/8:443`, a ThreatFox domain
//! `9.0.0.0/8`, `[2001:4860::/32]:443`) is refused at import and, when an
//! older version stored it, at export, as are addresses that stand for no
//! single host (NAT64, 6to4, Teredo, documentation, benchmarking, ...).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{effective_uid, have, skip};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

/// Feed URLs that must be refused, each group with why it is there.
const HOSTILE: &[&str] = &[
    // Client-IP trigger: every client in 10/8, and the test's own 127.0.0.1.
    "http://8.0.0.0.10.rpz-client-ip/bin.sh",
    "http://32.1.0.0.127.rpz-client-ip/bin.sh",
    // Response-IP triggers for 0/1 and 128/1: half of IPv4 each.
    "http://1.0.0.0.0.rpz-ip/x",
    "http://1.0.0.0.128.rpz-ip/x",
    // Every name served by a name server under .com.
    "http://com.rpz-nsdname/x",
    "http://32.1.0.0.127.rpz-nsip/x",
    // Action names as owners or labels.
    "http://rpz-passthru.example.org/x",
    "http://x.rpz-drop/x",
    "http://evil.rpz-tcp-only.example.net/x",
    // Public suffixes and TLDs.
    "http://co.jp/x",
    "http://COM./x",
    "http://github.io/x",
    // Names that make the zone fail to load, or are no host names.
    "http://a..b/x",
    "http://.example.com/x",
    "http://bad_host.example.com/x",
    "http://-x.example.com/x",
    // Written like addresses.
    "http://127.1/x",
    "http://10.0.0.1.evil.example/x",
    // Addresses that name no host on the internet.
    "http://10.0.0.7:8080/x",
    "http://[::1]:80/x",
    "http://0.0.0.0/x",
    "http://198.51.100.10/x",
    "http://[2001:db8::c2]/x",
    "http://[64:ff9b::808:808]/x",
    "http://[2002:808:808::1]/x",
    // Hosts browsers and other clients read differently, or that would
    // need decoding: refused, so google.com is never listed.
    "http://evil.example\\@google.com/x",
    "https://evil.example\\@drive.google.com/file",
    "http://evil.example%2f@google.com/",
    "http://google.com\t@evil.example/",
];

/// Listed and kept.
const GOOD: &[&str] = &[
    "http://bad.example.com/x.arm7",
    "http://CNC.Bad.Example./y",
    "http://11.0.2.10:8080/bin.sh",
    "http://[2a00:11::c2]:80/i",
    // Every parser reads evil.example here: the user name and the fragment
    // are not the host.
    "http://google.com@evil.example/",
    "http://evil.example#@google.com/",
];

fn urlhaus(urls: &[&str]) -> String {
    let mut s = String::from(
        "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n",
    );
    for (i, url) in urls.iter().enumerate() {
        s.push_str(&format!("\"{i}\",\"2024-06-23 09:01:04\",\"{url}\",\"online\",\"2024-06-23\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/{i}/\",\"r\"\n"));
    }
    s
}

/// A store with the hostile feed imported, plus rows an older iotscope
/// would have stored from the same feed (written to the table directly).
fn hostile_store(dir: &Path) -> (PathBuf, String) {
    let db = dir.join("b.db");
    let feed = dir.join("hostile.csv");
    let urls: Vec<&str> = HOSTILE.iter().chain(GOOD).copied().collect();
    std::fs::write(&feed, urlhaus(&urls)).unwrap();
    let out = bin()
        .args(["blocklist", "import", "--format", "urlhaus"])
        .arg(&feed)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (value, kind) in [
        ("32.1.0.0.127.rpz-client-ip", "domain"),
        ("co.jp", "domain"),
        ("a..b", "domain"),
        ("0.0.0.0/0", "ip"),
        ("::/0", "ip"),
        ("11.0.0.0/8", "ip"),
        ("2001:4860::/32", "ip"),
        ("127.0.0.1", "ip"),
        ("198.51.100.11", "ip"),
    ] {
        conn.execute(
            "INSERT OR IGNORE INTO blocklist (value, kind, port, malware, source, first_seen, imported) VALUES (?1, ?2, NULL, 'x', 'old', '2024', '2024')",
            (value, kind),
        )
        .unwrap();
    }
    (db, err)
}

fn export(db: &Path, dir: &Path, format: &str) -> (PathBuf, String, String) {
    let f = dir.join(format!("list.{format}"));
    let out = bin()
        .args(["blocklist", "export", "--format", format, "--out"])
        .arg(&f)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{format}: {err}");
    let text = std::fs::read_to_string(&f).unwrap();
    (f, text, err)
}

/// The owner names of a zone file as iotscope writes it (one record a
/// line, relative names, `@` for the apex).
fn owners(zone: &str) -> Vec<String> {
    zone.lines()
        .filter(|l| !l.is_empty() && !l.starts_with([';', '$', ' ', '\t', '@']))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn hostile_feed_lines_are_refused_and_the_zone_holds_only_what_was_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (db, err) = hostile_store(dir.path());
    // Each hostile line reported with file and line (line 1 is the comment).
    for (i, url) in HOSTILE.iter().enumerate() {
        let line = i + 2;
        assert!(
            err.contains(&format!("hostile.csv, line {line}: ")),
            "line {line} ({url}) not reported:\n{err}"
        );
    }
    assert!(err.contains(&format!("{} refused", HOSTILE.len())), "{err}");
    for i in 0..GOOD.len() {
        let line = HOSTILE.len() + i + 2;
        assert!(!err.contains(&format!("line {line}: ")), "{err}");
    }

    let (zone_file, zone, err) = export(&db, dir.path(), "rpz");
    // The rows an older version stored are left out and said.
    for old in [
        "rpz-client-ip",
        "co.jp",
        "a..b",
        "0.0.0.0/0",
        "::/0",
        "11.0.0.0/8",
        "2001:4860::/32",
        "127.0.0.1",
        "198.51.100.11",
    ] {
        assert!(err.contains(old), "{old} not reported: {err}");
    }
    assert!(
        err.contains("\"11.0.0.0/8\" (from old) refused: a prefix"),
        "{err}"
    );
    let hosts = ["bad.example.com", "cnc.bad.example", "evil.example"];
    let addrs: [IpAddr; 2] = ["11.0.2.10".parse().unwrap(), "2a00:11::c2".parse().unwrap()];
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    for h in hosts {
        allowed.insert(h.to_string());
        allowed.insert(format!("*.{h}"));
    }
    for a in addrs {
        allowed.insert(iotscope_blocklist::rpz_ip(a));
    }
    let found = owners(&zone);
    assert_eq!(
        found.iter().cloned().collect::<BTreeSet<_>>(),
        allowed,
        "owner names of\n{zone}"
    );
    assert_eq!(found.len(), allowed.len(), "{zone}");
    assert!(!zone.contains("google"), "{zone}");
    for o in &found {
        let labels: Vec<&str> = o.split('.').collect();
        // The only rpz- label is the rpz-ip trigger of a listed address.
        for (i, l) in labels.iter().enumerate() {
            if l.starts_with("rpz-") {
                assert!(
                    *l == "rpz-ip" && i == labels.len() - 1,
                    "{o}: trigger label {l}"
                );
            }
        }
        if !o.ends_with(".rpz-ip") {
            let name = o.strip_prefix("*.").unwrap_or(o);
            assert!(!iotscope_blocklist::is_public_suffix(name), "{o}");
            assert!(!labels.contains(&""), "{o}");
        }
    }

    // The other formats: addresses only, nothing special.
    let (_, plain, _) = export(&db, dir.path(), "plain");
    let listed: Vec<&str> = plain.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, ["11.0.2.10", "2a00:11::c2"]);
    let (nft_file, nft, _) = export(&db, dir.path(), "nft");
    assert!(nft.contains("elements = { 11.0.2.10 }"), "{nft}");
    assert!(nft.contains("elements = { 2a00:11::c2 }"), "{nft}");
    assert!(!nft.contains("interval"), "{nft}");
    let (_, stix, _) = export(&db, dir.path(), "stix");
    assert!(!stix.contains("rpz-") && !stix.contains("co.jp") && !stix.contains("0.0.0.0"));
    assert!(!stix.contains("google") && !stix.contains("/8'"), "{stix}");

    if !have("named-checkzone") {
        return skip("named-checkzone (bind9-utils) is not installed");
    }
    let out = Command::new("named-checkzone")
        .args(["rpz.example"])
        .arg(&zone_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "named-checkzone: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if !have("nft") {
        return skip("nft (nftables) is not installed");
    }
    if effective_uid() != 0 {
        return skip("not root: nft -c needs netlink");
    }
    let out = Command::new("nft")
        .args(["-c", "-f"])
        .arg(&nft_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A prefix an older version stored (from a feed or written by hand) is
/// left out of every export and reported, so nft gets no interval set and
/// the zone no `rpz-ip` prefix name; the longest name an RPZ may hold loads
/// under a 70-character zone name.
#[test]
fn stored_prefixes_are_left_out_and_long_names_stay_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let feed = dir.path().join("f.csv");
    let long = format!("{}.example.com", ["abcdefghi"; 16].join("."));
    assert!(
        long.len() <= iotscope_blocklist::MAX_RPZ_NAME,
        "{}",
        long.len()
    );
    let too_long = format!("{}.example.com", ["abcdefghi"; 17].join("."));
    assert!(too_long.len() > iotscope_blocklist::MAX_RPZ_NAME);
    std::fs::write(
        &feed,
        urlhaus(&[
            &format!("http://{long}/x"),
            &format!("http://{too_long}/x"),
            "http://11.0.2.10/x",
        ]),
    )
    .unwrap();
    assert!(bin()
        .args(["blocklist", "import", "--format", "urlhaus"])
        .arg(&feed)
        .arg("--db")
        .arg(&db)
        .status()
        .unwrap()
        .success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    for prefix in ["11.0.3.0/24", "2a00:11::/32"] {
        conn.execute(
            "INSERT INTO blocklist (value, kind, port, malware, source, first_seen, imported) VALUES (?1, 'ip', NULL, 'x', 'honeypot', '2024', '2024')",
            [prefix],
        )
        .unwrap();
    }
    let (zone_file, zone, err) = export(&db, dir.path(), "rpz");
    assert!(zone.contains("32.10.2.0.11.rpz-ip CNAME ."), "{zone}");
    assert!(!zone.contains("24.0.3.0.11.rpz-ip"), "{zone}");
    assert!(!zone.contains("32.zz.11.2a00.rpz-ip"), "{zone}");
    for prefix in ["11.0.3.0/24", "2a00:11::/32"] {
        assert!(
            err.contains(&format!("\"{prefix}\" (from honeypot) refused: a prefix")),
            "{err}"
        );
    }
    assert!(zone.contains(&format!("*.{long} CNAME .")), "{zone}");
    assert!(
        !zone.contains(&too_long) && err.contains("too long"),
        "{err}"
    );
    let (nft_file, nft, err) = export(&db, dir.path(), "nft");
    assert!(nft.contains("elements = { 11.0.2.10 }"), "{nft}");
    assert!(
        !nft.contains("interval") && !nft.contains("11.0.3.0") && !nft.contains("2a00:11::"),
        "{nft}"
    );
    assert!(
        err.contains("11.0.3.0/24") && err.contains("2a00:11::/32"),
        "{err}"
    );
    let (_, plain, _) = export(&db, dir.path(), "plain");
    let listed: Vec<&str> = plain.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, ["11.0.2.10"]);

    if !have("named-checkzone") {
        return skip("named-checkzone (bind9-utils) is not installed");
    }
    let origin = format!("{}.rpz.example", "z".repeat(58));
    assert_eq!(origin.len(), 70);
    let out = Command::new("named-checkzone")
        .arg(&origin)
        .arg(&zone_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "named-checkzone: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if !have("nft") {
        return skip("nft (nftables) is not installed");
    }
    if effective_uid() != 0 {
        return skip("not root: nft -c needs netlink");
    }
    let out = Command::new("nft")
        .args(["-c", "-f"])
        .arg(&nft_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn threatfox(lines: &[(&str, &str)]) -> String {
    let mut s = String::from("# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n");
    for (i, (value, kind)) in lines.iter().enumerate() {
        s.push_str(&format!("\"2024-06-23 10:11:12\", \"{i}\", \"{value}\", \"{kind}\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n"));
    }
    s
}

/// The hostile review, end to end: ThreatFox prefixes (`ip:port` and
/// `domain`) and URLs whose host parsers read differently are refused with
/// their file and line; what every parser agrees on (evil.example) is
/// listed; no export names google.com or holds a prefix, and the zone and
/// the nft file still load.
#[test]
fn review_prefixes_and_url_confusers_never_reach_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let refused_tf: &[(&str, &str)] = &[
        ("11.0.0.0/8:443", "ip:port"),
        ("[2001:4860::/32]:443", "ip:port"),
        ("64:ff9b::/96:80", "ip:port"),
        ("9.0.0.0/8", "domain"),
        ("[64:ff9b::808:808]:443", "ip:port"),
        ("[64:ff9b:1::1]:443", "ip:port"),
        ("[2002:808:808::1]:443", "ip:port"),
        ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]:443", "ip:port"),
        ("192.0.0.9:443", "ip:port"),
        ("198.18.0.1:443", "ip:port"),
        ("192.88.99.1:443", "ip:port"),
        ("[2001:db8::1]:443", "ip:port"),
        ("[100::1]:443", "ip:port"),
        ("[::8.8.8.8]:443", "ip:port"),
        ("[::ffff:8.8.8.8]:443", "ip:port"),
        ("192.0.2.1:443", "ip:port"),
        ("http://evil.example\\@google.com/x", "url"),
        ("https://evil.example\\@drive.google.com/file", "url"),
        ("http://evil.example%2f@google.com/", "url"),
    ];
    let kept_tf: &[(&str, &str)] = &[
        ("11.0.1.236:443", "ip:port"),
        ("[2a00:11::c2]:443", "ip:port"),
        ("http://google.com@evil.example/", "url"),
    ];
    let tf: Vec<(&str, &str)> = refused_tf.iter().chain(kept_tf).copied().collect();
    let refused_uh = [
        "http://evil.example\\@google.com/x",
        "https://evil.example\\@drive.google.com/file",
        "http://evil.example%2f@google.com/",
        "http://evil.example\\x@google.com/",
        "http://x@evil.example@google.com/",
        "http://google.com\t@evil.example/",
        "http://google.com\r@evil.example/",
        "http://evil.exa\tmple/",
        "http:\\\\google.com\\x",
    ];
    let kept_uh = [
        "http://google.com@evil.example/",
        "http://evil.example#@google.com/",
        "http://evil.example?@google.com/",
    ];
    let uh: Vec<&str> = refused_uh.iter().chain(&kept_uh).copied().collect();
    for (name, format, text, refused) in [
        ("tf.csv", "threatfox", threatfox(&tf), refused_tf.len()),
        ("uh.csv", "urlhaus", urlhaus(&uh), refused_uh.len()),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let out = bin()
            .args(["blocklist", "import", "--format", format])
            .arg(&f)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // Line 1 is the comment.
        for line in 2..refused + 2 {
            assert!(
                err.contains(&format!("{name}, line {line}: ")),
                "{line}: {err}"
            );
        }
        assert!(!err.contains(&format!("line {}: ", refused + 2)), "{err}");
        assert!(err.contains(&format!("{refused} refused")), "{err}");
    }

    let (zone_file, zone, _) = export(&db, dir.path(), "rpz");
    let found: BTreeSet<String> = owners(&zone).into_iter().collect();
    let want: BTreeSet<String> = [
        "evil.example",
        "*.evil.example",
        "32.236.1.0.11.rpz-ip",
        "128.c2.zz.11.2a00.rpz-ip",
    ]
    .map(String::from)
    .into();
    assert_eq!(found, want, "{zone}");
    let (nft_file, nft, _) = export(&db, dir.path(), "nft");
    assert!(nft.contains("elements = { 11.0.1.236 }"), "{nft}");
    assert!(nft.contains("elements = { 2a00:11::c2 }"), "{nft}");
    let (_, plain, _) = export(&db, dir.path(), "plain");
    let listed: Vec<&str> = plain.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(listed, ["11.0.1.236", "2a00:11::c2"]);
    let (_, stix, _) = export(&db, dir.path(), "stix");
    for text in [&zone, &nft, &plain, &stix] {
        assert!(!text.contains("google"), "{text}");
        assert!(
            !text.contains("11.0.0.0") && !text.contains("9.0.0.0"),
            "{text}"
        );
        assert!(!text.contains("4860") && !text.contains("ff9b"), "{text}");
    }

    if !have("named-checkzone") {
        return skip("named-checkzone (bind9-utils) is not installed");
    }
    let out = Command::new("named-checkzone")
        .args(["rpz.example"])
        .arg(&zone_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "named-checkzone: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    if !have("nft") {
        return skip("nft (nftables) is not installed");
    }
    if effective_uid() != 0 {
        return skip("not root: nft -c needs netlink");
    }
    let out = Command::new("nft")
        .args(["-c", "-f"])
        .arg(&nft_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `named` child process, stopped on drop.
struct Named(Child);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dig(port: u16, name: &str) -> (String, Vec<String>) {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+time=2",
            "+tries=1",
            name,
            "A",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_string();
    let answers = text
        .split(";; ANSWER SECTION:\n")
        .nth(1)
        .map(|s| {
            s.lines()
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.split_whitespace().last().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, answers)
}

/// The resolver side: BIND loads the exported zone as its response policy
/// on 127.0.0.1 (a high port, authoritative for a test root zone, so it
/// never sends a query anywhere) and answers for the listed names with
/// NXDOMAIN and for everything else (other names under .com, under co.jp,
/// google.com, which confusing URLs pointed at, addresses next to the
/// listed one and in 128/1 space, queries from 127.0.0.1)
/// as the root zone says. named-checkzone alone cannot see a valid zone
/// that blocks too much; this can.
#[test]
fn a_resolver_with_the_zone_blocks_the_listed_names_and_nothing_else() {
    // .ci/run does not install bind9 (named) and bind9-dnsutils (dig):
    // skipped without them even where tools are required.
    if !have("named") || !have("dig") {
        eprintln!("skipped: named (bind9) and dig (bind9-dnsutils) are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = hostile_store(dir.path());
    let (zone_file, _, _) = export(&db, dir.path(), "rpz");
    let d = dir.path();
    std::fs::write(
        d.join("root.zone"),
        "$TTL 300\n@ IN SOA ns.example.com. hostmaster.example.com. ( 1 3600 600 86400 300 )\n@ IN NS ns.example.com.\nns.example.com. IN A 127.0.0.1\nwww.example.com. IN A 192.0.2.80\nbad.example.com. IN A 192.0.2.81\nx.bad.example.com. IN A 192.0.2.82\ncnc.bad.example. IN A 192.0.2.84\nfoo.co.jp. IN A 192.0.2.83\nc2.example.net. IN A 11.0.2.10\nok.example.net. IN A 11.0.2.11\nhigh.example.net. IN A 203.0.113.5\nevil.example. IN A 192.0.2.85\ngoogle.com. IN A 192.0.2.86\ndrive.google.com. IN A 192.0.2.87\n",
    )
    .unwrap();
    // A free port: bound once for UDP and TCP, then given to named.
    let port = (0..50)
        .find_map(|_| {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let p = u.local_addr().ok()?.port();
            std::net::TcpListener::bind(("127.0.0.1", p)).ok()?;
            Some(p)
        })
        .expect("a free port");
    let conf = d.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion yes;\n  allow-recursion {{ 127.0.0.1; }};\n  allow-query {{ 127.0.0.1; }};\n  dnssec-validation no;\n  notify no;\n  response-policy {{ zone \"rpz.example\"; }};\n}};\ncontrols {{ }};\nzone \".\" {{ type primary; file \"{d}/root.zone\"; }};\nzone \"rpz.example\" {{ type primary; file \"{z}\"; allow-query {{ none; }}; }};\n",
            d = d.display(),
            z = zone_file.display(),
        ),
    )
    .unwrap();
    let named = Named(
        Command::new("named")
            .args(["-g", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("named.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(d.join("named.log")).unwrap_or_default();
    // Ready once every zone is loaded ("running") and the root zone
    // answers: before that named may answer SERVFAIL.
    let start = Instant::now();
    while !log().contains("running") || dig(port, "www.example.com").0 != "NOERROR" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "named did not answer: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (name, want) in [
        ("www.example.com", "NOERROR"),
        ("foo.co.jp", "NOERROR"),
        ("ok.example.net", "NOERROR"),
        ("high.example.net", "NOERROR"),
        ("google.com", "NOERROR"),
        ("drive.google.com", "NOERROR"),
        ("bad.example.com", "NXDOMAIN"),
        ("evil.example", "NXDOMAIN"),
        ("x.bad.example.com", "NXDOMAIN"),
        ("cnc.bad.example", "NXDOMAIN"),
        ("c2.example.net", "NXDOMAIN"),
    ] {
        let (status, answers) = dig(port, name);
        assert_eq!(status, want, "{name}: {answers:?}\n{}", log());
        if want == "NOERROR" {
            assert_eq!(answers.len(), 1, "{name}: {answers:?}");
        }
    }
    drop(named);
}
