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

/// RFC 3339 (UTC, millisecond precision) for a stored instant.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Saturating conversion of a duration to milliseconds for arithmetic on stored instants.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
