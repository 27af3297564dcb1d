//! Capture files into one telescope, on one thread or several.
//!
//! One thread reads and decodes every frame (pcap and pcapng records are
//! variable-length and compressed inputs are one stream, so reading is
//! sequential) and counts a share of the sources; with more threads the
//! others count the rest, each for the sources that hash to it
//! ([`TelescopeConfig::shard_for`]), so the shards hold disjoint sources
//! and merge exactly: any number of threads gives the same report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use iotscope_capture::{open, CaptureError};
use iotscope_telescope::{PlausibleTime, Telescope, TelescopeConfig};
use iotscope_wire::{decode, Decoded, LinkType};

/// What reading one input gave.
#[derive(Debug)]
pub struct FileOutcome {
    /// The input as given (`-` for standard input).
    pub path: PathBuf,
    /// False when the input could not be opened at all.
    pub opened: bool,
    /// Frames read (up to the damage, if any).
    pub frames: u64,
    /// Frames stamped outside the plausible window: counted, in no bucket.
    pub implausible_time: u64,
    /// Of those, frames from pcapng Simple Packet Blocks, which carry no
    /// time and take the last time before them (none before the first).
    pub untimed_frames: u64,
    /// Frames per link type the decoder does not know (counted `non_ip`).
    pub unknown_links: HashMap<u32, u64>,
    /// Why reading stopped early; later inputs were not read.
    pub error: Option<CaptureError>,
    /// Content hash of the raw bytes when it was asked for (standard
    /// input, which cannot be hashed before it is read).
    pub raw_hash: Option<String>,
}

/// Where reading stands, for a progress line: the input, raw bytes read
/// of it, its size when known, and frames read of it.
pub struct Progress<'a> {
    /// The input being read.
    pub path: &'a Path,
    /// Raw (possibly compressed) bytes read so far.
    pub raw_bytes: u64,
    /// The input's size in bytes, when known (not for standard input).
    pub size: Option<u64>,
    /// Frames read so far from this input.
    pub frames: u64,
}

/// Frames between two calls of the progress callback.
const PROGRESS_EVERY: u64 = 1 << 20;

/// Reads `inputs` in order into one telescope built from `cfg`, counting
/// on `threads` threads (1 to 64), and stops at the first damaged input:
/// the outcomes list the inputs read, the last one with its error.
///
/// The telescope returned holds every frame read (also those before a
/// damage) and is not finished ([`Telescope::finish`] is the caller's).
/// `hash_stdin` asks for the content hash of standard input (`-`) while it
/// is read. `progress` is called every 2^20 frames.
pub fn analyze_files(
    inputs: &[PathBuf],
    cfg: TelescopeConfig,
    threads: usize,
    hash_stdin: bool,
    progress: &mut dyn FnMut(&Progress),
) -> (Telescope, Vec<FileOutcome>) {
    let threads = threads.clamp(1, 64);
    let (telescopes, outcomes) = if threads == 1 {
        read_inputs(inputs, cfg, hash_stdin, progress)
    } else {
        read_inputs_pipelined(inputs, cfg, threads - 1, hash_stdin, progress)
    };
    // The largest first: merging moves the others' sources into it.
    let mut telescopes = telescopes;
    telescopes.sort_by_key(|t| std::cmp::Reverse(t.source_addrs().len()));
    let telescope = telescopes
        .into_iter()
        .reduce(|mut merged, shard| {
            merged.merge(shard);
            merged
        })
        .expect("at least one shard");
    (telescope, outcomes)
}

