//! Session records into the store: each session with its logins, lines,
//! downloads and payloads, and each download or loader host as a
//! blocklist entry (source `honeypot:SENSOR`), so `iotscope blocklist
//! export` serves what the honeypot saw.

use std::net::IpAddr;

use iotscope_store::{BlocklistRecord, HoneypotSession, Store};

use crate::events::Event;
use crate::server::{Recorder, SessionRecord};

/// A session as the store keeps it, for honeypot `sensor`.
pub fn to_row(sensor: &str, s: &SessionRecord) -> HoneypotSession {
    let mut row = to_row_raw(sensor, s);
    // A NUL an attacker typed (SSH passes raw bytes) is stored as U+FFFD:
    // PostgreSQL's text cannot hold a NUL, and a session must not escape
    // being recorded by containing one. Every engine stores the same.
    let clean = |t: &mut String| {
        if t.contains('\0') {
            *t = t.replace('\0', "\u{FFFD}");
        }
    };
    if let Some((u, p)) = row.login.as_mut() {
        clean(u);
        clean(p);
    }
    for (_, u, p, _) in &mut row.logins {
        clean(u);
        clean(p);
    }
    for (_, line, _) in &mut row.commands {
        clean(line);
    }
    for (kind, url, host, _) in &mut row.downloads {
        clean(kind);
        clean(url);
        if let Some(h) = host.as_mut() {
            clean(h);
        }
    }
    for (path, _, _, _) in &mut row.payloads {
        clean(path);
    }
    clean(&mut row.reason);
    row
}

fn to_row_raw(sensor: &str, s: &SessionRecord) -> HoneypotSession {
    HoneypotSession {
        sensor: sensor.to_string(),
        id: s.id.clone(),
        protocol: s.protocol.clone(),
        src_ip: s.src.ip().to_string(),
        src_port: s.src.port(),
        dst_ip: s.dst.ip().to_string(),
        dst_port: s.dst.port(),
        start_ns: s.start_ns,
        end_ns: s.end_ns,
        login: s.login.clone(),
        logins: s
            .attempts
            .iter()
            .map(|a| (a.at_ns, a.user.clone(), a.password.clone(), a.success))
            .collect(),
        commands: s.commands.clone(),
        downloads: s
            .downloads
            .iter()
            .map(|d| {
                (
                    d.kind.name().to_string(),
                    d.url.clone(),
                    d.host.clone(),
                    d.port,
                )
            })
            .collect(),
        payloads: s
            .payloads
            .iter()
            .map(|p| (p.path.clone(), p.sha256.clone(), p.size as u64, p.duplicate))
            .collect(),
        input_sha256: s.input_sha256.clone(),
        reason: s.reason.clone(),
        linked: s
            .linked
            .as_ref()
            .map(|(id, ip)| (id.clone(), ip.to_string())),
        truncated: s.truncated,
    }
}

/// The blocklist entries a session gives: each host it asked to download
/// from or connect to, once (an address is kind `ip`, a name `domain`).
pub fn blocklist_rows(sensor: &str, s: &SessionRecord) -> Vec<BlocklistRecord> {
    let first_seen = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(s.start_ns.max(0) as u64),
    )
    .to_string();
    let mut out: Vec<BlocklistRecord> = Vec::new();
    for d in &s.downloads {
        let Some(host) = &d.host else { continue };
        // A bot can name any host; one that is not globally routable (the
        // honeypot's own network, a resolver, loopback) is kept in the
        // session's downloads but never put on a blocklist.
        let not_routable = match host.parse::<IpAddr>() {
            Ok(ip) => crate::fetch::not_global(ip).is_some(),
            Err(_) => {
                host == "localhost"
                    || !host.contains('.')
                    || host.ends_with(".localhost")
                    || host.ends_with(".local")
                    || host.ends_with(".internal")
                    || host.ends_with(".home.arpa")
                    || host.ends_with(".lan")
            }
        };
        if not_routable {
            continue;
        }
        if out.iter().any(|r| &r.value == host) {
            continue;
        }
        let kind = if host.parse::<IpAddr>().is_ok() {
            "ip"
        } else {
            "domain"
        };
        out.push(BlocklistRecord {
            value: host.clone(),
            kind: kind.into(),
            port: d.port,
            malware: "unknown".into(),
            source: format!("honeypot:{sensor}"),
            first_seen: first_seen.clone(),
        });
    }
    out
}

