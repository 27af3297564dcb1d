//! Scripted campaigns with known onsets (issue 20): what the detectors are
//! measured against. Each campaign's packets are added to the background
//! mix with its own random stream, so the background of a seed is the same
//! with or without campaigns (but for traffic to a new-port campaign's port
//! before its onset, which the background must not have).

use std::str::FromStr;

use serde::Serialize;

use super::{tcp_v4, Actor, Builder, Label, MSS_OPTION};
use crate::rng::Rng;

/// What kind of campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// Mirai-infected hosts join at an accelerating pace and scan 23/TCP
    /// (and 2323/TCP one time in ten), as in September 2016: 2,000 hosts
    /// (four times the background's Mirai-like sources in an hour), half of
    /// them within 3 hours of the onset, each 2 SYNs an hour to the end.
    MiraiOutbreak,
    /// A Mirai variant on a port the darknet saw nothing on before
    /// (37215/TCP, Huawei HG532's CVE-2017-17215, as Satori in December
    /// 2017): 150 hosts over 6 hours, 4 SYNs an hour each for 36 hours.
    NewPort,
    /// A research scanner (Censys' 162.142.125.0/24, in the shipped list)
    /// sweeping with ZMap: 16 hosts for 12 hours, 1,500 SYNs each, 70% to a
    /// hundred well-known service ports, the rest to any port.
    ResearchSweep,
    /// A DDoS victim's replies: 4 victims send SYN-ACKs and RSTs from port
    /// 80 or 443 to random darknet addresses, 2,000 each an hour for two
    /// hours.
    Backscatter,
}

impl CampaignKind {
    const ALL: [CampaignKind; 4] = [
        CampaignKind::MiraiOutbreak,
        CampaignKind::NewPort,
        CampaignKind::ResearchSweep,
        CampaignKind::Backscatter,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            CampaignKind::MiraiOutbreak => "mirai_outbreak",
            CampaignKind::NewPort => "new_port",
            CampaignKind::ResearchSweep => "research_sweep",
            CampaignKind::Backscatter => "backscatter",
        }
    }
}

/// One scripted campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Campaign {
    /// Its kind.
    pub kind: CampaignKind,
    /// Onset, seconds after the capture's start.
    pub onset_s: i64,
}

/// A campaign spec that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("campaign {0:?}: expected KIND@OFFSET such as mirai_outbreak@3d5h (kinds: mirai_outbreak, new_port, research_sweep, backscatter)")]
pub struct CampaignError(pub String);

impl FromStr for Campaign {
    type Err = CampaignError;

    /// `KIND@OFFSET`: a kind's name and the onset after the capture start
    /// in humantime-like units (`3d5h`, `90m`, `3600s`, or plain seconds).
    fn from_str(s: &str) -> Result<Campaign, CampaignError> {
        let err = || CampaignError(s.to_string());
        let (kind, at) = s.split_once('@').ok_or_else(err)?;
        let kind = CampaignKind::ALL
            .into_iter()
            .find(|k| k.name() == kind.trim())
            .ok_or_else(err)?;
        Ok(Campaign {
            kind,
            onset_s: offset_s(at.trim()).ok_or_else(err)?,
        })
    }
}

/// `3d5h30m10s` or plain seconds.
fn offset_s(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return (n >= 0).then_some(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then_some(total)
}

/// The preset (`--campaigns default`): one of each kind, at 45%, 60%, 72%
/// and 86% of the capture, each moved by up to ±3 hours by the seed.
pub fn default_campaigns(duration_s: i64, seed: u64) -> Vec<Campaign> {
    let mut rng = Rng::new(seed ^ 0x6361_6d70_6169_676e);
    [0.45, 0.60, 0.72, 0.86]
        .into_iter()
        .zip(CampaignKind::ALL)
        .map(|(at, kind)| {
            let jitter = rng.range(0, 6 * 3600) as i64 - 3 * 3600;
            Campaign {
                kind,
                onset_s: ((duration_s as f64 * at) as i64 + jitter).clamp(0, duration_s.max(1) - 1),
            }
        })
        .collect()
}

/// A campaign in the truth file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TruthCampaign {
    /// Its kind.
    pub kind: CampaignKind,
    /// Onset, seconds since the epoch: its first packet is at or after it.
    pub onset_s: i64,
    /// "tcp", or "" for backscatter (its destination ports are random).
    pub proto: &'static str,
    /// The ports it targets (for the research sweep, its hundred service
    /// ports; it also hits others).
    pub ports: Vec<u16>,
    /// Hosts taking part.
    pub hosts: u64,
    /// Packets it added.
    pub packets: u64,
    /// Its hosts' addresses.
    pub addresses: Vec<String>,
}

/// New-port campaign's port.
pub const NEW_PORT: u16 = 37215;

