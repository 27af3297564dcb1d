//! Events in Cowrie's JSON format (docs.cowrie.org, "Output Event Code
//! Reference"): one JSON object per line with `eventid`, `timestamp`
//! (ISO 8601, UTC, microseconds), `session`, `src_ip`, `sensor` and
//! `message` on every event, and the ids' own fields, so tools that read
//! Cowrie's `cowrie.json` read ours. Events Cowrie has no id for carry an
//! `iotscope.` id (`iotscope.session.linked`); a reader of Cowrie's ids
//! skips them.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::extract::Download;

/// What happened, with the fields its Cowrie event id carries.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// `cowrie.session.connect`.
    Connect {
        /// The listener's address.
        dst: SocketAddr,
        /// "telnet".
        protocol: &'static str,
    },
    /// `cowrie.client.size`.
    ClientSize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// `cowrie.login.success` / `cowrie.login.failed`.
    Login {
        /// User name.
        username: String,
        /// Password.
        password: String,
        /// Whether it worked.
        success: bool,
    },
    /// `cowrie.command.input`.
    Command {
        /// The line.
        input: String,
    },
    /// `cowrie.command.failed`: a command the device does not have.
    CommandFailed {
        /// The command.
        input: String,
    },
    /// `cowrie.session.file_download.failed` with `fetched: false`: a URL
    /// asked for and not fetched (fetching is off), or an address found
    /// in a written stub (`kind: "stub"`).
    Download(Download),
    /// `cowrie.session.file_download`: a URL fetched (fetching is on).
    Fetched {
        /// The URL.
        url: String,
        /// Where the sample is (`payloads/SHA256`), if saved.
        outfile: Option<String>,
        /// SHA-256, hex.
        shasum: String,
        /// Bytes.
        size: usize,
        /// A sample with this hash was already kept.
        duplicate: bool,
        /// Cut at the size cap.
        truncated: bool,
    },
    /// `cowrie.session.file_download.failed`: a fetch tried and failed.
    FetchFailed {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// `cowrie.session.file_upload`: bytes the bot wrote with echo/printf,
    /// kept as a sample.
    FileUpload {
        /// Path on the emulated device.
        filename: String,
        /// Where the sample is (`payloads/SHA256`), if saved.
        outfile: Option<String>,
        /// SHA-256, hex.
        shasum: String,
        /// Bytes.
        size: usize,
        /// A sample with this hash was already kept.
        duplicate: bool,
    },
    /// `iotscope.session.linked`: this loader session used the pair a
    /// scanner session from another address logged in with.
    Linked {
        /// The scanner's session.
        scanner_session: String,
        /// The scanner's address.
        scanner_ip: String,
        /// The pair, `user:password`.
        pair: String,
    },
    /// `cowrie.session.closed`.
    Closed {
        /// Session length.
        duration: Duration,
        /// Why it ended (client, idle, login timeout, limit, shutdown...).
        reason: &'static str,
    },
}

/// One event of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// The session id (12 hex digits, as Cowrie's).
    pub session: String,
    /// The client.
    pub src: SocketAddr,
    /// What.
    pub kind: EventKind,
}

/// Nanoseconds since the epoch of `t` (0 before it).
pub fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