/// A [`Recorder`] that writes sessions and blocklist entries to a store.
pub struct StoreRecorder {
    store: Box<dyn Store + Send>,
    sensor: String,
    spool: Option<iotscope_store::Spool>,
    /// Sessions that went to the spool.
    spooled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether the last session went to the spool (notices on a change).
    spooling: bool,
    notice: Box<dyn FnMut(&str) + Send>,
}

/// How long one session may spend forwarding a spool's backlog.
const FORWARD_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

impl StoreRecorder {
    /// Into `store` (either engine), naming the honeypot `sensor`.
    pub fn new(store: Box<dyn Store + Send>, sensor: &str) -> Self {
        StoreRecorder {
            store,
            sensor: sensor.to_string(),
            spool: None,
            spooled: Default::default(),
            spooling: false,
            notice: Box::new(|_| {}),
        }
    }

    /// Keeps the sessions the store refuses (its server down or out of
    /// reach) in `spool`, on this machine, and forwards them, oldest first
    /// and each once (a session is keyed by sensor and id), before later
    /// sessions, once the store takes them again: for at most a second per
    /// session while a backlog waits (see [`iotscope_store::Spool`]).
    pub fn with_spool(mut self, spool: iotscope_store::Spool) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Tells `f` when sessions start or stop going to the spool, when
    /// spooled entries are forwarded or set aside as damaged, and when the
    /// spool cannot take a session (for the operator's log).
    pub fn with_notice(mut self, f: impl FnMut(&str) + Send + 'static) -> Self {
        self.notice = Box::new(f);
        self
    }

    /// Sessions that went to the spool so far (shared: readable while the
    /// recorder runs elsewhere).
    pub fn spooled(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.spooled.clone()
    }

    /// Forwards what waits in the spool, until `until` if given; returns
    /// the entries forwarded (0 without a spool or while the store refuses).
    pub fn forward(&mut self, until: Option<std::time::Instant>) -> u64 {
        let Some(spool) = self.spool.as_mut() else {
            return 0;
        };
        if !spool.waiting().is_ok_and(|w| w.0 > 0) {
            return 0;
        }
        let store = &mut self.store;
        let notice = &mut self.notice;
        let path = spool.path().display().to_string();
        let result = spool.forward(
            |i| iotscope_store::save_spooled_item(store.as_mut(), i),
            until,
            |e| {
                if let Some(why) = &e.set_aside {
                    notice(&format!(
                        "spool {path}: entry {} set aside, not forwarded: {why}",
                        e.seq
                    ));
                }
            },
        );
        match result {
            Ok(n) => {
                if n > 0 {
                    let left = spool.waiting().map_or(0, |w| w.0);
                    notice(&format!(
                        "forwarded {n} spooled entries to the store ({left} still wait)"
                    ));
                }
                n
            }
            Err(iotscope_store::SpoolError::Store(_)) => 0,
            Err(e) => {
                notice(&format!("spool {path}: {e}"));
                0
            }
        }
    }
}

impl Recorder for StoreRecorder {
    fn event(&mut self, _: &Event) -> Result<(), String> {
        Ok(())
    }

