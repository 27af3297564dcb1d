//! Hostile feeds (issue 14, item 2): URLhaus hosts that are RPZ trigger
//! names, public suffixes, malformed names or private addresses are
//! refused with their file and line; the exported zone loads in
//! `named-checkzone` and its owner names are exactly the listed hosts, their
//! `*.` wildcards and the `rpz-ip` names of the listed addresses; a BIND
//! resolver that loads it blocks those and nothing else. Entries that an
//! older version stored are left out of every export.

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
];

/// Listed and kept.
const GOOD: &[&str] = &[
    "http://bad.example.com/x.arm7",
    "http://CNC.Bad.Example./y",
    "http://198.51.100.10:8080/bin.sh",
    "http://[2001:db8::c2]:80/i",
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
        ("127.0.0.1", "ip"),
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
        "127.0.0.1",
    ] {
        assert!(err.contains(old), "{old} not reported: {err}");
    }
    let hosts = ["bad.example.com", "cnc.bad.example"];
    let addrs: [IpAddr; 2] = [
        "198.51.100.10".parse().unwrap(),
        "2001:db8::c2".parse().unwrap(),
    ];
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
    assert_eq!(listed, ["198.51.100.10", "2001:db8::c2"]);
    let (nft_file, nft, _) = export(&db, dir.path(), "nft");
    assert!(nft.contains("elements = { 198.51.100.10 }"), "{nft}");
    assert!(nft.contains("elements = { 2001:db8::c2 }"), "{nft}");
    let (_, stix, _) = export(&db, dir.path(), "stix");
    assert!(!stix.contains("rpz-") && !stix.contains("co.jp") && !stix.contains("0.0.0.0"));

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

/// A prefix in the store goes out as an interval set that `nft -c` takes
/// and as an `rpz-ip` prefix name that `named-checkzone` takes; the longest
/// name an RPZ may hold loads under a 70-character zone name.
#[test]
fn prefixes_and_long_names_stay_loadable() {
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
            "http://198.51.100.10/x",
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
    conn.execute(
        "INSERT INTO blocklist (value, kind, port, malware, source, first_seen, imported) VALUES ('203.0.113.0/24', 'ip', NULL, 'x', 'honeypot', '2024', '2024')",
        (),
    )
    .unwrap();
    let (zone_file, zone, err) = export(&db, dir.path(), "rpz");
    assert!(zone.contains("24.0.113.0.203.rpz-ip CNAME ."), "{zone}");
    assert!(zone.contains(&format!("*.{long} CNAME .")), "{zone}");
    assert!(
        !zone.contains(&too_long) && err.contains("too long"),
        "{err}"
    );
    let (nft_file, nft, _) = export(&db, dir.path(), "nft");
    assert!(
        nft.contains("flags interval") && nft.contains("203.0.113.0/24"),
        "{nft}"
    );

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
/// addresses in 10/8-adjacent and 128/1 space, queries from 127.0.0.1)
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
        "$TTL 300\n@ IN SOA ns.example.com. hostmaster.example.com. ( 1 3600 600 86400 300 )\n@ IN NS ns.example.com.\nns.example.com. IN A 127.0.0.1\nwww.example.com. IN A 192.0.2.80\nbad.example.com. IN A 192.0.2.81\nx.bad.example.com. IN A 192.0.2.82\ncnc.bad.example. IN A 192.0.2.84\nfoo.co.jp. IN A 192.0.2.83\nc2.example.net. IN A 198.51.100.10\nok.example.net. IN A 198.51.100.11\nhigh.example.net. IN A 203.0.113.5\n",
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
    let start = Instant::now();
    while dig(port, "www.example.com").0 == "NO ANSWER" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "named did not answer: {}",
            std::fs::read_to_string(d.join("named.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = || std::fs::read_to_string(d.join("named.log")).unwrap_or_default();
    for (name, want) in [
        ("www.example.com", "NOERROR"),
        ("foo.co.jp", "NOERROR"),
        ("ok.example.net", "NOERROR"),
        ("high.example.net", "NOERROR"),
        ("bad.example.com", "NXDOMAIN"),
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
