//! A deterministic generator of realistic darknet captures with their
//! ground truth.
//!
//! Owns: the traffic model (Mirai-infected hosts, ZMap and masscan research
//! scanners, nmap, OS-stack scanners, backscatter, UDP, ICMP, odd TCP flag
//! combinations, IPv6, fragments, ARP, truncated frames, traffic to
//! addresses outside the darknet) and the truth file.
//!
//! Invariants: the same seed and settings give byte-identical output; the
//! truth is computed from the values the generator chose when it built each
//! packet, never by parsing the packets, so a bug in iotscope's decoder
//! cannot hide in both. Packets are built with etherparse and written with
//! the pcap-file crate, code iotscope's readers do not share.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use etherparse::{IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, PacketBuilder};
use serde::Serialize;

use crate::rng::Rng;

mod campaigns;
pub use campaigns::{
    default_campaigns, Campaign, CampaignError, CampaignKind, TruthCampaign, NEW_PORT,
};

/// Output container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap, Ethernet, microsecond stamps.
    Pcap,
    /// pcapng, two interfaces (Ethernet and raw IP), nanosecond stamps.
    Pcapng,
}

/// Settings of a generated capture.
#[derive(Clone, Debug)]
pub struct DarknetSpec {
    /// Number of frames.
    pub packets: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Capture start, seconds since the epoch.
    pub start_s: i64,
    /// Capture length in seconds.
    pub duration_s: i64,
    /// Number of source hosts (0: 20,000 + packets/200, at most 80,000).
    pub sources: u32,
    /// Bucket length of the truth's series, seconds.
    pub bucket_s: i64,
    /// An outbreak: Mirai-infected hosts start scanning over the capture
    /// instead of at uniformly random times (the number of infected hosts
    /// grows as it did in autumn 2016, so the 23/2323 series rise).
    pub outbreak: bool,
    /// A spoofed-source SYN flood instead of the usual mix: every frame
    /// comes from an IPv4 source no other frame uses (`sources` is
    /// ignored), as a flood with random spoofed sources looks from a
    /// darknet; it is the worst case of per-source state.
    pub flood: bool,
    /// Scripted campaigns with known onsets, added to the mix (issue 20);
    /// their onsets and hosts go to the truth's `campaigns`.
    pub campaigns: Vec<Campaign>,
    /// Day-night cycle of the background, 0 (none) to 1: the rate of
    /// background frames follows 1 + A·sin(2π(t − 06:00 UTC)/24 h), busiest
    /// at noon UTC, quietest at midnight (darknet traffic follows the
    /// waking hours of the infected devices' owners). Campaigns are not
    /// modulated.
    pub diurnal: f64,
}

impl Default for DarknetSpec {
    fn default() -> Self {
        DarknetSpec {
            packets: 100_000,
            seed: 1,
            start_s: 1_475_280_000,
            duration_s: 6 * 3600,
            sources: 0,
            bucket_s: 3600,
            outbreak: false,
            flood: false,
            campaigns: Vec::new(),
            diurnal: 0.0,
        }
    }
}

/// The IPv4 darknet: 198.18.0.0/16 (RFC 2544 benchmarking space).
pub const DARKNET_V4: &str = "198.18.0.0/16";
/// The IPv6 darknet: 2001:db8:1::/48 (RFC 3849 documentation space).
pub const DARKNET_V6: &str = "2001:db8:1::/48";
const DN_V4: u32 = 0xc612_0000;
/// Destinations just outside the darknet, for `--darknet` tests.
const OUTSIDE_V4: u32 = 0xc613_0000;
const DN_V6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Actor {
    Mirai,
    MiraiVariant,
    Generic,
    ZmapOld,
    ZmapNew,
    Masscan,
    Nmap,
    Backscatter,
    Udp,
    Icmp,
    OtherTcp,
    Ipv6,
    Fragments,
    Arp,
    Truncated,
    Outside,
    /// One frame of a spoofed-source flood ([`DarknetSpec::flood`]).
    Flood,
    /// A packet of a scripted campaign ([`DarknetSpec::campaigns`]).
    Campaign,
}

/// (actor, share of packets, share of sources).
const ACTORS: [(Actor, f64, f64); 16] = [
    (Actor::Mirai, 0.28, 0.50),
    (Actor::MiraiVariant, 0.07, 0.10),
    (Actor::Generic, 0.16, 0.30),
    (Actor::ZmapOld, 0.05, 0.0006),
    (Actor::ZmapNew, 0.02, 0.0003),
    (Actor::Masscan, 0.09, 0.0012),
    (Actor::Nmap, 0.02, 0.002),
    (Actor::Backscatter, 0.12, 0.02),
    (Actor::Udp, 0.075, 0.05),
    (Actor::Icmp, 0.04, 0.02),
    (Actor::OtherTcp, 0.045, 0.02),
    (Actor::Ipv6, 0.01, 0.005),
    (Actor::Fragments, 0.004, 0.002),
    (Actor::Arp, 0.002, 0.0005),
    (Actor::Truncated, 0.001, 0.0005),
    (Actor::Outside, 0.005, 0.002),
];

