//! File status and modes.

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};

use crate::fcntl::AtFlags;
use crate::{check, cstr, Result};

/// What `stat(2)` fills in.
pub type FileStat = libc::stat;

/// Permission bits for a new file or directory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mode(libc::mode_t);

impl Mode {
    /// No permission bit.
    pub const fn empty() -> Mode {
        Mode(0)
    }

    /// The permission bits of `bits` (`0o7777`); the rest is dropped.
    pub const fn from_bits_truncate(bits: libc::mode_t) -> Mode {
        Mode(bits & 0o7777)
    }

    /// The raw bits.
    pub const fn bits(self) -> libc::mode_t {
        self.0
    }
}

/// The type of a file, from `st_mode`. The constants can be matched on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SFlag(libc::mode_t);

impl SFlag {
    pub const S_IFMT: SFlag = SFlag(libc::S_IFMT);
    pub const S_IFREG: SFlag = SFlag(libc::S_IFREG);
    pub const S_IFDIR: SFlag = SFlag(libc::S_IFDIR);
    pub const S_IFLNK: SFlag = SFlag(libc::S_IFLNK);
    pub const S_IFIFO: SFlag = SFlag(libc::S_IFIFO);
    pub const S_IFSOCK: SFlag = SFlag(libc::S_IFSOCK);
    pub const S_IFCHR: SFlag = SFlag(libc::S_IFCHR);
    pub const S_IFBLK: SFlag = SFlag(libc::S_IFBLK);

    /// The type bits of a mode (`mode & S_IFMT`).
    pub const fn from_bits_truncate(mode: libc::mode_t) -> SFlag {
        SFlag(mode & libc::S_IFMT)
    }

    /// The raw bits.
    pub const fn bits(self) -> libc::mode_t {
        self.0
    }
}

/// The type of the file `st` describes.
pub const fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode)
}

/// The status of the open file `fd`.
pub fn fstat<Fd: AsFd>(fd: Fd) -> Result<FileStat> {
    let mut st = MaybeUninit::<FileStat>::uninit();
    // SAFETY: the descriptor is borrowed for the call; `st` is writable
    // memory of the size fstat(2) fills.
    check(unsafe { libc::fstat(fd.as_fd().as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// The status of `path` in `dir` (of a link itself with
/// `AT_SYMLINK_NOFOLLOW`).
pub fn fstatat<Fd: AsFd, P: AsRef<OsStr> + ?Sized>(
    dir: Fd,
    path: &P,
    flags: AtFlags,
) -> Result<FileStat> {
    let path = cstr(path)?;
    let mut st = MaybeUninit::<FileStat>::uninit();
    // SAFETY: the descriptor is borrowed; `path` outlives the call; `st`
    // is writable memory of the size fstatat(2) fills.
    check(unsafe {
        libc::fstatat(
            dir.as_fd().as_raw_fd(),
            path.as_ptr(),
            st.as_mut_ptr(),
            flags.bits(),
        )
    })?;
    // SAFETY: fstatat returned 0, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// The status of `path`, following links.
pub fn stat<P: AsRef<OsStr> + ?Sized>(path: &P) -> Result<FileStat> {
    let path = cstr(path)?;
    let mut st = MaybeUninit::<FileStat>::uninit();
    // SAFETY: `path` outlives the call; `st` is writable memory of the
    // size stat(2) fills.
    check(unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: stat returned 0, so it filled the whole struct.
    Ok(unsafe { st.assume_init() })
}

/// Makes the directory `path` in `dir`.
pub fn mkdirat<Fd: AsFd, P: AsRef<OsStr> + ?Sized>(dir: Fd, path: &P, mode: Mode) -> Result<()> {
    let path = cstr(path)?;
    // SAFETY: the descriptor is borrowed; `path` outlives the call.
    check(unsafe { libc::mkdirat(dir.as_fd().as_raw_fd(), path.as_ptr(), mode.0) })
}

/// Makes the FIFO `path`.
pub fn mkfifo<P: AsRef<OsStr> + ?Sized>(path: &P, mode: Mode) -> Result<()> {
    let path = cstr(path)?;
    // SAFETY: `path` outlives the call.
    check(unsafe { libc::mkfifo(path.as_ptr(), mode.0) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fcntl::{open, OFlag};
    use crate::Errno;

    #[test]
    fn fstat_fstatat_and_stat_agree_on_a_directory() {
        let d = open("/", OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let a = fstat(&d).unwrap();
        let b = stat("/").unwrap();
        let c = fstatat(&d, ".", AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!((a.st_ino, a.st_dev), (b.st_ino, b.st_dev));
        assert_eq!((a.st_ino, a.st_dev), (c.st_ino, c.st_dev));
        assert_eq!(kind(&a), SFlag::S_IFDIR);
    }

    #[test]
    fn mkdirat_and_mkfifo_make_what_they_say_with_the_mode_asked() {
        let base = std::env::temp_dir().join(format!("posix-mk-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let d = open(&base, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        mkdirat(&d, "sub", Mode::from_bits_truncate(0o700)).unwrap();
        assert_eq!(
            mkdirat(&d, "sub", Mode::from_bits_truncate(0o700)).unwrap_err(),
            Errno::EEXIST
        );
        let st = stat(&base.join("sub")).unwrap();
        assert_eq!(kind(&st), SFlag::S_IFDIR);
        assert_eq!(st.st_mode & 0o777 & !0o700, 0);
        mkfifo(&base.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let st = fstatat(&d, "fifo", AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(kind(&st), SFlag::S_IFIFO);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn mode_keeps_only_permission_bits() {
        assert_eq!(Mode::from_bits_truncate(0o100644).bits(), 0o644);
    }
}
