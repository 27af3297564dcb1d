//! A Modbus/TCP controller: answers register and coil reads with steady
//! process values, Read Device Identification (function 43/14) with its
//! vendor, product code and revision, and records every write as a state
//! change (Modbus has no authentication, so a write is all it takes).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Served, BYTES_PER_SESSION};
use crate::audit::{Audit, Event};

pub(super) async fn serve(mut stream: TcpStream, peer: SocketAddr, served: &Served, audit: &Audit) {
    let d = &served.device;
    let mut read = 0usize;
    loop {
        let mut mbap = [0u8; 7];
        match tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut mbap)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let len = u16::from_be_bytes([mbap[4], mbap[5]]) as usize;
        if mbap[2..4] != [0, 0] || !(2..=254).contains(&len) {
            return; // not Modbus/TCP
        }
        let mut pdu = vec![0u8; len - 1];
        if stream.read_exact(&mut pdu).await.is_err() {
            return;
        }
        read += 7 + pdu.len();
        if read > BYTES_PER_SESSION {
            return;
        }
        let fc = pdu[0];
        let word = |i: usize| {
            pdu.get(i..i + 2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
        };
        let reply: Vec<u8> = match fc {
            1 | 2 => {
                let n = word(3).clamp(1, 2000) as usize;
                let bytes = n.div_ceil(8);
                let mut r = vec![fc, bytes as u8];
                r.extend((0..bytes).map(|i| (0x55u8).rotate_left(i as u32)));
                r
            }
            3 | 4 => {
                let (start, n) = (word(1), word(3).clamp(1, 125));
                let mut r = vec![fc, (n * 2) as u8];
                for i in 0..n {
                    let v = (start.wrapping_add(i)).wrapping_mul(37).wrapping_add(1000);
                    r.extend_from_slice(&v.to_be_bytes());
                }
                r
            }
            5 | 6 | 15 | 16 => {
                audit.record(
                    d,
                    "modbus",
                    502,
                    peer,
                    Event::StateChange,
                    &format!("write function {fc} address {}", word(1)),
                );
                pdu[..5.min(pdu.len())].to_vec()
            }
            // Older stacks without function 43 hang up on it.
            43 if d.kind == crate::devices::Kind::LegacyPlc => return,
            43 if pdu.get(1) == Some(&14) => {
                let objects: [&str; 3] = [&d.vendor, &d.model, &d.firmware];
                let mut r = vec![
                    43,
                    14,
                    pdu.get(2).copied().unwrap_or(1),
                    0x01,
                    0x00,
                    0x00,
                    objects.len() as u8,
                ];
                for (id, text) in objects.iter().enumerate() {
                    r.push(id as u8);
                    r.push(text.len() as u8);
                    r.extend_from_slice(text.as_bytes());
                }
                r
            }
            _ => vec![fc | 0x80, 0x01], // illegal function
        };
        let mut out = Vec::with_capacity(7 + reply.len());
        out.extend_from_slice(&mbap[0..4]);
        out.extend_from_slice(&((reply.len() + 1) as u16).to_be_bytes());
        out.push(mbap[6]);
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}