const SCAN_TOOL_PORTS: [u16; 30] = [
    22, 80, 443, 8080, 445, 7547, 3389, 5555, 23, 2323, 37215, 52869, 8443, 21, 25, 110, 143, 993,
    995, 1723, 3306, 5432, 5900, 6379, 8000, 8888, 9200, 27017, 11211, 502,
];
const GENERIC_PORTS: [(u16, u32); 16] = [
    (22, 30),
    (80, 18),
    (8080, 8),
    (445, 12),
    (443, 6),
    (3389, 6),
    (5555, 4),
    (1433, 3),
    (3306, 2),
    (6379, 2),
    (7547, 3),
    (5900, 2),
    (23, 6),
    (2323, 1),
    (8081, 1),
    (21, 2),
];
const VARIANT_PORTSETS: [&[u16]; 5] = [
    &[23, 2323],
    &[37215],
    &[52869],
    &[5555],
    &[23, 2323, 37215, 52869],
];
const BACKSCATTER_PORTS: [u16; 6] = [80, 443, 25, 53, 22, 27015];
const UDP_PORTS: [u16; 9] = [53, 123, 1900, 5060, 161, 137, 11211, 3702, 5353];

struct Source {
    actor: Actor,
    v4: u32,
    v6: u128,
    t0: i64,
    dur: i64,
    ttl: u8,
    ports: Vec<u16>,
    sport: u16,
    ip_id: u16,
    windows: bool,
}

/// Packets and unique sources in the truth file.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TruthCount {
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
}

/// A port line of the truth.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TruthPort {
    /// "tcp" or "udp".
    pub proto: &'static str,
    /// Port.
    pub port: u16,
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
}

/// An infected host of the truth.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TruthInfected {
    /// Address.
    pub ip: String,
    /// Packets from it.
    pub packets: u64,
    /// TCP ports it sent to.
    pub ports: Vec<u16>,
}

/// One bucket of the truth's series.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TruthBucket {
    /// Start, seconds since the epoch.
    pub start_s: i64,
    /// Packets.
    pub packets: u64,
    /// Unique sources.
    pub sources: u64,
    /// Every port of the bucket.
    pub ports: Vec<TruthPort>,
}

/// Everything a correct telescope must report for the capture, analysed
/// with `--darknet 198.18.0.0/16 --darknet 2001:db8:1::/48`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Truth {
    /// Frames inside the darknets, plus ARP and truncated frames.
    pub packets: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// Unique sources.
    pub sources: u64,
    /// Frames to addresses outside the darknets.
    pub outside: u64,
    /// Truncated frames.
    pub malformed: u64,
    /// First frame's time, seconds and microseconds since the epoch.
    pub first_ts_us: i64,
    /// Last frame's time.
    pub last_ts_us: i64,
    /// Per class.
    pub classes: BTreeMap<&'static str, TruthCount>,
    /// Every port, busiest first.
    pub ports: Vec<TruthPort>,
    /// Fingerprint packets and flagged sources.
    pub fingerprints: BTreeMap<&'static str, TruthCount>,
    /// Hosts that must be flagged mirai.
    pub infected: Vec<TruthInfected>,
    /// Bucket length of the series.
    pub bucket_s: i64,
    /// Series, oldest first.
    pub series: Vec<TruthBucket>,
    /// Packets and sources per generating actor (for readers, not checks).
    pub actors: BTreeMap<String, TruthCount>,
    /// The scripted campaigns, by onset.
    pub campaigns: Vec<TruthCampaign>,
}

/// What the generator knows about one packet, recorded as it builds it.
struct Label {
    ts_us: i64,
    len: u32,
    src: Option<IpAddr>,
    inside: bool,
    malformed: bool,
    class: &'static str,
    /// (proto index 0 tcp / 1 udp, port) when the packet carries ports.
    port: Option<(u8, u16)>,
    syn: bool,
    mirai: bool,
    zmap: bool,
    masscan: bool,
    backscatter: bool,
    actor: Actor,
}

fn tcp_class(flags: u8) -> &'static str {
    match flags & 0x3f {
        0x02 => "tcp_syn",
        0x12 => "tcp_synack",
        0x10 => "tcp_ack",
        0x01 | 0x11 => "tcp_fin",
        0x04 | 0x14 => "tcp_rst",
        0x08 | 0x18 => "tcp_push",
        _ => "tcp_other",
    }
}

struct Builder {
    rng: Rng,
    frames: Vec<u8>,
    index: Vec<(i64, u64, u32, u32, bool)>, // ts_us, offset, len, orig_len, raw_ip
    labels: Vec<Label>,
}

