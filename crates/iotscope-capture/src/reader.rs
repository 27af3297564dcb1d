//! A streaming reader of pcap and pcapng captures.
//!
//! Owns: format detection (pcap in both byte orders with micro- or
//! nanosecond stamps, pcapng, gzip around either), record framing, and
//! timestamps in nanoseconds since the epoch.
//!
//! Invariants: memory is bounded by the largest block (capped at
//! [`MAX_BLOCK`]), not by the file; every error carries the byte offset of
//! the record or block where it was found (offsets count bytes of the
//! decompressed stream); frames handed out before an error are complete and
//! correct.
//!
//! Hand-written rather than built on pcap-parser because the hot loop is a
//! 16-byte header read and a slice per packet, which we want inlined into the
//! telescope's loop, and because errors must name the exact offset.
//! Reading through a memory mapping instead of `read` was measured slower
//! here (page faults on 4 KiB pages cost more than the copy) and counts the
//! whole file in the resident set, so streaming stays.

use std::io::{self, Read};

use iotscope_wire::LinkType;

use crate::error::CaptureError;

/// Largest block or record we accept; anything bigger is corruption.
pub const MAX_BLOCK: usize = 64 << 20;

/// Records larger than both the file's snap length and this are corrupt
/// (libpcap's own maximum snap length).
const MAX_SNAPLEN: u32 = 262_144;

/// 64 KiB measured fastest here (32 KiB to 1 MiB tried): the chunk stays in
/// L2 between the copy from the page cache and the parse.
const READ_CHUNK: usize = 64 << 10;

/// One captured frame, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since 1970-01-01 UTC.
    pub ts_ns: i64,
    /// Link type of the interface the frame was captured on.
    pub link: LinkType,
    /// Captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Bytes at the end of `data` that are the link's frame check sequence
    /// (pcap header FCS flag, pcapng `if_fcslen`), not frame content: a
    /// decoder must not read them as data (its last byte would otherwise
    /// make a cut TCP header look like a SYN). 0 when the capture says none,
    /// or when the snap length cut it off.
    pub fcs_len: u32,
}

/// How many of the FCS's `fcs` bytes are in a frame captured as `incl` of
/// its `orig` bytes: the FCS ends the frame, so the snap length cuts it
/// first.
fn fcs_captured(incl: u32, orig: u32, fcs: u32) -> u32 {
    fcs.saturating_sub(orig.saturating_sub(incl)).min(incl)
}

/// The container format detected from the first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Units per second of the timestamps: (true, v) = 2^v, (false, v) = 10^v.
    resolution: (bool, u8),
    offset_s: i64,
    /// FCS bytes at the end of every frame (if_fcslen).
    fcs: u32,
}

enum State {
    Pcap {
        swapped: bool,
        nanos: bool,
        link: LinkType,
        snaplen: u32,
        /// FCS bytes at the end of every frame (header FCS flag).
        fcs: u32,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        last_ts: i64,
    },
}