impl Event {
    /// The Cowrie `eventid`.
    pub fn eventid(&self) -> &'static str {
        match &self.kind {
            EventKind::Connect { .. } => "cowrie.session.connect",
            EventKind::ClientSize { .. } => "cowrie.client.size",
            EventKind::Login { success: true, .. } => "cowrie.login.success",
            EventKind::Login { success: false, .. } => "cowrie.login.failed",
            EventKind::Command { .. } => "cowrie.command.input",
            EventKind::CommandFailed { .. } => "cowrie.command.failed",
            EventKind::Download(_) => "cowrie.session.file_download.failed",
            EventKind::Fetched { .. } => "cowrie.session.file_download",
            EventKind::FetchFailed { .. } => "cowrie.session.file_download.failed",
            EventKind::FileUpload { .. } => "cowrie.session.file_upload",
            EventKind::Linked { .. } => "iotscope.session.linked",
            EventKind::Closed { .. } => "cowrie.session.closed",
        }
    }

    /// The event as Cowrie writes it; `sensor` names the honeypot.
    pub fn to_json(&self, sensor: &str) -> Value {
        let mut m = Map::new();
        m.insert("eventid".into(), json!(self.eventid()));
        m.insert(
            "timestamp".into(),
            json!(humantime::format_rfc3339_micros(self.at).to_string()),
        );
        m.insert("session".into(), json!(self.session));
        m.insert("src_ip".into(), json!(self.src.ip().to_string()));
        m.insert("sensor".into(), json!(sensor));
        let src = self.src;
        let message = match &self.kind {
            EventKind::Connect { dst, protocol } => {
                m.insert("src_port".into(), json!(src.port()));
                m.insert("dst_ip".into(), json!(dst.ip().to_string()));
                m.insert("dst_port".into(), json!(dst.port()));
                m.insert("protocol".into(), json!(protocol));
                format!(
                    "New connection: {}:{} ({}:{}) [session: {}]",
                    src.ip(),
                    src.port(),
                    dst.ip(),
                    dst.port(),
                    self.session
                )
            }
            EventKind::ClientSize { width, height } => {
                m.insert("width".into(), json!(width));
                m.insert("height".into(), json!(height));
                format!("Terminal Size: {width} {height}")
            }
            EventKind::Login {
                username,
                password,
                success,
            } => {
                m.insert("username".into(), json!(username));
                m.insert("password".into(), json!(password));
                format!(
                    "login attempt [{username}/{password}] {}",
                    if *success { "succeeded" } else { "failed" }
                )
            }
            EventKind::Command { input } => {
                m.insert("input".into(), json!(input));
                format!("CMD: {input}")
            }
            EventKind::CommandFailed { input } => {
                m.insert("input".into(), json!(input));
                format!("Command not found: {input}")
            }
            EventKind::Download(d) => {
                m.insert("url".into(), json!(d.url));
                m.insert("kind".into(), json!(d.kind.name()));
                m.insert("host".into(), json!(d.host));
                m.insert("fetched".into(), json!(false));
                format!(
                    "Attempt to download file(s) from URL ({}) not made: fetching is off",
                    d.url
                )
            }
            EventKind::Fetched {
                url,
                outfile,
                shasum,
                size,
                duplicate,
                truncated,
            } => {
                m.insert("url".into(), json!(url));
                m.insert("outfile".into(), json!(outfile));
                m.insert("shasum".into(), json!(shasum));
                m.insert("size".into(), json!(size));
                m.insert("duplicate".into(), json!(duplicate));
                m.insert("truncated".into(), json!(truncated));
                m.insert("fetched".into(), json!(true));
                format!("Downloaded URL ({url}) with SHA-256 {shasum}")
            }
            EventKind::FetchFailed { url, reason } => {
                m.insert("url".into(), json!(url));
                m.insert("reason".into(), json!(reason));
                m.insert("fetched".into(), json!(false));
                format!("Attempt to download file(s) from URL ({url}) failed: {reason}")
            }
            EventKind::FileUpload {
                filename,
                outfile,
                shasum,
                size,
                duplicate,
            } => {
                m.insert("filename".into(), json!(filename));
                m.insert("outfile".into(), json!(outfile));
                m.insert("shasum".into(), json!(shasum));
                m.insert("size".into(), json!(size));
                m.insert("duplicate".into(), json!(duplicate));
                format!("Saved file written by the client ({filename}) with SHA-256 {shasum}")
            }
            EventKind::Linked {
                scanner_session,
                scanner_ip,
                pair,
            } => {
                m.insert("scanner_session".into(), json!(scanner_session));
                m.insert("scanner_ip".into(), json!(scanner_ip));
                m.insert("pair".into(), json!(pair));
                format!("Loader logged in with the pair [{pair}] scanner {scanner_ip} [session: {scanner_session}] found")
            }
            EventKind::Closed { duration, reason } => {
                m.insert("duration".into(), json!(duration.as_secs_f64()));
                m.insert("reason".into(), json!(reason));
                format!("Connection lost after {} seconds", duration.as_secs())
            }
        };
        m.insert("message".into(), json!(message));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cowrie_fields() {
        let src: SocketAddr = "198.51.100.3:40001".parse().unwrap();
        let at = UNIX_EPOCH + Duration::from_micros(1_764_567_890_123_456);
        let ev = |kind| Event {
            at,
            session: "0a1b2c3d4e5f".into(),
            src,
            kind,
        };
        let v = ev(EventKind::Connect {
            dst: "127.0.0.1:2323".parse().unwrap(),
            protocol: "telnet",
        })
        .to_json("hp1");
        assert_eq!(v["eventid"], "cowrie.session.connect");
        assert_eq!(v["timestamp"], "2025-12-01T05:44:50.123456Z");
        assert_eq!(v["src_ip"], "198.51.100.3");
        assert_eq!(v["src_port"], 40001);
        assert_eq!(v["dst_port"], 2323);
        assert_eq!(v["protocol"], "telnet");
        assert_eq!(v["sensor"], "hp1");
        let v = ev(EventKind::Login {
            username: "root".into(),
            password: "xc3511".into(),
            success: true,
        })
        .to_json("s");
        assert_eq!(v["eventid"], "cowrie.login.success");
        assert_eq!(v["message"], "login attempt [root/xc3511] succeeded");
        let v = ev(EventKind::Closed {
            duration: Duration::from_millis(2500),
            reason: "client",
        })
        .to_json("s");
        assert_eq!(v["duration"], 2.5);
    }
}