impl Builder {
    fn push(&mut self, ts_us: i64, frame: &[u8], orig_len: u32, raw_ip: bool, label: Label) {
        self.index.push((
            ts_us,
            self.frames.len() as u64,
            frame.len() as u32,
            orig_len,
            raw_ip,
        ));
        self.frames.extend_from_slice(frame);
        self.labels.push(label);
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp_v4(
    src: u32,
    dst: u32,
    ttl: u8,
    ip_id: u16,
    df: bool,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, src.to_be_bytes(), dst.to_be_bytes())
        .expect("valid header");
    ip.identification = ip_id;
    ip.dont_fragment = df;
    let mut b = PacketBuilder::ethernet2(
        [0x00, 0x1c, 0x73, 0x11, 0x22, 0x33],
        [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc],
    )
    .ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
    .tcp(sport, dport, seq, win);
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    if flags & 0x08 != 0 {
        b = b.psh();
    }
    if flags & 0x10 != 0 {
        b = b.ack(ack);
    }
    if flags & 0x20 != 0 {
        b = b.urg(0);
    }
    if flags & 0x40 != 0 {
        b = b.ece();
    }
    if flags & 0x80 != 0 {
        b = b.cwr();
    }
    if !opts.is_empty() {
        b = b.options_raw(opts).expect("options fit");
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("write to vec");
    out
}

#[allow(clippy::too_many_arguments)]
fn ip_v4_raw(
    src: u32,
    dst: u32,
    ttl: u8,
    ip_id: u16,
    proto: IpNumber,
    frag_offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(
        payload.len() as u16,
        ttl,
        proto,
        src.to_be_bytes(),
        dst.to_be_bytes(),
    )
    .expect("valid header");
    ip.identification = ip_id;
    ip.more_fragments = more;
    ip.fragment_offset = etherparse::IpFragOffset::try_new(frag_offset).expect("13 bits");
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = vec![
        0x00, 0x1c, 0x73, 0x11, 0x22, 0x33, 0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc, 0x08, 0x00,
    ];
    ip.write(&mut out).expect("write to vec");
    out.extend_from_slice(payload);
    out
}

const ETH: ([u8; 6], [u8; 6]) = (
    [0x00, 0x1c, 0x73, 0x11, 0x22, 0x33],
    [0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc],
);

fn linux_options(tsval: u32) -> Vec<u8> {
    let mut o = vec![0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07]);
    o
}
const WINDOWS_OPTIONS: [u8; 12] = [
    0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x08, 0x01, 0x01, 0x04, 0x02,
];
const MSS_OPTION: [u8; 4] = [0x02, 0x04, 0x05, 0xb4];

fn is_reserved(ip: u32) -> bool {
    const RES: [(u32, u32); 14] = [
        (0x0000_0000, 8),
        (0x0a00_0000, 8),
        (0x6440_0000, 10),
        (0x7f00_0000, 8),
        (0xa9fe_0000, 16),
        (0xac10_0000, 12),
        (0xc000_0000, 24),
        (0xc000_0200, 24),
        (0xc058_6300, 24),
        (0xc0a8_0000, 16),
        (0xc612_0000, 15),
        (0xc633_6400, 24),
        (0xcb00_7100, 24),
        (0xe000_0000, 3),
    ];
    RES.iter()
        .any(|&(net, len)| ip >> (32 - len) == net >> (32 - len))
}

/// Generates a capture, writes it to `out` and returns its truth.
pub fn generate(
    spec: &DarknetSpec,
    format: CaptureFormat,
    out: impl Write,
) -> std::io::Result<Truth> {
    let mut rng = Rng::new(spec.seed);
    let n_sources = if spec.sources > 0 {
        spec.sources
    } else {
        (20_000 + spec.packets / 200).min(80_000) as u32
    };
    let dur_us = spec.duration_s * 1_000_000;
    let t0_us = spec.start_s * 1_000_000;

    // Sources, grouped by actor, each with a heavy-tailed weight.
    let source_share: f64 = ACTORS.iter().map(|a| a.2).sum();
    let mut used = HashSet::new();
    let mut sources: Vec<Source> = Vec::new();
    let mut by_actor: Vec<(Actor, f64, Vec<usize>, Vec<f64>)> = Vec::new();
    for &(actor, pshare, sshare) in &ACTORS {
        let count = ((n_sources as f64 * sshare / source_share).round() as usize).max(3);
        let mut ids = Vec::with_capacity(count);
        let mut cum = Vec::with_capacity(count);
        let mut total = 0.0;
        for _ in 0..count {
            let v4 = loop {
                let ip = rng.next_u32();
                if !is_reserved(ip) && used.insert(ip) {
                    break ip;
                }
            };
            let v6 = 0x2001_0db8_f000_0000_0000_0000_0000_0000u128
                | (rng.next_u64() as u128) << 16
                | v4 as u128 & 0xffff;
            let span = if actor == Actor::Backscatter {
                rng.range(60, 1800) as i64 * 1_000_000
            } else {
                (dur_us as f64 * 10f64.powf(rng.uniform(-2.3, 0.0))) as i64
            }
            .clamp(1, dur_us.max(1));
            let hops = rng.range(4, 26) as u8;
            let windows = rng.chance(0.35);
            let ports: Vec<u16> = match actor {
                Actor::Mirai => vec![23, 2323],
                Actor::MiraiVariant => {
                    VARIANT_PORTSETS[rng.below(VARIANT_PORTSETS.len() as u64) as usize].to_vec()
                }
                Actor::Generic => {
                    let k = [1, 1, 1, 2, 3, 5][rng.below(6) as usize];
                    let mut p: Vec<u16> = (0..k).map(|_| weighted_port(&mut rng)).collect();
                    p.sort_unstable();
                    p.dedup();
                    p
                }
                Actor::ZmapOld | Actor::ZmapNew => pick_ports(&mut rng, 2),
                Actor::Masscan => pick_ports(&mut rng, 12),
                Actor::Nmap => pick_ports(&mut rng, 25),
                _ => Vec::new(),
            };
            let ttl = match actor {
                Actor::Mirai | Actor::MiraiVariant => 64 - hops,
                Actor::Generic => {
                    if windows {
                        128 - hops
                    } else {
                        64 - hops
                    }
                }
                Actor::ZmapOld | Actor::ZmapNew | Actor::Masscan => 255 - hops,
                _ => [64u8, 128, 255][rng.below(3) as usize] - hops,
            };
            let w = rng.pareto(1.2);
            total += w;
            cum.push(total);
            ids.push(sources.len());
            sources.push(Source {
                actor,
                v4,
                v6,
                t0: {
                    let room = (dur_us - span + 1).max(1) as u64;
                    let u = rng.below(room);
                    if spec.outbreak && matches!(actor, Actor::Mirai | Actor::MiraiVariant) {
                        // Onsets denser later (the square root of a uniform
                        // draw): infections accumulate over the capture.
                        ((u as f64 / room as f64).sqrt() * room as f64) as i64
                    } else {
                        u as i64
                    }
                },
                dur: span,
                ttl,
                ports,
                sport: rng.range(40_000, 60_999) as u16,
                ip_id: rng.next_u32() as u16,
                windows,
            });
        }
        by_actor.push((actor, pshare, ids, cum));
    }
    let actor_cum: Vec<f64> = by_actor
        .iter()
        .scan(0.0, |acc, a| {
            *acc += a.1;
            Some(*acc)
        })
        .collect();

    let mut b = Builder {
        rng,
        frames: Vec::new(),
        index: Vec::new(),
        labels: Vec::new(),
    };
    let mut tsval: HashMap<usize, u32> = HashMap::new();
    // The flood's sources: a counter through a bijection of u32, so
    // distinct without a set of the addresses used.
    let mut flood_next: u32 = 0;
    while (b.index.len() as u64) < spec.packets {
        let a = pick(
            &actor_cum,
            b.rng.uniform(0.0, *actor_cum.last().expect("actors")),
        );
        let (_, _, ids, cum) = &by_actor[a];
        let sid = ids[pick(cum, b.rng.uniform(0.0, *cum.last().expect("sources")))];
        let flood_source;
        let s = if spec.flood {
            flood_source = Source {
                actor: Actor::Flood,
                v4: loop {
                    let ip = distinct_v4(flood_next, spec.seed);
                    flood_next += 1;
                    if !is_reserved(ip) {
                        break ip;
                    }
                },
                v6: 0,
                t0: 0,
                dur: dur_us.max(1),
                ttl: b.rng.range(32, 255) as u8,
                ports: Vec::new(),
                sport: 0,
                ip_id: 0,
                windows: false,
            };
            &flood_source
        } else {
            &sources[sid]
        };
        let ts = t0_us + s.t0 + b.rng.below(s.dur as u64) as i64;
        // The day-night cycle thins frames by their time of day (rejection
        // sampling: a frame is kept with probability rate(t) / peak rate).
        if spec.diurnal > 0.0 {
            let a = spec.diurnal.min(1.0);
            let phase =
                (ts.rem_euclid(86_400_000_000) as f64 / 86_400e6 - 0.25) * std::f64::consts::TAU;
            if !b.rng.chance((1.0 + a * phase.sin()) / (1.0 + a)) {
                continue;
            }
        }
        let dst = DN_V4 | b.rng.next_u32() & 0xffff;
        let src = s.v4;
        let mut label = Label {
            ts_us: ts,
            len: 0,
            src: Some(IpAddr::V4(Ipv4Addr::from(src))),
            inside: true,
            malformed: false,
            class: "tcp_syn",
            port: None,
            syn: false,
            mirai: false,
            zmap: false,
            masscan: false,
            backscatter: false,
            actor: s.actor,
        };
        let rng = &mut b.rng;
        let (frame, raw_ip): (Vec<u8>, bool) = match s.actor {
            Actor::Mirai | Actor::MiraiVariant => {
                let dport = if s.actor == Actor::Mirai {
                    if rng.chance(0.1) {
                        2323
                    } else {
                        23
                    }
                } else {
                    s.ports[rng.below(s.ports.len() as u64) as usize]
                };
                let ip_id = rng.next_u32() as u16;
                let win = rng.next_u32() as u16;
                let sport = 1024 + (rng.next_u32() % 64_512) as u16;
                label.port = Some((0, dport));
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        ip_id,
                        false,
                        sport,
                        dport,
                        dst,
                        0,
                        0x02,
                        win,
                        &[],
                        &[],
                    ),
                    false,
                )
            }
            Actor::Generic => {
                let dport = if rng.chance(0.9) {
                    s.ports[rng.below(s.ports.len() as u64) as usize]
                } else {
                    weighted_port(rng)
                };
                let flags = if rng.chance(0.01) { 0xc2 } else { 0x02 };
                let seq = rng.next_u32();
                let sport = 32_768 + (rng.next_u32() % 28_232) as u16;
                let (opts, win, ip_id) = if s.windows {
                    (WINDOWS_OPTIONS.to_vec(), 64_240, rng.next_u32() as u16)
                } else {
                    let t = tsval.entry(sid).or_insert(s.ip_id as u32 * 7919);
                    *t = t.wrapping_add(1000);
                    (linux_options(*t), 64_240, rng.next_u32() as u16)
                };
                label.port = Some((0, dport));
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        ip_id,
                        true,
                        sport,
                        dport,
                        seq,
                        0,
                        flags,
                        win,
                        &opts,
                        &[],
                    ),
                    rng.chance(0.5),
                )
            }
            Actor::ZmapOld | Actor::ZmapNew | Actor::Masscan | Actor::Nmap => {
                let dport = s.ports[rng.below(s.ports.len() as u64) as usize];
                let seq = rng.next_u32();
                let (sport, ip_id, win, opts): (u16, u16, u16, &[u8]) = match s.actor {
                    Actor::ZmapOld => (
                        32_768 + (rng.next_u32() % 28_232) as u16,
                        54_321,
                        65_535,
                        &MSS_OPTION,
                    ),
                    Actor::ZmapNew => (
                        32_768 + (rng.next_u32() % 28_232) as u16,
                        rng.next_u32() as u16,
                        65_535,
                        &WINDOWS_OPTIONS,
                    ),
                    Actor::Masscan => (
                        s.sport,
                        ((dst ^ dport as u32 ^ seq) & 0xffff) as u16,
                        1024,
                        if s.windows { &MSS_OPTION } else { &[] },
                    ),
                    _ => (
                        s.sport,
                        rng.next_u32() as u16,
                        [1024, 2048, 3072, 4096][rng.below(4) as usize],
                        &MSS_OPTION,
                    ),
                };
                label.port = Some((0, dport));
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        ip_id,
                        false,
                        sport,
                        dport,
                        seq,
                        0,
                        0x02,
                        win,
                        opts,
                        &[],
                    ),
                    false,
                )
            }
            Actor::Backscatter => {
                let sport = BACKSCATTER_PORTS[(s.ip_id % BACKSCATTER_PORTS.len() as u16) as usize];
                let dport = 1024 + (rng.next_u32() % 64_512) as u16;
                let flags = match rng.below(10) {
                    0..=5 => 0x12,
                    6..=8 => 0x14,
                    _ => 0x04,
                };
                label.port = Some((0, dport));
                label.class = tcp_class(flags);
                label.backscatter = true;
                let (seq, ack) = (rng.next_u32(), rng.next_u32());
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        rng.next_u32() as u16,
                        true,
                        sport,
                        dport,
                        seq,
                        ack,
                        flags,
                        if flags == 0x12 { 29_200 } else { 0 },
                        if flags == 0x12 { &MSS_OPTION } else { &[] },
                        &[],
                    ),
                    false,
                )
            }
            Actor::Udp => {
                label.class = "udp";
                let dns_reply = rng.chance(0.15);
                let (sport, dport) = if dns_reply {
                    (53, 1024 + (rng.next_u32() % 64_512) as u16)
                } else if rng.chance(0.85) {
                    (
                        s.sport,
                        UDP_PORTS[rng.below(UDP_PORTS.len() as u64) as usize],
                    )
                } else {
                    (s.sport, 1024 + (rng.next_u32() % 64_512) as u16)
                };
                label.port = Some((1, dport));
                label.backscatter = dns_reply;
                let payload_len = [0usize, 12, 48, 100][rng.below(4) as usize];
                let payload: Vec<u8> = (0..payload_len).map(|i| (i * 37 + 11) as u8).collect();
                let mut ip = Ipv4Header::new(
                    0,
                    s.ttl,
                    IpNumber::UDP,
                    src.to_be_bytes(),
                    dst.to_be_bytes(),
                )
                .expect("valid");
                ip.identification = rng.next_u32() as u16;
                let bld = PacketBuilder::ethernet2(ETH.0, ETH.1)
                    .ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
                    .udp(sport, dport);
                let mut out = Vec::new();
                bld.write(&mut out, &payload).expect("write");
                (out, rng.chance(0.3))
            }
            Actor::Icmp => {
                label.class = "icmp";
                let t = [8u8, 8, 8, 0, 3, 11][rng.below(6) as usize];
                label.backscatter = t != 8;
                let code = if t == 3 { 3 } else { 0 };
                let bld = PacketBuilder::ethernet2(ETH.0, ETH.1)
                    .ipv4(src.to_be_bytes(), dst.to_be_bytes(), s.ttl)
                    .icmpv4_raw(t, code, [0, 1, 0, 1]);
                let mut out = Vec::new();
                bld.write(&mut out, &[0x61; 32]).expect("write");
                (out, false)
            }
            Actor::OtherTcp => {
                let flags = [
                    0x10u8, 0x01, 0x11, 0x18, 0x08, 0x00, 0x29, 0x03, 0x20, 0x3f, 0x50, 0x42,
                ][rng.below(12) as usize];
                let dport = SCAN_TOOL_PORTS[rng.below(SCAN_TOOL_PORTS.len() as u64) as usize];
                label.class = tcp_class(flags);
                label.port = Some((0, dport));
                // A plain SYN with ECE (0x42) is a SYN; its sequence is random.
                let seq = rng.next_u32();
                let payload: &[u8] = if flags & 0x08 != 0 {
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                } else {
                    &[]
                };
                let ip_id = rng.next_u32() as u16;
                let ack = rng.next_u32();
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        ip_id,
                        true,
                        s.sport,
                        dport,
                        seq,
                        ack,
                        flags,
                        1024,
                        &[],
                        payload,
                    ),
                    false,
                )
            }
            Actor::Ipv6 => {
                let dst6 = DN_V6 | (rng.next_u64() as u128);
                label.src = Some(IpAddr::V6(Ipv6Addr::from(s.v6)));
                let mut out = Vec::new();
                let base = PacketBuilder::ethernet2(ETH.0, ETH.1).ipv6(
                    s.v6.to_be_bytes(),
                    dst6.to_be_bytes(),
                    57,
                );
                match rng.below(3) {
                    0 => {
                        let dport = [22u16, 23, 80, 443][rng.below(4) as usize];
                        label.port = Some((0, dport));
                        base.tcp(s.sport, dport, rng.next_u32(), 1024)
                            .syn()
                            .write(&mut out, &[])
                            .expect("write");
                    }
                    1 => {
                        label.class = "udp";
                        label.port = Some((1, 53));
                        base.udp(s.sport, 53)
                            .write(&mut out, &[0; 17])
                            .expect("write");
                    }
                    _ => {
                        label.class = "icmp";
                        base.icmpv6_echo_request(7, 1)
                            .write(&mut out, &[0; 8])
                            .expect("write");
                    }
                }
                (out, false)
            }
            Actor::Fragments => {
                // Non-first fragments: class of their protocol, no port.
                let (proto, class) = if rng.chance(0.5) {
                    (IpNumber::UDP, "udp")
                } else {
                    (IpNumber::TCP, "tcp_other")
                };
                label.class = class;
                (
                    ip_v4_raw(
                        src,
                        dst,
                        s.ttl,
                        rng.next_u32() as u16,
                        proto,
                        185,
                        rng.chance(0.5),
                        &[0x42; 64],
                    ),
                    false,
                )
            }
            Actor::Arp => {
                label.class = "non_ip";
                label.src = None;
                let mut out = vec![0xff; 6];
                out.extend_from_slice(&ETH.0);
                out.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
                out.extend_from_slice(&ETH.0);
                out.extend_from_slice(&src.to_be_bytes());
                out.extend_from_slice(&[0; 6]);
                out.extend_from_slice(&dst.to_be_bytes());
                out.resize(60, 0);
                (out, false)
            }
            Actor::Truncated => {
                // Snap length cut inside the TCP header, before the flags.
                label.malformed = true;
                label.src = None;
                let mut f = tcp_v4(
                    src,
                    dst,
                    s.ttl,
                    1,
                    false,
                    s.sport,
                    23,
                    1,
                    0,
                    0x02,
                    1024,
                    &[],
                    &[],
                );
                f.truncate(14 + 20 + 10);
                let orig = 14 + 40;
                label.len = f.len() as u32;
                let ts_l = label.ts_us;
                b.push(ts_l, &f, orig, false, label);
                continue;
            }
            Actor::Flood => {
                // A flood tool's bare SYN: random port, sequence, ID and
                // window, no options (hping3 --flood --rand-source).
                let dport = weighted_port(rng);
                label.port = Some((0, dport));
                (
                    tcp_v4(
                        src,
                        dst,
                        s.ttl,
                        rng.next_u32() as u16,
                        false,
                        1024 + (rng.next_u32() % 64_512) as u16,
                        dport,
                        rng.next_u32(),
                        0,
                        0x02,
                        rng.next_u32() as u16,
                        &[],
                        &[],
                    ),
                    false,
                )
            }
            // Campaign packets are added after the background (campaigns.rs).
            Actor::Campaign => unreachable!("no background source is a campaign's"),
            Actor::Outside => {
                label.inside = false;
                let odst = OUTSIDE_V4 | rng.next_u32() & 0xffff;
                label.port = Some((0, 445));
                (
                    tcp_v4(
                        src,
                        odst,
                        s.ttl,
                        rng.next_u32() as u16,
                        false,
                        s.sport,
                        445,
                        rng.next_u32(),
                        0,
                        0x02,
                        1024,
                        &[],
                        &[],
                    ),
                    false,
                )
            }
        };
        if label.class == "tcp_syn" {
            label.syn = true;
            if let Some(IpAddr::V4(_)) = label.src {
                syn_fingerprints(&mut label, &frame);
            }
        }
        // A new-port campaign's port is silent before its onset.
        if label.port.is_some_and(|p| p == (0, NEW_PORT))
            && spec
                .campaigns
                .iter()
                .any(|c| c.kind == CampaignKind::NewPort && ts < t0_us + c.onset_s * 1_000_000)
        {
            continue;
        }
        // Half of some kinds travel as raw IP on the second pcapng interface.
        let frame = if raw_ip && format == CaptureFormat::Pcapng {
            frame[14..].to_vec()
        } else {
            frame
        };
        label.len = frame.len() as u32;
        let raw = raw_ip && format == CaptureFormat::Pcapng;
        let orig = frame.len() as u32;
        b.push(ts, &frame, orig, raw, label);
    }

    let mut campaigns: Vec<TruthCampaign> = spec
        .campaigns
        .iter()
        .map(|c| campaigns::add(&mut b, c, spec.seed, t0_us, dur_us))
        .collect();
    campaigns.sort_by_key(|c| c.onset_s);

    // Time order, stable so equal stamps keep generation order.
    let mut order: Vec<usize> = (0..b.index.len()).collect();
    order.sort_by_key(|&i| b.index[i].0);
    write_capture(&b, &order, format, out)?;
    let mut t = truth(&b, &order, spec);
    t.campaigns = campaigns;
    Ok(t)
}

