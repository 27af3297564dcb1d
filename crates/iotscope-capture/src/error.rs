//! Errors of the capture readers. Offsets count bytes of the decompressed
//! stream from its start, so `dd`/`xxd` on the (decompressed) file finds them.

/// What went wrong reading a capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input has no bytes at all.
    #[error("empty input: no capture header")]
    Empty,
    /// The first bytes are not a pcap or pcapng magic number (after any
    /// gzip, bzip2, xz or zstd around it).
    #[error("not a pcap or pcapng file, nor one compressed with gzip, bzip2, xz or zstd (magic bytes {magic:02x?} at offset 0)")]
    UnknownFormat {
        /// The first four bytes.
        magic: [u8; 4],
    },
    /// The stream ends in the middle of a record or block.
    #[error("truncated at byte offset {offset}: a record needs {needed} bytes, the file ends after {available}")]
    Truncated {
        /// Offset of the record that is cut short.
        offset: u64,
        /// Bytes the record needs.
        needed: u64,
        /// Bytes present before the end of the stream.
        available: u64,
    },
    /// A header field holds an impossible value.
    #[error("corrupt capture at byte offset {offset}: {reason} ({value})")]
    Corrupt {
        /// Offset of the record or block.
        offset: u64,
        /// What is impossible.
        reason: &'static str,
        /// The offending value.
        value: u64,
    },
    /// Reading or decompressing failed.
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        /// Offset reached when the error happened.
        offset: u64,
        /// The underlying error (gzip corruption shows here too).
        source: std::io::Error,
    },
    /// The file could not be opened.
    #[error("cannot open: {0}")]
    Open(std::io::Error),
}

impl CaptureError {
    /// The byte offset the error refers to, if it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Truncated { offset, .. }
            | CaptureError::Corrupt { offset, .. }
            | CaptureError::Io { offset, .. } => Some(*offset),
            CaptureError::UnknownFormat { .. } => Some(0),
            _ => None,
        }
    }
}
