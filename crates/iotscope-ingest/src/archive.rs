//! The sensor's raw archive: every captured frame written to rotating pcap
//! files (nanosecond stamps, the capture's link type: Wireshark, tcpdump and
//! `telescope analyze` read them), each file's content hash recorded in the
//! store when it closes, and a byte budget kept by deleting the oldest files.
//!
//! A file is named `IF-YYYYMMDDTHHMMSSZ.pcap` after the start of the period
//! its first frame falls in (periods of `--archive-rotate`, aligned to the
//! epoch); frames go into the open file in the order they arrive, so a late
//! frame stays in the file open when it came. Re-analysing the files of a
//! period gives the figures the sensor stored for it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use iotscope_telescope::time::rfc3339;
use iotscope_wire::LinkType;
use pcap_file::pcap::{PcapHeader, PcapWriter, RawPcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Creating, writing or deleting an archive file failed.
    #[error("archive {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// How the archive rotates and how much it may keep.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// Directory of the files (created if missing).
    pub dir: PathBuf,
    /// Period of one file, ns (aligned to the epoch).
    pub rotate_ns: i64,
    /// Bytes the archive may keep; the oldest files are deleted past it
    /// (the open file is never deleted). `None`: no limit.
    pub max_bytes: Option<u64>,
    /// Snap length written in each file's header.
    pub snaplen: u32,
}

/// A file the archive closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedFile {
    /// Its path.
    pub path: PathBuf,
    /// XXH3-128 of its bytes, as `telescope analyze --db` computes it (so
    /// the store knows the file was counted and will not count it again).
    pub content_hash: String,
    /// Frames in it.
    pub frames: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The rotating archive of one interface.
pub struct Archive {
    cfg: ArchiveConfig,
    name: String,
    link: LinkType,
    open: Option<OpenFile>,
    /// Files deleted to keep the budget, over the archive's life.
    pub deleted: u64,
}

struct OpenFile {
    path: PathBuf,
    period: i64,
    frames: u64,
    writer: PcapWriter<Hashing<BufWriter<File>>>,
}

/// Hashes and counts what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    hash: xxhash_rust::xxh3::Xxh3,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Archive {
    /// An archive of interface `name` (the files' prefix; characters other
    /// than ASCII letters, digits, `-`, `_` and `.` become `_`) with frames
    /// of `link`. Creates the directory.
    ///
    /// Errors: [`ArchiveError::Io`] when the directory cannot be created.
    pub fn new(cfg: ArchiveConfig, name: &str, link: LinkType) -> Result<Archive, ArchiveError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| ArchiveError::Io {
            path: cfg.dir.clone(),
            source,
        })?;
        let name = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Archive {
            cfg,
            name,
            link,
            open: None,
            deleted: 0,
        })
    }

    /// Writes one frame (capture time in ns, length on the wire, bytes
    /// captured). Returns the file it closed when the frame opens a new
    /// period. Times before 1970 or after 2106 (which pcap cannot hold) are
    /// written as the nearest it can.
    ///
    /// Errors: [`ArchiveError::Io`].
    pub fn write(
        &mut self,
        ts_ns: i64,
        orig_len: u32,
        data: &[u8],
    ) -> Result<Option<ClosedFile>, ArchiveError> {
        let period = ts_ns.div_euclid(self.cfg.rotate_ns);
        let mut closed = None;
        if self.open.as_ref().is_some_and(|o| period > o.period) {
            closed = self.close()?;
        }
        if self.open.is_none() {
            self.open = Some(self.create(period)?);
        }
        let open = self.open.as_mut().expect("opened above");
        let secs = ts_ns.div_euclid(1_000_000_000).clamp(0, u32::MAX as i64) as u32;
        let frac = if ts_ns < 0 {
            0
        } else {
            ts_ns.rem_euclid(1_000_000_000) as u32
        };
        let packet = RawPcapPacket {
            ts_sec: secs,
            ts_frac: frac,
            incl_len: data.len() as u32,
            orig_len: orig_len.max(data.len() as u32),
            data: std::borrow::Cow::Borrowed(data),
        };
        open.writer
            .write_raw_packet(&packet)
            .map_err(|e| ArchiveError::Io {
                path: open.path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        open.frames += 1;
        Ok(closed)
    }

    /// Closes the open file (at a period's end, on SIGHUP, when the sensor
    /// stops), then deletes the oldest files past the budget.
    ///
    /// Errors: [`ArchiveError::Io`].
    pub fn close(&mut self) -> Result<Option<ClosedFile>, ArchiveError> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let io = |source| ArchiveError::Io {
            path: open.path.clone(),
            source,
        };
        let mut hashing = open.writer.into_writer();
        hashing.flush().map_err(io)?;
        let file = hashing.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
        let closed = ClosedFile {
            path: open.path.clone(),
            content_hash: format!("{:032x}", hashing.hash.digest128()),
            frames: open.frames,
            bytes: hashing.bytes,
        };
        self.keep_budget()?;
        Ok(Some(closed))
    }

    fn create(&self, period: i64) -> Result<OpenFile, ArchiveError> {
        let start = rfc3339(period.saturating_mul(self.cfg.rotate_ns));
        // 2016-10-01T00:00:00Z -> 20161001T000000Z: sorts by time, no colons.
        let stamp: String = start
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
            .collect();
        let mut path = self.cfg.dir.join(format!("{}-{stamp}.pcap", self.name));
        // A restart within a period must not overwrite that period's file.
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = self.cfg.dir.join(format!("{}-{stamp}-{n}.pcap", self.name));
        }
        let io = |source| ArchiveError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: self.cfg.snaplen,
            datalink: DataLink::from(self.link.to_linktype()),
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let hashing = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            bytes: 0,
        };
        let writer = PcapWriter::with_header(hashing, header)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        Ok(OpenFile {
            path,
            period,
            frames: 0,
            writer,
        })
    }

    /// Deletes this interface's oldest closed files until the archive
    /// holds at most the budget.
    fn keep_budget(&mut self) -> Result<(), ArchiveError> {
        let Some(max) = self.cfg.max_bytes else {
            return Ok(());
        };
        let mut files = self.files()?;
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        let open = self.open.as_ref().map(|o| o.path.clone());
        for (path, size) in files {
            if total <= max {
                break;
            }
            if Some(&path) == open.as_ref() {
                continue;
            }
            std::fs::remove_file(&path).map_err(|source| ArchiveError::Io {
                path: path.clone(),
                source,
            })?;
            total -= size;
            self.deleted += 1;
        }
        Ok(())
    }

    /// This interface's archive files with their sizes.
    fn files(&self) -> Result<Vec<(PathBuf, u64)>, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: self.cfg.dir.clone(),
            source,
        };
        let prefix = format!("{}-", self.name);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.cfg.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".pcap") {
                let size = entry.metadata().map_err(io)?.len();
                out.push((entry.path(), size));
            }
        }
        Ok(out)
    }
}