/// Sets a plain Ethernet IPv4 SYN's fingerprint labels from the values in
/// the frame, as the generator chose them.
fn syn_fingerprints(label: &mut Label, f: &[u8]) {
    let ip_id = u16::from_be_bytes([f[18], f[19]]);
    let seq = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
    let dport = label.port.map_or(0, |p| p.1) as u32;
    let d = u32::from_be_bytes([f[30], f[31], f[32], f[33]]);
    label.mirai = seq == d;
    label.zmap = ip_id == 54_321;
    label.masscan = ip_id == ((d ^ dport ^ seq) & 0xffff) as u16;
}

/// The `n`-th address of a sequence that never repeats (over 2^32 calls):
/// MurmurHash3's 32-bit finaliser, a bijection, of `n` mixed with the seed.
fn distinct_v4(n: u32, seed: u64) -> u32 {
    let mut x = n ^ (seed as u32).wrapping_mul(0x9e37_79b9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^ x >> 16
}

fn pick(cum: &[f64], x: f64) -> usize {
    cum.partition_point(|&c| c <= x).min(cum.len() - 1)
}

fn weighted_port(rng: &mut Rng) -> u16 {
    let total: u32 = GENERIC_PORTS.iter().map(|p| p.1).sum();
    let mut x = rng.below(total as u64) as u32;
    for &(p, w) in &GENERIC_PORTS {
        if x < w {
            return p;
        }
        x -= w;
    }
    GENERIC_PORTS[0].0
}

fn pick_ports(rng: &mut Rng, max: u64) -> Vec<u16> {
    let k = rng.range(1, max) as usize;
    let mut all = SCAN_TOOL_PORTS.to_vec();
    rng.shuffle(&mut all);
    all.truncate(k);
    all
}

fn write_capture(
    b: &Builder,
    order: &[usize],
    format: CaptureFormat,
    out: impl Write,
) -> std::io::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    let io = |e: pcap_file::PcapError| std::io::Error::other(e.to_string());
    let out = std::io::BufWriter::with_capacity(1 << 20, out);
    match format {
        CaptureFormat::Pcap => {
            let header = PcapHeader {
                datalink: DataLink::ETHERNET,
                snaplen: 65_535,
                ..Default::default()
            };
            let mut w = PcapWriter::with_header(out, header).map_err(io)?;
            for &i in order {
                let (ts, off, len, orig, _) = b.index[i];
                let data = &b.frames[off as usize..off as usize + len as usize];
                w.write_packet(&PcapPacket::new(
                    Duration::from_micros(ts as u64),
                    orig,
                    data,
                ))
                .map_err(io)?;
            }
            w.into_writer().flush()
        }
        CaptureFormat::Pcapng => {
            let mut w = PcapNgWriter::new(out).map_err(io)?;
            // pcap-file 2.0 writes EPB stamps in nanoseconds whatever the
            // interface says, so the interfaces must declare if_tsresol = 9.
            for link in [DataLink::ETHERNET, DataLink::RAW] {
                let mut idb = InterfaceDescriptionBlock::new(link, 65_535);
                idb.options.push(InterfaceDescriptionOption::IfTsResol(9));
                w.write_pcapng_block(idb).map_err(io)?;
            }
            for &i in order {
                let (ts, off, len, orig, raw) = b.index[i];
                let data = &b.frames[off as usize..off as usize + len as usize];
                let epb = EnhancedPacketBlock {
                    interface_id: raw as u32,
                    timestamp: Duration::from_micros(ts as u64),
                    original_len: orig,
                    data: std::borrow::Cow::Borrowed(data),
                    options: vec![],
                };
                w.write_pcapng_block(epb).map_err(io)?;
            }
            w.into_inner().flush()
        }
    }
}

