//! Time as the contract shows it: UTC, millisecond precision, RFC 3339 with `Z`.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// Drops sub-millisecond digits. Both storage backends keep more precision than
/// the API shows; truncating once, here, makes what is stored equal what is read.
pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    at.with_nanosecond(nanos - nanos % 1_000_000).unwrap_or(at)
}

/// `2040-01-01T00:00:00.000Z`.
pub fn format_millis(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether an instant can be written as the contract's RFC 3339 text: its UTC
/// year must have four digits (0000–9999), or it could not be read back.
pub fn representable(at: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&at.year())
}

/// Parses an RFC 3339 date-time that carries an explicit UTC offset, converts it
/// to UTC and truncates it to milliseconds. Returns `None` for anything else:
/// date-only strings, impossible dates, a missing offset (which Unleash would
/// silently read in server-local time), leap seconds (which neither storage
/// backend can represent) and offsets that push the instant out of years
/// 0000–9999 (`9999-12-31T23:59:59-23:59` is in year 10000 in UTC).
pub fn parse_offset_date_time(text: &str) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    if parsed.nanosecond() >= 1_000_000_000 {
        return None;
    }
    Some(truncate_to_millis(parsed.with_timezone(&Utc))).filter(representable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn offsets_are_converted_to_utc_and_truncated_to_millis() {
        let at = parse_offset_date_time("2030-06-01T12:00:00.123456+02:00").unwrap();
        assert_eq!(format_millis(&at), "2030-06-01T10:00:00.123Z");
    }

    #[test]
    fn zulu_is_accepted() {
        let at = parse_offset_date_time("2040-01-01T00:00:00Z").unwrap();
        assert_eq!(at, Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(format_millis(&at), "2040-01-01T00:00:00.000Z");
    }

    #[test]
    fn rejects_what_the_contract_rejects() {
        for bad in [
            "banana",
            "2030-01-01",
            "2030-02-30T00:00:00Z",
            "2030-01-01T25:00:00Z",
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00.000",
            "2016-12-31T23:59:60Z",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+00:01",
            "",
        ] {
            assert_eq!(
                parse_offset_date_time(bad),
                None,
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn every_accepted_instant_formats_back_to_what_parses() {
        for text in [
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59+23:59",
        ] {
            let at = parse_offset_date_time(text).unwrap();
            assert_eq!(
                parse_offset_date_time(&format_millis(&at)),
                Some(at),
                "{text}"
            );
        }
    }

    #[test]
    fn truncation_keeps_whole_milliseconds() {
        let at = Utc.timestamp_opt(1_700_000_000, 987_654_321).unwrap();
        assert_eq!(truncate_to_millis(at).nanosecond(), 987_000_000);
    }
}
