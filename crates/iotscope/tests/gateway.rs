//! The gateway on real traffic: three network namespaces this test makes
//! (`wan` with a fake C&C, a loader, a cloud service, outside resolvers and
//! a research scanner; `gw`, which forwards; `lan` with a lab device, a
//! camera with a MUD file and scanners), all in 198.18.0.0/15 with no route
//! out. Connections are real, decisions are read from nft's counters and
//! sets. Needs root, ip, nft, python3 and the live-capture build; skipped
//! (and failed under IOTSCOPE_REQUIRE_TOOLS) without them.
#![cfg(feature = "live-capture")]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{effective_uid, have, skip, RunningLab};

const BIN: &str = env!("CARGO_BIN_EXE_iotscope");

/// The three namespaces, deleted on drop.
struct Net {
    wan: String,
    gw: String,
    lan: String,
}

fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Net {
    fn up() -> Net {
        let id = std::process::id();
        let net = Net {
            wan: format!("iotg-w-{id}"),
            gw: format!("iotg-g-{id}"),
            lan: format!("iotg-l-{id}"),
        };
        for ns in [&net.wan, &net.gw, &net.lan] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "link", "add", "w0", "netns", &net.wan, "type", "veth", "peer", "name", "wan0",
            "netns", &net.gw,
        ]);
        sh(&[
            "ip", "link", "add", "l0", "netns", &net.lan, "type", "veth", "peer", "name", "lan0",
            "netns", &net.gw,
        ]);
        let ip = |ns: &str, args: &str| {
            let mut v = vec!["ip", "-n", ns];
            v.extend(args.split_whitespace());
            sh(&v);
        };
        ip(&net.wan, "addr add 198.18.255.2/30 dev w0");
        ip(&net.wan, "link set w0 up");
        // The WAN's hosts: C&C, loader, cloud, resolvers, research scanner.
        ip(&net.wan, "route add local 198.19.0.0/16 dev lo");
        ip(&net.wan, "route add 198.18.1.0/24 via 198.18.255.1");
        ip(&net.gw, "addr add 198.18.255.1/30 dev wan0");
        ip(&net.gw, "addr add 198.18.1.1/24 dev lan0");
        ip(&net.gw, "link set wan0 up");
        ip(&net.gw, "link set lan0 up");
        ip(&net.gw, "route add 198.19.0.0/16 via 198.18.255.2");
        ip(&net.lan, "addr add 198.18.1.2/24 dev l0");
        ip(&net.lan, "link set l0 up");
        // The LAN's devices are 198.18.1.16/28 (.17 the lab device, .18 the
        // camera, .19 a laptop, .29 and .30 the scanners).
        ip(&net.lan, "route add local 198.18.1.16/28 dev lo");
        ip(&net.lan, "route add 198.19.0.0/16 via 198.18.1.1");
        sh(&[
            "ip",
            "netns",
            "exec",
            &net.gw,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.wan, &self.gw, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Listeners in the WAN: TCP on each `addr:port` (answers "hello"), and a
/// DNS-shaped UDP echo on the resolvers. Ends by itself.
const WAN_SERVERS: &str = r#"
import socket, threading, sys, time
def tcp(a, p):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((a, p)); s.listen(64)
    while True:
        c, _ = s.accept()
        try: c.sendall(b"hello\n"); c.close()
        except OSError: pass
def udp(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((a, 53))
    while True:
        d, peer = s.recvfrom(2048); s.sendto(d, peer)
for a, p in [("198.19.200.10", 80), ("198.19.200.20", 80), ("198.19.44.4", 443), ("198.19.44.4", 80), ("198.19.44.5", 443)]:
    threading.Thread(target=tcp, args=(a, p), daemon=True).start()
for a in ["198.19.53.53", "198.19.53.54"]:
    threading.Thread(target=udp, args=(a,), daemon=True).start()
print("up", flush=True)
time.sleep(float(sys.argv[1]))
"#;

/// A TCP connect from `src` to `dst:port`: "ok" when the peer answered.
const CONNECT: &str = r#"
import socket, sys
s = socket.socket(); s.settimeout(2); s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3]))); print("ok")
except OSError as e:
    print("fail", e)
