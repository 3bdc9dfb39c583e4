//! `pam_totp.so`: the PAM module that asks for a time-based one-time code
//! (RFC 6238) as a second factor, for sshd, sudo, su, login or any PAM
//! service.
//!
//! This crate is thin on purpose. It parses the module arguments
//! ([`args`]), talks to the user and to libpam (`ffi`, over the C
//! declarations of `sys`: the only `unsafe` code of the project), and maps
//! the outcome to a PAM return code in one `match` ([`auth::pam_code`]).
//! Every rule — the device file, verification, drift, replay protection,
//! throttling, safe and durable file access — is in the `shared` crate,
//! which `totp-enroll` uses too. It does not print, start threads, keep
//! global state or exit; it logs through `pam_syslog` and never logs a key
//! or a submitted code.

// Every unsafe line lives in `sys` (declarations) and `ffi` (calls); the
// compiler holds the rest to that.
#![deny(unsafe_code)]

mod acceptance;
pub mod args;
pub mod auth;
#[allow(unsafe_code)]
mod ffi;
pub mod host;
pub mod outcome;
#[allow(unsafe_code)]
mod sys;

/// The PAM return codes, from `<security/_pam_types.h>` (declared in
/// `sys` with the rest of the C side).
pub use sys::code;
