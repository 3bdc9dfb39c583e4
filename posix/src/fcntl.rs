//! Opening, renaming and locking files, relative to a directory descriptor
//! where the name says `at`.

use std::ffi::{OsStr, OsString};
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use crate::stat::Mode;
use crate::{check, cstr, Errno, Result};

/// Flags of `open(2)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OFlag(libc::c_int);

impl OFlag {
    pub const O_RDONLY: OFlag = OFlag(libc::O_RDONLY);
    pub const O_WRONLY: OFlag = OFlag(libc::O_WRONLY);
    pub const O_RDWR: OFlag = OFlag(libc::O_RDWR);
    pub const O_CREAT: OFlag = OFlag(libc::O_CREAT);
    pub const O_EXCL: OFlag = OFlag(libc::O_EXCL);
    pub const O_NOFOLLOW: OFlag = OFlag(libc::O_NOFOLLOW);
    pub const O_CLOEXEC: OFlag = OFlag(libc::O_CLOEXEC);
    pub const O_NOCTTY: OFlag = OFlag(libc::O_NOCTTY);
    pub const O_NONBLOCK: OFlag = OFlag(libc::O_NONBLOCK);
    pub const O_DIRECTORY: OFlag = OFlag(libc::O_DIRECTORY);
    pub const O_PATH: OFlag = OFlag(libc::O_PATH);

    /// Both sets of flags.
    pub const fn union(self, other: OFlag) -> OFlag {
        OFlag(self.0 | other.0)
    }

    /// These flags less `other`'s.
    pub const fn difference(self, other: OFlag) -> OFlag {
        OFlag(self.0 & !other.0)
    }

    /// The raw flags.
    pub const fn bits(self) -> libc::c_int {
        self.0
    }
}

impl BitOr for OFlag {
    type Output = OFlag;
    fn bitor(self, other: OFlag) -> OFlag {
        self.union(other)
    }
}

/// Flags of the `*at` calls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AtFlags(libc::c_int);

impl AtFlags {
    pub const AT_SYMLINK_NOFOLLOW: AtFlags = AtFlags(libc::AT_SYMLINK_NOFOLLOW);

    /// No flag.
    pub const fn empty() -> AtFlags {
        AtFlags(0)
    }

    /// The raw flags.
    pub const fn bits(self) -> libc::c_int {
        self.0
    }
}

/// Flags of `renameat2(2)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RenameFlags(libc::c_uint);

impl RenameFlags {
    /// Swap the two names atomically; both must exist.
    pub const RENAME_EXCHANGE: RenameFlags = RenameFlags(libc::RENAME_EXCHANGE);
    /// Fail with `EEXIST` instead of replacing the target.
    pub const RENAME_NOREPLACE: RenameFlags = RenameFlags(libc::RENAME_NOREPLACE);
}

/// What `flock(2)` does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlockArg {
    LockShared,
    LockExclusive,
    Unlock,
    LockSharedNonblock,
    LockExclusiveNonblock,
}

/// Opens `path`; relative to the working directory if it is relative.
pub fn open<P: AsRef<OsStr> + ?Sized>(path: &P, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: `path` is a NUL-terminated string that lives across the
    // call; open(2) reads it and keeps no pointer.
    let fd = unsafe { libc::open(path.as_ptr(), flags.0, libc::c_uint::from(mode.bits())) };
    owned(fd)
}

/// Opens `path` relative to the directory `dir`.
pub fn openat<Fd: AsFd, P: AsRef<OsStr> + ?Sized>(
    dir: Fd,
    path: &P,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: the descriptor is borrowed for the call, so it is open;
    // `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::openat(
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            flags.0,
            libc::c_uint::from(mode.bits()),
        )
    };
    owned(fd)
}

