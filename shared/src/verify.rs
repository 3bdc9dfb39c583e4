//! django-otp's `TOTPDevice` verification, made exact (DESIGN §4).
//!
//! Everything here is a pure function of `(device, input, now, policy)`:
//! no clock, no I/O. [`verify`] gives the verdict and the device's new state;
//! [`verify_login`] applies the several-devices rule to a whole file.

use crate::device::{Device, DeviceFile};
use crate::oath::{hotp_value, time_step};
use crate::secret::{constant_time_eq, normalize_code};
use crate::time::Timestamp;

/// django-otp's `MAX_THROTTLE_DELAY_SECONDS` (100 years).
pub const MAX_THROTTLE_DELAY_SECS: i64 = 3_153_600_000;

/// The settings that change verification (`OTP_TOTP_SYNC`,
/// `OTP_TOTP_THROTTLE_FACTOR`, and `throttle_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Learn the device's drift from accepted codes.
    pub sync: bool,
    /// Seconds of the first throttle delay; 0 never blocks.
    pub throttle_factor: u32,
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
            throttle_max: None,
        }
    }
}

impl Policy {
    /// The delay after `count` consecutive failures under this policy:
    /// [`throttle_delay_secs`], capped at `throttle_max`.
    pub fn delay_secs(&self, count: u32) -> i64 {
        let delay = throttle_delay_secs(count, self.throttle_factor);
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
    let matches = |t: i64| -> bool {
        let Ok(counter) = u64::try_from(t) else {
            return false;
        };
        let value = hotp_value(
            device.algorithm,
            device.key.expose(),
            counter,
            device.digits,
        );
        let mut buf = [0u8; 10];
        let len = device.digits as usize;
        let mut v = value;
        for slot in buf[..len].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        constant_time_eq(&buf[..len], &code)
    };
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

/// The device's state after `verdict` at `now` (DESIGN §4, steps 4 and 5).
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

/// The several-devices rule (DESIGN §4): the code is tried against every
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
    let mut next = file.clone();
    let mut tried = 0;
    let mut reason = Rejection::Malformed;
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
