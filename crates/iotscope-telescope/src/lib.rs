//! Darknet aggregation: from frames to the telescope report.
//!
//! Owns: the per-run accumulator ([`Telescope`]), exact distinct counting
//! per bucket ([`presence`]), the mergeable source sketch the store keeps
//! ([`sketch`]) and the report schema ([`Summary`]). Knows nothing about
//! files or SQL: frames come in, counts come out.

pub mod aggregate;
pub mod flatmap;
pub mod prefix;
pub mod presence;
pub mod sketch;
pub mod summary;
pub mod time;

pub use aggregate::{
    flagged, parse_port, port_of, Count, PlausibleTime, PortIndex, Telescope, TelescopeConfig,
};
pub use prefix::Prefix;
pub use sketch::SourceSketch;
pub use summary::{AsRow, CaptureLossReport, CountryRow, FileInfo, LossyBucket, Summary};
