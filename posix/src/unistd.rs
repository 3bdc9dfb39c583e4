//! Identities, the password database, names in directories, `fsync`.

use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::{check, cstr, Errno, Result};

/// A user id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Uid(libc::uid_t);

impl Uid {
    /// The id from its number.
    pub const fn from_raw(uid: libc::uid_t) -> Uid {
        Uid(uid)
    }

    /// The number.
    pub const fn as_raw(self) -> libc::uid_t {
        self.0
    }

    /// Whether this is root (0).
    pub const fn is_root(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A group id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Gid(libc::gid_t);

impl Gid {
    /// The id from its number.
    pub const fn from_raw(gid: libc::gid_t) -> Gid {
        Gid(gid)
    }

    /// The number.
    pub const fn as_raw(self) -> libc::gid_t {
        self.0
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The real user id of the process.
pub fn getuid() -> Uid {
    // SAFETY: getuid(2) takes nothing and cannot fail.
    Uid(unsafe { libc::getuid() })
}

/// The effective user id of the process.
pub fn geteuid() -> Uid {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    Uid(unsafe { libc::geteuid() })
}

/// The process id.
pub fn getpid() -> i32 {
    std::process::id() as i32
}

/// The id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: the gettid system call takes no argument and cannot fail;
    // called through syscall(2) as glibc before 2.30 has no wrapper.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    tid as i32
}

/// Sets this thread's file-system user id; returns the previous one.
/// The kernel reports no error: call it twice to see whether it took.
pub fn setfsuid(uid: Uid) -> Uid {
    // SAFETY: setfsuid(2) takes an integer and touches no memory of ours.
    let prev = unsafe { libc::setfsuid(uid.0) };
    Uid(prev as libc::uid_t)
}

/// Sets this thread's file-system group id; returns the previous one.
pub fn setfsgid(gid: Gid) -> Gid {
    // SAFETY: setfsgid(2) takes an integer and touches no memory of ours.
    let prev = unsafe { libc::setfsgid(gid.0) };
    Gid(prev as libc::gid_t)
}

/// Writes the file's data and metadata to the device.
pub fn fsync<Fd: AsFd>(fd: Fd) -> Result<()> {
    // SAFETY: the descriptor is borrowed for the call.
    check(unsafe { libc::fsync(fd.as_fd().as_raw_fd()) })
}

/// What [`unlinkat`] may remove.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnlinkatFlags {
    /// A directory (`AT_REMOVEDIR`).
    RemoveDir,
    /// Anything but a directory.
    NoRemoveDir,
}

/// Removes the name `path` from `dir`.
pub fn unlinkat<Fd: AsFd, P: AsRef<OsStr> + ?Sized>(
    dir: Fd,
    path: &P,
    flags: UnlinkatFlags,
) -> Result<()> {
    let path = cstr(path)?;
    let flags = match flags {
        UnlinkatFlags::RemoveDir => libc::AT_REMOVEDIR,
        UnlinkatFlags::NoRemoveDir => 0,
    };
    // SAFETY: the descriptor is borrowed; `path` outlives the call.
    check(unsafe { libc::unlinkat(dir.as_fd().as_raw_fd(), path.as_ptr(), flags) })
}

/// The host name.
pub fn gethostname() -> Result<OsString> {
    // HOST_NAME_MAX is 64 on Linux; the rest is room for the NUL.
    let mut buf = vec![0u8; 256];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check(unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) })?;
    let len = buf.iter().position(|&b| b == 0).ok_or(Errno::EINVAL)?;
    buf.truncate(len);
    Ok(OsString::from_vec(buf))
}

/// An entry of the password database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: Uid,
    /// Primary group id.
    pub gid: Gid,
    /// Home directory.
    pub dir: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
}

/// The largest buffer a password-database lookup may take.
const MAX_PW_BUFFER: usize = 1 << 20;

