//! Capture input for iotscope: pcap and pcapng files, compressed (gzip,
//! bzip2, xz, zstd) or not, from a path or standard input. Frames are handed out as borrowed
//! slices with a nanosecond timestamp and their link type; interpreting the
//! bytes is `iotscope-wire`'s job.

pub mod error;
pub mod reader;
pub mod source;

pub use error::CaptureError;
pub use reader::{CaptureReader, Format, Frame, MAX_BLOCK};
pub use source::{from_reader, open, Capture, Compression, RawProgress};
