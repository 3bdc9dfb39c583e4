//! django-otp's `TOTPDevice` verification, made exact (docs/design.md §4).
//!
//! Everything here is a pure function of `(device, input, now, policy)`:
//! no clock, no I/O. [`verify`] gives the verdict and the device's new state;
//! [`verify_login`] applies the several-devices rule to a whole file.

use crate::backup;
use crate::device::{Device, DeviceFile};
use crate::oath::{hotp_value, time_step};
use crate::secret::{constant_time_eq, normalize_code};
use crate::time::Timestamp;

/// django-otp's `MAX_THROTTLE_DELAY_SECONDS` (100 years).
pub const MAX_THROTTLE_DELAY_SECS: i64 = 3_153_600_000;

/// The settings that change verification (`OTP_TOTP_SYNC`,
/// `OTP_TOTP_THROTTLE_FACTOR`, `OTP_STATIC_THROTTLE_FACTOR`, and `throttle_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Learn the device's drift from accepted codes.
    pub sync: bool,
    /// Seconds of the first throttle delay; 0 never blocks.
    pub throttle_factor: u32,
    /// The same for the backup-code set (its own factor, as in django-otp).
    pub static_throttle_factor: u32,
    /// The longest one throttle delay may be, in seconds (`throttle_max`);
    /// `None`: django-otp's own cap, [`MAX_THROTTLE_DELAY_SECS`]. A cap
    /// bounds how long whoever knows the first factor can keep the real
    /// user out (docs/design.md §5).
    pub throttle_max: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            sync: true,
            throttle_factor: 1,
            static_throttle_factor: 1,
            throttle_max: None,
        }
    }
}

impl Policy {
    /// The delay after `count` consecutive failures under this policy:
    /// [`throttle_delay_secs`], capped at `throttle_max`.
    pub fn delay_secs(&self, count: u32) -> i64 {
        self.capped(throttle_delay_secs(count, self.throttle_factor))
    }

    /// The same for the backup-code set, with its own factor and the same
    /// cap.
    pub fn static_delay_secs(&self, count: u32) -> i64 {
        self.capped(throttle_delay_secs(count, self.static_throttle_factor))
    }

    fn capped(&self, delay: i64) -> i64 {
        match self.throttle_max {
            Some(max) => delay.min(i64::from(max)),
            None => delay,
        }
    }
}

/// Why a code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not exactly `digits` digits after trimming and dropping spaces.
    Malformed,
    /// No step in the window has this code.
    Wrong,
    /// The code belongs to a step at or before `last_t`: already used, or
    /// older than one that was.
    Replayed,
}

/// The outcome of one attempt on one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The code matched time step `step`, at `offset` steps from now+drift.
    Accepted {
        /// The matched time step (the new `last_t`).
        step: i64,
        /// Offset from the centre of the window.
        offset: i32,
    },
    /// The device is blocked until `until`; nothing was checked or changed.
    Throttled {
        /// When the next attempt is allowed.
        until: Timestamp,
    },
    /// The code was refused; the failure is recorded.
    Rejected(Rejection),
}

/// The throttle delay after `count` consecutive failures, in seconds:
/// `min(factor * 2^(count-1), MAX_THROTTLE_DELAY_SECS)`; 0 when not throttling.
pub fn throttle_delay_secs(count: u32, factor: u32) -> i64 {
    if factor == 0 || count == 0 {
        return 0;
    }
    let exp = count - 1;
    if exp >= 40 {
        return MAX_THROTTLE_DELAY_SECS;
    }
    let delay = u128::from(factor) << exp;
    i64::try_from(delay)
        .unwrap_or(MAX_THROTTLE_DELAY_SECS)
        .min(MAX_THROTTLE_DELAY_SECS)
}

/// When the device is blocked at `now`: `Some(until)`, else `None`
/// (django-otp's `verify_is_allowed`).
pub fn throttled_until(device: &Device, now: Timestamp, policy: &Policy) -> Option<Timestamp> {
    let delay = policy.delay_secs(device.throttling_failure_count);
    if delay == 0 {
        return None;
    }
    let until = device.throttling_failure_timestamp?.plus_secs(delay);
    (now < until).then_some(until)
}

