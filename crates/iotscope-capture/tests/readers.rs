//! Round trips through an independent writer (the pcap-file crate), every
//! byte order and timestamp resolution, gzip, and damaged files.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::time::Duration;

use iotscope_capture::{from_reader, CaptureError, Format};
use iotscope_wire::LinkType;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};

fn frames() -> Vec<(Duration, Vec<u8>)> {
    (0..50u32)
        .map(|i| {
            (
                Duration::new(1_475_280_000 + i as u64, i * 1000 + 7000),
                vec![i as u8; 20 + i as usize],
            )
        })
        .collect()
}

fn pcap_bytes(endianness: Endianness, ts: TsResolution) -> Vec<u8> {
    let header = PcapHeader {
        endianness,
        ts_resolution: ts,
        datalink: DataLink::RAW,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (t, d) in frames() {
        w.write_packet(&PcapPacket::new(t, d.len() as u32 + 4, &d))
            .unwrap();
    }
    w.into_writer()
}

/// Frames read: (timestamp ns, link type, bytes, original length).
type Frames = Vec<(i64, LinkType, Vec<u8>, u32)>;

fn read_all(bytes: Vec<u8>) -> Result<Frames, (CaptureError, usize)> {
    let (mut r, _) = from_reader(Box::new(Cursor::new(bytes)), false).map_err(|e| (e, 0))?;
    let mut out = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => out.push((f.ts_ns, f.link, f.data.to_vec(), f.orig_len)),
            Ok(None) => return Ok(out),
            Err(e) => return Err((e, out.len())),
        }
    }
}

#[test]
fn pcap_every_byte_order_and_resolution() {
    for e in [Endianness::Big, Endianness::Little] {
        for ts in [TsResolution::MicroSecond, TsResolution::NanoSecond] {
            let got = read_all(pcap_bytes(e, ts)).unwrap();
            let want = frames();
            assert_eq!(got.len(), want.len());
            for ((ts_ns, link, data, orig), (t, d)) in got.iter().zip(&want) {
                assert_eq!(*ts_ns, t.as_nanos() as i64, "{e:?} {ts:?}");
                assert_eq!(*link, LinkType::RawIp);
                assert_eq!(data, d);
                assert_eq!(*orig, d.len() as u32 + 4);
            }
        }
    }
}

#[test]
fn gzip_is_transparent() {
    let raw = pcap_bytes(Endianness::Little, TsResolution::MicroSecond);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let (mut r, progress) = from_reader(Box::new(Cursor::new(gz.finish().unwrap())), true).unwrap();
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 50);
    assert!(progress.bytes() > 0);
    assert_eq!(progress.content_hash().map(|h| h.len()), Some(32));
}

/// Issue 16: real archives are bzip2 (NICT's daily files), xz or zstd,
/// sometimes several streams end to end (pbzip2, pzstd, `cat`); each is
/// found by its magic bytes and read through, and damage is an error, not a
/// short file.
#[test]
fn bzip2_xz_and_zstd_are_transparent_with_concatenated_streams() {
    let raw = pcap_bytes(Endianness::Little, TsResolution::MicroSecond);
    let want = read_all(raw.clone()).unwrap();
    // Two streams of the same compression: the capture cut at a record
    // boundary in the middle (24-byte header, then records).
    let (a, b) = raw.split_at(24 + 3 * (16 + want[0].2.len()));
    let bz = |part: &[u8]| {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(part).unwrap();
        e.finish().unwrap()
    };
    let xz = |part: &[u8]| {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(part).unwrap();
        e.finish().unwrap()
    };
    let zst = |part: &[u8]| zstd::stream::encode_all(part, 1).unwrap();
    type Compress<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;
    let compressors: [(&str, Compress); 3] = [("bzip2", &bz), ("xz", &xz), ("zstd", &zst)];
    for (name, c) in compressors {
        assert_eq!(read_all(c(&raw)).unwrap(), want, "{name}");
        let two = [c(a), c(b)].concat();
        assert_eq!(read_all(two).unwrap(), want, "{name}, two streams");
        // Cut inside the compressed data of a longer capture: an error,
        // after the frames before the cut (a decoder that holds back its
        // window lost them all).
        // Records of random bytes, so the compressed size follows the data.
        let mut long = raw[..24].to_vec();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let total = 5000;
        for i in 0..total as u32 {
            for v in [i, 0, 64, 64] {
                long.extend_from_slice(&v.to_le_bytes());
            }
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                long.extend_from_slice(&x.to_le_bytes());
            }
        }
        let whole = c(&long);
        let cut = whole[..whole.len() * 2 / 3].to_vec();
        let (err, kept) = read_all(cut).unwrap_err();
        assert!(
            kept > total / 3 && kept < total,
            "{name}: kept {kept} of {total}: {err}"
        );
    }
}

fn pcapng_bytes(endianness: Endianness) -> Vec<u8> {
    let mut w = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
    // pcap-file 2.0 always writes EPB stamps in nanoseconds, so the
    // interface must say so (if_tsresol = 9).
    let mut eth = InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0);
    eth.options.push(InterfaceDescriptionOption::IfTsResol(9));
    w.write_pcapng_block(eth).unwrap();
    let mut sll = InterfaceDescriptionBlock::new(DataLink::LINUX_SLL, 0);
    sll.options.push(InterfaceDescriptionOption::IfTsResol(9));
    w.write_pcapng_block(sll).unwrap();
    for (i, (t, d)) in frames().into_iter().enumerate() {
        let epb = EnhancedPacketBlock {
            interface_id: (i % 2) as u32,
            timestamp: t,
            original_len: d.len() as u32,
            data: Cow::Owned(d),
            options: vec![],
        };
        w.write_pcapng_block(epb).unwrap();
    }
    w.write_pcapng_block(SimplePacketBlock {
        original_len: 5,
        data: Cow::Owned(vec![9; 5]),
    })
    .unwrap();
    w.into_inner()
}