"#;

/// An HTTP GET from `src` to `dst:port`: the response as text.
const FETCH: &str = r#"
import socket, sys
s = socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3]))); s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d: break
        data += d
    print(data.decode("utf-8", "replace"))
except OSError as e:
    print("fail", e)
"#;

/// A DNS-shaped UDP query from `src` to `dst:53`: "ok" when answered.
const DNS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.bind((sys.argv[1], 0))
s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01", (sys.argv[2], 53))
try:
    s.recvfrom(512); print("ok")
except OSError as e:
    print("fail", e)
"#;

/// A scanner: SYNs from `src` to `n` addresses of 198.19.100.0/24 on port
/// 23 (non-blocking connects, abandoned after 50 ms each).
const SCAN: &str = r#"
import socket, sys
for i in range(1, int(sys.argv[2]) + 1):
    s = socket.socket(); s.setblocking(False); s.bind((sys.argv[1], 0))
    try: s.connect(("198.19.100.%d" % i, 23))
    except OSError: pass
    import time; time.sleep(0.05); s.close()
"#;

/// Mirai's probe: one raw SYN whose sequence number is its destination.
const MIRAI: &str = r#"
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
seq = struct.unpack("!I", socket.inet_aton(dst))[0]
hdr = struct.pack("!HHIIBBHHH", 41000, 23, seq, 0, 5 << 4, 0x02, 14600, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
s.bind((src, 0)); s.sendto(hdr, (dst, 0))
"#;

fn py(ns: &str, script: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn connect(net: &Net, ns: &str, src: &str, dst: &str, port: u16) -> bool {
    let _ = net;
    py(ns, CONNECT, &[src, dst, &port.to_string()]).starts_with("ok")
}

fn iotscope(net: &Net, config: &std::path::Path, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &net.gw, BIN, "--config"])
        .arg(config)
        .args(args)
        .env_remove("SSH_CONNECTION")
        .output()
        .unwrap()
}

