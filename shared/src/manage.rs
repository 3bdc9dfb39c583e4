//! The changes `totp-enroll` makes, each one [`Store::update`] transaction:
//! add, confirm, remove, reset, backup codes, and the confirmation's verification under
//! the module's own rules. The CLI only talks to the person; every decision
//! about the state is here.

use crate::backup::{BackupCodes, NewSet, DEFAULT_COUNT};
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

/// A new set of `count` backup codes for the user, replacing any old set
/// (and its throttle state) in one durable write; the codes in clear are
/// returned once, for showing. Refused when the user has neither a
/// confirmed device nor a set: backup codes stand in for a device, they do
/// not enrol anyone.
pub fn new_backup_codes(store: &Store, count: usize) -> Result<NewSet> {
    let now = Timestamp::now();
    // Hashed before the lock is taken: nobody waits for argon2.
    let new = BackupCodes::generate(count, now).map_err(Error::Refused)?;
    store.update(|file, _| {
        let mut file = file.cloned().ok_or_else(|| no_devices(store))?;
        if !file.has_confirmed() && file.backup.is_none() {
            return Err(Error::Refused(format!(
                "{} has no confirmed device; add one with `totp-enroll add` first",
                store.user()
            )));
        }
        file.backup = Some(new.set.clone());
        Ok(Change::Save(file, ()))
    })?;
    Ok(new)
}

/// The set a first confirmed device comes with: made (with
/// [`DEFAULT_COUNT`] codes) only when the user has exactly one confirmed
/// device and no set yet. `None`: nothing was made.
pub fn first_backup_codes(store: &Store) -> Result<Option<NewSet>> {
    // The django-otp layout: the Django site makes static tokens.
    if let Store::Postgres(p) = store {
        if !p.makes_backup_codes() {
            return Ok(None);
        }
    }
    let snap = store.read()?;
    let wanted = |file: &DeviceFile| {
        file.backup.is_none() && file.devices.iter().filter(|d| d.confirmed).count() == 1
    };
    if !snap.devices.as_ref().is_some_and(wanted) {
        return Ok(None);
    }
    let new = BackupCodes::generate(DEFAULT_COUNT, snap.now).map_err(Error::Refused)?;
    store
        .update(|file, _| {
            // Checked again under the lock: another enrolment may have won.
            let Some(file) = file.filter(|f| wanted(f)) else {
                return Ok(Change::Keep(None));
            };
            let mut file = file.clone();
            file.backup = Some(new.set.clone());
            Ok(Change::Save(file, Some(())))
        })
        .map(|made| made.map(|()| new))
}

/// An import: adds `device` and, when given, makes `backup` the user's set
/// (replacing any old one), in one durable write. Refuses a taken name or
/// a device over the limit; nothing is written then.
pub fn import(store: &Store, device: &Device, backup: Option<&BackupCodes>) -> Result<()> {
    store.update(|file, _| {
        let mut file: DeviceFile = file.cloned().unwrap_or_default();
        if file.find(&device.name).is_some() {
            return Err(name_taken(store, &device.name));
        }
        file.add(device.clone()).map_err(Error::Refused)?;
        if let Some(set) = backup {
            file.backup = Some(set.clone());
        }
        Ok(Change::Save(file, ()))
    })
}

/// How many backup codes the user has left; `None`: no set (or no file).
pub fn backup_count(store: &Store) -> Result<Option<usize>> {
    Ok(store
        .read()?
        .devices
        .and_then(|f| f.backup.map(|b| b.remaining())))
}

/// What `totp-enroll check` found: the device as stored, the store's clock,
/// and where the code lies (`None`: not within `reach` steps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The device, as read.
    pub device: Device,
    /// The store's clock at the read.
    pub now: Timestamp,
    /// The code's step relative to the window's centre.
    pub found: Option<crate::verify::Located>,
}

/// Where `input` lies for the device `name`, within `reach` steps either
/// way: read-only (an unlocked read; no failure counted, nothing consumed).
/// It tells no more than the key itself, so it is only for whoever can read
/// the device file (the store's own checks: its owner, or root).
pub fn check(store: &Store, name: &str, input: &str, reach: u32) -> Result<Checked> {
    let snap = store.read()?;
    let file = snap.devices.ok_or_else(|| no_devices(store))?;
    let device = file
        .find(name)
        .ok_or_else(|| no_such_device(store, name))?
        .clone();
    let found = crate::verify::locate(&device, input, snap.now, reach);
    Ok(Checked {
        device,
        now: snap.now,
        found,
    })
}

/// What `set` changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settable {
    /// Steps accepted either side of the current one, 0 to 10.
    pub tolerance: Option<u32>,
    /// A new name, unique among the user's devices.
    pub name: Option<String>,
}

/// Changes the tolerance and/or the name of the device `name` in one
/// transaction; the rest of its state (drift, `last_t`, throttle) is kept.
/// Returns the device as stored.
pub fn set(store: &Store, name: &str, change: &Settable) -> Result<Device> {
    if let Some(t) = change.tolerance {
        let params = crate::device::Params {
            tolerance: t,
            ..crate::device::Params::default()
        };
        params
            .validate()
            .map_err(|m| Error::Usage(format!("--{m}")))?;
    }
    if let Some(new) = &change.name {
        crate::device::validate_name(new).map_err(|m| Error::Usage(format!("--name: {m}")))?;
    }
    store.update(|file, _| {
        let mut file = file.cloned().ok_or_else(|| no_devices(store))?;
        if let Some(new) = &change.name {
            if new != name && file.find(new).is_some() {
                return Err(name_taken(store, new));
            }
        }
        let device = file
            .find_mut(name)
            .ok_or_else(|| no_such_device(store, name))?;
        if let Some(t) = change.tolerance {
            device.tolerance = t;
        }
        if let Some(new) = &change.name {
            device.name.clone_from(new);
        }
        let stored = device.clone();
        Ok(Change::Save(file, stored))
    })
}