    fn session(&mut self, s: &SessionRecord) -> Result<(), String> {
        let row = to_row(&self.sensor, s);
        let rows = blocklist_rows(&self.sensor, s);
        let item = iotscope_store::SpoolItem::Session(&row, &rows);
        if self.spool.is_none() {
            return iotscope_store::save_spooled_item(self.store.as_mut(), item)
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        // What waits goes first, so sessions reach the store in order.
        self.forward(Some(std::time::Instant::now() + FORWARD_BUDGET));
        let spool = self.spool.as_mut().expect("checked");
        let refusal = match spool.waiting().map_err(|e| e.to_string())?.0 {
            0 => match iotscope_store::save_spooled_item(self.store.as_mut(), item) {
                Ok(_) => {
                    if self.spooling {
                        self.spooling = false;
                        (self.notice)("the store takes sessions again");
                    }
                    return Ok(());
                }
                Err(e) => Some(e.to_string()),
            },
            _ => None,
        };
        if let Err(e) = spool.push_session(&row, &rows) {
            let text = format!(
                "session {} is lost to the store: the store refused it and the spool too ({e})",
                s.id
            );
            (self.notice)(&text);
            return Err(text);
        }
        self.spooled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !self.spooling {
            self.spooling = true;
            let why = refusal.unwrap_or_else(|| "earlier sessions still wait".into());
            (self.notice)(&format!(
                "sessions go to the spool {} until the store takes them again ({why})",
                spool.path().display()
            ));
        }
        Ok(())
    }
}

/// Several recorders, each given every event and session in turn; the
/// first error of each is returned after all were tried.
pub struct Fanout(pub Vec<Box<dyn Recorder>>);

impl Recorder for Fanout {
    fn event(&mut self, e: &Event) -> Result<(), String> {
        let mut err = Ok(());
        for r in &mut self.0 {
            if let Err(x) = r.event(e) {
                err = Err(x);
            }
        }
        err
    }
    fn session(&mut self, s: &SessionRecord) -> Result<(), String> {
        let mut err = Ok(());
        for r in &mut self.0 {
            if let Err(x) = r.session(s) {
                err = Err(x);
            }
        }
        err
    }
    fn flush(&mut self) -> Result<(), String> {
        let mut err = Ok(());
        for r in &mut self.0 {
            if let Err(x) = r.flush() {
                err = Err(x);
            }
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::downloads_in;

    #[test]
    fn a_nul_an_attacker_typed_is_stored_as_a_replacement_character() {
        let s = SessionRecord {
            id: "00000000000b".into(),
            protocol: "ssh".into(),
            src: "127.0.0.2:4000".parse().unwrap(),
            dst: "127.0.0.1:2222".parse().unwrap(),
            start_ns: 1,
            end_ns: 2,
            login: Some(("ro\0ot".into(), "x\0".into())),
            attempts: Vec::new(),
            commands: vec![(1, "echo a\0b".into(), false)],
            downloads: Vec::new(),
            payloads: Vec::new(),
            input_sha256: "00".repeat(32),
            reason: "exit".into(),
            linked: None,
            truncated: 0,
        };
        let row = to_row("hp1", &s);
        assert_eq!(row.login, Some(("ro\u{FFFD}ot".into(), "x\u{FFFD}".into())));
        assert_eq!(row.commands[0].1, "echo a\u{FFFD}b");
    }

    #[test]
    fn sessions_and_their_hosts_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = iotscope_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let mut downloads = downloads_in(&[
            "wget".into(),
            "http://11.0.9.7/a".into(),
            "http://Bad.Example/b".into(),
            // Not globally routable, in several spellings: never listed.
            "http://127.0.0.9/x".into(),
            "http://10.1.1.1/x".into(),
            "http://[::ffff:192.168.1.1]/x".into(),
            "http://localhost/x".into(),
            "http://router.lan/x".into(),
        ]);
        downloads.extend(downloads_in(&["wget".into(), "http://11.0.9.7/c".into()]));
        let s = SessionRecord {
            id: "00000000000a".into(),
            protocol: "telnet".into(),
            src: "127.0.0.2:4000".parse().unwrap(),
            dst: "127.0.0.1:2323".parse().unwrap(),
            start_ns: 1_764_547_200_000_000_000,
            end_ns: 1_764_547_201_000_000_000,
            login: Some(("root".into(), "xc3511".into())),
            attempts: Vec::new(),
            commands: vec![(1, "wget ...".into(), true)],
            downloads,
            payloads: Vec::new(),
            input_sha256: "00".repeat(32),
            reason: "exit".into(),
            linked: None,
            truncated: 0,
        };
        let mut r = StoreRecorder::new(Box::new(store), "hp1");
        r.session(&s).unwrap();
        r.session(&s).unwrap();
        let st = &r.store;
        assert_eq!(st.honeypot_sessions(None, None, 10).unwrap().len(), 1);
        let bl = st.blocklist().unwrap();
        let values: Vec<(&str, &str)> = bl
            .iter()
            .map(|b| (b.value.as_str(), b.kind.as_str()))
            .collect();
        assert_eq!(values, vec![("11.0.9.7", "ip"), ("bad.example", "domain")]);
        assert_eq!(bl[0].source, "honeypot:hp1");
        assert_eq!(bl[0].first_seen, "2025-12-01T00:00:00Z");
    }
}