/// Reads the inputs in order, handing each frame to `sink` as (time in ns,
/// link type, frame without its FCS, captured length with it), and stops
/// at the first damaged input.
fn read_frames(
    inputs: &[PathBuf],
    plausible: PlausibleTime,
    hash_stdin: bool,
    progress: &mut dyn FnMut(&Progress),
    mut sink: impl FnMut(i64, LinkType, &[u8], u32),
) -> Vec<FileOutcome> {
    let mut outcomes = Vec::new();
    for path in inputs {
        let is_stdin = path == Path::new("-");
        let (mut capture, raw, size) = match open(path, hash_stdin && is_stdin) {
            Ok(v) => v,
            Err(e) => {
                outcomes.push(FileOutcome {
                    path: path.clone(),
                    opened: false,
                    frames: 0,
                    implausible_time: 0,
                    untimed_frames: 0,
                    unknown_links: HashMap::new(),
                    error: Some(e),
                    raw_hash: None,
                });
                break;
            }
        };
        let (mut frames, mut implausible_time) = (0u64, 0u64);
        let mut unknown_links: HashMap<u32, u64> = HashMap::new();
        let error = loop {
            match capture.next_frame() {
                Ok(Some(f)) => {
                    implausible_time += !plausible.contains(f.ts_ns) as u64;
                    if let LinkType::Unknown(n) = f.link {
                        *unknown_links.entry(n).or_default() += 1;
                    }
                    // The frame without its FCS is decoded; the captured
                    // length with it is counted (as tshark's cap_len).
                    let content = &f.data[..f.data.len() - f.fcs_len as usize];
                    sink(f.ts_ns, f.link, content, f.data.len() as u32);
                    frames += 1;
                    if frames % PROGRESS_EVERY == 0 {
                        progress(&Progress {
                            path,
                            raw_bytes: raw.bytes(),
                            size,
                            frames,
                        });
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let stop = error.is_some();
        outcomes.push(FileOutcome {
            path: path.clone(),
            opened: true,
            frames,
            implausible_time,
            untimed_frames: if implausible_time > 0 {
                capture.untimed_frames()
            } else {
                0
            },
            unknown_links,
            error,
            raw_hash: raw.content_hash(),
        });
        if stop {
            break;
        }
    }
    outcomes
}

/// One thread reads, decodes and accounts.
fn read_inputs(
    inputs: &[PathBuf],
    cfg: TelescopeConfig,
    hash_stdin: bool,
    progress: &mut dyn FnMut(&Progress),
) -> (Vec<Telescope>, Vec<FileOutcome>) {
    let plausible = cfg.plausible;
    let mut telescope = Telescope::new(cfg);
    let outcomes = read_frames(
        inputs,
        plausible,
        hash_stdin,
        progress,
        |ts, link, data, len| telescope.ingest_decoded(ts, len, decode(link, data)),
    );
    telescope.flush();
    (vec![telescope], outcomes)
}

/// Decoded frames handed from the reader to an accounting thread.
type Batch = Vec<(i64, u32, Decoded)>;
const BATCH_FRAMES: usize = 4096;

/// Shares of the sources each helper thread accounts, against one for the
/// reading thread: reading and decoding cost it about as much as accounting
/// three more shares. On `bench/telescope.sh`'s capture with two threads the
/// reading phase took 0.83-1.05 s with 4 shares, 0.86-0.90 s with 6,
/// 0.90-1.23 s with 3 and 0.97-1.17 s with 2 (one thread: 1.10-1.30 s).
const HELPER_SHARES: usize = 4;

/// This thread reads, decodes and accounts one share of the sources;
/// `helpers` threads account [`HELPER_SHARES`] shares each. A source's
/// share is fixed by its address ([`TelescopeConfig::shard_for`]), so the
/// telescopes hold disjoint sources and merge exactly. Batches travel
/// through bounded channels and come back for reuse, so memory stays flat.
/// Before, the reading thread only read and decoded and one helper
/// accounted everything: the helper was the bottleneck and two threads
/// were no faster than one.
fn read_inputs_pipelined(
    inputs: &[PathBuf],
    base: TelescopeConfig,
    helpers: usize,
    hash_stdin: bool,
    progress: &mut dyn FnMut(&Progress),
) -> (Vec<Telescope>, Vec<FileOutcome>) {
    use std::sync::mpsc::{sync_channel, SyncSender};
    let route = TelescopeConfig {
        shard: (0, (1 + HELPER_SHARES * helpers) as u32),
        ..base.clone()
    };
    std::thread::scope(|scope| {
        let mut senders: Vec<SyncSender<Batch>> = Vec::new();
        let mut recyclers = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..helpers {
            let (tx, rx) = sync_channel::<Batch>(8);
            let (back_tx, back_rx) = sync_channel::<Batch>(16);
            let cfg = base.clone();
            handles.push(scope.spawn(move || {
                let mut telescope = Telescope::new(cfg);
                for mut batch in rx {
                    for (ts, len, decoded) in batch.drain(..) {
                        telescope.ingest_decoded(ts, len, decoded);
                    }
                    let _ = back_tx.try_send(batch);
                }
                telescope.flush();
                telescope
            }));
            senders.push(tx);
            recyclers.push(back_rx);
        }
        let mut own = Telescope::new(base.clone());
        let mut batches: Vec<Batch> = (0..helpers)
            .map(|_| Vec::with_capacity(BATCH_FRAMES))
            .collect();
        let outcomes = read_frames(
            inputs,
            base.plausible,
            hash_stdin,
            progress,
            |ts, link, data, len| {
                let decoded = decode(link, data);
                let share = route.shard_for(&decoded) as usize;
                if share == 0 {
                    own.ingest_decoded(ts, len, decoded);
                    return;
                }
                let helper = (share - 1) / HELPER_SHARES;
                let batch = &mut batches[helper];
                batch.push((ts, len, decoded));
                if batch.len() == BATCH_FRAMES {
                    let next = recyclers[helper]
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH_FRAMES));
                    let full = std::mem::replace(batch, next);
                    senders[helper].send(full).expect("accounting thread alive");
                }
            },
        );
        for (helper, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                senders[helper]
                    .send(batch)
                    .expect("accounting thread alive");
            }
        }
        drop(senders);
        own.flush();
        let mut telescopes = vec![own];
        telescopes.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("accounting thread panicked")),
        );
        (telescopes, outcomes)
    })
}
