//! The survey: sweep authorised address ranges for IoT services and grab
//! what answers, with exact coverage and safety built in.
//!
//! [`scope`] is the address model every decision to send a packet goes
//! through; [`targets`] builds what a sweep may probe from it (explicit
//! targets, the built-in IANA exclusions, exclusion files), [`permute`] the order and the shards,
//! [`engine`] connects at a bounded rate, and [`modules`] speak the
//! protocols (telnet, SSH, HTTP, MQTT, Modbus/TCP, raw). Nothing here logs
//! in or changes a device.

pub mod engine;
pub mod modules;
pub mod permute;
pub mod resume;
pub mod scope;
pub mod syn;
pub mod targets;

pub use engine::{now_rfc3339, probe, run, ProbeSettings, Row, ScanConfig, Stats, Status};
pub use scope::{canonical, verdict, Exclusions, LiveExclusions, Verdict};
pub use targets::{parse_blocklist, parse_ports, parse_target, TargetError, TargetSet};