/// Reads frames one at a time from any byte stream.
pub struct CaptureReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    format: Format,
    /// Frames from simple packet blocks, which carry no timestamp.
    untimed: u64,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and prepares to read frames. `inner` must
    /// already be decompressed (see [`crate::open`]).
    pub fn new(inner: R) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            inner,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            state: State::Pcap {
                swapped: false,
                nanos: false,
                link: LinkType::Ethernet,
                snaplen: 0,
                fcs: 0,
            },
            format: Format::Pcap,
            untimed: 0,
        };
        if !r.fill(4)? {
            return Err(CaptureError::Empty);
        }
        let magic: [u8; 4] = r.buf[0..4].try_into().expect("4 bytes");
        match magic {
            [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1] => r.read_pcap_header()?,
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                r.format = Format::Pcapng;
                r.state = State::Pcapng {
                    big_endian: false,
                    interfaces: Vec::new(),
                    last_ts: 0,
                };
                // The section header is read by the block loop.
            }
            _ => return Err(CaptureError::UnknownFormat { magic }),
        }
        Ok(r)
    }

    /// The detected container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Byte offset (in the decompressed stream) of the next record.
    pub fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Frames read from pcapng simple packet blocks, which have no
    /// timestamp: they are given the last timestamp seen before them.
    pub fn untimed_frames(&self) -> u64 {
        self.untimed
    }

    /// Makes sure `need` bytes are buffered from `start`; false at a clean
    /// end of stream with nothing buffered.
    #[inline]
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    #[cold]
    fn fill_slow(&mut self, need: usize) -> Result<bool, CaptureError> {
        // Move the partial record to the front, then read until enough.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            self.buf.resize(need.max(READ_CHUNK), 0);
        }
        while self.end < need && !self.eof {
            // Read in large chunks, but never past the buffer.
            let want = self.buf.len();
            match self.inner.read(&mut self.buf[self.end..want]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        offset: self.base + self.end as u64,
                        source,
                    })
                }
            }
        }
        if self.end >= need {
            Ok(true)
        } else if self.end == 0 {
            Ok(false)
        } else {
            Err(CaptureError::Truncated {
                offset: self.base,
                needed: need as u64,
                available: self.end as u64,
            })
        }
    }

    fn read_pcap_header(&mut self) -> Result<(), CaptureError> {
        if !self.fill(24)? {
            return Err(CaptureError::Empty);
        }
        let h = &self.buf[0..24];
        let (swapped, nanos) = match h[0..4] {
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
            _ => (true, true),
        };
        let rd = |at: usize| {
            let b: [u8; 4] = h[at..at + 4].try_into().expect("4 bytes");
            if swapped {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let snaplen = rd(16);
        // LT_LINKTYPE(x) = x & 0x03FFFFFF (libpcap; draft-ietf-opsawg-pcap
        // 4): bit 26 says an FCS follows each frame and bits 28-31 its length.
        // The FCS stays in the frame, as tshark's cap_len counts it; IP ends
        // where its own length says, so the trailer is never read as data.
        let field = rd(20);
        let link = LinkType::from_linktype(field & 0x03ff_ffff);
        // Bits 28-31: the FCS length in 16-bit words, when bit 26 is set.
        let fcs = if field & 0x0400_0000 != 0 {
            (field >> 28) * 2
        } else {
            0
        };
        self.state = State::Pcap {
            swapped,
            nanos,
            link,
            snaplen,
            fcs,
        };
        self.start = 24;
        Ok(())
    }

    /// The next frame, or `None` at a clean end of the capture.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.state {
            State::Pcap {
                swapped,
                nanos,
                link,
                snaplen,
                fcs,
            } => self.next_pcap(swapped, nanos, link, snaplen, fcs),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }

    #[inline]
    fn next_pcap(
        &mut self,
        swapped: bool,
        nanos: bool,
        link: LinkType,
        snaplen: u32,
        fcs: u32,
    ) -> Result<Option<Frame<'_>>, CaptureError> {
        if !self.fill(16)? {
            return Ok(None);
        }
        let h: &[u8; 16] = self.buf[self.start..self.start + 16]
            .try_into()
            .expect("16 bytes");
        let rd = |at: usize| {
            let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
            if swapped {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let (sec, frac, incl, orig) = (rd(0), rd(4), rd(8), rd(12));
        // The snap length comes from the file too, so it cannot be trusted
        // to bound an allocation (found by fuzzing: snaplen 0xf900ffff).
        if incl > snaplen.max(MAX_SNAPLEN) || incl as usize > MAX_BLOCK {
            return Err(CaptureError::Corrupt {
                offset: self.offset(),
                reason: "record length exceeds the snap length",
                value: incl as u64,
            });
        }
        let total = 16 + incl as usize;
        if !self.fill(total)? {
            return Err(CaptureError::Truncated {
                offset: self.offset(),
                needed: total as u64,
                available: 0,
            });
        }
        let ts_ns = sec as i64 * 1_000_000_000
            + if nanos {
                frac as i64
            } else {
                frac as i64 * 1000
            };
        let at = self.start;
        self.start += total;
        Ok(Some(Frame {
            ts_ns,
            link,
            data: &self.buf[at + 16..at + total],
            orig_len: orig,
            fcs_len: fcs_captured(incl, orig, fcs),
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            if !self.fill(12)? {
                return Ok(None);
            }
            let offset = self.offset();
            let s = self.start;
            let block_type_raw: [u8; 4] = self.buf[s..s + 4].try_into().expect("4 bytes");
            if block_type_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section header: its byte-order magic decides the section's endianness.
                let bom: [u8; 4] = self.buf[s + 8..s + 12].try_into().expect("4 bytes");
                let big_endian = match bom {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "bad byte-order magic in section header block",
                            value: u32::from_be_bytes(bom) as u64,
                        })
                    }
                };
                if let State::Pcapng {
                    big_endian: be,
                    interfaces,
                    ..
                } = &mut self.state
                {
                    *be = big_endian;
                    interfaces.clear();
                }
            }
            let big_endian = matches!(
                self.state,
                State::Pcapng {
                    big_endian: true,
                    ..
                }
            );
            let rd = |b: &[u8], at: usize| {
                let v: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
                if big_endian {
                    u32::from_be_bytes(v)
                } else {
                    u32::from_le_bytes(v)
                }
            };
            let block_type = rd(&self.buf, s);
            let len = rd(&self.buf, s + 4) as usize;
            if len < 12 || len % 4 != 0 || len > MAX_BLOCK {
                return Err(CaptureError::Corrupt {
                    offset,
                    reason: "impossible block length",
                    value: len as u64,
                });
            }
            if !self.fill(len)? {
                return Err(CaptureError::Truncated {
                    offset,
                    needed: len as u64,
                    available: 0,
                });
            }
            let s = self.start;
            let block = &self.buf[s..s + len];
            if rd(block, len - 4) as usize != len {
                return Err(CaptureError::Corrupt {
                    offset,
                    reason: "block's trailing length differs from its leading length",
                    value: rd(block, len - 4) as u64,
                });
            }
            self.start += len;
            let body = &block[8..len - 4];
            let State::Pcapng {
                interfaces,
                last_ts,
                ..
            } = &mut self.state
            else {
                unreachable!()
            };
            match block_type {
                // Interface description.
                1 => {
                    if body.len() < 8 {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "interface block too short",
                            value: body.len() as u64,
                        });
                    }
                    let link_raw = if big_endian {
                        u16::from_be_bytes([body[0], body[1]])
                    } else {
                        u16::from_le_bytes([body[0], body[1]])
                    };
                    let mut iface = Interface {
                        link: LinkType::from_linktype(link_raw as u32),
                        snaplen: rd(body, 4),
                        resolution: (false, 6),
                        offset_s: 0,
                        fcs: 0,
                    };
                    parse_idb_options(&body[8..], big_endian, &mut iface);
                    interfaces.push(iface);
                }
                // Enhanced packet (6) and the obsolete packet block (2).
                2 | 6 => {
                    if body.len() < 20 {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "packet block too short",
                            value: body.len() as u64,
                        });
                    }
                    let if_id = if block_type == 6 {
                        rd(body, 0) as usize
                    } else if big_endian {
                        u16::from_be_bytes([body[0], body[1]]) as usize
                    } else {
                        u16::from_le_bytes([body[0], body[1]]) as usize
                    };
                    let Some(iface) = interfaces.get(if_id).copied() else {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "packet names an undeclared interface",
                            value: if_id as u64,
                        });
                    };
                    let ts = ((rd(body, 4) as u64) << 32) | rd(body, 8) as u64;
                    let cap = rd(body, 12) as usize;
                    let orig = rd(body, 16);
                    if cap > body.len() - 20 {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "captured length exceeds the block",
                            value: cap as u64,
                        });
                    }
                    let ts_ns = with_offset(to_nanos(ts, iface.resolution), iface.offset_s);
                    *last_ts = ts_ns;
                    let data = &self.buf[s + 28..s + 28 + cap];
                    return Ok(Some(Frame {
                        ts_ns,
                        link: iface.link,
                        data,
                        orig_len: orig,
                        fcs_len: fcs_captured(cap as u32, orig, iface.fcs),
                    }));
                }
                // Simple packet: interface 0, no timestamp.
                3 => {
                    let Some(iface) = interfaces.first().copied() else {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "simple packet block before any interface",
                            value: 0,
                        });
                    };
                    if body.len() < 4 {
                        return Err(CaptureError::Corrupt {
                            offset,
                            reason: "packet block too short",
                            value: body.len() as u64,
                        });
                    }
                    let orig = rd(body, 0);
                    let mut cap = (orig as usize).min(body.len() - 4);
                    if iface.snaplen != 0 {
                        cap = cap.min(iface.snaplen as usize);
                    }
                    self.untimed += 1;
                    let ts_ns = *last_ts;
                    let data = &self.buf[s + 12..s + 12 + cap];
                    return Ok(Some(Frame {
                        ts_ns,
                        link: iface.link,
                        data,
                        orig_len: orig,
                        fcs_len: fcs_captured(cap as u32, orig, iface.fcs),
                    }));
                }
                // Section header was handled above; name resolution,
                // statistics, decryption secrets, custom: nothing to count.
                _ => {}
            }
        }
    }
}

