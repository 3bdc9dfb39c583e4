//! Instants as unix microseconds, and their TOML form (UTC datetimes).
//!
//! django-otp keeps throttling timestamps as datetimes with microseconds and
//! compares `now - timestamp` in floating point. Keeping microseconds (not
//! whole seconds) makes `1700000001.5 - 1700000001.0 < 1` come out exactly
//! as it does there.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// fraction only when there is one, trailing zeros dropped).
    pub fn to_toml(self) -> String {
        let secs = self.0.div_euclid(MICROS);
        let micros = self.0.rem_euclid(MICROS);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        // Digits written by hand: every save writes several of these, and
        // `format!` cost more than the rest of the serialising.
        let mut out = String::with_capacity(28);
        push_digits(&mut out, y.clamp(0, 9999), 4);
        out.push('-');
        push_digits(&mut out, i64::from(m), 2);
        out.push('-');
        push_digits(&mut out, i64::from(d), 2);
        out.push('T');
        push_digits(&mut out, sod / 3600, 2);
        out.push(':');
        push_digits(&mut out, sod % 3600 / 60, 2);
        out.push(':');
        push_digits(&mut out, sod % 60, 2);
        if micros != 0 {
            let (mut fraction, mut width) = (micros, 6);
            while fraction % 10 == 0 {
                fraction /= 10;
                width -= 1;
            }
            out.push('.');
            push_digits(&mut out, fraction, width);
        }
        out.push('Z');
        out
    }

    /// Reads a TOML offset datetime as the TOML parser shows it (RFC 3339:
    /// `2026-11-28T06:13:19.5+02:00`; seconds may be left out, as TOML 1.1
    /// allows). Local datetimes, dates and times (no offset) are refused:
    /// an instant must say which time zone it is in. Digits past the
    /// microsecond are dropped.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        parse_offset_datetime(text.as_bytes()).ok_or_else(|| {
            format!(
                "`{}` is not a date-time with an offset; write UTC, e.g. 2026-11-28T06:13:19Z",
                text.escape_debug()
            )
        })
    }
}

/// `YYYY-MM-DD[Tt ]HH:MM[:SS[.F+]](Z|z|[+-]HH:MM)`; `None` for anything
/// else, or a field out of range.
fn parse_offset_datetime(b: &[u8]) -> Option<Timestamp> {
    let mut p = Cursor { b, at: 0 };
    let year = p.digits(4)?;
    p.byte(b'-')?;
    let month = p.digits(2)?;
    p.byte(b'-')?;
    let day = p.digits(2)?;
    match p.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = p.digits(2)?;
    p.byte(b':')?;
    let minute = p.digits(2)?;
    let mut second = 0;
    let mut micros = 0;
    if p.peek() == Some(b':') {
        p.at += 1;
        second = p.digits(2)?;
        if p.peek() == Some(b'.') {
            p.at += 1;
            let start = p.at;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                if p.at - start < 6 {
                    micros = micros * 10 + i64::from(b[p.at] - b'0');
                }
                p.at += 1;
            }
            let n = p.at - start;
            if n == 0 {
                return None;
            }
            micros *= 10_i64.pow(6 - n.min(6) as u32);
        }
    }
    let offset_secs = match p.next()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let h = p.digits(2)?;
            p.byte(b':')?;
            let m = p.digits(2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    // 60: a leap second, which TOML allows; counted as the next second.
    if p.at != b.len() || day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month as u8, day as u8);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(Timestamp((secs - offset_secs) * MICROS + micros))
}

/// A position in the bytes of a datetime.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v = 0;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_toml())
    }
}

/// Appends the last `width` decimal digits of `n` (not negative), zero-padded.
fn push_digits(out: &mut String, n: i64, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10_i64.pow(i) % 10) as u8));
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
        assert_eq!(
            Timestamp::from_micros(1).to_string(),
            "1970-01-01T00:00:00.000001Z"
        );
        assert_eq!(
            Timestamp::from_micros(4_102_444_799_000_120).to_string(),
            "2099-12-31T23:59:59.00012Z"
        );
        assert_eq!(Timestamp::from_secs(-1).to_string(), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn microseconds_survive_a_round_trip_through_the_text() {
        for micros in [
            0,
            1,
            10,
            999_999,
            1_700_000_001_500_000,
            4_102_444_800_000_001,
        ] {
            let t = Timestamp::from_micros(micros);
            let text = t.to_string();
            assert_eq!(Timestamp::from_toml(&text).unwrap(), t, "{text}");
        }
        assert_eq!(
            Timestamp::from_micros(1_700_000_001_500_000).to_string(),
            "2023-11-14T22:13:21.5Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc_and_local_times_refused() {
        assert_eq!(
            Timestamp::from_toml("2023-11-15T00:13:20+02:00").unwrap(),
            Timestamp::from_secs(1_700_000_000)
        );
        assert_eq!(
            Timestamp::from_toml("2023-11-14T17:43:20-04:30").unwrap(),
            Timestamp::from_secs(1_700_000_000)
        );
        for local in ["2023-11-15T00:13:20", "2023-11-15", "00:13:20", ""] {
            let e = Timestamp::from_toml(local).unwrap_err();
            assert!(e.contains("not a date-time with an offset"), "{e}");
        }
    }

    #[test]
    fn the_forms_toml_allows_are_read_and_malformed_ones_refused() {
        let t = Timestamp::from_secs(1_700_000_000);
        for text in [
            "2023-11-14T22:13:20Z",
            "2023-11-14t22:13:20z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20.000Z",
            "2023-11-14T22:13:20.0000009Z",
        ] {
            assert_eq!(Timestamp::from_toml(text).unwrap(), t, "{text}");
        }
        assert_eq!(
            Timestamp::from_toml("2023-11-14T22:13Z").unwrap(),
            Timestamp::from_secs(1_700_000_000 - 20)
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20Zjunk",
            "2023-11-14T22:13:20+2:00",
            "23-11-14T22:13:20Z",
        ] {
            assert!(Timestamp::from_toml(bad).is_err(), "{bad}");
        }
        assert!(Timestamp::from_toml("2024-02-29T00:00:00Z").is_ok());
    }
}