/// The time step at the centre of the device's window at `now`.
pub fn current_step(device: &Device, now: Timestamp) -> i64 {
    time_step(
        now.secs_floor(),
        device.t0,
        device.step,
        i64::from(device.drift),
    )
}

/// Checks `input` against one device at `now`. Pure: the state change is
/// [`apply`].
pub fn check(device: &Device, input: &str, now: Timestamp, policy: &Policy) -> Verdict {
    if let Some(until) = throttled_until(device, now, policy) {
        return Verdict::Throttled { until };
    }
    let Some(code) = normalize_code(input, device.digits) else {
        return Verdict::Rejected(Rejection::Malformed);
    };
    let centre = current_step(device, now);
    let tolerance = i64::from(device.tolerance);
    let min_t = device.last_t.saturating_add(1);
    let matches = |t: i64| code_matches(device, t, &code);
    for offset in -tolerance..=tolerance {
        let t = centre.saturating_add(offset);
        if t < min_t {
            continue; // replay guard: never hashed, never accepted
        }
        if matches(t) {
            return Verdict::Accepted {
                step: t,
                offset: offset as i32,
            };
        }
    }
    // Only to tell a replay from a wrong code in the log; the outcome is the
    // same failure either way.
    let replayed = (-tolerance..=tolerance)
        .map(|o| centre.saturating_add(o))
        .any(|t| t >= 0 && t < min_t && matches(t));
    Verdict::Rejected(if replayed {
        Rejection::Replayed
    } else {
        Rejection::Wrong
    })
}

/// The device's state after `verdict` at `now` (docs/design.md §4, steps 4 and 5).
pub fn apply(device: &Device, verdict: &Verdict, now: Timestamp, policy: &Policy) -> Device {
    let mut next = device.clone();
    match *verdict {
        Verdict::Accepted { step, offset } => {
            next.last_t = step;
            if policy.sync {
                next.drift = i16::try_from(i32::from(device.drift).saturating_add(offset))
                    .unwrap_or(device.drift);
            }
            next.throttling_failure_count = 0;
            next.throttling_failure_timestamp = None;
            next.last_used_at = Some(now);
        }
        Verdict::Rejected(_) => {
            next.throttling_failure_count = device.throttling_failure_count.saturating_add(1);
            next.throttling_failure_timestamp = Some(now);
        }
        Verdict::Throttled { .. } => {}
    }
    next
}

/// [`check`] then [`apply`]: the verdict and the new state.
pub fn verify(device: &Device, input: &str, now: Timestamp, policy: &Policy) -> (Verdict, Device) {
    let verdict = check(device, input, now, policy);
    let next = apply(device, &verdict, now, policy);
    (verdict, next)
}

/// Whether a login can be attempted at all, decided before prompting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The file has no confirmed device.
    NoDevice,
    /// Every confirmed device is throttled; the earliest is free at `until`.
    AllThrottled {
        /// When the first device becomes usable again.
        until: Timestamp,
    },
    /// At least one confirmed device can take a code.
    Ready,
}

/// [`Readiness`] of a file at `now`.
pub fn readiness(file: &DeviceFile, now: Timestamp, policy: &Policy) -> Readiness {
    let mut earliest: Option<Timestamp> = None;
    for d in file.devices.iter().filter(|d| d.confirmed) {
        match throttled_until(d, now, policy) {
            None => return Readiness::Ready,
            Some(u) => earliest = Some(earliest.map_or(u, |e| e.min(u))),
        }
    }
    if let Some(set) = file.confirmed_backup() {
        match backup::throttled_until(set, now, policy) {
            None => return Readiness::Ready,
            Some(u) => earliest = Some(earliest.map_or(u, |e| e.min(u))),
        }
    }
    match earliest {
        None => Readiness::NoDevice,
        Some(until) => Readiness::AllThrottled { until },
    }
}