impl User {
    /// Looks `name` up with `getpwnam_r`. `Ok(None)`: no such user. A name
    /// with a NUL byte is `EINVAL`.
    pub fn from_name(name: &str) -> Result<Option<User>> {
        let name = cstr(name)?;
        lookup(|pwd, buf, len, result| {
            // SAFETY: `name` is NUL-terminated and outlives the call;
            // `pwd`, `buf` (of `len` bytes) and `result` are valid,
            // writable and outlive the call; glibc writes within them.
            unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf, len, result) }
        })
    }

    /// Looks `uid` up with `getpwuid_r`. `Ok(None)`: no such user.
    pub fn from_uid(uid: Uid) -> Result<Option<User>> {
        lookup(|pwd, buf, len, result| {
            // SAFETY: as in `from_name`; the uid is a plain integer.
            unsafe { libc::getpwuid_r(uid.0, pwd, buf, len, result) }
        })
    }
}

/// Runs a `getpw*_r` call, growing its buffer on `ERANGE`.
fn lookup(
    call: impl Fn(
        *mut libc::passwd,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> Result<Option<User>> {
    let mut len = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let ret = call(pwd.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut result);
        if ret == libc::ERANGE && len < MAX_PW_BUFFER {
            len *= 2;
            continue;
        }
        if ret != 0 {
            return Err(Errno::from_raw(ret));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: the call returned 0 with a non-null result, so it filled
        // `pwd`, whose strings point into `buf`, alive until this returns.
        let pwd = unsafe { pwd.assume_init_ref() };
        return to_user(pwd).map(Some);
    }
}

/// Copies an entry out of glibc's buffer. A name that is not UTF-8 is
/// `EINVAL`: better no user than a name that compares wrongly.
fn to_user(pwd: &libc::passwd) -> Result<User> {
    let text = |p: *const libc::c_char| -> Result<&CStr> {
        if p.is_null() {
            return Err(Errno::EINVAL);
        }
        // SAFETY: a non-null string of a filled passwd entry is
        // NUL-terminated inside the buffer the caller keeps alive.
        Ok(unsafe { CStr::from_ptr(p) })
    };
    let name = text(pwd.pw_name)?
        .to_str()
        .map_err(|_| Errno::EINVAL)?
        .to_owned();
    let path = |p| -> Result<PathBuf> {
        Ok(PathBuf::from(OsString::from_vec(
            text(p)?.to_bytes().to_vec(),
        )))
    };
    Ok(User {
        name,
        uid: Uid(pwd.pw_uid),
        gid: Gid(pwd.pw_gid),
        dir: path(pwd.pw_dir)?,
        shell: path(pwd.pw_shell)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn root_is_found_by_name_and_by_uid_with_the_same_entry() {
        let by_name = User::from_name("root").unwrap().unwrap();
        let by_uid = User::from_uid(Uid::from_raw(0)).unwrap().unwrap();
        assert_eq!(by_name, by_uid);
        assert!(by_name.uid.is_root());
        assert_eq!(by_name.name, "root");
    }

    #[test]
    fn an_unknown_user_is_none_not_an_error() {
        assert_eq!(User::from_name("no-such-user-pam-totp-x").unwrap(), None);
        assert_eq!(User::from_uid(Uid::from_raw(4_000_000_000)).unwrap(), None);
    }

    #[test]
    fn a_name_with_a_nul_byte_is_refused() {
        assert_eq!(User::from_name("root\0x").unwrap_err(), Errno::EINVAL);
    }

    #[test]
    fn the_host_name_matches_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(gethostname().unwrap(), kernel.trim_end());
    }

    #[test]
    fn the_thread_id_of_the_main_thread_differs_from_a_spawned_ones() {
        let main = gettid();
        let other = std::thread::spawn(gettid).join().unwrap();
        assert_ne!(main, other);
        assert!(main > 0 && other > 0);
    }

    #[test]
    fn setfsuid_returns_the_previous_id_and_a_second_call_shows_the_current() {
        let me = geteuid();
        let prev = setfsuid(me);
        assert_eq!(prev, me);
        assert_eq!(setfsuid(me), me);
    }
}
