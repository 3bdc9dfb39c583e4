//! Test harness shared by the end-to-end tests of pam-totp.

/// System fixtures for the real-client tests (sshd, sudo, users, /etc guards).
pub mod sys;