/// A byte count such as `500000000`, `512M`, `10G` or `1T` (K, M, G, T are
/// powers of 1024; an optional `B` or `iB` after them is accepted; case does
/// not matter).
///
/// Errors: the text back, in a message, when it is not such a count or
/// overflows 64 bits.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let upper = text.trim().to_ascii_uppercase();
    let t = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{text:?} is not a size such as 500M or 10G")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{text:?} is not a size such as 500M or 10G"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn frame(i: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12] = 0x08;
        f[59] = i;
        f
    }

    #[test]
    fn files_rotate_per_period_hash_as_analyze_does_and_keep_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Archive::new(
            ArchiveConfig {
                dir: dir.path().to_path_buf(),
                rotate_ns: 60 * SEC,
                max_bytes: Some(2_000),
                snaplen: 65535,
            },
            "eth/0",
            LinkType::Ethernet,
        )
        .unwrap();
        let t0 = 1_700_000_040 * SEC; // 2023-11-14T22:14:00Z, a minute's start
        let mut closed = Vec::new();
        for i in 0..30u8 {
            // Ten frames a minute over three minutes; the first of the
            // third minute is late (stamped in the second): it stays in the
            // file open when it came.
            let ts = t0 + (i as i64) * 6 * SEC - if i == 20 { 20 * SEC } else { 0 };
            closed.extend(a.write(ts, 60, &frame(i)).unwrap());
        }
        closed.extend(a.close().unwrap());
        assert_eq!(
            closed.iter().map(|c| c.frames).collect::<Vec<_>>(),
            [10, 11, 9]
        );
        let first = &closed[0];
        assert!(
            first.path.ends_with("eth_0-20231114T221400Z.pcap"),
            "{:?}",
            first.path
        );
        // 24 + 10 * (16 + 60) = 784 bytes, then 860 and 708: the budget of
        // 2,000 keeps the newest two.
        assert_eq!(first.bytes, 784);
        assert!(!first.path.exists());
        assert_eq!(a.deleted, 1);
        let last = closed.last().unwrap();
        let bytes = std::fs::read(&last.path).unwrap();
        assert_eq!(bytes.len() as u64, last.bytes);
        assert_eq!(
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)),
            last.content_hash
        );
        // A reader sees nanosecond stamps in arrival order.
        let mut r =
            pcap_file::pcap::PcapReader::new(std::fs::File::open(&last.path).unwrap()).unwrap();
        assert_eq!(r.header().ts_resolution, TsResolution::NanoSecond);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp.as_secs() as i64, (t0 + 126 * SEC) / SEC);
        assert_eq!(p.data[59], 21);
    }

    #[test]
    fn sizes_parse_in_binary_units_and_refuse_nonsense() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("10GiB"), Ok(10 << 30));
        assert_eq!(parse_bytes("2tb"), Ok(2 << 40));
        for bad in ["", "M", "10X", "-1", "99999999999T", "1.5G"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_restart_within_a_period_does_not_overwrite_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ArchiveConfig {
            dir: dir.path().to_path_buf(),
            rotate_ns: 3600 * SEC,
            max_bytes: None,
            snaplen: 65535,
        };
        let mut paths = Vec::new();
        for _ in 0..2 {
            let mut a = Archive::new(cfg.clone(), "eth0", LinkType::Ethernet).unwrap();
            a.write(1_700_000_000 * SEC, 60, &frame(1)).unwrap();
            paths.push(a.close().unwrap().unwrap().path);
        }
        assert_ne!(paths[0], paths[1]);
        assert!(paths.iter().all(|p| p.exists()));
    }
}
