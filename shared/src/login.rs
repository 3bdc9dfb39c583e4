//! One login attempt against a device file, race-free and durable: the
//! composition of [`crate::store`] and [`crate::verify`] that both the PAM
//! module and `totp-enroll confirm` use.

use std::time::Duration;

use crate::device::DeviceFile;
use crate::error::Result;
use crate::store::{self, FileSpec};
use crate::time::Timestamp;
use crate::verify::{verify_login, Login, Policy};

/// Locks the file, reads it, applies the several-devices rule at `now`,
/// durably writes the new state, and unlocks. A code is only reported
/// accepted once its new state is on disk: if the write fails, this returns
/// the error and the login must fail.
///
/// `user` names the owner in the file's header comment.
pub fn attempt(
    spec: &FileSpec,
    user: &str,
    input: &str,
    now: Timestamp,
    policy: &Policy,
    wait: Duration,
) -> Result<Login> {
    attempt_saving(spec, user, input, now, policy, wait).map(|(login, _)| login)
}

/// [`attempt`], also returning the file as it was saved, so that the caller
/// can report the accepted device's name and new drift as they are on disk
/// (not as an earlier unlocked read saw them). `None` when nothing was saved
/// (no device, every device throttled).
pub fn attempt_saving(
    spec: &FileSpec,
    user: &str,
    input: &str,
    now: Timestamp,
    policy: &Policy,
    wait: Duration,
) -> Result<(Login, Option<DeviceFile>)> {
    let mut locked = store::lock(spec, wait)?;
    let Some(file) = locked.devices() else {
        return Ok((Login::NoDevice, None));
    };
    let (login, next) = verify_login(file, input, now, policy);
    match login {
        Login::NoDevice | Login::AllThrottled { .. } => Ok((login, None)),
        Login::Accepted { .. } | Login::Rejected { .. } => {
            locked.save(&next, user)?;
            Ok((login, Some(next)))
        }
    }
}
