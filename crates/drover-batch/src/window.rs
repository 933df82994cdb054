//! `completion_window`: how long a batch may take before it expires.
//!
//! OpenAI accepts only `"24h"`. Here any duration from one second to a year is accepted in the
//! same spelling (`"24h"`, `"90m"`, `"1h 30m"`, `"45s"`), so that short windows can be tested and
//! long jobs need not race a clock they cannot control.

use std::time::Duration;

/// The shortest window accepted.
pub const MIN: Duration = Duration::from_secs(1);
/// The longest window accepted.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a completion window; the error says what is accepted.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!(
            "completion_window {s:?} is not a duration ({e}): use \"24h\" (or e.g. \"90m\", \"7d\")"
        )
    })?;
    if d < MIN || d > MAX {
        return Err(format!(
            "completion_window {s:?} must be between 1s and 365d; \"24h\" is OpenAI's value"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_value_and_other_durations() {
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("90m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse(" 2s ").unwrap(), Duration::from_secs(2));
        assert!(parse("soon").unwrap_err().contains("\"24h\""));
        assert!(parse("0s").unwrap_err().contains("between"));
        assert!(parse("400d").is_err());
    }
}
