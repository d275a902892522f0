//! Dates as the catalog's text output shows them: ISO 8601, UTC.

/// `2026-01-05T10:22:01Z` for unix seconds `secs` (the number itself if
/// it is out of range).
pub fn iso8601(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => secs.to_string(),
    }
}

/// `2026-01-05T10:22Z`: the same to the minute, for tables.
pub fn iso8601_minutes(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%MZ").to_string(),
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_8601_in_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_767_608_521), "2026-01-05T10:22:01Z");
        assert_eq!(iso8601_minutes(1_767_608_521), "2026-01-05T10:22Z");
        assert_eq!(iso8601(i64::MAX), i64::MAX.to_string());
    }
}
