//! Agreement with Wireshark: tshark dissects the same captures and its
//! per-packet fields, folded into our classes, must give the same counts.
//! Once on a generated capture (every kind of packet), once on real traffic
//! of real tools (nmap, ping) recorded with tcpdump on the loopback interface.
//!
//! Needs tshark (and, for the real traffic, root, tcpdump and nmap). Without
//! them the tests say so and pass, unless IOTSCOPE_REQUIRE_TOOLS is set, as
//! .ci/run does.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{effective_uid, have, skip, ScanNet};

#[derive(Default, Debug, PartialEq, Eq)]
struct Counts {
    packets: u64,
    bytes: u64,
    malformed: u64,
    classes: HashMap<String, (u64, HashSet<String>)>,
    ports: HashMap<(String, u64), (u64, HashSet<String>)>,
}

fn tcp_class(flags: u64) -> &'static str {
    match flags & 0x3f {
        0x02 => "tcp_syn",
        0x12 => "tcp_synack",
        0x10 => "tcp_ack",
        0x01 | 0x11 => "tcp_fin",
        0x04 | 0x14 => "tcp_rst",
        0x08 | 0x18 => "tcp_push",
        _ => "tcp_other",
    }
}

/// Folds tshark's fields into our classes, ports and sources.
fn tshark_counts(capture: &Path) -> Counts {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(capture)
        .args([
            "-n",
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=f",
        ])
        .args([
            "-e",
            "frame.cap_len",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.proto",
            "-e",
            "ipv6.nxt",
            "-e",
            "ip.frag_offset",
        ])
        .args([
            "-e",
            "tcp.flags",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.dstport",
            "-e",
            "icmp.type",
            "-e",
            "icmpv6.type",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Counts::default();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('|').collect();
        let num = |s: &str| {
            if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(h, 16).ok()
            } else {
                s.parse().ok()
            }
        };
        c.packets += 1;
        c.bytes += num(f[0]).unwrap();
        let src = if !f[1].is_empty() { f[1] } else { f[2] };
        let proto = num(f[3]).or(num(f[4]));
        let later_fragment = num(f[5]).is_some_and(|o| o > 0);
        let (class, port): (&str, Option<(&str, u64)>) = if src.is_empty() {
            ("non_ip", None)
        } else if later_fragment {
            (
                match proto {
                    Some(6) => "tcp_other",
                    Some(17) => "udp",
                    Some(1) => "icmp",
                    _ => "other_ip",
                },
                None,
            )
        } else if !f[9].is_empty() || !f[10].is_empty() {
            ("icmp", None)
        } else if let Some(flags) = num(f[6]) {
            (tcp_class(flags), Some(("tcp", num(f[7]).unwrap())))
        } else if let Some(p) = num(f[8]) {
            ("udp", Some(("udp", p)))
        } else if matches!(proto, Some(6) | Some(17) | Some(1) | Some(58)) {
            c.malformed += 1;
            continue;
        } else {
            ("other_ip", None)
        };
        let e = c.classes.entry(class.to_string()).or_default();
        e.0 += 1;
        if class != "non_ip" {
            e.1.insert(src.to_string());
        }
        if let Some((p, n)) = port {
            let e = c.ports.entry((p.to_string(), n)).or_default();
            e.0 += 1;
            e.1.insert(src.to_string());
        }
    }
    c
}

