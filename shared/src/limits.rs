//! Every validation range, in one place (docs/design.md §3, §5): the device
//! file, the settings file, the module arguments and totp-enroll's flags all
//! check against these.

use std::ops::RangeInclusive;

/// Seconds per time step.
pub const STEP: RangeInclusive<i64> = 1..=3600;
/// Steps accepted either side of the expected one.
pub const TOLERANCE: RangeInclusive<i64> = 0..=10;
/// Code lengths.
pub const DIGITS: [u32; 2] = [6, 8];
/// `throttle_factor` (and `static_throttle_factor`), seconds.
pub const THROTTLE_FACTOR: RangeInclusive<i64> = 0..=86_400;

/// Whether `n` is a code length.
pub fn is_digits(n: i64) -> bool {
    DIGITS.iter().any(|d| i64::from(*d) == n)
}