/// Asserts that a command succeeded, showing its stderr if not.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status(net: &Net, config: &std::path::Path) -> serde_json::Value {
    let out = iotscope(net, config, &["gateway", "status", "--format", "json"]);
    succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn counter(st: &serde_json::Value, comment: &str) -> u64 {
    st["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["comment"] == comment)
        .map(|r| r["packets"].as_u64().unwrap())
        .sum()
}

fn quarantined(st: &serde_json::Value, addr: &str) -> Option<serde_json::Value> {
    st["quarantined"]
        .as_array()?
        .iter()
        .find(|q| q["address"] == addr)
        .cloned()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ruleset(net: &Net) -> String {
    String::from_utf8(sh(&["ip", "netns", "exec", &net.gw, "nft", "list", "ruleset"]).stdout)
        .unwrap()
}

#[test]
fn the_gateway_blocks_quarantines_checks_and_leaves_no_trace() {
    for tool in ["ip", "nft", "python3"] {
        if !have(tool) {
            return skip(&format!("{tool} is not installed"));
        }
    }
    if effective_uid() != 0 {
        return skip("not root: network namespaces and nftables need it");
    }
    let net = Net::up();
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.wan,
            "python3",
            "-u",
            "-c",
            WAN_SERVERS,
            "150",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(servers.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "up");
    }
    // A port forward's target in the LAN.
    let mut lan_server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.lan,
            "timeout",
            "150",
            "python3",
            "-m",
            "http.server",
            "--bind",
            "198.18.1.18",
            "8080",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The lab device: a DVR with telnet whose root password is in Mirai's list.
    let lab = RunningLab::start_in(Some(&net.lan), "198.18.1.16/28", 1, 3);
    assert_eq!(lab.devices()[0]["ip"], "198.18.1.17");

    // Someone else's table, which must come through untouched.
    let other = dir.path().join("other.nft");
    std::fs::write(&other, "table inet other {\n\tchain other_forward {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tip daddr 192.0.2.9 drop\n\t}\n}\n").unwrap();
    sh(&[
        "ip",
        "netns",
        "exec",
        &net.gw,
        "nft",
        "-f",
        other.to_str().unwrap(),
    ]);
    let before = ruleset(&net);

    // Before the gateway: everything passes.
    assert!(connect(&net, &net.lan, "198.18.1.19", "198.19.200.10", 80));
    assert!(py(&net.lan, DNS, &["198.18.1.19", "198.19.53.53"]).starts_with("ok"));

    // The store's blocklist (a feed entry: listed, never contacted).
    let db = dir.path().join("store.db");
    let feed = dir.path().join("feodo.csv");
    std::fs::write(&feed, "\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"11.0.2.10\",\"443\",\"online\",\"2023-05-01\",\"Dridex\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["blocklist", "import", "--format", "feodo"])
        .arg(&feed)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    succeeded(&out);

    let mud_dir = dir.path().join("mud");
    std::fs::create_dir(&mud_dir).unwrap();
    std::fs::write(mud_dir.join("cam.json"), r#"{
      "ietf-mud:mud": {"mud-version": 1, "mud-url": "https://cams.example/c1",
        "from-device-policy": {"access-lists": {"access-list": [{"name": "cam-fr"}]}},
        "to-device-policy": {"access-lists": {"access-list": [{"name": "cam-to"}]}}},
      "ietf-access-control-list:acls": {"acl": [
        {"name": "cam-fr", "type": "ipv4-acl-type", "aces": {"ace": [
          {"name": "cloud", "matches": {"ipv4": {"ietf-acldns:dst-dnsname": "cloud.cams.example", "protocol": 6},
             "tcp": {"destination-port": {"operator": "eq", "port": 443}, "ietf-mud:direction-initiated": "from-device"}},
           "actions": {"forwarding": "accept"}}]}},
        {"name": "cam-to", "type": "ipv4-acl-type", "aces": {"ace": [
          {"name": "viewer", "matches": {"ietf-mud:mud": {"local-networks": [null]}, "tcp": {"destination-port": {"operator": "eq", "port": 8080}}},
           "actions": {"forwarding": "accept"}}]}}]}}"#).unwrap();
    let state = dir.path().join("state");
    // The DHCP side: the lab device holds a lease (it need not talk first).
    let leases = dir.path().join("dnsmasq.leases");
    std::fs::write(&leases, "4102444800 02:00:00:00:00:17 198.18.1.17 dvr *\n").unwrap();
    let config = dir.path().join("gateway.toml");
    let write_config = |block: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
[gateway]
lan_interface = "lan0"
wan_interface = "wan0"
lan_address = "198.18.1.1"
lan_prefixes = ["198.18.1.0/24"]
db = "{db}"
mud_dir = "{mud}"
state_dir = "{state}"
dns = "block"
resolvers = ["198.19.53.54"]
block = [{block}]
hosts = {{ "cloud.cams.example" = ["198.19.44.4"] }}
refresh = "1h"
leases = "{leases}"

[gateway.management]
ports = [22]
from = ["198.18.1.0/24"]

[[gateway.forward]]
proto = "tcp"
port = 8080
to = "198.18.1.18"

[[gateway.device]]
name = "camera"
address = "198.18.1.18"
mud = "cam.json"

[gateway.quarantine]
threshold = 10
window = "30s"
timeout = "6s"
"#,
                db = db.display(),
                mud = mud_dir.display(),
                state = state.display(),
                leases = leases.display()
            ),
        )
        .unwrap();
    };
    write_config("\"198.19.200.10\", \"198.19.200.20\"");

    // plan: the C&C sets hold the store's entry and the operator's.
    let out = iotscope(&net, &config, &["gateway", "plan", "--format", "json"]);
    succeeded(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cc4 = plan["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cc_v4")
        .unwrap();
    assert_eq!(
        cc4["elements"],
        serde_json::json!(["11.0.2.10", "198.19.200.10", "198.19.200.20"])
    );
    assert_eq!(ruleset(&net), before, "plan changes nothing");

    // apply refuses a table that would cut the management connection.
    let out = iotscope(
        &net,
        &config,
        &["gateway", "apply", "--keep", "198.19.0.2:22"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("management"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ruleset(&net), before);

    let out = iotscope(
        &net,
        &config,
        &["gateway", "apply", "--keep", "198.18.1.2:22"],
    );
    succeeded(&out);

    let daemon = Command::new("ip")
        .args(["netns", "exec", &net.gw, BIN, "--config"])
        .arg(&config)
        .args([
            "gateway",
            "run",
            "--duration",
            "120s",
            "--timeout",
            "2s",
            "--max-attempts",
            "60",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // C&C and loader: refused both ways.
    assert!(!connect(&net, &net.lan, "198.18.1.19", "198.19.200.10", 80));
    assert!(!connect(&net, &net.lan, "198.18.1.17", "198.19.200.20", 80));
    // Direct DNS to an outside resolver: blocked; a listed one answers.
    assert!(!py(&net.lan, DNS, &["198.18.1.19", "198.19.53.53"]).starts_with("ok"));
    assert!(py(&net.lan, DNS, &["198.18.1.19", "198.19.53.54"]).starts_with("ok"));
    // The camera's MUD file: its cloud on 443 only.
    assert!(connect(&net, &net.lan, "198.18.1.18", "198.19.44.4", 443));
    assert!(!connect(&net, &net.lan, "198.18.1.18", "198.19.44.4", 80));
    assert!(!connect(&net, &net.lan, "198.18.1.18", "198.19.44.5", 443));
    // A device without a MUD file (default allow) still may.
    assert!(connect(&net, &net.lan, "198.18.1.19", "198.19.44.4", 80));
    // Inbound: the research scanner reaches no LAN device; the declared forward works.
    assert!(!connect(&net, &net.wan, "198.19.99.1", "198.18.1.17", 23));
    assert!(!connect(&net, &net.wan, "198.19.99.1", "198.18.1.18", 8080));
    assert!(connect(&net, &net.wan, "198.19.99.1", "198.18.255.1", 8080));
    let st = status(&net, &config);
    assert!(counter(&st, "cc-out") >= 2, "{st}");
    assert!(counter(&st, "dns-direct") >= 1, "{st}");
    assert!(counter(&st, "mud:camera:from-device-drop") >= 2, "{st}");
    assert!(counter(&st, "mud:camera:cloud") >= 1, "{st}");
    assert!(counter(&st, "inbound") >= 1, "{st}");
    assert!(counter(&st, "forward-0") >= 1, "{st}");

    // A scanner: quarantined within the threshold, released after the timeout.
    assert!(connect(&net, &net.lan, "198.18.1.30", "198.19.44.4", 80));
    py(&net.lan, SCAN, &["198.18.1.30", "12"]);
    let mut evidence = serde_json::Value::Null;
    wait_for("the scanner's quarantine", Duration::from_secs(10), || {
        let st = status(&net, &config);
        match quarantined(&st, "198.18.1.30") {
            Some(q) => {
                evidence = q["evidence"].clone();
                true
            }
            None => false,
        }
    });
    assert_eq!(evidence["reason"]["scan"]["distinct"], 10, "{evidence}");
    assert_eq!(evidence["destinations"].as_array().unwrap().len(), 10);
    assert!(!connect(&net, &net.lan, "198.18.1.30", "198.19.44.4", 443));
    assert!(connect(&net, &net.lan, "198.18.1.19", "198.19.44.4", 443));
    // Its web requests get the notice page; DNS still works.
    let page = py(&net.lan, FETCH, &["198.18.1.30", "198.19.44.4", "80"]);
    assert!(page.contains("quarantined"), "{page}");
    assert!(py(&net.lan, DNS, &["198.18.1.30", "198.19.53.54"]).starts_with("ok"));
    wait_for("the release", Duration::from_secs(15), || {
        quarantined(&status(&net, &config), "198.18.1.30").is_none()
    });
    assert!(connect(&net, &net.lan, "198.18.1.30", "198.19.44.4", 443));

    // One SYN with Mirai's fingerprint is enough.
    py(&net.lan, MIRAI, &["198.18.1.29", "198.19.100.7"]);
    wait_for(
        "the Mirai fingerprint's quarantine",
        Duration::from_secs(10),
        || {
            quarantined(&status(&net, &config), "198.18.1.29")
                .is_some_and(|q| q["evidence"]["reason"] == "mirai_fingerprint")
        },
    );

    // Applying again keeps the quarantined host in quarantine.
    let out = iotscope(&net, &config, &["gateway", "apply"]);
    succeeded(&out);
    assert!(quarantined(&status(&net, &config), "198.18.1.29").is_some());

    // The new lab device: seen in the lease file, checked once; a laptop
    // that only talked through the gateway was seen in the neighbour table.
    let mut device = serde_json::Value::Null;
    wait_for("the new device's check", Duration::from_secs(90), || {
        let st = status(&net, &config);
        device = st["devices"]["198.18.1.17"].clone();
        device["checked"].is_string() || device["error"].is_string()
    });
    assert_eq!(device["mac"], "02:00:00:00:00:17");
    assert!(status(&net, &config)["devices"]["198.18.1.19"].is_object());
    let kinds: Vec<&str> = device["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"default_credential"), "{device}");
    let logins = lab
        .audit_events()
        .iter()
        .filter(|e| {
            e["client"]
                .as_str()
                .is_some_and(|s| s.starts_with("198.18.1.1:"))
                && e["event"].as_str().is_some_and(|k| k.starts_with("login"))
        })
        .count();
    assert!(
        logins > 0,
        "the lab saw the check: {:?}",
        lab.audit_events().first()
    );
    // Its findings are in the store too.
    let out = Command::new(BIN)
        .args(["findings", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("198.18.1.17"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let out = daemon.wait_with_output().unwrap();
    succeeded(&out);

    // Refresh in place: a new C&C address joins, counters stay.
    assert!(!connect(&net, &net.lan, "198.18.1.19", "198.19.200.10", 80));
    let counted = counter(&status(&net, &config), "cc-out");
    assert!(counted >= 1);
    write_config("\"198.19.200.10\", \"198.19.200.20\", \"198.19.200.30\"");
    let out = iotscope(&net, &config, &["gateway", "refresh"]);
    succeeded(&out);
    let st = status(&net, &config);
    assert_eq!(st["sets"]["cc_v4"], 4);
    assert!(
        counter(&st, "cc-out") == counted,
        "counters survive a refresh: {st}"
    );

    // A changed MUD file needs new rules: refresh refuses, apply is needed.
    let cam = std::fs::read_to_string(mud_dir.join("cam.json")).unwrap();
    std::fs::write(
        mud_dir.join("cam.json"),
        cam.replace("\"port\": 443", "\"port\": 8443"),
    )
    .unwrap();
    let out = iotscope(&net, &config, &["gateway", "refresh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("apply"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(mud_dir.join("cam.json"), cam).unwrap();

    // Apply again, then roll back to the table before.
    write_config("\"198.19.200.10\"");
    assert!(iotscope(&net, &config, &["gateway", "apply"])
        .status
        .success());
    assert_eq!(status(&net, &config)["sets"]["cc_v4"], 2);
    let out = iotscope(&net, &config, &["gateway", "rollback"]);
    succeeded(&out);
    assert_eq!(status(&net, &config)["sets"]["cc_v4"], 4);

    // remove leaves the ruleset as it was.
    let out = iotscope(&net, &config, &["gateway", "remove"]);
    succeeded(&out);
    assert_eq!(ruleset(&net), before);
    assert!(connect(&net, &net.lan, "198.18.1.19", "198.19.200.10", 80));

    let _ = servers.kill();
    let _ = servers.wait();
    let _ = lan_server.kill();
    let _ = lan_server.wait();
}