/// A research sweep's well-known ports (IoT, ICS, remote access, web).
const SERVICE_PORTS: [u16; 100] = [
    21, 22, 23, 25, 53, 80, 81, 82, 83, 84, 85, 88, 102, 110, 111, 135, 139, 143, 161, 179, 389,
    443, 445, 465, 502, 503, 515, 548, 554, 587, 623, 631, 636, 771, 789, 873, 902, 993, 995, 1023,
    1080, 1099, 1200, 1433, 1521, 1604, 1723, 1883, 1911, 1962, 2000, 2080, 2082, 2083, 2181, 2222,
    2323, 2375, 2404, 2455, 3000, 3128, 3306, 3389, 3690, 4000, 4022, 4369, 4443, 4500, 4567, 4840,
    5000, 5006, 5007, 5060, 5432, 5555, 5601, 5672, 5900, 5985, 6379, 6443, 7547, 8000, 8008, 8080,
    8081, 8088, 8443, 8888, 9000, 9100, 9200, 9600, 10000, 11211, 20000, 47808,
];

/// Addresses a campaign may use: public, outside the darknets and the
/// research prefix, distinct.
fn host(rng: &mut Rng) -> u32 {
    loop {
        let ip = rng.next_u32();
        if !super::is_reserved(ip) && ip >> 8 != 0xa28e7d {
            return ip;
        }
    }
}

