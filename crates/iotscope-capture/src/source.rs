//! Opening a capture source: a file path or `-` for standard input, with
//! transparent decompression (gzip, bzip2, xz, zstd, each found by its magic
//! bytes, concatenated streams included), and a content hash of the raw
//! bytes for de-duplication.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use xxhash_rust::xxh3::Xxh3;

use crate::error::CaptureError;
use crate::reader::CaptureReader;

/// Shared view of how far the raw (possibly compressed) input has been read
/// and what its bytes hash to: the progress display and the store read it.
#[derive(Clone, Default)]
pub struct RawProgress {
    bytes: Rc<Cell<u64>>,
    /// Only when asked for: hashing costs about a sixth of a fast analysis.
    hash: Option<Rc<std::cell::RefCell<Xxh3>>>,
}

impl RawProgress {
    /// Raw bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    /// XXH3-128 of the raw bytes read so far, as 32 hex digits. Once the
    /// reader is exhausted this identifies the file's content.
    /// `None` unless the source was opened with hashing on.
    pub fn content_hash(&self) -> Option<String> {
        self.hash
            .as_ref()
            .map(|h| format!("{:032x}", h.borrow().digest128()))
    }
}

/// Counts and hashes raw bytes on their way to the decoder.
struct Tap<R> {
    inner: R,
    progress: RawProgress,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress
            .bytes
            .set(self.progress.bytes.get() + n as u64);
        if let Some(h) = &self.progress.hash {
            h.borrow_mut().update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Bytes [`sniff`] peeks: the longest magic number (xz's six).
const SNIFF: usize = 6;

/// Peeks the first bytes so a compression can be detected without seeking
/// (stdin).
fn sniff<R: Read>(mut r: R) -> Result<(Vec<u8>, R), CaptureError> {
    let mut head = Vec::with_capacity(SNIFF);
    let mut tmp = [0u8; SNIFF];
    while head.len() < SNIFF {
        match r.read(&mut tmp[..SNIFF - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(CaptureError::Io { offset: 0, source }),
        }
    }
    Ok((head, r))
}

/// A capture reader over an opened source; boxed so files, stdin and gzip
/// share one type.
pub type Capture = CaptureReader<Box<dyn Read>>;

/// Opens `path` (or standard input for `-`), detects gzip, and returns the
/// reader with a handle on raw-byte progress (and the content hash when
/// `hash_content`), plus the file size when known.
pub fn open(
    path: &Path,
    hash_content: bool,
) -> Result<(Capture, RawProgress, Option<u64>), CaptureError> {
    let (raw, size): (Box<dyn Read>, Option<u64>) = if path == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(path).map_err(CaptureError::Open)?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let (capture, progress) = from_reader(raw, hash_content)?;
    Ok((capture, progress, size))
}

/// Like [`open`] for any byte stream.
pub fn from_reader(
    raw: Box<dyn Read>,
    hash_content: bool,
) -> Result<(Capture, RawProgress), CaptureError> {
    let progress = RawProgress {
        bytes: Rc::default(),
        hash: hash_content.then(Rc::default),
    };
    let tapped = Tap {
        inner: raw,
        progress: progress.clone(),
    };
    let (head, rest) = sniff(tapped)?;
    let compression = Compression::of(&head);
    let stream = io::Cursor::new(head).chain(rest);
    let decoded: Box<dyn Read> = match compression {
        None => Box::new(stream),
        Some(Compression::Gzip) => Box::new(MultiGzDecoder::new(stream)),
        Some(Compression::Bzip2) => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Some(Compression::Xz) => Box::new(liblzma::read::XzDecoder::new_multi_decoder(stream)),
        Some(Compression::Zstd) => {
            // The reference decoder (libzstd): it reads every frame of a
            // stream in turn and hands out what it decoded as it goes, so a
            // cut file keeps everything before the cut (ruzstd held back a
            // whole window, and lost up to 128 MiB of frames before it).
            let mut d = zstd::stream::read::Decoder::new(stream)
                .map_err(|source| CaptureError::Io { offset: 0, source })?;
            d.window_log_max(ZSTD_MAX_WINDOW_LOG)
                .map_err(|source| CaptureError::Io { offset: 0, source })?;
            Box::new(d)
        }
    };
    Ok((CaptureReader::new(decoded)?, progress))
}

/// A compression around a capture, found by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952), magic `1f 8b`.
    Gzip,
    /// bzip2 (NICT's darknet archives are daily bzip2 files), magic `BZh`
    /// and a block size digit.
    Bzip2,
    /// xz, magic `fd 37 7a 58 5a 00`.
    Xz,
    /// Zstandard (RFC 8878), frame magic `28 b5 2f fd`.
    Zstd,
}

impl Compression {
    /// The compression whose magic number `head` starts with, if any.
    pub fn of(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
            Some(Compression::Bzip2)
        } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }
}

/// Largest zstd window accepted, as a power of two: 128 MiB, what `zstd`
/// itself decodes without `--long` (a hostile header cannot ask for more).
const ZSTD_MAX_WINDOW_LOG: u32 = 27;
