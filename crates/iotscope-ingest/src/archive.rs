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
use pcap_file::pcap::PcapHeader;
use pcap_file::{DataLink, Endianness, TsResolution};

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Creating, writing or deleting an archive file failed (the cause
    /// follows in the error's chain).
    #[error("archive {}", path.display())]
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

/// A file the archive closed: still named `….pcap.part` until
/// [`publish`] gives it its final name (once the store knows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedFile {
    /// Its final path (`….pcap`).
    pub path: PathBuf,
    /// Where it is until published (`….pcap.part`).
    pub part: PathBuf,
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
    /// The final name; the file is written as `path` + `.part`.
    path: PathBuf,
    part: PathBuf,
    period: i64,
    frames: u64,
    /// The file, through its hash; the header is pcap-file's, each record
    /// header (16 bytes, little-endian, as the file header says) ours, so
    /// the writer can be flushed.
    writer: Hashing<BufWriter<File>>,
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
        // A directory the sensor cannot write to is found now, not at the
        // first frame.
        let probe = cfg
            .dir
            .join(format!(".iotscope-probe-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|source| ArchiveError::Io {
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
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&secs.to_le_bytes());
        record[4..8].copy_from_slice(&frac.to_le_bytes());
        record[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        open.writer
            .write_all(&record)
            .and_then(|_| open.writer.write_all(data))
            .map_err(|source| ArchiveError::Io {
                path: open.part.clone(),
                source,
            })?;
        open.frames += 1;
        Ok(closed)
    }

    /// Writes what is buffered of the open file to it (the sensor does so
    /// every few seconds, so a crash loses at most those).
    ///
    /// Errors: [`ArchiveError::Io`] (a full disk shows here).
    pub fn flush(&mut self) -> Result<(), ArchiveError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        open.writer.flush().map_err(|source| ArchiveError::Io {
            path: open.part.clone(),
            source,
        })
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
            path: open.part.clone(),
            source,
        };
        let mut hashing = open.writer;
        hashing.flush().map_err(io)?;
        let file = hashing.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
        let closed = ClosedFile {
            path: open.path.clone(),
            part: open.part.clone(),
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
        // A restart within a period must not overwrite that period's file
        // (published or not).
        let mut n = 1;
        let (path, part) = loop {
            let base = if n == 1 {
                format!("{}-{stamp}.pcap", self.name)
            } else {
                format!("{}-{stamp}-{n}.pcap", self.name)
            };
            let path = self.cfg.dir.join(&base);
            let part = self.cfg.dir.join(format!("{base}.part"));
            if !path.exists() && !part.exists() {
                break (path, part);
            }
            n += 1;
        };
        let io = |source| ArchiveError::Io {
            path: part.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .map_err(io)?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: self.cfg.snaplen,
            datalink: DataLink::from(self.link.to_linktype()),
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
        };
        let mut writer = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: xxhash_rust::xxh3::Xxh3::new(),
            bytes: 0,
        };
        header
            .write_to(&mut writer)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        Ok(OpenFile {
            path,
            part,
            period,
            frames: 0,
            writer,
        })
    }

    /// Deletes this interface's oldest published files until the archive
    /// (its files, published or not) holds at most the budget. Files not
    /// yet published (the one just closed, one the store has not recorded)
    /// are never deleted: the budget may then be passed by them.
    fn keep_budget(&mut self) -> Result<(), ArchiveError> {
        let Some(max) = self.cfg.max_bytes else {
            return Ok(());
        };
        let mut files = self.files()?;
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        files.sort_by(|a, b| (&a.stamp, a.n).cmp(&(&b.stamp, b.n)));
        for f in files.iter().filter(|f| f.published) {
            if total <= max {
                break;
            }
            std::fs::remove_file(&f.path).map_err(|source| ArchiveError::Io {
                path: f.path.clone(),
                source,
            })?;
            total -= f.size;
            self.deleted += 1;
        }
        Ok(())
    }

    /// This interface's archive files: exactly `NAME-YYYYMMDDTHHMMSSZ.pcap`
    /// or `NAME-YYYYMMDDTHHMMSSZ-N.pcap`, with `.part` while unpublished
    /// (another interface's `NAME-x-…` is not one).
    fn files(&self) -> Result<Vec<ArchiveFile>, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: self.cfg.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.cfg.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file_name = entry.file_name();
            let Some(f) = file_name.to_str().and_then(|n| parse_name(n, &self.name)) else {
                continue;
            };
            let size = entry.metadata().map_err(io)?.len();
            out.push(ArchiveFile {
                path: entry.path(),
                size,
                ..f
            });
        }
        Ok(out)
    }
}

