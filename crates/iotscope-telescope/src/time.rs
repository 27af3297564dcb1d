//! RFC 3339 formatting and parsing of capture timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats nanoseconds since the epoch as RFC 3339 UTC, with as many
/// fractional digits as the value needs (none, 6 or 9).
pub fn rfc3339(ts_ns: i64) -> String {
    let ts_ns = ts_ns.max(0) as u64;
    let t = UNIX_EPOCH + Duration::from_nanos(ts_ns);
    if ts_ns % 1_000_000_000 == 0 {
        humantime::format_rfc3339_seconds(t).to_string()
    } else if ts_ns % 1000 == 0 {
        humantime::format_rfc3339_micros(t).to_string()
    } else {
        humantime::format_rfc3339_nanos(t).to_string()
    }
}

/// Parses RFC 3339 (`2016-10-01T00:00:00Z`, or a date `2016-10-01`) into
/// nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let t = humantime::parse_rfc3339_weak(&full).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(1_475_280_000_000_000_000), "2016-10-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_475_280_000_000_001_000),
            "2016-10-01T00:00:00.000001Z"
        );
        assert_eq!(
            parse_rfc3339("2016-10-01T00:00:00Z"),
            Some(1_475_280_000_000_000_000)
        );
        assert_eq!(parse_rfc3339("2016-10-01"), Some(1_475_280_000_000_000_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
