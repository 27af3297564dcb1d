//! Ingest: from frames to the telescope, for capture files and for live
//! interfaces alike.
//!
//! Owns: reading capture files into one [`iotscope_telescope::Telescope`]
//! on one or several threads ([`files`]), and the sensor loop that counts
//! frames from a [`sensor::PacketSource`] and commits them to the store as
//! time buckets close ([`sensor`]). The libpcap source is behind the
//! `live-capture` feature ([`live`]). Frames are decoded by
//! [`iotscope_wire::decode`] and counted by
//! [`iotscope_telescope::Telescope::ingest_decoded`] on every path, so a
//! file and an interface carrying the same frames give the same figures.

pub mod archive;
pub mod files;
#[cfg(feature = "live-capture")]
pub mod live;
pub mod sensor;
