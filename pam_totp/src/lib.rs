//! `pam_totp.so`: the PAM module that asks for a time-based one-time code
//! (RFC 6238) as a second factor, for sshd, sudo, su, login or any PAM
//! service.
//!
//! This crate is thin on purpose. It parses the module arguments
//! ([`args`]), talks to the user and to libpam (`ffi`, the only `unsafe`
//! code of the project), and maps the outcome to a PAM return code in one
//! `match` ([`auth::pam_code`]). Every rule — the device file, verification,
//! drift, replay protection, throttling, safe and durable file access — is
//! in the `shared` crate, which `totp-enroll` uses too. It does not print,
//! start threads, keep global state or exit; it logs through `pam_syslog`
//! and never logs a key or a submitted code.

// Every unsafe line lives in `ffi`; the compiler holds the rest to that.
#![deny(unsafe_code)]

pub mod args;
pub mod auth;
#[allow(unsafe_code)]
mod ffi;

/// The PAM return codes the module gives, from `<security/_pam_types.h>`.
pub mod code {
    use std::ffi::c_int;

    /// Authenticated.
    pub const PAM_SUCCESS: c_int = 0;
    /// Bad module argument or configuration.
    pub const PAM_SERVICE_ERR: c_int = 3;
    /// System error (a broken handle from libpam).
    pub const PAM_SYSTEM_ERR: c_int = 4;
    /// Out of memory (a message that cannot become a C string).
    pub const PAM_BUF_ERR: c_int = 5;
    /// Refused.
    pub const PAM_AUTH_ERR: c_int = 7;
    /// The device file (or password database) cannot be used.
    pub const PAM_AUTHINFO_UNAVAIL: c_int = 9;
    /// No such user.
    pub const PAM_USER_UNKNOWN: c_int = 10;
    /// Throttled: too many failures.
    pub const PAM_MAXTRIES: c_int = 11;
    /// A new password is needed: a `required` line counts it as ok, so the
    /// module never returns it.
    pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
    /// The conversation failed.
    pub const PAM_CONV_ERR: c_int = 19;
    /// Not this module's business (no device with `nullok`; other hooks).
    pub const PAM_IGNORE: c_int = 25;
    /// The highest PAM return code (the stack is to be resumed later).
    pub const PAM_INCOMPLETE: c_int = 31;
}
