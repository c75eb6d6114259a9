//! Time as the audit writes it: RFC 3339 timestamps in UTC with microseconds, and durations
//! for people.

use handover_store::RecordedAt;
use time::OffsetDateTime;

/// Formats a recorded time as RFC 3339 in UTC with exactly six fractional digits, e.g.
/// `2026-11-26T00:30:37.123456Z`. `None` when the time falls outside the years 0000 to 9999,
/// which RFC 3339 cannot write (only a damaged clock or record gets there).
pub fn format_recorded_at(at: RecordedAt) -> Option<String> {
    let nanos = i128::from(at.as_micros()) * 1_000;
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    ))
}

/// The first microsecond of the year 0000, UTC (`0000-01-01T00:00:00.000000Z`).
const RFC3339_FIRST_MICROS: i64 = -62_167_219_200_000_000;

/// The last microsecond of the year 9999, UTC (`9999-12-31T23:59:59.999999Z`).
const RFC3339_LAST_MICROS: i64 = 253_402_300_799_999_999;

/// Whether [`format_recorded_at`] can write `at`: it lies within the years 0000 to 9999. The
/// replay checks every event's time with this, without building the text.
pub(crate) fn is_writable(at: RecordedAt) -> bool {
    (RFC3339_FIRST_MICROS..=RFC3339_LAST_MICROS).contains(&at.as_micros())
}

/// Formats a duration given in microseconds for a person: `0.250s`, `42.5s`, `3m 07s`,
/// `2h 05m 00s`, `3d 04h 10m`. Negative durations (which a sound log never yields) read as
/// zero.
pub fn format_duration(micros: i64) -> String {
    let micros = micros.max(0);
    let seconds = micros / 1_000_000;
    if seconds < 10 {
        return format!("{:.3}s", micros as f64 / 1e6);
    }
    if seconds < 60 {
        return format!("{:.1}s", micros as f64 / 1e6);
    }
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d {hours:02}h {minutes:02}m")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m {secs:02}s")
    } else {
        format!("{minutes}m {secs:02}s")
    }
}

/// Formats a duration given in microseconds in one fixed shape, hours, minutes and seconds
/// to the millisecond: `0:00:09.370`, `0:00:10.200`, `2:05:00.000`, `76:10:00.000`. Figures
/// printed one under the other (`handover audit stats`) then compare at a glance, where
/// [`format_duration`] changes its shape with the size. Negative durations (which a sound log
/// never yields) read as zero.
pub fn format_duration_hms(micros: i64) -> String {
    let millis = micros.max(0) / 1_000;
    let (hours, minutes, seconds, millis) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1_000 % 60,
        millis % 1_000,
    );
    format!("{hours}:{minutes:02}:{seconds:02}.{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_durations_keep_one_shape() {
        assert_eq!(format_duration_hms(9_370_000), "0:00:09.370");
        assert_eq!(format_duration_hms(10_200_000), "0:00:10.200");
        assert_eq!(format_duration_hms(7_500_000_000), "2:05:00.000");
        assert_eq!(format_duration_hms(274_200_000_000), "76:10:00.000");
        assert_eq!(format_duration_hms(-5), "0:00:00.000");
        assert_eq!(format_duration_hms(999), "0:00:00.000");
    }

    #[test]
    fn timestamps_have_six_fractional_digits_in_utc() {
        assert_eq!(
            format_recorded_at(RecordedAt(0)).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        // 2026-11-26T00:30:37.123456Z
        assert_eq!(
            format_recorded_at(RecordedAt(1_795_653_037_123_456)).as_deref(),
            Some("2026-11-26T00:30:37.123456Z")
        );
        assert_eq!(format_recorded_at(RecordedAt(i64::MIN)), None);
    }

    #[test]
    fn writable_times_are_exactly_those_with_a_timestamp() {
        for micros in [
            RFC3339_FIRST_MICROS - 1,
            RFC3339_FIRST_MICROS,
            RFC3339_FIRST_MICROS + 1,
            -1,
            0,
            RFC3339_LAST_MICROS - 1,
            RFC3339_LAST_MICROS,
            RFC3339_LAST_MICROS + 1,
            i64::MIN,
            i64::MAX,
        ] {
            let at = RecordedAt(micros);
            assert_eq!(
                is_writable(at),
                format_recorded_at(at).is_some(),
                "{micros}"
            );
        }
        assert_eq!(
            format_recorded_at(RecordedAt(RFC3339_FIRST_MICROS)).as_deref(),
            Some("0000-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            format_recorded_at(RecordedAt(RFC3339_LAST_MICROS)).as_deref(),
            Some("9999-12-31T23:59:59.999999Z")
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(250_000), "0.250s");
        assert_eq!(format_duration(42_500_000), "42.5s");
        assert_eq!(format_duration(187_000_000), "3m 07s");
        assert_eq!(format_duration(7_500_000_000), "2h 05m 00s");
        assert_eq!(format_duration(-5), "0.000s");
        assert_eq!(
            format_duration(3 * 86_400_000_000 + 4 * 3_600_000_000),
            "3d 04h 00m"
        );
    }
}