/// The outcome of a login attempt over all devices of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// Device `index` (file order) accepted the code.
    Accepted {
        /// Index of the device in the file.
        index: usize,
        /// Matched step.
        step: i64,
        /// Offset within the window.
        offset: i32,
        /// The device's name, for the caller's log.
        device: String,
        /// The device's drift after the login.
        drift: i16,
    },
    /// A backup code was accepted and removed from the set.
    BackupCode {
        /// Codes left in the set after this one.
        remaining: usize,
    },
    /// No device accepted; each tried device recorded a failure.
    Rejected {
        /// `Replayed` if any device saw a replay, `Malformed` if the code
        /// fitted no device's format, else `Wrong`.
        reason: Rejection,
        /// How many devices were tried.
        tried: usize,
    },
    /// Every confirmed device is throttled; nothing changed.
    AllThrottled {
        /// When the first device becomes usable again.
        until: Timestamp,
    },
    /// No confirmed device.
    NoDevice,
}

/// The several-devices rule (docs/design.md §4): the code is tried against every
/// confirmed, non-throttled device in file order; the first that accepts is
/// updated and no other records a failure; if none accepts, every tried
/// device records a failure. Throttled devices are untouched. Devices with
/// the same key and algorithm show the same code (or its last digits) for
/// the same counter, so each is checked against the highest `last_t` among
/// them: a code is accepted once, not once per copy of the secret.
pub fn verify_login(
    file: &DeviceFile,
    input: &str,
    now: Timestamp,
    policy: &Policy,
) -> (Login, DeviceFile) {
    match readiness(file, now, policy) {
        Readiness::NoDevice => return (Login::NoDevice, file.clone()),
        Readiness::AllThrottled { until } => return (Login::AllThrottled { until }, file.clone()),
        Readiness::Ready => {}
    }
    let mut verdicts: Vec<(usize, Verdict)> = Vec::with_capacity(file.devices.len());
    for (index, device) in file.devices.iter().enumerate() {
        if !device.confirmed {
            continue;
        }
        // Twins (the same key and algorithm: the same HMAC for the same
        // counter, and a 6-digit code is the tail of the 8-digit one) share
        // replay protection: a counter one of them took is used for all of
        // them. The device file refuses one key under two clocks (step,
        // t0), so their `last_t` count the same steps (docs/design.md §4).
        let twins_last_t = file
            .devices
            .iter()
            .filter(|d| d.key == device.key && d.algorithm == device.algorithm)
            .map(|d| d.last_t)
            .max()
            .unwrap_or(device.last_t);
        let verdict = if twins_last_t > device.last_t {
            let mut guarded = device.clone();
            guarded.last_t = twins_last_t;
            check(&guarded, input, now, policy)
        } else {
            check(device, input, now, policy)
        };
        if let Verdict::Accepted { step, offset } = verdict {
            let mut next = file.clone();
            let updated = apply(device, &verdict, now, policy);
            let login = Login::Accepted {
                index,
                step,
                offset,
                device: updated.name.clone(),
                drift: updated.drift,
            };
            next.devices[index] = updated;
            return (login, next);
        }
        verdicts.push((index, verdict));
    }
    // After every TOTP device: the backup-code set (docs/design.md §4).
    let backup_verdict = match try_backup(file, input, now, policy) {
        Ok(accepted) => return accepted,
        Err(verdict) => verdict,
    };
    let mut next = file.clone();
    let mut tried = 0;
    let mut reason = Rejection::Malformed;
    if let (Some(set), Some(verdict @ backup::Verdict::Rejected(r))) =
        (file.confirmed_backup(), backup_verdict)
    {
        tried += 1;
        reason = r;
        next.backup = Some(backup::apply(set, &verdict, now));
    }
    for (index, verdict) in &verdicts {
        if let Verdict::Rejected(r) = verdict {
            tried += 1;
            reason = match (reason, r) {
                (_, Rejection::Replayed) | (Rejection::Replayed, _) => Rejection::Replayed,
                (_, Rejection::Wrong) | (Rejection::Wrong, _) => Rejection::Wrong,
                _ => Rejection::Malformed,
            };
            next.devices[*index] = apply(&file.devices[*index], verdict, now, policy);
        }
    }
    (Login::Rejected { reason, tried }, next)
}

