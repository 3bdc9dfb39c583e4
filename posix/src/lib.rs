//! The few Linux system calls pam-totp makes that the standard library does
//! not offer, as a small safe API over `libc`: opening relative to a
//! directory descriptor (`openat`, `fstatat`, `mkdirat`, `unlinkat`,
//! `readlinkat`), `renameat2(RENAME_EXCHANGE)`, `flock`, `fsync` of a
//! directory, the per-thread file-system identity (`setfsuid`,
//! `setfsgid`), the reentrant password database (`getpwnam_r`,
//! `getpwuid_r`), the host name and random bytes (`getrandom`).
//!
//! It replaces the `nix` crate, whose API changed between the version
//! Debian 13 packages (0.29, raw descriptors) and the current one (0.30,
//! owned descriptors): with libc alone the project builds on every libc
//! version Debian ships (docs/design.md §11).
//!
//! The names follow nix's, so the callers read the same. Every function is
//! safe to call: descriptors come in as [`AsFd`] and go out as
//! [`OwnedFd`], paths are turned into C strings here (a NUL inside one is
//! `EINVAL`, never a truncated path), and an error is the [`Errno`] the
//! call set. Nothing retries on `EINTR` unless it says so, as with nix.
//!
//! Each `unsafe` block holds one operation and says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::multiple_unsafe_ops_per_block)]

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

pub mod errno;
pub mod fcntl;
pub mod random;
pub mod stat;
pub mod time;
pub mod unistd;

pub use errno::Errno;

/// The result of a system call.
pub type Result<T> = std::result::Result<T, Errno>;

/// `path` as a C string; a NUL byte inside is `EINVAL`.
fn cstr<P: AsRef<OsStr> + ?Sized>(path: &P) -> Result<CString> {
    CString::new(path.as_ref().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `Ok(())` when a call returned 0 or more, else the errno it set.
fn check(ret: libc::c_int) -> Result<()> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
