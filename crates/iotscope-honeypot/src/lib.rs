//! The iotscope honeypot (issue 18): telnet listeners that pose as IoT
//! devices well enough for Mirai-family bots and their loaders, record
//! every login, command and download they ask for, and never execute
//! anything.
//!
//! - [`persona`]: device profiles and their per-deployment variation;
//! - [`shell`]: BusyBox `ash` emulated, sans-IO;
//! - [`telnet`]: the telnet session (NVT, login, shell), sans-IO;
//! - [`ssh`]: the SSH listener (russh), the same logins and shell;
//! - [`extract`]: download URLs and hosts, stub addresses;
//! - [`fetch`]: opt-in download of what bots ask for (http, bounded, global addresses only);
//! - [`events`]: Cowrie-format JSON events;
//! - [`server`]: listeners, bounds, payload samples, session linking.
//! - [`record`]: sessions and download hosts into the store.

pub mod events;
pub mod extract;
pub mod fetch;
pub mod persona;
pub mod record;
pub mod server;
pub mod shell;
pub mod ssh;
pub mod telnet;

/// Lower-case hex of `bytes` (SHA-256 digests as events and the store name them).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
