//! The store seam (docs/design.md §10): where a user's device state lives,
//! and the one transaction every change goes through.
//!
//! [`Store`] is an enum with one variant per backend; the device-file store
//! ([`FileStore`]) is the first. The protocols of [`crate::login`] and
//! [`crate::manage`] see only two operations:
//!
//! - [`Store::read`]: an unlocked snapshot, for deciding whether to prompt
//!   and for showing devices;
//! - [`Store::update`]: lock → read → change → durable save → unlock, with
//!   the change given the state as read under the lock and the store's own
//!   clock. A backend that keeps state elsewhere (a database) implements the
//!   same two and uses its own clock, so hosts with skewed clocks agree.

mod file;
mod pg;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use file::{
    ensure_dir, lock, padded_len, read, stored_text, Access, FileSpec, FileStore, Locked, LOCK_WAIT,
};
pub use pg::{PgStore, PAM_TOTP_SQL};

use crate::config::{PathTemplate, StoreSettings};
use crate::device::DeviceFile;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::user::UserInfo;

/// What a change decided: leave the state as it was, or save a new one.
/// Either way it hands back a value for the caller.
#[derive(Debug)]
pub enum Change<T> {
    /// Nothing to write.
    Keep(T),
    /// Write this state durably before [`Store::update`] returns.
    Save(DeviceFile, T),
}

/// An unlocked read: the state (`None`: the user has none) and the store's
/// clock at the time of the read.
#[derive(Debug)]
pub struct Snapshot {
    /// The devices; `None` when there is no device file.
    pub devices: Option<DeviceFile>,
    /// The store's clock.
    pub now: Timestamp,
}

/// Where one user's device state lives.
#[derive(Debug)]
pub enum Store {
    /// A device file (per-user or central).
    File(FileStore),
    /// Rows in a PostgreSQL database shared by many hosts.
    Postgres(PgStore),
}

impl Store {
    /// The device file of `user` under `template`.
    pub fn for_user(template: &PathTemplate, user: &UserInfo) -> Result<Store> {
        FileSpec::for_user(template, user).map(|spec| Store::file(spec, &user.name))
    }

    /// The store `[store]` names for `user`: the device file under
    /// `template`, or the PostgreSQL store.
    pub fn open(
        settings: &StoreSettings,
        template: &PathTemplate,
        user: &UserInfo,
    ) -> Result<Store> {
        match settings {
            StoreSettings::File => Store::for_user(template, user),
            StoreSettings::Postgresql(pg) => Ok(Store::Postgres(PgStore::new(pg, &user.name))),
        }
    }

    /// The device file `spec`, whose header names `user`.
    pub fn file(spec: FileSpec, user: &str) -> Store {
        Store::File(FileStore::new(spec, user, LOCK_WAIT))
    }

    /// Waits at most `wait` for another process's lock (default
    /// [`LOCK_WAIT`]).
    pub fn with_wait(self, wait: Duration) -> Store {
        match self {
            Store::File(f) => Store::File(f.with_wait(wait)),
            Store::Postgres(p) => Store::Postgres(p.with_deadline(wait)),
        }
    }

    /// The same store with its clock frozen at `now`: a scenario replayed
    /// at chosen instants (tests, vectors).
    pub fn at(self, now: Timestamp) -> Store {
        match self {
            Store::File(f) => Store::File(f.at(now)),
            Store::Postgres(p) => Store::Postgres(p.at(now)),
        }
    }

    /// The device file, when the store is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Store::File(f) => Some(&f.spec().path),
            Store::Postgres(_) => None,
        }
    }

    /// Whose devices these are.
    pub fn user(&self) -> &str {
        match self {
            Store::File(f) => f.user(),
            Store::Postgres(p) => p.user(),
        }
    }

    /// An unlocked snapshot.
    pub fn read(&self) -> Result<Snapshot> {
        match self {
            Store::File(f) => f.read(),
            Store::Postgres(p) => p.read(),
        }
    }

    /// One transaction: the change sees the state as read under the lock and
    /// the store's clock; what it returns in [`Change::Save`] is durably
    /// written before this returns. An error from the change, or from the
    /// save, leaves the stored state as it was.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(Option<&DeviceFile>, Timestamp) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        match self {
            Store::File(f) => f.update(change),
            Store::Postgres(p) => p.update(change),
        }
    }

    /// [`Store::update`] whose change may also save intermediate states,
    /// under the same lock, through the `commit` function it is given: each
    /// is visible to every process at once, and durable before this
    /// returns, whatever the change decides afterwards. The login uses it
    /// to store a failure before it compares the code (issue 11, finding 1):
    /// whatever stops the transaction after that, the attempt has been
    /// counted.
    ///
    /// In the PostgreSQL store one attempt is one database transaction and
    /// its COMMIT is the only point at which anything counts: a staged state
    /// is kept in the transaction and written with it (the last one, when
    /// the change keeps what it staged), so a session killed before COMMIT
    /// changes nothing at all, right code or wrong.
    pub fn update_staged<T, E>(
        &self,
        change: impl FnOnce(
            Option<&DeviceFile>,
            Timestamp,
            &mut dyn FnMut(&DeviceFile) -> Result<()>,
        ) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        match self {
            Store::File(f) => f.update_staged(change),
            Store::Postgres(p) => p.update(|file, now| {
                let mut staged: Option<DeviceFile> = None;
                let decided = {
                    let mut commit = |next: &DeviceFile| {
                        staged = Some(next.clone());
                        Ok(())
                    };
                    change(file, now, &mut commit)?
                };
                Ok(match (decided, staged) {
                    (Change::Keep(value), Some(state)) => Change::Save(state, value),
                    (decided, _) => decided,
                })
            }),
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::File(s) => write!(f, "{}", s.spec().path.display()),
            Store::Postgres(p) => write!(f, "{p}"),
        }
    }
}
