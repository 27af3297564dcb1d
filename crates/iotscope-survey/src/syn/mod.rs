//! SYN mode: stateless raw SYN probes at a held rate, and a separate
//! receive path that accepts only valid replies to them.
//!
//! The sender walks the same keyed permutation and shards as connect mode,
//! fills a frame per probe from a template (addresses, cookie, checksums:
//! a few dozen nanoseconds) and hands batches to the kernel with one
//! `sendmmsg` each. The receiver runs on its own thread, validates every
//! frame against the cookie ([`frame::validate`]) and reports each answering
//! pair once. Retries are extra passes over the pairs that have not
//! answered yet, so a lossy path costs probes only where they are missing.
//! After the last probe the receiver listens for a cool-down and stops.

pub mod frame;
pub mod netif;
mod socket;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::Stats;
use crate::permute::{shard_positions, Permutation};
use crate::scope::{verdict, LiveExclusions};
use crate::targets::TargetSet;
pub use frame::{Answer, Reply};
pub use netif::Egress;

/// What can stop SYN mode.
#[derive(Debug, thiserror::Error)]
pub enum SynError {
    /// No CAP_NET_RAW.
    #[error(
        "SYN mode sends raw packets and needs root or CAP_NET_RAW \
         (sudo setcap cap_net_raw+ep $(command -v iotscope)); without it use --mode connect"
    )]
    Permission,
    /// The interface or its addresses could not be worked out.
    #[error("{0}")]
    Interface(String),
    /// A socket call failed.
    #[error("{0}")]
    Io(std::io::Error),
}

/// Settings of one SYN-mode run.
#[derive(Clone, Debug)]
pub struct SynConfig {
    /// Addresses (IPv4).
    pub targets: TargetSet,
    /// Ports.
    pub ports: Vec<u16>,
    /// Seed of the order.
    pub seed: u64,
    /// (index, count) of the shard.
    pub shard: (u32, u32),
    /// Packets per second; 0 for as fast as the machine allows.
    pub rate: f64,
    /// Extra passes over pairs that have not answered.
    pub retries: u32,
    /// How long to listen after the last probe.
    pub cooldown: Duration,
    /// Interface and link addresses.
    pub egress: Egress,
    /// Positions of the shard already done by an earlier run.
    pub skip: u64,
    /// Exclusions added while running (checked before every probe).
    pub live_exclusions: LiveExclusions,
}

/// Probes per `sendmmsg` at `rate`: about one batch per millisecond, so
/// the stream is smooth at any scale above a millisecond while the sender
/// wakes at most a thousand times a second (each wake-up costs more CPU
/// than a batch of probes); 64 when unpaced.
fn batch_for(rate: f64) -> usize {
    if rate <= 0.0 {
        64
    } else {
        ((rate / 1000.0) as usize).clamp(1, 256)
    }
}

/// Keeps a schedule of `rate` packets per second: packet k is due at
/// start + k / rate, so a late batch is followed by an on-time one, never
/// by a burst that makes up for more than the lateness.
struct Pacer {
    start: Instant,
    rate: f64,
    sent: u64,
}

