//! The changes `totp-enroll` makes, each one [`Store::update`] transaction:
//! add, confirm, remove, reset, and the confirmation's verification under
//! the module's own rules. The CLI only talks to the person; every decision
//! about the state is here.

use crate::device::{Device, DeviceFile};
use crate::error::{Error, Result};
use crate::store::{Change, Store};
use crate::time::Timestamp;
use crate::verify::{verify, Policy, Rejection, Verdict};

/// How one confirmation attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// The device is confirmed (now, or it was already); its state as stored.
    Confirmed(Device),
    /// The code was refused and the failure stored, as at login.
    Rejected(Rejection),
    /// The device is throttled until `until` (the store's clock read `now`);
    /// nothing was tried or stored.
    Throttled {
        /// When codes are tried again.
        until: Timestamp,
        /// The store's clock.
        now: Timestamp,
    },
}

/// The error for a user without a device file.
pub fn no_devices(store: &Store) -> Error {
    let where_ = match store {
        Store::File(_) => format!("{store} does not exist"),
        Store::Postgres(_) => format!("none in {store}"),
    };
    Error::Refused(format!(
        "{} has no devices ({where_}); add one with `totp-enroll add`",
        store.user()
    ))
}

/// The error for a device name the user does not have.
pub fn no_such_device(store: &Store, name: &str) -> Error {
    Error::Refused(format!(
        "{} has no device named `{name}`; `totp-enroll list` shows the names",
        store.user()
    ))
}

/// The error for a name that is taken.
pub fn name_taken(store: &Store, name: &str) -> Error {
    Error::Refused(format!(
        "a device named `{name}` exists already in {store}; choose another --name, \
         or `totp-enroll remove {}` first",
        shell_word(name)
    ))
}

/// Quotes a device name for a suggested command line when it needs it.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+@:/=".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `f` on the device called `name` under the lock; saves the file when
/// `f` returns `Some` state for it.
fn with_device<T>(
    store: &Store,
    name: &str,
    f: impl FnOnce(&Device, Timestamp) -> (Option<Device>, T),
) -> Result<T> {
    store.update(|file, now| {
        let file = file.ok_or_else(|| no_devices(store))?;
        let device = file.find(name).ok_or_else(|| no_such_device(store, name))?;
        Ok(match f(device, now) {
            (None, value) => Change::Keep(value),
            (Some(next), value) => {
                let mut file = file.clone();
                if let Some(slot) = file.find_mut(name) {
                    *slot = next;
                }
                Change::Save(file, value)
            }
        })
    })
}

/// Adds `device`, creating the file (and its directory) if need be. Refuses
/// a name taken meanwhile or a device over the limit; nothing is written
/// then.
pub fn add(store: &Store, device: &Device) -> Result<()> {
    store.update(|file, _| {
        let mut file: DeviceFile = file.cloned().unwrap_or_default();
        if file.find(&device.name).is_some() {
            return Err(name_taken(store, &device.name));
        }
        file.add(device.clone()).map_err(Error::Refused)?;
        Ok(Change::Save(file, ()))
    })
}

/// One confirmation attempt: verified with the module's rules (a failure
/// counts as at login); `confirmed = true` once a code is accepted.
pub fn confirm(store: &Store, name: &str, input: &str, policy: &Policy) -> Result<Confirmation> {
    with_device(store, name, |device, now| {
        if device.confirmed {
            return (None, Confirmation::Confirmed(device.clone()));
        }
        let (verdict, mut next) = verify(device, input, now, policy);
        match verdict {
            Verdict::Throttled { until } => (None, Confirmation::Throttled { until, now }),
            Verdict::Accepted { .. } => {
                next.confirmed = true;
                (Some(next.clone()), Confirmation::Confirmed(next))
            }
            Verdict::Rejected(r) => (Some(next), Confirmation::Rejected(r)),
        }
    })
}

/// Deletes the device called `name`.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    store.update(|file, _| {
        let mut file = file.cloned().ok_or_else(|| no_devices(store))?;
        let before = file.devices.len();
        file.devices.retain(|d| d.name != name);
        if file.devices.len() == before {
            return Err(no_such_device(store, name));
        }
        Ok(Change::Save(file, ()))
    })
}

/// Clears the throttle of the device called `name` (an admin's unlock):
/// failure count 0, no failure timestamp. Returns the device as stored and
/// the failure count it had.
pub fn reset(store: &Store, name: &str) -> Result<(Device, u32)> {
    with_device(store, name, |device, _| {
        let mut next = device.clone();
        next.throttling_failure_count = 0;
        next.throttling_failure_timestamp = None;
        let before = device.throttling_failure_count;
        (Some(next.clone()), (next, before))
    })
}
