//! The login protocol, in two phases, over any [`Store`]:
//!
//! 1. [`prepare`], unlocked, before anyone is asked anything: is there a
//!    confirmed device, is every one throttled, how many digits to expect;
//! 2. [`attempt`], once the code is in hand: one [`Store::update`]
//!    transaction that applies the several-devices rule
//!    ([`crate::verify::verify_login`]) and saves the new state durably. A
//!    code is only reported accepted once its new state is stored.
//!
//! Never hold a lock while a person types: the prompt comes between the two.

use crate::device::DeviceFile;
use crate::error::Result;
use crate::store::{Change, Store};
use crate::time::Timestamp;
use crate::verify::{readiness, throttled_until, verify_login, Login, Policy, Readiness};

/// The code length assumed when no device says otherwise.
pub const DEFAULT_DIGITS: u32 = 6;

/// What the unlocked first phase found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// No device file, or no confirmed device in it.
    NoDevice,
    /// Every confirmed device is throttled until `until` (the store's clock
    /// read `now`): do not prompt.
    AllThrottled {
        /// When the first device is free again.
        until: Timestamp,
        /// The store's clock at the read.
        now: Timestamp,
    },
    /// Prompt for a code of `digits` digits.
    Ready {
        /// The length of the code of the first confirmed device that is not
        /// throttled (file order, the order codes are tried in); when only
        /// the backup-code set is free, that of the first confirmed device.
        digits: u32,
    },
}

/// The locked second phase's answer, with the store's clock it ran at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// What happened; [`Login::Accepted`] carries the device's name and new
    /// drift as stored.
    pub login: Login,
    /// The store's clock during the transaction.
    pub now: Timestamp,
}

/// Phase 1: reads the user's devices without locking.
pub fn prepare(store: &Store, policy: &Policy) -> Result<Prepared> {
    let snap = store.read()?;
    Ok(match snap.devices {
        None => Prepared::NoDevice,
        Some(file) => prepared(&file, snap.now, policy),
    })
}

/// [`prepare`] on a file already read.
pub fn prepared(file: &DeviceFile, now: Timestamp, policy: &Policy) -> Prepared {
    match readiness(file, now, policy) {
        Readiness::NoDevice => Prepared::NoDevice,
        Readiness::AllThrottled { until } => Prepared::AllThrottled { until, now },
        Readiness::Ready => Prepared::Ready {
            digits: file
                .devices
                .iter()
                .find(|d| d.confirmed && throttled_until(d, now, policy).is_none())
                // Only the backup set is free: the TOTP device's length still
                // splits a forward_pass answer.
                .or_else(|| file.devices.iter().find(|d| d.confirmed))
                .map_or(DEFAULT_DIGITS, |d| d.digits),
        },
    }
}

/// Phase 2: one transaction that verifies `input` against every confirmed
/// device and durably stores the outcome (success or counted failure). If
/// the save fails, this returns the error and the login must fail.
///
/// The failure is stored **before** the code is compared (issue 11,
/// finding 1): the state as if the code were wrong (every device that will
/// be tried records a failure) is saved first; only then is the code
/// compared, and a success saved over it. Whatever makes a write fail or
/// stops the process (a file-size limit, a full disk, a signal), it does so
/// before anything is known about the code, or after the failure is on
/// disk: no one can make a wrong code go uncounted while a right code still
/// gets in. A wrong code costs one write, a right one two.
pub fn attempt(store: &Store, input: &str, policy: &Policy) -> Result<Attempt> {
    attempt_counting(store, input, policy, true)
}

/// [`attempt`] for a token that may not be a code at all (`try_first_pass`:
/// a password from an earlier module that happens to look like one): only
/// an accepted code changes the state; a refusal is reported but neither
/// counted nor saved (issue 11, finding 9).
pub fn attempt_uncounted(store: &Store, input: &str, policy: &Policy) -> Result<Attempt> {
    attempt_counting(store, input, policy, false)
}

fn attempt_counting(store: &Store, input: &str, policy: &Policy, count: bool) -> Result<Attempt> {
    store.update_staged(|file, now, commit| {
        let Some(file) = file else {
            return Ok(Change::Keep(Attempt {
                login: Login::NoDevice,
                now,
            }));
        };
        // An empty input is malformed for every device: the failure state.
        let (if_wrong, failed) = verify_login(file, "", now, policy);
        if let Login::NoDevice | Login::AllThrottled { .. } = if_wrong {
            return Ok(Change::Keep(Attempt {
                login: if_wrong,
                now,
            }));
        }
        if count {
            commit(&failed)?;
        }
        let (login, next) = verify_login(file, input, now, policy);
        let attempt = Attempt { login, now };
        Ok(match attempt.login {
            Login::NoDevice | Login::AllThrottled { .. } => Change::Keep(attempt),
            Login::Rejected { .. } if !count || next == failed => Change::Keep(attempt),
            Login::Accepted { .. } | Login::BackupCode { .. } | Login::Rejected { .. } => {
                Change::Save(next, attempt)
            }
        })
    })
}

/// Diagnosis of a refused code, for the log only: the first confirmed
/// device (file order) whose clock seems off, that is whose code for a step
/// a little outside its window ([`crate::verify::skew`]) is `input`. Read
/// from an unlocked snapshot after the refusal; it changes nothing and
/// accepts nothing.
pub fn diagnose(file: &DeviceFile, input: &str, now: Timestamp) -> Option<String> {
    file.devices.iter().filter(|d| d.confirmed).find_map(|d| {
        crate::verify::skew(d, input, now)
            .map(|found| format!("device {}: {}", d.name, found.describe(d)))
    })
}