#[test]
fn pcapng_several_interfaces_and_simple_packets() {
    for e in [Endianness::Big, Endianness::Little] {
        let bytes = pcapng_bytes(e);
        let (r, _) = from_reader(Box::new(Cursor::new(bytes.clone())), false).unwrap();
        assert_eq!(r.format(), Format::Pcapng);
        let got = read_all(bytes).unwrap();
        assert_eq!(got.len(), 51);
        for (i, ((ts_ns, link, data, _), (t, d))) in got.iter().zip(frames()).enumerate() {
            assert_eq!(*ts_ns, t.as_nanos() as i64);
            assert_eq!(
                *link,
                if i % 2 == 0 {
                    LinkType::Ethernet
                } else {
                    LinkType::LinuxSll
                }
            );
            assert_eq!(*data, d);
        }
        let (ts, link, data, _) = &got[50];
        assert_eq!(
            (*ts, *link, data.as_slice()),
            (got[49].0, LinkType::Ethernet, &[9u8; 5][..])
        );
    }
}

#[test]
fn microsecond_pcapng_default_resolution() {
    // An IDB without if_tsresol: stamps are microseconds. Written by hand.
    let mut b = Vec::new();
    b.extend_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    // IDB: raw IP, no options.
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&101u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    // EPB with 4 bytes of data at 1.5 s.
    let us: u64 = 1_500_000;
    b.extend_from_slice(&6u32.to_le_bytes());
    b.extend_from_slice(&36u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(us as u32).to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&[1, 2, 3, 4]);
    b.extend_from_slice(&36u32.to_le_bytes());
    let got = read_all(b).unwrap();
    assert_eq!(
        got,
        vec![(1_500_000_000, LinkType::RawIp, vec![1, 2, 3, 4], 4)]
    );
}

#[test]
fn truncation_reports_the_record_offset_and_keeps_earlier_frames() {
    let full = pcap_bytes(Endianness::Little, TsResolution::MicroSecond);
    // Offset of record k: 24 + sum of (16 + len) of earlier records.
    let mut offsets = vec![24u64];
    for (_, d) in frames() {
        let last = *offsets.last().unwrap();
        offsets.push(last + 16 + d.len() as u64);
    }
    let cut = offsets[10] as usize + 20; // inside record 10
    let (err, read) = read_all(full[..cut].to_vec()).unwrap_err();
    assert_eq!(read, 10);
    match err {
        CaptureError::Truncated { offset, .. } => assert_eq!(offset, offsets[10]),
        other => panic!("{other:?}"),
    }
    // Cut inside a record header.
    let (err, read) = read_all(full[..offsets[3] as usize + 5].to_vec()).unwrap_err();
    assert_eq!((read, err.offset()), (3, Some(offsets[3])));
    let msg = err.to_string();
    assert!(msg.contains(&offsets[3].to_string()), "{msg}");
}

#[test]
fn corrupt_lengths_are_errors_not_panics() {
    let mut full = pcap_bytes(Endianness::Little, TsResolution::MicroSecond);
    let rec5 = 24
        + frames()[..5]
            .iter()
            .map(|(_, d)| 16 + d.len())
            .sum::<usize>();
    full[rec5 + 8..rec5 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let (err, read) = read_all(full).unwrap_err();
    assert_eq!(read, 5);
    assert!(
        matches!(err, CaptureError::Corrupt { offset, .. } if offset == rec5 as u64),
        "{err:?}"
    );

    let mut ng = pcapng_bytes(Endianness::Little);
    ng[4..8].copy_from_slice(&13u32.to_le_bytes());
    assert!(matches!(
        read_all(ng).unwrap_err().0,
        CaptureError::Corrupt { offset: 0, .. }
    ));
}

#[test]
fn unknown_magic_and_empty_input() {
    assert!(matches!(
        read_all(b"hello world".to_vec()).unwrap_err().0,
        CaptureError::UnknownFormat { .. }
    ));
    assert!(matches!(
        read_all(Vec::new()).unwrap_err().0,
        CaptureError::Empty
    ));
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/capture");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok((mut r, _)) = from_reader(Box::new(Cursor::new(bytes)), false) {
            for _ in 0..100_000 {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        let _ = iotscope_wire::decode(f.link, f.data);
                    }
                    _ => break,
                }
            }
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus at {}", dir.display());
}

proptest::proptest! {
    #[test]
    fn random_damage_never_panics(pos in 0usize..2000, val in proptest::prelude::any::<u8>(), cut in 0usize..3000) {
        let mut b = pcapng_bytes(Endianness::Little);
        if pos < b.len() { b[pos] = val; }
        b.truncate(cut.max(1));
        let _ = read_all(b);
        let mut p = pcap_bytes(Endianness::Big, TsResolution::NanoSecond);
        if pos < p.len() { p[pos] = val; }
        p.truncate(cut.max(1));
        let _ = read_all(p);
    }
}
