//! Test harness shared by the tests of pam-totp.

/// The test kit: the account fixture, the device constructor, the
/// django-otp state assertion and the root guard, for every test crate.
pub mod kit;

/// Driving the built `pam_totp.so` through real libpam (pam_wrapper,
/// pamtester, pypamtest, libfaketime) and device-file fixtures.
pub mod pam;

/// System fixtures for the real-client tests (sshd, sudo, /etc guards).
pub mod sys;
