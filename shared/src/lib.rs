//! Every rule of pam-totp, in one place.
//!
//! This crate is what `pam_totp.so` and `totp-enroll` share so that the two
//! can never disagree: OATH (HOTP/TOTP, RFC 4226/6238), the device file format
//! and its validation, django-otp's verification rules (tolerance window, drift
//! compensation, replay protection through `last_t`, exponential-backoff
//! throttling) as pure functions of `(device, input, now, policy)`, the
//! settings file and path templates, the `otpauth://` URL, and the device-file
//! store (safe open, lock, durable atomic replace, file-system identity switch).
//!
//! It does not read the clock (callers pass `now`), talk to PAM, print, or log:
//! those are the edges' business. It has no `unsafe` code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod config;
pub mod device;
pub mod error;
pub mod fsafe;
pub mod limits;
pub mod login;
pub mod manage;
pub mod oath;
pub mod otpauth;
pub mod secret;
pub mod store;
pub mod time;
mod tomlfile;
pub mod user;
pub mod verify;

pub use config::{PathTemplate, Settings};
pub use device::{Device, DeviceFile};
pub use error::Error;
pub use oath::Algorithm;
pub use secret::{Answer, Secret};
pub use time::Timestamp;
pub use verify::{Policy, Verdict};
