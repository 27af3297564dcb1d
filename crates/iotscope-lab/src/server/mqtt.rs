//! An MQTT 3.1.1 broker that lets anyone in: CONNECT is answered with
//! return code 0 whatever the credentials, SUBSCRIBE with SUBACK, PINGREQ
//! with PINGRESP; a PUBLISH is recorded as a state change (it would reach
//! every subscriber of a real broker).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Served, BYTES_PER_SESSION};
use crate::audit::{Audit, Event};

/// Reads one control packet: (first byte, body). Remaining length is the
/// MQTT variable-length integer, at most four bytes.
async fn packet(stream: &mut TcpStream, budget: &mut usize) -> Option<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut b))
        .await
        .ok()?
        .ok()?;
    let first = b[0];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        stream.read_exact(&mut b).await.ok()?;
        len |= ((b[0] & 0x7f) as usize) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    if len > *budget {
        return None;
    }
    *budget -= len;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    Some((first, body))
}

pub(super) async fn serve(mut stream: TcpStream, peer: SocketAddr, served: &Served, audit: &Audit) {
    let mut budget = BYTES_PER_SESSION;
    let Some((first, _connect)) = packet(&mut stream, &mut budget).await else {
        return;
    };
    if first >> 4 != 1 {
        return; // not CONNECT
    }
    // CONNACK: session present 0, return code 0 (accepted).
    if stream.write_all(&[0x20, 0x02, 0x00, 0x00]).await.is_err() {
        return;
    }
    while let Some((first, body)) = packet(&mut stream, &mut budget).await {
        match first >> 4 {
            3 => {
                // PUBLISH: topic is a length-prefixed string.
                let topic = body
                    .get(
                        2..2 + u16::from_be_bytes([
                            *body.first().unwrap_or(&0),
                            *body.get(1).unwrap_or(&0),
                        ]) as usize,
                    )
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_default();
                audit.record(
                    &served.device,
                    "mqtt",
                    1883,
                    peer,
                    Event::StateChange,
                    &format!("publish {topic}"),
                );
                let qos = (first >> 1) & 3;
                if qos == 1 {
                    let tl = 2 + u16::from_be_bytes([body[0], body[1]]) as usize;
                    if let Some(id) = body.get(tl..tl + 2) {
                        let _ = stream.write_all(&[0x40, 0x02, id[0], id[1]]).await;
                    }
                }
            }
            // SUBSCRIBE: grant QoS 0 for each filter.
            8 if body.len() >= 2 => {
                let mut filters = 0;
                let mut i = 2;
                while i + 2 <= body.len() {
                    let l = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
                    i += 2 + l + 1;
                    filters += 1;
                }
                let mut ack = vec![0x90, (2 + filters) as u8, body[0], body[1]];
                ack.extend(std::iter::repeat_n(0u8, filters));
                let _ = stream.write_all(&ack).await;
            }
            12 => {
                let _ = stream.write_all(&[0xd0, 0x00]).await;
            }
            14 => return, // DISCONNECT
            _ => {}
        }
    }
}
