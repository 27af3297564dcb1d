//! Sans-IO packet decoding for iotscope: link layers, IP, the first bytes of
//! TCP/UDP/ICMP, the eleven NICTER classes and per-packet fingerprints.
//!
//! Nothing here does I/O or allocates per packet; the telescope calls
//! [`decode`] tens of millions of times a second.

pub mod class;
pub mod fingerprint;
pub mod link;
pub mod packet;

pub use class::{Class, ALL_CLASSES, CLASS_COUNT};
pub use link::LinkType;
pub use packet::{decode, proto, Addr, Decoded, Malformed, Packet};