/// The backup-code set's turn in [`verify_login`]: `Ok` with the login and
/// the new state when a code matched (the code is removed in that state),
/// else `Err` with the set's verdict (`None`: no confirmed set).
fn try_backup(
    file: &DeviceFile,
    input: &str,
    now: Timestamp,
    policy: &Policy,
) -> Result<(Login, DeviceFile), Option<backup::Verdict>> {
    let Some(set) = file.confirmed_backup() else {
        return Err(None);
    };
    let verdict = backup::check(set, input, now, policy);
    if !matches!(verdict, backup::Verdict::Accepted { .. }) {
        return Err(Some(verdict));
    }
    let updated = backup::apply(set, &verdict, now);
    let login = Login::BackupCode {
        remaining: updated.remaining(),
    };
    let mut next = file.clone();
    next.backup = Some(updated);
    Ok((login, next))
}

/// How many steps beyond the tolerance window [`skew`] looks, either way:
/// 10 steps of 30 s is five minutes, more than any phone clock that still
/// shows the right day is usually off, yet few enough hashes (20) that a
/// wrong code matches one of them by chance once in about 50 000 failures.
pub const SKEW_STEPS: u32 = 10;

/// Where a code lies: the step it belongs to, relative to the centre of the
/// device's window (now + drift). Diagnosis only: nothing is accepted here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// The matched time step.
    pub step: i64,
    /// Steps from the centre of the window (positive: the device is ahead).
    pub offset: i64,
}

impl Located {
    /// How far the device's clock is from ours, in seconds: the learnt
    /// drift plus this offset, times the step.
    pub fn clock_secs(&self, device: &Device) -> i64 {
        (i64::from(device.drift) + self.offset).saturating_mul(i64::from(device.step))
    }

    /// Inside the window the module accepts from (`|offset| <= tolerance`).
    pub fn in_window(&self, device: &Device) -> bool {
        self.offset.unsigned_abs() <= u64::from(device.tolerance)
    }

    /// Already used: at or before the device's `last_t`.
    pub fn used(&self, device: &Device) -> bool {
        self.step <= device.last_t
    }

    /// One sentence for people and logs, e.g. "code matches step +2: the
    /// device's clock is about 60 s ahead".
    pub fn describe(&self, device: &Device) -> String {
        let secs = self.clock_secs(device);
        let clock = match secs {
            0 => "the device's clock agrees with this host's".to_owned(),
            s if s > 0 => format!("the device's clock is about {s} s ahead"),
            s => format!("the device's clock is about {} s behind", s.unsigned_abs()),
        };
        format!("code matches step {:+}: {clock}", self.offset)
    }
}

/// The step of `input` within `reach` steps either way of the centre of the
/// device's window at `now`, nearest first (0, -1, +1, -2, ...): `None` when
/// no step there has this code. Pure and read-only: it ignores `last_t` and
/// the throttle, and neither counts a failure nor accepts anything.
pub fn locate(device: &Device, input: &str, now: Timestamp, reach: u32) -> Option<Located> {
    let code = normalize_code(input, device.digits)?;
    let centre = current_step(device, now);
    let reach = i64::from(reach);
    (0..=reach)
        .flat_map(|d| if d == 0 { vec![0] } else { vec![-d, d] })
        .map(|offset| (offset, centre.saturating_add(offset)))
        .find(|&(_, t)| code_matches(device, t, &code))
        .map(|(offset, step)| Located { step, offset })
}