fn truth(b: &Builder, order: &[usize], spec: &DarknetSpec) -> Truth {
    #[derive(Default)]
    struct Src {
        packets: u64,
        syn: u64,
        mirai: u64,
        zmap: u64,
        masscan: u64,
        backscatter: u64,
        tcp_ports: Vec<u16>,
    }
    let mut t = Truth {
        bucket_s: spec.bucket_s,
        ..Default::default()
    };
    let mut srcs: HashMap<IpAddr, Src> = HashMap::new();
    let mut class_src: HashMap<&'static str, HashSet<IpAddr>> = HashMap::new();
    let mut port_pk: HashMap<(u8, u16), u64> = HashMap::new();
    let mut port_src: HashMap<(u8, u16), HashSet<IpAddr>> = HashMap::new();
    let mut bucket_pk: BTreeMap<i64, u64> = BTreeMap::new();
    let mut bucket_src: HashMap<i64, HashSet<IpAddr>> = HashMap::new();
    let mut bucket_port: HashMap<(i64, u8, u16), (u64, HashSet<IpAddr>)> = HashMap::new();
    let mut actor_pk: BTreeMap<Actor, (u64, HashSet<IpAddr>)> = BTreeMap::new();
    let mut fp_pk = [0u64; 4];
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for &i in order {
        let l = &b.labels[i];
        if !l.inside {
            t.outside += 1;
            continue;
        }
        t.packets += 1;
        t.bytes += l.len as u64;
        first = first.min(l.ts_us);
        last = last.max(l.ts_us);
        let bucket = l.ts_us.div_euclid(spec.bucket_s * 1_000_000) * spec.bucket_s;
        *bucket_pk.entry(bucket).or_default() += 1;
        let a = actor_pk.entry(l.actor).or_default();
        a.0 += 1;
        if l.malformed {
            t.malformed += 1;
            continue;
        }
        let e = t.classes.entry(l.class).or_default();
        e.packets += 1;
        let Some(src) = l.src else { continue };
        a.1.insert(src);
        class_src.entry(l.class).or_default().insert(src);
        bucket_src.entry(bucket).or_default().insert(src);
        let s = srcs.entry(src).or_default();
        s.packets += 1;
        s.syn += l.syn as u64;
        s.mirai += l.mirai as u64;
        s.zmap += l.zmap as u64;
        s.masscan += l.masscan as u64;
        s.backscatter += l.backscatter as u64;
        fp_pk[0] += l.mirai as u64;
        fp_pk[1] += l.zmap as u64;
        fp_pk[2] += l.masscan as u64;
        fp_pk[3] += l.backscatter as u64;
        if let Some(p) = l.port {
            *port_pk.entry(p).or_default() += 1;
            port_src.entry(p).or_default().insert(src);
            let bp = bucket_port.entry((bucket, p.0, p.1)).or_default();
            bp.0 += 1;
            bp.1.insert(src);
            if p.0 == 0 && !s.tcp_ports.contains(&p.1) {
                s.tcp_ports.push(p.1);
            }
        }
    }
    t.first_ts_us = if first == i64::MAX { 0 } else { first };
    t.last_ts_us = if last == i64::MIN { 0 } else { last };
    t.sources = srcs.len() as u64;
    for name in [
        "tcp_syn",
        "tcp_synack",
        "tcp_ack",
        "tcp_fin",
        "tcp_rst",
        "tcp_push",
        "tcp_other",
        "udp",
        "icmp",
        "other_ip",
        "non_ip",
    ] {
        let e = t.classes.entry(name).or_default();
        e.sources = class_src.get(name).map_or(0, |s| s.len() as u64);
    }
    let proto = |p: u8| if p == 0 { "tcp" } else { "udp" };
    t.ports = port_pk
        .iter()
        .map(|(&(p, port), &packets)| TruthPort {
            proto: proto(p),
            port,
            packets,
            sources: port_src[&(p, port)].len() as u64,
        })
        .collect();
    t.ports.sort_by(|a, b| {
        b.packets
            .cmp(&a.packets)
            .then(a.proto.cmp(b.proto))
            .then(a.port.cmp(&b.port))
    });
    let flag = |syn: u64, m: u64| m >= 3 && m * 10 >= syn * 9;
    let mut fps = [TruthCount::default(); 4];
    for (i, f) in fps.iter_mut().enumerate() {
        f.packets = fp_pk[i];
    }
    for (ip, s) in &srcs {
        fps[0].sources += flag(s.syn, s.mirai) as u64;
        fps[1].sources += flag(s.syn, s.zmap) as u64;
        fps[2].sources += flag(s.syn, s.masscan) as u64;
        fps[3].sources += (s.backscatter > 0) as u64;
        if flag(s.syn, s.mirai) {
            let mut ports = s.tcp_ports.clone();
            ports.sort_unstable();
            t.infected.push(TruthInfected {
                ip: ip.to_string(),
                packets: s.packets,
                ports,
            });
        }
    }
    t.infected
        .sort_by(|a, b| b.packets.cmp(&a.packets).then(a.ip.cmp(&b.ip)));
    for (name, c) in ["mirai", "zmap", "masscan", "backscatter"]
        .into_iter()
        .zip(fps)
    {
        t.fingerprints.insert(name, c);
    }
    for (&start, &packets) in &bucket_pk {
        let mut ports: Vec<TruthPort> = bucket_port
            .iter()
            .filter(|(k, _)| k.0 == start)
            .map(|(k, v)| TruthPort {
                proto: proto(k.1),
                port: k.2,
                packets: v.0,
                sources: v.1.len() as u64,
            })
            .collect();
        ports.sort_by(|a, b| {
            b.packets
                .cmp(&a.packets)
                .then(a.proto.cmp(b.proto))
                .then(a.port.cmp(&b.port))
        });
        t.series.push(TruthBucket {
            start_s: start,
            packets,
            sources: bucket_src.get(&start).map_or(0, |s| s.len() as u64),
            ports,
        });
    }
    for (actor, (packets, s)) in actor_pk {
        let name = serde_json::to_value(actor)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        t.actors.insert(
            name,
            TruthCount {
                packets,
                sources: s.len() as u64,
            },
        );
    }
    t
}
