//! RFC 3339 formatting and parsing of capture timestamps.

use std::time::SystemTime;

/// Formats nanoseconds since the epoch as RFC 3339 UTC, with as many
/// fractional digits as the value needs (none, 6 or 9). Times before the
/// epoch are real times too (a pcapng interface offset can put a frame
/// there): each keeps its own date, so distinct buckets never show one start.
///
/// Hand-written (days-to-civil, Howard Hinnant's algorithm) because reports
/// format tens of thousands of stamps and a general formatter was a tenth of
/// the telescope's run time.
pub fn rfc3339(ts_ns: i64) -> String {
    use std::fmt::Write;
    let secs = ts_ns.div_euclid(1_000_000_000);
    let frac = ts_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    let mut out = String::with_capacity(30);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if frac == 0 {
    } else if frac % 1000 == 0 {
        let _ = write!(out, ".{:06}", frac / 1000);
    } else {
        let _ = write!(out, ".{frac:09}");
    }
    out.push('Z');
    out
}

/// Parses RFC 3339 (`2016-10-01T00:00:00Z`, `2016-10-01T09:00:00+09:00`,
/// lower-case `t`/`z` too, or a date `2016-10-01`) into nanoseconds since
/// the epoch; `None` for text that is not such a time, or a time before
/// 1970 or after 2262-04-11 (past an i64 of nanoseconds).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_uppercase();
    if text.len() == 10 {
        return utc(&format!("{text}T00:00:00Z"));
    }
    // A numeric offset (RFC 3339 5.6): the local time minus the offset.
    let b = text.as_bytes();
    if text.len() > 6 && matches!(b[text.len() - 6], b'+' | b'-') && b[text.len() - 3] == b':' {
        let (local, offset) = text.split_at(text.len() - 6);
        let hours: i64 = offset[1..3].parse().ok()?;
        let minutes: i64 = offset[4..6].parse().ok()?;
        if hours > 23 || minutes > 59 || !offset[1..3].bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let shift = sign * (hours * 3600 + minutes * 60) * 1_000_000_000;
        let ns = utc(&format!("{local}Z"))?.checked_sub(shift)?;
        return (ns >= 0).then_some(ns);
    }
    utc(&text)
}

/// RFC 3339 in UTC (`...Z`) to nanoseconds, through humantime.
fn utc(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    // Past 2262-04-11 nanoseconds overflow an i64: refused, not wrapped.
    i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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
        // Offsets and lower case, as RFC 3339 allows.
        assert_eq!(
            parse_rfc3339("2016-10-01T09:00:00+09:00"),
            Some(1_475_280_000_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2016-09-30t20:30:00-03:30"),
            Some(1_475_280_000_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2016-10-01t00:00:00z"),
            Some(1_475_280_000_000_000_000)
        );
        assert_eq!(parse_rfc3339("2016-10-01T00:00:00+24:00"), None);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+01:00"), None);
        assert_eq!(
            rfc3339(1_475_280_000_000_000_007),
            "2016-10-01T00:00:00.000000007Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-5), "1969-12-31T23:59:59.999999995Z");
        assert_eq!(rfc3339(-86_400_000_000_000), "1969-12-31T00:00:00Z");
        assert_eq!(rfc3339(-2_208_988_800_000_000_000), "1900-01-01T00:00:00Z");
    }

    #[test]
    fn agrees_with_humantime_across_centuries() {
        let mut t: i64 = 0;
        while t < 8_000_000_000 {
            let ns = t * 1_000_000_000 + (t % 7) * 1000;
            let st = UNIX_EPOCH + Duration::from_nanos(ns as u64);
            let want = if ns % 1_000_000_000 == 0 {
                humantime::format_rfc3339_seconds(st).to_string()
            } else {
                humantime::format_rfc3339_micros(st).to_string()
            };
            assert_eq!(rfc3339(ns), want);
            t += 86_399 * 17 + 3_601;
        }
    }
}
