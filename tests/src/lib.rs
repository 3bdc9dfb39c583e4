//! Test harness shared by the end-to-end tests of pam-totp.

/// Driving the built `pam_totp.so` through real libpam (pam_wrapper,
/// pamtester, pypamtest, libfaketime) and device-file fixtures.
pub mod pam;

/// System fixtures for the real-client tests (sshd, sudo, users, /etc guards).
pub mod sys;
