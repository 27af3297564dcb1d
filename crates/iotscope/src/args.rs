//! Value parsers for flags whose range matters: a duration outside what a
//! run can keep (a timeout of 0 or of a century, a span that overflows a
//! clock) is a clear error at the command line, not a panic or a hang later.

use std::time::Duration;

fn bounded(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    if d < min || d > max {
        return Err(format!(
            "{text:?} is outside {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// A network timeout: 10 ms to 10 minutes.
pub fn timeout(text: &str) -> Result<Duration, String> {
    bounded(text, Duration::from_millis(10), Duration::from_secs(600))
}

/// An age or span in the data: 0 to 100 years.
pub fn span(text: &str) -> Result<Duration, String> {
    bounded(
        text,
        Duration::ZERO,
        Duration::from_secs(100 * 365 * 86_400),
    )
}

/// How long a process runs: 1 second to 30 days.
pub fn run_time(text: &str) -> Result<Duration, String> {
    bounded(
        text,
        Duration::from_secs(1),
        Duration::from_secs(30 * 86_400),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_outside_their_range_are_errors() {
        assert_eq!(timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(timeout("0s").is_err());
        assert!(timeout("1h").is_err());
        assert!(timeout("99999999999999999999s").is_err());
        assert!(timeout("nan").is_err());
        assert_eq!(span("0s"), Ok(Duration::ZERO));
        assert!(span("200y").is_err());
        assert!(run_time("0s").is_err());
        assert!(run_time("31d").is_err());
    }
}
