//! C&C blocklists end to end: three abuse.ch feed formats imported into a
//! store, exported as a plain list, an nftables file that `nft -c` accepts
//! and an RPZ zone that `named-checkzone` accepts; a damaged feed is refused
//! with its file and line and stores nothing.

use std::process::Command;

mod common;
use common::{effective_uid, have, skip};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

const FEODO: &str = "# Feodo Tracker: Botnet C2 IP Blocklist (CSV)\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\"2021-01-17 07:44:46\",\"11.0.2.10\",\"443\",\"online\",\"2023-05-01\",\"Dridex\"\n\"2021-01-18 07:44:46\",\"2a00:11::c2\",\"8080\",\"online\",\"2023-05-01\",\"QakBot\"\n";
const URLHAUS: &str = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\"3033520\",\"2024-06-23 09:01:04\",\"http://11.0.3.77:53402/bin.sh\",\"online\",\"2024-06-23 09:01:04\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/3033520/\",\"r\"\n\"3033521\",\"2024-06-23 09:02:00\",\"http://cnc.bad.example/x.arm7\",\"online\",\"\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/3033521/\",\"r\"\n";
const THREATFOX: &str = "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\"2024-06-23 10:11:12\", \"1289871\", \"11.0.1.45:23\", \"ip:port\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n\"2024-06-23 10:11:14\", \"1289873\", \"mirai.bad.example\", \"domain\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"\", \"100\", \"None\", \"Mirai\", \"0\", \"r\"\n";

#[test]
fn feeds_in_plain_nft_and_rpz_out_each_accepted_by_its_tool() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    for (format, text) in [
        ("feodo", FEODO),
        ("urlhaus", URLHAUS),
        ("threatfox", THREATFOX),
    ] {
        let f = dir.path().join(format!("{format}.csv"));
        std::fs::write(&f, text).unwrap();
        let st = bin()
            .args(["blocklist", "import", "--format", format])
            .arg(&f)
            .arg("--db")
            .arg(&db)
            .status()
            .unwrap();
        assert!(st.success(), "{format}");
    }
    // A damaged feed: refused with file and line, nothing stored from it.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{FEODO}\"2021-01-19\",\"999.1.1.1\",\"443\",\"online\",\"x\",\"Dridex\"\n\"2021\",\"11.0.2.99\",\"1\",\"online\",\"x\",\"X\"\n")).unwrap();
    let out = bin()
        .args(["blocklist", "import", "--format", "feodo"])
        .arg(&bad)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv, line 5"), "{err}");

    let export = |format: &str| {
        // The STIX validator reads only files named *.json.
        let f = dir.path().join(if format == "stix" {
            "list.stix.json".to_string()
        } else {
            format!("list.{format}")
        });
        let st = bin()
            .args(["blocklist", "export", "--format", format, "--out"])
            .arg(&f)
            .arg("--db")
            .arg(&db)
            .status()
            .unwrap();
        assert!(st.success(), "{format}");
        (f.clone(), std::fs::read_to_string(&f).unwrap())
    };
    let (_, plain) = export("plain");
    let ips: Vec<&str> = plain.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ips, ["11.0.1.45", "11.0.2.10", "11.0.3.77", "2a00:11::c2"]);
    assert!(
        !plain.contains("11.0.2.99"),
        "nothing from the refused feed"
    );

    let (rpz_file, rpz) = export("rpz");
    for name in [
        "32.10.2.0.11.rpz-ip",
        "128.c2.zz.11.2a00.rpz-ip",
        "cnc.bad.example CNAME .",
        "*.mirai.bad.example CNAME .",
    ] {
        assert!(rpz.contains(name), "{name} in\n{rpz}");
    }
    let (stix_file, stix) = export("stix");
    let bundle: serde_json::Value = serde_json::from_str(&stix).unwrap();
    assert_eq!(bundle["type"], "bundle");
    let patterns: Vec<&str> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pattern"].as_str().unwrap())
        .collect();
    assert!(
        patterns.contains(&"[ipv4-addr:value = '11.0.2.10']"),
        "{patterns:?}"
    );
    assert!(
        patterns.contains(&"[ipv6-addr:value = '2a00:11::c2']"),
        "{patterns:?}"
    );
    assert!(
        patterns.contains(&"[domain-name:value = 'cnc.bad.example']"),
        "{patterns:?}"
    );
    let (nft_file, nft) = export("nft");
    assert!(nft.contains("11.0.2.10") && nft.contains("2a00:11::c2"));

    // STIX 2.1: the OASIS validator (stix2-validator from PyPI, in a venv).
    if !have("python3") {
        return skip("python3 is not installed");
    }
    let venv = dir.path().join("venv");
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(st.success(), "python3 -m venv (python3-venv)");
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "stix2-validator"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "pip install stix2-validator");
    let out = Command::new(venv.join("bin/stix2_validator"))
        .arg(&stix_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("STIX JSON: Valid"),
        "{said}"
    );
    assert!(!said.contains("[!] Warning"), "{said}");

    if !have("named-checkzone") {
        return skip("named-checkzone (bind9-utils) is not installed");
    }
    let out = Command::new("named-checkzone")
        .args(["rpz.example"])
        .arg(&rpz_file)
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
    // Check mode only: nothing is loaded.
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