/// One file of an interface's archive, as its name tells.
#[derive(Debug)]
struct ArchiveFile {
    path: PathBuf,
    size: u64,
    /// `YYYYMMDDTHHMMSSZ`: sorts by time.
    stamp: String,
    /// 1, or the N of `-N` (a restart within the period).
    n: u32,
    /// False for `.part` (not yet recorded in the store).
    published: bool,
}

/// Parses an archive file name of interface `name`.
fn parse_name(file: &str, name: &str) -> Option<ArchiveFile> {
    let rest = file.strip_prefix(name)?.strip_prefix('-')?;
    let (rest, published) = match rest.strip_suffix(".part") {
        Some(r) => (r, false),
        None => (rest, true),
    };
    let rest = rest.strip_suffix(".pcap")?;
    let (stamp, n) = match rest.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse::<u32>().ok().filter(|&n| n >= 2)?),
        None => (rest, 1),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit());
    shape.then(|| ArchiveFile {
        path: PathBuf::new(),
        size: 0,
        stamp: stamp.to_string(),
        n,
        published,
    })
}

/// Gives a closed file its final name (`.part` removed), once the store
/// has recorded it.
///
/// Errors: [`ArchiveError::Io`] when the rename fails.
pub fn publish(c: &ClosedFile) -> Result<(), ArchiveError> {
    std::fs::rename(&c.part, &c.path).map_err(|source| ArchiveError::Io {
        path: c.part.clone(),
        source,
    })
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
        // Another interface's file, whose name starts like this one's.
        let other = dir.path().join("eth_0-lan-20231114T221400Z.pcap");
        std::fs::write(&other, vec![0u8; 5000]).unwrap();
        let t0 = 1_700_000_040 * SEC; // 2023-11-14T22:14:00Z, a minute's start
        let mut closed = Vec::new();
        // As the sensor does: each closed file is published (renamed from
        // .part) once recorded; until then it is never deleted.
        let mut keep = |c: Option<ClosedFile>| {
            if let Some(c) = c {
                assert!(c.part.exists() && !c.path.exists());
                publish(&c).unwrap();
                closed.push(c);
            }
        };
        for i in 0..30u8 {
            // Ten frames a minute over three minutes; the first of the
            // third minute is late (stamped in the second): it stays in the
            // file open when it came.
            let ts = t0 + (i as i64) * 6 * SEC - if i == 20 { 20 * SEC } else { 0 };
            keep(a.write(ts, 60, &frame(i)).unwrap());
        }
        keep(a.close().unwrap());
        assert!(
            other.exists(),
            "another interface's file is not this budget's"
        );
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
    fn only_this_interfaces_names_parse_and_restarts_sort_after_their_period() {
        let f = |n: &str| parse_name(n, "eth0").map(|f| (f.stamp, f.n, f.published));
        let s = "20231114T221400Z".to_string();
        assert_eq!(f("eth0-20231114T221400Z.pcap"), Some((s.clone(), 1, true)));
        assert_eq!(
            f("eth0-20231114T221400Z-10.pcap"),
            Some((s.clone(), 10, true))
        );
        assert_eq!(f("eth0-20231114T221400Z-2.pcap.part"), Some((s, 2, false)));
        for other in [
            "eth0-lan-20231114T221400Z.pcap",
            "eth0.5-20231114T221400Z.pcap",
            "eth0-20231114T221400Z-1.pcap",
            "eth0-20231114T221400Z.pcapng",
            "eth0-2023111XT221400Z.pcap",
        ] {
            assert_eq!(f(other), None, "{other}");
        }
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
            let c = a.close().unwrap().unwrap();
            publish(&c).unwrap();
            paths.push(c.path);
        }
        assert_ne!(paths[0], paths[1]);
        assert!(paths.iter().all(|p| p.exists()));
    }
}