/// The descriptor an open call returned, owned; or its errno.
fn owned(fd: libc::c_int) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` was just returned by the kernel as a new descriptor of
    // this process; nothing else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Renames `old` in `old_dir` to `new` in `new_dir`, replacing `new`.
pub fn renameat<F1: AsFd, P1: AsRef<OsStr> + ?Sized, F2: AsFd, P2: AsRef<OsStr> + ?Sized>(
    old_dir: F1,
    old: &P1,
    new_dir: F2,
    new: &P2,
) -> Result<()> {
    let (old, new) = (cstr(old)?, cstr(new)?);
    // SAFETY: both descriptors are borrowed for the call; both names are
    // NUL-terminated strings that outlive it.
    check(unsafe {
        libc::renameat(
            old_dir.as_fd().as_raw_fd(),
            old.as_ptr(),
            new_dir.as_fd().as_raw_fd(),
            new.as_ptr(),
        )
    })
}

/// `renameat2(2)`: [`renameat`] with flags (exchange, no-replace). A file
/// system without them answers `EINVAL`.
pub fn renameat2<F1: AsFd, P1: AsRef<OsStr> + ?Sized, F2: AsFd, P2: AsRef<OsStr> + ?Sized>(
    old_dir: F1,
    old: &P1,
    new_dir: F2,
    new: &P2,
    flags: RenameFlags,
) -> Result<()> {
    let (old, new) = (cstr(old)?, cstr(new)?);
    // SAFETY: as for `renameat`; the flags are a plain integer.
    check(unsafe {
        libc::renameat2(
            old_dir.as_fd().as_raw_fd(),
            old.as_ptr(),
            new_dir.as_fd().as_raw_fd(),
            new.as_ptr(),
            flags.0,
        )
    })
}

/// The target of the symbolic link `path` in `dir`.
pub fn readlinkat<Fd: AsFd, P: AsRef<OsStr> + ?Sized>(dir: Fd, path: &P) -> Result<OsString> {
    let path = cstr(path)?;
    // A link target is at most PATH_MAX bytes; one more shows truncation.
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the descriptor is borrowed, `path` outlives the call, and
    // the kernel writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::readlinkat(
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    if n >= buf.len() {
        return Err(Errno::from_raw(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

/// `flock(2)` on the open file description behind `fd`. The lock goes
/// when the last descriptor of that description is closed.
pub fn flock<Fd: AsFd>(fd: Fd, arg: FlockArg) -> Result<()> {
    let op = match arg {
        FlockArg::LockShared => libc::LOCK_SH,
        FlockArg::LockExclusive => libc::LOCK_EX,
        FlockArg::Unlock => libc::LOCK_UN,
        FlockArg::LockSharedNonblock => libc::LOCK_SH | libc::LOCK_NB,
        FlockArg::LockExclusiveNonblock => libc::LOCK_EX | libc::LOCK_NB,
    };
    // SAFETY: the descriptor is borrowed for the call.
    check(unsafe { libc::flock(fd.as_fd().as_raw_fd(), op) })
}

/// A file with a `flock(2)` lock on its open file description. Dropping it
/// closes the file, and closing releases the lock (the descriptor must not
/// be duplicated). There is no explicit unlock on drop: one that fails
/// could only be ignored or panic, and a panic must not cross into the
/// PAM application.
#[derive(Debug)]
pub struct Flock<T: AsFd>(T);

impl<T: AsFd> Flock<T> {
    /// Locks `file`; on failure gives it back with the errno.
    pub fn lock(file: T, arg: FlockArg) -> std::result::Result<Flock<T>, (T, Errno)> {
        match flock(&file, arg) {
            Ok(()) => Ok(Flock(file)),
            Err(e) => Err((file, e)),
        }
    }
}

impl<T: AsFd> std::ops::Deref for Flock<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: AsFd> std::ops::DerefMut for Flock<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::stat::fstat;
    use std::fs::File;
    use std::os::unix::fs::symlink;

    #[test]
    fn openat_opens_a_name_relative_to_the_directory() {
        let dir = std::env::temp_dir().join(format!("posix-openat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), b"abc").unwrap();
        let d = open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let f = openat(&d, "f", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        assert_eq!(fstat(&f).unwrap().st_size, 3);
        assert_eq!(
            openat(&d, "missing", OFlag::O_RDONLY, Mode::empty()).unwrap_err(),
            Errno::ENOENT
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn o_nofollow_refuses_a_symbolic_link_with_eloop() {
        let dir = std::env::temp_dir().join(format!("posix-nofollow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("target"), b"x").unwrap();
        symlink(dir.join("target"), dir.join("link")).unwrap();
        let d = open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(
            openat(
                &d,
                "link",
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
                Mode::empty()
            )
            .unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            readlinkat(&d, "link").unwrap(),
            dir.join("target").into_os_string()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_with_a_nul_byte_is_refused_not_truncated() {
        assert_eq!(
            open("/etc\0/passwd", OFlag::O_RDONLY, Mode::empty()).unwrap_err(),
            Errno::EINVAL
        );
    }

    #[test]
    fn rename_exchange_swaps_two_names_and_noreplace_refuses_to_replace() {
        let dir = std::env::temp_dir().join(format!("posix-rename-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), b"A").unwrap();
        std::fs::write(dir.join("b"), b"B").unwrap();
        let d = open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        renameat2(&d, "a", &d, "b", RenameFlags::RENAME_EXCHANGE).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"B");
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"A");
        assert_eq!(
            renameat2(&d, "a", &d, "b", RenameFlags::RENAME_NOREPLACE).unwrap_err(),
            Errno::EEXIST
        );
        renameat(&d, "a", &d, "b").unwrap();
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"B");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_exclusive_flock_on_another_description_would_block() {
        let path = std::env::temp_dir().join(format!("posix-flock-{}", std::process::id()));
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        flock(&a, FlockArg::LockExclusiveNonblock).unwrap();
        assert_eq!(
            flock(&b, FlockArg::LockSharedNonblock).unwrap_err(),
            Errno::EWOULDBLOCK
        );
        drop(a);
        flock(&b, FlockArg::LockSharedNonblock).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
