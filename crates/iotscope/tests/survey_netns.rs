//! Survey safety, tested on the wire: the survey runs inside a network
//! namespace this test creates (a veth to a second namespace that owns
//! 198.18.0.0/16, no other route), tcpdump records every packet it sends,
//! and the capture must show SYNs only to targets minus exclusions, each
//! pair exactly once, within the rate cap, and a run that stops by itself.
//! Needs root, ip, tcpdump and tshark; skipped (and failed under
//! IOTSCOPE_REQUIRE_TOOLS) without them.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{effective_uid, have, skip, ScanNet};

#[test]
fn every_packet_goes_to_a_target_once_within_the_rate_and_the_run_ends() {
    for tool in ["ip", "tcpdump", "tshark"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces need it");
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = ScanNet::up();
    let cap = dir.path().join("sent.pcap");
    let exclude = dir.path().join("opt-out.conf");
    std::fs::write(
        &exclude,
        "198.18.0.0/26   # an operator who opted out\n198.18.0.200/32\n",
    )
    .unwrap();
    // Record everything the scanner's interface sends.
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.scanner,
            "tcpdump",
            "-i",
            "sv0",
            "-U",
            "-n",
            "-w",
        ])
        .arg(&cap)
        .args(["src", "host", "198.19.0.1"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let rate = 200.0;
    let started = Instant::now();
    let out = Command::new("timeout")
        .args([
            "60",
            "ip",
            "netns",
            "exec",
            &ns.scanner,
            env!("CARGO_BIN_EXE_iotscope"),
            "survey",
        ])
        .args([
            "--targets",
            "198.18.0.0/24",
            "--ports",
            "23,80",
            "--rate",
            "200",
            "--timeout",
            "1s",
            "--no-grab",
            "--exclude",
        ])
        .arg(&exclude)
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "the run ends by itself: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(dump.id().to_string())
        .status();
    let _ = dump.wait();

    let fields = Command::new("tshark")
        .args(["-r"])
        .arg(&cap)
        .args([
            "-n",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
            "-e",
            "frame.time_relative",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(fields.stdout).unwrap();
    let mut syns: HashMap<(String, u16), u32> = HashMap::new();
    let mut first_last = (f64::MAX, 0f64);
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 || f[0].is_empty() {
            continue; // ARP and the like
        }
        let dst: std::net::Ipv4Addr = f[0].parse().unwrap();
        let o = dst.octets();
        assert!(
            o[0] == 198 && o[1] == 18 && o[2] == 0,
            "packet to {dst}, outside the targets"
        );
        assert!(o[3] >= 64 && o[3] != 200, "packet to excluded {dst}");
        let flags = u16::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
        if flags & 0x3f == 0x02 {
            *syns
                .entry((f[0].to_string(), f[1].parse().unwrap()))
                .or_default() += 1;
            let t: f64 = f[3].parse().unwrap();
            first_last = (first_last.0.min(t), first_last.1.max(t));
        }
    }
    // 256 - 64 excluded - 1 excluded = 191 addresses, 2 ports, each once.
    assert_eq!(syns.len(), 191 * 2, "every target pair probed");
    assert!(syns.values().all(|&n| n == 1), "no pair probed twice");
    // The rate cap: 382 SYNs at 200/s cannot take less than (382 - 1) / 200 s.
    let span = first_last.1 - first_last.0;
    assert!(
        span >= (382.0 - 1.0) / rate * 0.95,
        "{} SYNs in {span:.2} s exceed {rate}/s",
        syns.len()
    );
    assert!(elapsed < 30.0);
}
