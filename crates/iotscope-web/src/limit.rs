//! A per-address request limit: a fixed one-minute window per client
//! address, cheap enough for the self-check page's thousands of requests a
//! second, and bounded in memory (old windows are dropped as it grows).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before old windows are swept.
const SWEEP_AT: usize = 100_000;

pub(crate) struct PerAddress {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl PerAddress {
    pub(crate) fn new(per_minute: u32) -> PerAddress {
        PerAddress {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Ok, or the seconds to wait before asking again.
    pub(crate) fn admit(&self, addr: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() >= SWEEP_AT {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = w.entry(addr).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count >= self.per_minute {
            let wait = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_allowance() {
        let l = PerAddress::new(3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit(a).is_ok());
        }
        let wait = l.admit(a).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.admit(b).is_ok());
        let unlimited = PerAddress::new(0);
        for _ in 0..1000 {
            assert!(unlimited.admit(a).is_ok());
        }
    }
}
