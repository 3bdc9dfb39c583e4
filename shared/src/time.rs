//! Instants as unix microseconds, and their TOML form (UTC datetimes).
//!
//! django-otp keeps throttling timestamps as datetimes with microseconds and
//! compares `now - timestamp` in floating point. Keeping microseconds (not
//! whole seconds) makes `1700000001.5 - 1700000001.0 < 1` come out exactly
//! as it does there.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use toml_datetime::{Date, Datetime, Offset, Time};

const MICROS: i64 = 1_000_000;

/// An instant: microseconds since the unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(MICROS))
    }

    /// From microseconds.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// From fractional seconds (e.g. the vectors' `1700000001.5`), rounded to
    /// the nearest microsecond.
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1e6).round() as i64)
    }

    /// The clock now. Only the edges (module, CLI) call this.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded towards minus infinity (`int(time.time())` for
    /// any instant after 1970).
    pub const fn secs_floor(self) -> i64 {
        self.0.div_euclid(MICROS)
    }

    /// This instant plus `secs` seconds (saturating).
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(MICROS)))
    }

    /// `self - earlier` in microseconds (saturating).
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The TOML offset datetime in UTC (`2026-11-28T06:13:19Z`, with a
    /// fraction only when there is one).
    pub fn to_toml(self) -> Datetime {
        let secs = self.0.div_euclid(MICROS);
        let micros = self.0.rem_euclid(MICROS);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        Datetime {
            date: Some(Date {
                year: u16::try_from(y.clamp(0, 9999)).unwrap_or(9999),
                month: m,
                day: d,
            }),
            time: Some(Time {
                hour: (sod / 3600) as u8,
                minute: (sod % 3600 / 60) as u8,
                second: Some((sod % 60) as u8),
                nanosecond: (micros != 0).then_some((micros * 1000) as u32),
            }),
            offset: Some(Offset::Z),
        }
    }

    /// Reads a TOML offset datetime. Local datetimes (no offset) are refused:
    /// an instant must say which time zone it is in.
    pub fn from_toml(dt: &Datetime) -> Result<Self, String> {
        let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
            return Err(format!(
                "`{dt}` is not a date-time with an offset; write UTC, e.g. 2026-11-28T06:13:19Z"
            ));
        };
        let days = days_from_civil(i64::from(date.year), date.month, date.day);
        let secs = days * 86_400
            + i64::from(time.hour) * 3600
            + i64::from(time.minute) * 60
            + i64::from(time.second.unwrap_or(0));
        let offset_secs = match offset {
            Offset::Z => 0,
            Offset::Custom { minutes } => i64::from(minutes) * 60,
        };
        let micros = i64::from(time.nanosecond.unwrap_or(0) / 1000);
        Ok(Timestamp((secs - offset_secs) * MICROS + micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_toml())
    }
}

// Howard Hinnant's algorithms, proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn whole_seconds_are_written_without_a_fraction() {
        assert_eq!(
            Timestamp::from_secs(1_700_000_000).to_string(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(Timestamp::from_secs(0).to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn microseconds_survive_a_round_trip_through_toml() {
        for micros in [0, 1, 999_999, 1_700_000_001_500_000, 4_102_444_800_000_001] {
            let t = Timestamp::from_micros(micros);
            let text = t.to_string();
            let parsed: Datetime = text.parse().unwrap();
            assert_eq!(Timestamp::from_toml(&parsed).unwrap(), t, "{text}");
        }
    }

    #[test]
    fn offsets_are_converted_to_utc_and_local_times_refused() {
        let dt: Datetime = "2023-11-15T00:13:20+02:00".parse().unwrap();
        assert_eq!(
            Timestamp::from_toml(&dt).unwrap(),
            Timestamp::from_secs(1_700_000_000)
        );
        let local: Datetime = "2023-11-15T00:13:20".parse().unwrap();
        assert!(Timestamp::from_toml(&local).is_err());
    }
}
