//! The password database (reentrant lookups) and the file-system identity
//! switch used to touch files in a user's home as that user.

use std::marker::PhantomData;
use std::path::PathBuf;

use posix::unistd::{setfsgid, setfsuid, Gid, Uid, User};

use crate::error::{Error, Result};

/// The longest user name [`is_valid_name`] accepts.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` has the shape of a login name: 1 to [`MAX_NAME_LEN`]
/// bytes of `[A-Za-z0-9_.-]`, not starting with `-`, optionally ending
/// with `$` (Samba machine accounts). A line that is not shaped like a name
/// is never echoed back (issue 11, finding 9: a list that is really
/// /etc/shadow must not be printed).
pub fn is_valid_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What pam-totp needs to know about an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory from the password database (never `$HOME`).
    pub home: PathBuf,
}

impl UserInfo {
    /// Looks a user up by name with `getpwnam_r`. `Ok(None)`: no such user.
    pub fn by_name(name: &str) -> Result<Option<UserInfo>> {
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            return Ok(None);
        }
        User::from_name(name)
            .map(|u| u.map(UserInfo::from))
            .map_err(|e| Error::Passwd(e.to_string()))
    }

    /// Looks a user up by uid with `getpwuid_r`.
    pub fn by_uid(uid: u32) -> Result<Option<UserInfo>> {
        User::from_uid(Uid::from_raw(uid))
            .map(|u| u.map(UserInfo::from))
            .map_err(|e| Error::Passwd(e.to_string()))
    }
}

impl From<User> for UserInfo {
    fn from(u: User) -> Self {
        UserInfo {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }
    }
}

/// While alive, this thread's file-system uid and gid are a user's, so the
/// kernel checks file access as that user (root's file capabilities are
/// dropped). Dropping it restores the previous identity.
///
/// The kernel keeps these ids per thread, so the guard is `!Send`: dropped
/// on another thread it would "restore" that thread and leave this one
/// acting as the user. (Threads started while it is alive inherit the
/// user's ids.)
#[derive(Debug)]
pub struct ActAs {
    prev_uid: Uid,
    prev_gid: Gid,
    _this_thread_only: PhantomData<*const ()>,
}

impl ActAs {
    /// Switches the file-system identity to `uid`/`gid` and checks that the
    /// switch took effect (setfsuid reports no errors itself).
    pub fn user(uid: u32, gid: u32) -> Result<ActAs> {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        // Group first: after giving up the uid we could no longer change it.
        let prev_gid = setfsgid(gid);
        let prev_uid = setfsuid(uid);
        let guard = ActAs {
            prev_uid,
            prev_gid,
            _this_thread_only: PhantomData,
        };
        // A second call returns the current value without changing it.
        let now_uid = setfsuid(uid);
        let now_gid = setfsgid(gid);
        if now_uid != uid || now_gid != gid {
            drop(guard);
            return Err(Error::Identity {
                uid: uid.as_raw(),
                reason: format!(
                    "file-system ids are {}/{} after switching (needs root or CAP_SETUID)",
                    now_uid, now_gid
                ),
            });
        }
        Ok(guard)
    }
}

impl Drop for ActAs {
    fn drop(&mut self) {
        setfsuid(self.prev_uid);
        setfsgid(self.prev_gid);
    }
}
