//! How an authentication ends, and the one mapping from that to a PAM
//! return code ([`pam_code`], docs/design.md §6 table; each arm has a
//! named test below).

use std::ffi::c_int;
use std::fmt;

use shared::verify::Rejection;
use shared::Timestamp;

use crate::code;

/// How an authentication that ran to its end turned out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A device accepted the code and its new state is on disk.
    Accepted {
        /// The device's name.
        device: String,
        /// Its drift after the login.
        drift: i16,
    },
    /// A backup code was accepted and removed; its new state is on disk.
    BackupAccepted {
        /// Codes left in the set.
        remaining: usize,
    },
    /// The code was wrong, replayed or malformed (and recorded as a failure).
    Rejected(Rejection),
    /// `use_first_pass` without a `PAM_AUTHTOK` to use.
    NoToken,
    /// No device file or no confirmed device, with `nullok`: not prompted.
    Skipped,
    /// No device file or no confirmed device, without `nullok`: prompted
    /// anyway so that enrollment is not revealed.
    NotEnrolled,
    /// Every confirmed device is throttled until `until`: not prompted (or,
    /// if another login throttled them meanwhile, the answer was not tried).
    Throttled {
        /// When the first device is free again.
        until: Timestamp,
    },
    /// The user is not in the password database (prompted anyway).
    UnknownUser,
    /// An earlier `pam_totp.so` line of the same PAM transaction accepted a
    /// code for this user and device file: not asked again (issue 14).
    AcceptedEarlier,
    /// `stash_code`: the code is kept and the password handed on; the
    /// decision is a later line's.
    Stashed,
}

/// Why an authentication could not be decided.
#[derive(Debug)]
pub enum Error {
    /// A module argument is unknown or malformed.
    Args(String),
    /// The settings file is insecure or invalid.
    Config(shared::Error),
    /// The device file is insecure, unparsable or cannot be saved; or the
    /// password database cannot be read.
    Unavailable(shared::Error),
    /// A libpam call (user, item, conversation) failed with this code.
    Pam(&'static str, c_int),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Args(msg) => write!(f, "bad module argument: {msg}"),
            Error::Config(e) => write!(f, "bad configuration: {e}"),
            Error::Unavailable(e @ shared::Error::Database(_)) => write!(f, "{e}"),
            Error::Unavailable(e) => write!(f, "cannot use the device file: {e}"),
            Error::Pam(what, rc) => write!(f, "{what} failed with PAM error {rc}"),
        }
    }
}