/// Reads if_tsresol (9), if_fcslen (13) and if_tsoffset (14) from an
/// interface block's options.
fn parse_idb_options(mut opts: &[u8], big_endian: bool, iface: &mut Interface) {
    let rd16 = |b: &[u8]| {
        if big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    while opts.len() >= 4 {
        let code = rd16(&opts[0..2]);
        let len = rd16(&opts[2..4]) as usize;
        let padded = (len + 3) & !3;
        let Some(value) = opts.get(4..4 + len) else {
            return;
        };
        match (code, len) {
            (0, _) => return,
            (9, 1) => iface.resolution = (value[0] & 0x80 != 0, value[0] & 0x7f),
            (13, 1) => iface.fcs = value[0] as u32,
            (14, 8) => {
                let v: [u8; 8] = value.try_into().expect("8 bytes");
                iface.offset_s = if big_endian {
                    i64::from_be_bytes(v)
                } else {
                    i64::from_le_bytes(v)
                };
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
}

/// A time in nanoseconds moved by an interface's if_tsoffset (seconds, may
/// be negative), saturating at the ends of an i64 rather than wrapping: a
/// hostile offset gives a time far outside any plausible window (counted,
/// in no bucket), never one that wrapped into the present.
fn with_offset(ts_ns: i64, offset_s: i64) -> i64 {
    (ts_ns as i128 + offset_s as i128 * 1_000_000_000).clamp(i64::MIN as i128, i64::MAX as i128)
        as i64
}

/// Converts a pcapng timestamp in interface units to nanoseconds,
/// saturating at `i64::MAX` (a 64-bit count of picoseconds or of 2^-k
/// seconds can exceed it).
fn to_nanos(ts: u64, (binary, exp): (bool, u8)) -> i64 {
    if binary {
        let exp = exp.min(127) as u32;
        // ts * 10^9 fits in a u128 (2^64 * 2^30); the shift brings it back.
        ((ts as u128 * 1_000_000_000) >> exp).min(i64::MAX as u128) as i64
    } else if exp <= 9 {
        (ts as i128 * 10i128.pow(9 - exp as u32)).min(i64::MAX as i128) as i64
    } else {
        let div = 10u128.checked_pow(exp as u32 - 9).unwrap_or(u128::MAX);
        (ts as u128 / div) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(to_nanos(1_500_000, (false, 6)), 1_500_000_000);
        assert_eq!(to_nanos(7, (false, 9)), 7);
        assert_eq!(to_nanos(3_000, (false, 12)), 3);
        assert_eq!(to_nanos(1 << 20, (true, 20)), 1_000_000_000);
        assert_eq!(to_nanos(5, (false, 0)), 5_000_000_000);
        // Huge counts saturate instead of wrapping negative.
        assert_eq!(to_nanos(u64::MAX, (true, 0)), i64::MAX);
        assert_eq!(to_nanos(u64::MAX, (false, 0)), i64::MAX);
        assert_eq!(with_offset(i64::MAX - 5, 10), i64::MAX);
        assert_eq!(with_offset(0, i64::MIN), i64::MIN);
        assert_eq!(with_offset(1_000_000_000, -1), 0);
    }
}