fn ours(capture: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args(["telescope", "analyze", "--format", "json", "--top", "1"])
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_agree(capture: &Path) -> Value {
    let t = tshark_counts(capture);
    let o = ours(capture);
    assert_eq!(o["packets"].as_u64().unwrap(), t.packets, "packets");
    assert_eq!(o["bytes"].as_u64().unwrap(), t.bytes, "bytes");
    assert_eq!(o["malformed"].as_u64().unwrap(), t.malformed, "malformed");
    for (name, v) in o["classes"].as_object().unwrap() {
        let (packets, sources) = t
            .classes
            .get(name)
            .map_or((0, 0), |(p, s)| (*p, s.len() as u64));
        assert_eq!(
            v["packets"].as_u64().unwrap(),
            packets,
            "class {name} packets"
        );
        assert_eq!(
            v["sources"].as_u64().unwrap(),
            sources,
            "class {name} sources"
        );
    }
    let ports = o["ports"].as_array().unwrap();
    assert_eq!(ports.len(), t.ports.len(), "number of ports");
    for p in ports {
        let key = (
            p["proto"].as_str().unwrap().to_string(),
            p["port"].as_u64().unwrap(),
        );
        let (packets, sources) = &t.ports[&key];
        assert_eq!(p["packets"].as_u64().unwrap(), *packets, "port {key:?}");
        assert_eq!(
            p["sources"].as_u64().unwrap(),
            sources.len() as u64,
            "port {key:?} sources"
        );
    }
    o
}

#[test]
fn tshark_agrees_on_a_generated_capture_of_every_kind() {
    if !have("tshark") {
        return skip("tshark is not installed (apt-get install tshark)");
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("g.pcapng");
    let st = Command::new(env!("CARGO_BIN_EXE_iotscope"))
        .args([
            "lab",
            "darknet",
            "--format",
            "pcapng",
            "--packets",
            "20000",
            "--seed",
            "4",
            "--out",
        ])
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    let o = assert_agree(&cap);
    assert!(
        o["malformed"].as_u64().unwrap() > 0
            && o["classes"]["non_ip"]["packets"].as_u64().unwrap() > 0
    );
}

#[test]
fn tshark_agrees_on_real_nmap_and_ping_traffic_recorded_by_tcpdump() {
    for tool in ["tshark", "tcpdump", "nmap", "ping"] {
        if !have(tool) {
            return skip(&format!(
                "{tool} is not installed (apt-get install tshark tcpdump nmap iputils-ping)"
            ));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: tcpdump and nmap -sS need raw sockets");
    }
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("lo.pcap");
    // Only loopback, only 127.0.0.1: nothing leaves the machine.
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&cap)
        .args(["host", "127.0.0.1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let run = |args: &[&str]| {
        let st = Command::new(args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    };
    let started = Instant::now();
    run(&[
        "nmap",
        "-n",
        "-Pn",
        "-sS",
        "-p",
        "1-300",
        "--max-retries",
        "1",
        "--host-timeout",
        "30s",
        "127.0.0.1",
    ]);
    run(&[
        "nmap",
        "-n",
        "-Pn",
        "-sT",
        "-p",
        "20-30,80,443",
        "--host-timeout",
        "30s",
        "127.0.0.1",
    ]);
    run(&[
        "nmap",
        "-n",
        "-Pn",
        "-sU",
        "-p",
        "53,123,161",
        "--host-timeout",
        "30s",
        "127.0.0.1",
    ]);
    run(&["ping", "-c", "3", "-i", "0.2", "127.0.0.1"]);
    assert!(started.elapsed() < Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dump.id().to_string())
        .status();
    let _ = dump.wait();
    let o = assert_agree(&cap);
    assert!(
        o["classes"]["tcp_syn"]["packets"].as_u64().unwrap() >= 300,
        "{}",
        o["classes"]
    );
    assert!(o["classes"]["icmp"]["packets"].as_u64().unwrap() >= 6);
}

#[test]
fn real_zmap_masscan_and_nmap_are_fingerprinted_and_tshark_agrees() {
    for tool in [
        "tshark", "tcpdump", "ip", "zmap", "masscan", "nmap", "timeout",
    ] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed (apt-get install tshark tcpdump iproute2 zmap masscan nmap)"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces and raw sockets need it");
    }
    let dir = tempfile::tempdir().unwrap();
    let net = ScanNet::up();
    let empty = dir.path().join("empty-blocklist");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    // Each tool scans its own /24 of the benchmarking /16, a bounded number of probes.
    let zmap = net.capture(
        dir.path(),
        "zmap",
        &[
            "zmap",
            "-p",
            "23",
            "-n",
            "256",
            "-r",
            "2000",
            "-i",
            "sv0",
            "-S",
            "198.19.0.1",
            "-G",
            &net.router_mac,
            "-b",
            empty,
            "-c",
            "1",
            "-q",
            "-o",
            "/dev/null",
            "198.18.1.0/24",
        ],
    );
    let masscan = net.capture(
        dir.path(),
        "masscan",
        &[
            "masscan",
            "198.18.2.0/24",
            "-p23,2323,80",
            "--rate",
            "2000",
            "-e",
            "sv0",
            "--router-mac",
            &net.router_mac,
            "--adapter-ip",
            "198.19.0.1",
            "--wait",
            "1",
        ],
    );
    let nmap = net.capture(
        dir.path(),
        "nmap",
        &[
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "-p",
            "22,23,80,2323",
            "--max-retries",
            "0",
            "198.18.3.0/26",
        ],
    );

    let z = assert_agree(&zmap);
    assert_eq!(
        z["fingerprints"]["zmap"]["sources"], 1,
        "{}",
        z["fingerprints"]
    );
    assert_eq!(
        z["fingerprints"]["zmap"]["packets"],
        z["classes"]["tcp_syn"]["packets"]
    );
    assert!(z["classes"]["tcp_syn"]["packets"].as_u64().unwrap() >= 200);
    assert_eq!(z["fingerprints"]["masscan"]["sources"], 0);
    assert_eq!(z["fingerprints"]["mirai"]["sources"], 0);

    let m = assert_agree(&masscan);
    assert_eq!(
        m["fingerprints"]["masscan"]["sources"], 1,
        "{}",
        m["fingerprints"]
    );
    assert_eq!(
        m["fingerprints"]["masscan"]["packets"],
        m["classes"]["tcp_syn"]["packets"]
    );
    assert!(m["classes"]["tcp_syn"]["packets"].as_u64().unwrap() >= 700);
    assert_eq!(m["fingerprints"]["zmap"]["sources"], 0);

    let n = assert_agree(&nmap);
    assert!(n["classes"]["tcp_syn"]["packets"].as_u64().unwrap() >= 200);
    for fp in ["zmap", "masscan", "mirai"] {
        assert_eq!(n["fingerprints"][fp]["sources"], 0, "nmap flagged {fp}");
    }
}

/// A classic pcap (microseconds, little-endian) whose header's link-type
/// field is `link` (flags included), holding `frames`.
fn pcap_of(path: &Path, link: u32, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, link] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [1_700_000_000 + i as u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// IPv4 TCP from 203.0.113.`src` to port `dport` with `flags` and a data
/// offset of `doff` words.
fn v4_tcp(src: u8, dport: u16, flags: u8, doff: u8) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 203, 0, 113, src];
    p.extend_from_slice(&[198, 18, 0, 5, 0x9c, 0x40]);
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, doff << 4, flags, 4, 0, 0, 0, 0, 0]);
    p
}