/// Adds one campaign's packets to `b`; `dur_us` and `t0_us` are the
/// capture's length and start.
pub(super) fn add(
    b: &mut Builder,
    c: &Campaign,
    seed: u64,
    t0_us: i64,
    dur_us: i64,
) -> TruthCampaign {
    let mut rng = Rng::new(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(c.kind as u64 + 1)));
    let onset = t0_us + c.onset_s * 1_000_000;
    let end = t0_us + dur_us;
    let hour = 3_600_000_000i64;
    let mut truth = TruthCampaign {
        kind: c.kind,
        onset_s: onset.div_euclid(1_000_000),
        proto: "tcp",
        ports: Vec::new(),
        hosts: 0,
        packets: 0,
        addresses: Vec::new(),
    };
    // (address, join time, active until, packets) per host.
    let mut hosts: Vec<(u32, i64, i64, u64)> = Vec::new();
    match c.kind {
        CampaignKind::MiraiOutbreak | CampaignKind::NewPort => {
            let (n, ramp, rate, active) = if c.kind == CampaignKind::MiraiOutbreak {
                truth.ports = vec![23, 2323];
                (2000, 12 * hour, 2.0, i64::MAX)
            } else {
                truth.ports = vec![NEW_PORT];
                (150, 6 * hour, 4.0, 36 * hour)
            };
            for _ in 0..n {
                let u = rng.uniform(0.0, 1.0);
                let join = onset + (ramp as f64 * u * u) as i64;
                let until = join.saturating_add(active).min(end);
                if join >= until {
                    continue;
                }
                let packets = (rate * (until - join) as f64 / hour as f64)
                    .round()
                    .max(1.0) as u64;
                hosts.push((host(&mut rng), join, until, packets));
            }
        }
        CampaignKind::ResearchSweep => {
            truth.ports = SERVICE_PORTS.to_vec();
            for i in 0..16u32 {
                // 162.142.125.10..25: Censys.
                hosts.push((0xa28e_7d0a + i, onset, (onset + 12 * hour).min(end), 1500));
            }
        }
        CampaignKind::Backscatter => {
            truth.proto = "";
            for _ in 0..4 {
                hosts.push((host(&mut rng), onset, (onset + 2 * hour).min(end), 4000));
            }
        }
    }
    for &(src, join, until, packets) in &hosts {
        truth.hosts += 1;
        truth
            .addresses
            .push(std::net::Ipv4Addr::from(src).to_string());
        let hops = rng.range(4, 26) as u8;
        let service = [80u16, 443][rng.below(2) as usize];
        for _ in 0..packets {
            let ts = join + rng.below((until - join).max(1) as u64) as i64;
            let dst = super::DN_V4 | rng.next_u32() & 0xffff;
            let mut label = Label {
                ts_us: ts,
                len: 0,
                src: Some(std::net::IpAddr::V4(src.into())),
                inside: true,
                malformed: false,
                class: "tcp_syn",
                port: None,
                syn: true,
                mirai: false,
                zmap: false,
                masscan: false,
                backscatter: false,
                actor: Actor::Campaign,
            };
            let frame = match c.kind {
                CampaignKind::MiraiOutbreak | CampaignKind::NewPort => {
                    let dport = match c.kind {
                        CampaignKind::NewPort => NEW_PORT,
                        _ if rng.chance(0.1) => 2323,
                        _ => 23,
                    };
                    label.port = Some((0, dport));
                    let sport = 1024 + (rng.next_u32() % 64_512) as u16;
                    let (ip_id, win) = (rng.next_u32() as u16, rng.next_u32() as u16);
                    // Mirai: the sequence number is the destination address.
                    tcp_v4(
                        src,
                        dst,
                        64 - hops,
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
                    )
                }
                CampaignKind::ResearchSweep => {
                    let dport = if rng.chance(0.7) {
                        SERVICE_PORTS[rng.below(100) as usize]
                    } else {
                        1 + rng.below(65_535) as u16
                    };
                    label.port = Some((0, dport));
                    let sport = 32_768 + (rng.next_u32() % 28_232) as u16;
                    // ZMap: IP ID 54321.
                    tcp_v4(
                        src,
                        dst,
                        255 - hops,
                        54_321,
                        false,
                        sport,
                        dport,
                        rng.next_u32(),
                        0,
                        0x02,
                        65_535,
                        &MSS_OPTION,
                        &[],
                    )
                }
                CampaignKind::Backscatter => {
                    let dport = 1024 + (rng.next_u32() % 64_512) as u16;
                    let flags = if rng.chance(0.6) { 0x12 } else { 0x14 };
                    label.port = Some((0, dport));
                    label.class = super::tcp_class(flags);
                    label.syn = false;
                    label.backscatter = true;
                    let (seq, ack) = (rng.next_u32(), rng.next_u32());
                    tcp_v4(
                        src,
                        dst,
                        64 - hops,
                        rng.next_u32() as u16,
                        true,
                        service,
                        dport,
                        seq,
                        ack,
                        flags,
                        if flags == 0x12 { 29_200 } else { 0 },
                        if flags == 0x12 { &MSS_OPTION } else { &[] },
                        &[],
                    )
                }
            };
            if label.syn {
                super::syn_fingerprints(&mut label, &frame);
            }
            label.len = frame.len() as u32;
            let orig = frame.len() as u32;
            b.push(ts, &frame, orig, false, label);
            truth.packets += 1;
        }
    }
    truth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        let c: Campaign = "mirai_outbreak@3d5h".parse().unwrap();
        assert_eq!(c.kind, CampaignKind::MiraiOutbreak);
        assert_eq!(c.onset_s, 3 * 86_400 + 5 * 3600);
        assert_eq!(
            "backscatter@7200".parse::<Campaign>().unwrap().onset_s,
            7200
        );
        for bad in [
            "mirai@1h",
            "new_port",
            "new_port@1x",
            "new_port@-5",
            "new_port@5h3",
        ] {
            assert!(bad.parse::<Campaign>().is_err(), "{bad}");
        }
    }

    fn truth_of(spec: &super::super::DarknetSpec) -> super::super::Truth {
        super::super::generate(spec, super::super::CaptureFormat::Pcap, std::io::sink()).unwrap()
    }

    #[test]
    fn campaigns_start_at_their_onsets_and_a_new_port_is_silent_before() {
        let spec = super::super::DarknetSpec {
            packets: 20_000,
            duration_s: 2 * 86_400,
            campaigns: vec![
                "new_port@1d".parse().unwrap(),
                "mirai_outbreak@1d6h".parse().unwrap(),
            ],
            ..Default::default()
        };
        let t = truth_of(&spec);
        assert_eq!(t.campaigns.len(), 2);
        let np = &t.campaigns[0];
        assert_eq!(
            (np.kind, np.onset_s),
            (CampaignKind::NewPort, spec.start_s + 86_400)
        );
        assert_eq!(np.hosts, 150);
        let on_port = |b: &super::super::TruthBucket| {
            b.ports
                .iter()
                .find(|p| p.proto == "tcp" && p.port == NEW_PORT)
                .map_or(0, |p| p.sources)
        };
        for b in &t.series {
            if b.start_s < np.onset_s / 3600 * 3600 {
                assert_eq!(
                    on_port(b),
                    0,
                    "traffic to {NEW_PORT} before the onset at {}",
                    b.start_s
                );
            }
        }
        let after: u64 = t
            .series
            .iter()
            .filter(|b| b.start_s >= np.onset_s)
            .map(on_port)
            .max()
            .unwrap();
        assert!(after >= 20, "{after} sources an hour after the onset");
    }

    #[test]
    fn the_day_night_cycle_thins_the_night() {
        let spec = super::super::DarknetSpec {
            packets: 30_000,
            duration_s: 2 * 86_400,
            diurnal: 1.0,
            ..Default::default()
        };
        let t = truth_of(&spec);
        let hour = |b: &super::super::TruthBucket| b.start_s.rem_euclid(86_400) / 3600;
        let sum = |hours: &[i64]| -> u64 {
            t.series
                .iter()
                .filter(|b| hours.contains(&hour(b)))
                .map(|b| b.packets)
                .sum()
        };
        let (noon, night) = (sum(&[11, 12, 13]), sum(&[23, 0, 1]));
        assert!(noon > 5 * night.max(1), "noon {noon}, night {night}");
        assert_eq!(t.packets + t.outside, 30_000, "the frame count is kept");
    }

    #[test]
    fn the_preset_places_one_of_each_inside_the_capture() {
        let d = 7 * 86_400;
        let c = default_campaigns(d, 3);
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|c| c.onset_s > 0 && c.onset_s < d));
        assert!(c.windows(2).all(|w| w[0].onset_s < w[1].onset_s));
        assert_ne!(default_campaigns(d, 4), c, "the seed moves them");
    }
}