impl Pacer {
    fn wait_for(&mut self, n: u64, stop: &AtomicBool) {
        if self.rate > 0.0 {
            let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.rate);
            loop {
                let now = Instant::now();
                if now >= due || stop.load(Ordering::Relaxed) {
                    break;
                }
                // Within 50 µs of the due time is on time: spinning for it
                // would cost more than the jitter is worth.
                let left = due - now;
                if left <= Duration::from_micros(50) {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
        self.sent += n;
    }
}

fn pair_key(ip: Ipv4Addr, port: u16) -> u64 {
    (u64::from(u32::from(ip)) << 16) | port as u64
}

/// Runs the shard; `on_replies` gets each answering pair once, in batches
/// (from the receive thread). Returns how many positions of the shard the first pass
/// probed (after `skip`), for the resume state. Stops early, after the
/// cool-down, when `stop` becomes true.
pub fn run(
    cfg: &SynConfig,
    stats: &Stats,
    stop: &AtomicBool,
    on_replies: impl FnMut(&[Reply]) + Send,
) -> Result<u64, SynError> {
    let cookie = frame::Cookie::new();
    let sender = socket::Sender::open(&cfg.egress.interface, cfg.egress.loopback)?;
    let mut receiver = socket::Receiver::open(&cfg.egress.interface, cfg.egress.link.src_ip)?;
    // Less timer slack: the pacer sleeps in steps of tens of microseconds.
    // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0u64, 0u64, 0u64) };
    let answered: Mutex<HashSet<u64>> = Mutex::new(HashSet::new());
    let listening = AtomicBool::new(true);
    let our_ip = cfg.egress.link.src_ip;
    let ports = &cfg.ports;
    // SYN mode is IPv4 only: the caller refuses IPv6 targets.
    let n = cfg.targets.v4_len() * ports.len() as u64;
    let perm = Permutation::new(n, cfg.seed);
    let is_target = |ip: Ipv4Addr| cfg.targets.contains(ip.into());

    std::thread::scope(|scope| {
        let recv_thread = scope.spawn({
            let (answered, listening, cookie) = (&answered, &listening, cookie.clone());
            let mut on_replies = on_replies;
            move || -> Result<(), SynError> {
                let mut seen: HashSet<u64> = HashSet::new();
                let mut batch: Vec<Reply> = Vec::new();
                while listening.load(Ordering::Relaxed) {
                    receiver.drain(|frame| {
                        let Some(reply) = frame::validate(frame, our_ip, &cookie, is_target) else {
                            return;
                        };
                        // Only ports we probe: the cookie already ties the reply
                        // to the pair, this keeps a hash collision from inventing one.
                        // A pair answers once: a retransmitted SYN/ACK or the
                        // answer to a retry is not news.
                        if ports.contains(&reply.port)
                            && seen.insert(pair_key(reply.ip, reply.port))
                        {
                            batch.push(reply);
                        }
                    })?;
                    if batch.is_empty() {
                        receiver.wait(Duration::from_millis(20));
                        continue;
                    }
                    {
                        let mut answered = answered.lock().expect("answered set");
                        for r in &batch {
                            answered.insert(pair_key(r.ip, r.port));
                            match r.answer {
                                Answer::Open => stats.open.fetch_add(1, Ordering::Relaxed),
                                Answer::Refused => stats.refused.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    }
                    on_replies(&batch);
                    batch.clear();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }
        });

        let send_result = (|| -> Result<u64, SynError> {
            let batch = batch_for(cfg.rate);
            let template = frame::template(&cfg.egress.link);
            let mut frames: Vec<[u8; frame::FRAME_LEN]> = Vec::with_capacity(batch);
            let mut pacer = Pacer {
                start: Instant::now(),
                rate: cfg.rate,
                sent: 0,
            };
            let mut first_pass = 0u64;
            for pass in 0..=cfg.retries {
                if pass > 0 {
                    // Give the last answers of the previous pass time to come in.
                    std::thread::sleep(cfg.cooldown.min(Duration::from_millis(500)));
                }
                let mut positions = shard_positions(n, cfg.shard.0, cfg.shard.1)
                    .skip(cfg.skip as usize)
                    .peekable();
                while positions.peek().is_some() && !stop.load(Ordering::Relaxed) {
                    frames.clear();
                    let done = if pass > 0 {
                        Some(answered.lock().expect("answered set"))
                    } else {
                        None
                    };
                    let excluded = cfg.live_exclusions.snapshot();
                    while frames.len() < batch {
                        let Some(pos) = positions.next() else { break };
                        if pass == 0 {
                            first_pass += 1;
                        }
                        let idx = perm.get(pos);
                        let ip = cfg.targets.get_v4(idx / ports.len() as u64);
                        let port = ports[(idx % ports.len() as u64) as usize];
                        if done
                            .as_ref()
                            .is_some_and(|d| d.contains(&pair_key(ip, port)))
                        {
                            continue;
                        }
                        if !verdict(ip.into(), &excluded).allowed() {
                            if pass == 0 {
                                stats.excluded.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        let mut f = template;
                        frame::fill(&mut f, &cookie, ip, port);
                        frames.push(f);
                    }
                    drop(done);
                    if frames.is_empty() {
                        continue;
                    }
                    pacer.wait_for(frames.len() as u64, stop);
                    // The wait may have been long (a low rate): an opt-out
                    // reloaded meanwhile holds for this batch too.
                    let now_excluded = cfg.live_exclusions.snapshot();
                    if !std::sync::Arc::ptr_eq(&excluded, &now_excluded) {
                        let before = frames.len();
                        frames.retain(|f| {
                            verdict(frame::destination(f).into(), &now_excluded).allowed()
                        });
                        if pass == 0 {
                            stats
                                .excluded
                                .fetch_add((before - frames.len()) as u64, Ordering::Relaxed);
                        }
                        if frames.is_empty() {
                            continue;
                        }
                    }
                    sender.send_all(&frames)?;
                    stats.sent.fetch_add(frames.len() as u64, Ordering::Relaxed);
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Ok(first_pass)
        })();
        // Listen for the answers to the last probes, even after a stop:
        // a resumed run will not probe these pairs again.
        if send_result.is_ok() {
            std::thread::sleep(cfg.cooldown);
        }
        listening.store(false, Ordering::Relaxed);
        let recv_result = recv_thread.join().expect("receive thread");
        let first_pass = send_result?;
        recv_result?;
        let answered = answered.lock().expect("answered set").len() as u64;
        stats
            .timeouts
            .store(first_pass.saturating_sub(answered), Ordering::Relaxed);
        Ok(first_pass)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_grow_with_the_rate() {
        assert_eq!(batch_for(100.0), 1);
        assert_eq!(batch_for(100_000.0), 100);
        assert_eq!(batch_for(10_000_000.0), 256);
        assert_eq!(batch_for(0.0), 64);
    }

    #[test]
    fn the_pacer_holds_the_rate_without_bursts() {
        let stop = AtomicBool::new(false);
        let mut p = Pacer {
            start: Instant::now(),
            rate: 20_000.0,
            sent: 0,
        };
        for _ in 0..1000 {
            p.wait_for(5, &stop);
        }
        // 5,000 packets at 20,000/s: the last batch was due at 4,995/20,000 s
        // (less the 50 µs counted as on time).
        let took = p.start.elapsed().as_secs_f64();
        assert!(took >= 4995.0 / 20_000.0 - 50e-6, "{took}");
    }
}
