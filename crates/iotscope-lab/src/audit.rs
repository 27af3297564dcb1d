//! The lab's audit log: every login, failed login, post-login command and
//! state change, one JSON object a line. Tests read it to prove that a
//! survey changed nothing and typed nothing after a login.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::devices::Device;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A successful login.
    Login,
    /// A rejected login.
    LoginFailed,
    /// A command typed after a login.
    Command,
    /// Something on the device was changed (mode, setting, reboot, deletion, publish, register write).
    StateChange,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    device: String,
    kind: crate::devices::Kind,
    service: &'a str,
    port: u16,
    client: String,
    event: Event,
    detail: &'a str,
}

/// Where audit lines go (nowhere when no file was given). Cheap to clone.
#[derive(Clone, Default)]
pub struct Audit {
    file: Option<Arc<Mutex<File>>>,
}

impl Audit {
    /// Appends to `path`, creating it.
    pub fn to_file(path: &Path) -> std::io::Result<Audit> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Audit {
            file: Some(Arc::new(Mutex::new(f))),
        })
    }

    /// Records one event; a line is written whole, and written at once, so
    /// nothing is lost if the lab is killed.
    pub fn record(
        &self,
        device: &Device,
        service: &str,
        port: u16,
        client: SocketAddr,
        event: Event,
        detail: &str,
    ) {
        let Some(file) = &self.file else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let line = Line {
            ts: format!("{}.{:06}", now.as_secs(), now.subsec_micros()),
            device: device.ip.to_string(),
            kind: device.kind,
            service,
            port,
            client: client.to_string(),
            event,
            detail,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(text.as_bytes());
        }
    }
}