/// IPv6 UDP from 2001:db8::`src` to port `dport`, behind `ext` extension
/// headers (hop-by-hop first, then destination options), each 8 bytes.
fn v6_udp(src: u8, dport: u16, ext: usize) -> Vec<u8> {
    let first = if ext == 0 { 17 } else { 0 };
    let mut p = vec![0x60, 0, 0, 0, 0, (ext * 8 + 18) as u8, first, 64];
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for i in 0..ext {
        let next = if i + 1 == ext { 17 } else { 60 };
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.extend_from_slice(&[0x30, 0x39]);
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 18, 0, 0]);
    p.extend_from_slice(&[0; 10]);
    p
}

fn ether(ethertype: u16, tags: usize, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for _ in 0..tags {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Issue 16: the link layers of real sensors (PPPoE with a compressed
/// protocol, MPLS, PPP, Cisco HDLC, NFLOG, a pcap header with the FCS
/// flag), the header chains at their documented limits, and an impossible
/// TCP header length, each against tshark's reading of the same file.
#[test]
fn tshark_agrees_on_the_link_layers_of_real_feeds() {
    if !have("tshark") {
        return skip("tshark is not installed (apt-get install tshark)");
    }
    let dir = tempfile::tempdir().unwrap();
    let syn = |src| v4_tcp(src, 23, 0x02, 5);
    let pppoe = |ppp: &[u8], ip: &[u8]| {
        let mut p = vec![0x11, 0, 0, 0x2d];
        p.extend_from_slice(&((ip.len() + ppp.len()) as u16).to_be_bytes());
        p.extend_from_slice(ppp);
        p.extend_from_slice(ip);
        ether(0x8864, 0, &p)
    };
    let mpls = |labels: usize, ip: &[u8]| {
        let mut p = Vec::new();
        for i in 0..labels {
            let bos = (i + 1 == labels) as u8;
            p.extend_from_slice(&[0, 0x10 + i as u8, bos, 64]);
        }
        p.extend_from_slice(ip);
        ether(0x8847, 0, &p)
    };
    let nflog = |family: u8, ip: &[u8]| {
        let mut p = vec![family, 0, 0, 5];
        // NFULA_PACKET_HDR (type 1), then NFULA_PAYLOAD (type 9), little-endian.
        p.extend_from_slice(&[8, 0, 1, 0, 0x08, 0x00, 3, 0]);
        p.extend_from_slice(&((ip.len() + 4) as u16).to_le_bytes());
        p.extend_from_slice(&9u16.to_le_bytes());
        p.extend_from_slice(ip);
        while p.len() % 4 != 0 {
            p.push(0);
        }
        p
    };
    let mut fcs = ether(0x0800, 0, &syn(9));
    fcs.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    // A TCP header cut to 10 bytes, then the FCS: its last byte (0x02) must
    // not be read as the flags of a SYN.
    let mut cut = ether(0x0800, 0, &syn(8)[..30]);
    cut.extend_from_slice(&[0xde, 0xad, 0xbe, 0x02]);
    let cases: Vec<(&str, u32, Vec<Vec<u8>>, &str)> = vec![
        (
            "pppoe",
            1,
            vec![
                pppoe(&[0x21], &syn(1)),
                pppoe(&[0, 0x21], &syn(2)),
                pppoe(&[0x57], &v6_udp(3, 53, 0)),
            ],
            "tcp_syn",
        ),
        (
            "mpls",
            1,
            vec![
                mpls(1, &syn(4)),
                mpls(3, &syn(5)),
                mpls(2, &v6_udp(6, 123, 0)),
                // An Ethernet pseudowire with a control word (tshark guesses
                // the control word from the inner MACs' vendor: Intel's here).
                mpls(
                    1,
                    &[
                        &[
                            0, 0, 0, 0, 0, 0x1b, 0x21, 1, 2, 3, 0, 0x1b, 0x21, 4, 5, 6, 8, 0,
                        ][..],
                        &syn(7),
                    ]
                    .concat(),
                ),
            ],
            "tcp_syn",
        ),
        ("fcs-flag", 0x2400_0001, vec![fcs, cut], "tcp_syn"),
        (
            "chains",
            1,
            vec![
                ether(0x0800, 8, &syn(10)),
                ether(0x86dd, 0, &v6_udp(11, 54321, 8)),
                ether(0x86dd, 0, &v6_udp(12, 54322, 20)),
            ],
            "udp",
        ),
        (
            "tcp-doff",
            1,
            vec![
                ether(0x0800, 0, &v4_tcp(13, 80, 0x02, 2)),
                ether(0x0800, 0, &syn(14)),
            ],
            "tcp_syn",
        ),
        (
            "ppp",
            9,
            vec![
                [&[0xff, 0x03, 0x00, 0x21][..], &syn(15)].concat(),
                [&[0x00, 0x57][..], &v6_udp(16, 161, 0)].concat(),
            ],
            "tcp_syn",
        ),
        (
            "ppp-hdlc",
            50,
            vec![[&[0xff, 0x03, 0x00, 0x21][..], &syn(17)].concat()],
            "tcp_syn",
        ),
        (
            "cisco-hdlc",
            104,
            vec![
                [&[0x0f, 0x00, 0x08, 0x00][..], &syn(18)].concat(),
                [&[0x0f, 0x00, 0x86, 0xdd][..], &v6_udp(19, 5060, 0)].concat(),
            ],
            "tcp_syn",
        ),
        (
            "nflog",
            239,
            vec![nflog(2, &syn(20)), nflog(10, &v6_udp(21, 1900, 0))],
            "tcp_syn",
        ),
    ];
    for (name, link, frames, class) in cases {
        let cap = dir.path().join(format!("{name}.pcap"));
        pcap_of(&cap, link, &frames);
        let o = assert_agree(&cap);
        assert!(
            o["classes"][class]["packets"].as_u64().unwrap() > 0,
            "{name}: {}",
            o["classes"]
        );
        assert_eq!(o["classes"]["non_ip"]["packets"], 0, "{name}");
    }
}