/// Why a refused code was refused, for the log: a code that belongs to a
/// step outside the window, not yet used, at most [`SKEW_STEPS`] beyond it.
/// Never a reason to accept.
pub fn skew(device: &Device, input: &str, now: Timestamp) -> Option<Located> {
    locate(
        device,
        input,
        now,
        device.tolerance.saturating_add(SKEW_STEPS),
    )
    .filter(|l| !l.in_window(device) && !l.used(device))
}

/// Whether the device shows `code` (already normalised) at step `t`, in
/// constant time and without allocating. A step before 0 or an OATH error
/// never matches.
fn code_matches(device: &Device, t: i64, code: &[u8]) -> bool {
    let Ok(counter) = u64::try_from(t) else {
        return false;
    };
    let Some(value) = hotp_value(
        device.algorithm,
        device.key.expose(),
        counter,
        device.digits,
    ) else {
        return false;
    };
    let mut buf = [0u8; 10];
    let len = (device.digits as usize).min(buf.len());
    let mut v = value;
    for slot in buf[..len].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    constant_time_eq(&buf[..len], code)
}

#[cfg(test)]
mod skew_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::device::Params;
    use crate::secret::Secret;

    const NOW: i64 = 1_700_000_000;

    fn phone() -> Device {
        let key = Secret::from_hex("3132333435363738393031323334353637383930").unwrap();
        Device::new("phone", key, &Params::default(), Timestamp::from_secs(0))
    }

    fn code(device: &Device, t: i64) -> String {
        let v = hotp_value(
            device.algorithm,
            device.key.expose(),
            t as u64,
            device.digits,
        )
        .unwrap();
        format!("{v:06}")
    }

    #[test]
    fn a_phone_60_seconds_ahead_is_diagnosed_as_step_plus_2_and_60_s() {
        let d = phone();
        let now = Timestamp::from_secs(NOW);
        let ahead = code(&d, current_step(&d, now) + 2);
        let found = skew(&d, &ahead, now).unwrap();
        assert_eq!(found.offset, 2);
        assert_eq!(
            found.describe(&d),
            "code matches step +2: the device's clock is about 60 s ahead"
        );
        // ... and the module's own check still refuses it.
        assert_eq!(
            check(&d, &ahead, now, &Policy::default()),
            Verdict::Rejected(Rejection::Wrong)
        );
    }

    #[test]
    fn a_phone_behind_is_reported_behind_and_drift_counts_in_the_seconds() {
        let mut d = phone();
        let now = Timestamp::from_secs(NOW);
        let behind = code(&d, current_step(&d, now) - 3);
        let found = skew(&d, &behind, now).unwrap();
        assert_eq!(found.offset, -3);
        assert!(found.describe(&d).ends_with("about 90 s behind"));
        d.drift = 1;
        let centre = current_step(&d, now);
        let found = skew(&d, &code(&d, centre + 2), now).unwrap();
        assert_eq!(found.clock_secs(&d), 90);
    }

    #[test]
    fn codes_inside_the_window_used_ones_and_far_ones_are_not_skew() {
        let mut d = phone();
        let now = Timestamp::from_secs(NOW);
        let centre = current_step(&d, now);
        assert_eq!(skew(&d, &code(&d, centre + 1), now), None, "in the window");
        let far = i64::from(d.tolerance + SKEW_STEPS) + 1;
        assert_eq!(skew(&d, &code(&d, centre + far), now), None, "too far");
        d.last_t = centre - 2;
        assert_eq!(skew(&d, &code(&d, centre - 2), now), None, "used");
        assert_eq!(skew(&d, "12345", now), None, "malformed");
    }

    #[test]
    fn locate_finds_codes_in_the_window_too_and_says_whether_they_were_used() {
        let mut d = phone();
        let now = Timestamp::from_secs(NOW);
        let centre = current_step(&d, now);
        d.last_t = centre;
        let here = locate(&d, &code(&d, centre), now, 5).unwrap();
        assert_eq!(here.offset, 0);
        assert!(here.in_window(&d) && here.used(&d));
        assert_eq!(
            here.describe(&d),
            "code matches step +0: the device's clock agrees with this host's"
        );
    }
}
