//! `errno` values.

use std::fmt;

/// An `errno` value. The constants can be matched on
/// (`Err(Errno::ENOENT | Errno::ENOTDIR) => …`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const ELOOP: Errno = Errno(libc::ELOOP);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    /// The same value as `EAGAIN` on Linux.
    pub const EWOULDBLOCK: Errno = Errno(libc::EWOULDBLOCK);

    /// The calling thread's `errno` now; `EIO` if it cannot be read.
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// The value from a raw number.
    pub const fn from_raw(errno: i32) -> Errno {
        Errno(errno)
    }

    /// The raw number.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Errno {
    /// The C library's text, as `std::io::Error` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.0), f)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {self})", self.0)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_errno_becomes_the_io_error_of_the_same_number() {
        let e: std::io::Error = Errno::ENOENT.into();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn an_errno_displays_the_c_library_text() {
        assert!(Errno::ENOENT.to_string().contains("No such file"));
    }
}