/// The one mapping from results to PAM return codes (docs/design.md §6 table).
pub fn pam_code(result: &Result<Outcome, Error>) -> c_int {
    match result {
        Ok(
            Outcome::Accepted { .. } | Outcome::BackupAccepted { .. } | Outcome::AcceptedEarlier,
        ) => code::PAM_SUCCESS,
        Ok(Outcome::Rejected(_) | Outcome::NotEnrolled | Outcome::NoToken) => code::PAM_AUTH_ERR,
        Ok(Outcome::Skipped | Outcome::Stashed) => code::PAM_IGNORE,
        Ok(Outcome::Throttled { .. }) => code::PAM_MAXTRIES,
        Ok(Outcome::UnknownUser) => code::PAM_USER_UNKNOWN,
        Err(Error::Args(_) | Error::Config(_)) => code::PAM_SERVICE_ERR,
        Err(Error::Unavailable(_)) => code::PAM_AUTHINFO_UNAVAIL,
        // A failing libpam call's own code is passed on (PAM_CONV_ERR,
        // PAM_BUF_ERR, PAM_INCOMPLETE, ...), but never one that could let the
        // stack go on as if this module had passed or abstained
        // (`required` counts PAM_NEW_AUTHTOK_REQD as ok), nor a value that is
        // no PAM code (the conversation is the application's function).
        Err(Error::Pam(_, rc))
            if (code::PAM_SUCCESS + 1..=code::PAM_INCOMPLETE).contains(rc)
                && *rc != code::PAM_IGNORE
                && *rc != code::PAM_NEW_AUTHTOK_REQD =>
        {
            *rc
        }
        Err(Error::Pam(..)) => code::PAM_AUTH_ERR,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;

    fn shared_error() -> shared::Error {
        shared::Error::insecure(PathBuf::from("/x"), "test")
    }

    #[test]
    fn an_accepted_code_is_pam_success() {
        let r = Ok(Outcome::Accepted {
            device: "phone".into(),
            drift: 0,
        });
        assert_eq!(pam_code(&r), code::PAM_SUCCESS);
    }

    #[test]
    fn an_accepted_backup_code_is_pam_success() {
        let r = Ok(Outcome::BackupAccepted { remaining: 3 });
        assert_eq!(pam_code(&r), code::PAM_SUCCESS);
    }

    #[test]
    fn a_wrong_replayed_or_malformed_code_is_pam_auth_err() {
        for reason in [Rejection::Wrong, Rejection::Replayed, Rejection::Malformed] {
            assert_eq!(pam_code(&Ok(Outcome::Rejected(reason))), code::PAM_AUTH_ERR);
        }
    }

    #[test]
    fn no_device_without_nullok_is_pam_auth_err() {
        assert_eq!(pam_code(&Ok(Outcome::NotEnrolled)), code::PAM_AUTH_ERR);
    }

    #[test]
    fn use_first_pass_without_a_token_is_pam_auth_err() {
        assert_eq!(pam_code(&Ok(Outcome::NoToken)), code::PAM_AUTH_ERR);
    }

    #[test]
    fn no_device_with_nullok_is_pam_ignore() {
        assert_eq!(pam_code(&Ok(Outcome::Skipped)), code::PAM_IGNORE);
    }

    #[test]
    fn every_device_throttled_is_pam_maxtries() {
        let r = Ok(Outcome::Throttled {
            until: Timestamp::from_secs(1),
        });
        assert_eq!(pam_code(&r), code::PAM_MAXTRIES);
    }

    #[test]
    fn an_acceptance_earlier_in_the_transaction_is_pam_success() {
        assert_eq!(pam_code(&Ok(Outcome::AcceptedEarlier)), code::PAM_SUCCESS);
    }

    #[test]
    fn an_unknown_user_is_pam_user_unknown() {
        assert_eq!(pam_code(&Ok(Outcome::UnknownUser)), code::PAM_USER_UNKNOWN);
    }

    #[test]
    fn a_bad_argument_or_configuration_is_pam_service_err() {
        assert_eq!(
            pam_code(&Err(Error::Args("x".into()))),
            code::PAM_SERVICE_ERR
        );
        assert_eq!(
            pam_code(&Err(Error::Config(shared_error()))),
            code::PAM_SERVICE_ERR
        );
    }

    #[test]
    fn an_unusable_device_file_is_pam_authinfo_unavail() {
        assert_eq!(
            pam_code(&Err(Error::Unavailable(shared_error()))),
            code::PAM_AUTHINFO_UNAVAIL
        );
    }

    #[test]
    fn a_failing_libpam_call_that_reports_success_or_ignore_still_fails_closed() {
        for rc in [code::PAM_SUCCESS, code::PAM_IGNORE] {
            assert_eq!(
                pam_code(&Err(Error::Pam("conversation", rc))),
                code::PAM_AUTH_ERR
            );
        }
    }

    #[test]
    fn a_failing_libpam_call_never_returns_a_code_a_required_line_counts_as_ok() {
        // `required` is [success=ok new_authtok_reqd=ok ignore=ignore
        // default=bad]: an application's conversation that fails with
        // PAM_NEW_AUTHTOK_REQD must not read as a pass; nor may a value
        // that is no PAM code at all.
        for rc in [12, -1, 32, 1000] {
            assert_eq!(
                pam_code(&Err(Error::Pam("conversation", rc))),
                code::PAM_AUTH_ERR,
                "{rc}"
            );
        }
    }

    #[test]
    fn a_failing_libpam_call_passes_its_own_code_on() {
        assert_eq!(
            pam_code(&Err(Error::Pam("conversation", code::PAM_CONV_ERR))),
            code::PAM_CONV_ERR
        );
    }
}
