//! Wall-clock helpers: the store keeps instants as unix milliseconds; the API shows RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, as stored in the database.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the unix epoch, as used in request signatures.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// The last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
const LAST_RFC3339_MS: i64 = 253_402_300_799_999;

/// RFC 3339 (UTC, millisecond precision) for a stored instant; instants outside years
/// 1970–9999 are shown as the nearest one inside (a four-digit year is all the format has).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.clamp(0, LAST_RFC3339_MS) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Saturating conversion of a duration to milliseconds for arithmetic on stored instants.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_rfc3339_even_at_the_edges() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_765_000_000_123), "2025-12-06T05:46:40.123Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
        // "Never expires" is stored as the largest instant: shown, not a panic.
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
