//! The one error type of totp-enroll and its exit codes.

use std::fmt;
use std::io;

/// Everything that stops a command. `Display` is the one line printed on
/// stderr; it says what to fix.
#[derive(Debug)]
pub enum Error {
    /// Bad arguments or flags (exit 2).
    Usage(String),
    /// The settings file is missing, unsafe or invalid (exit 2).
    Config(shared::Error),
    /// The action was refused or failed: wrong code, device exists, not
    /// allowed, no such device (exit 1).
    Refused(String),
    /// The device file (or another file) could not be read or written, or
    /// was refused as unsafe (exit 1).
    Store(shared::Error),
    /// Writing our own output failed, e.g. a closed pipe (exit 1).
    Output(io::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit status of docs/design.md §7.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Refused(_) | Error::Store(_) | Error::Output(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Usage(m) | Error::Refused(m) => m.clone(),
            Error::Config(e) => format!("settings: {e}"),
            Error::Store(e) => e.to_string(),
            Error::Output(e) => format!("cannot write output: {e}"),
        };
        // One line, whatever the source said.
        f.write_str(&text.replace(['\n', '\r'], " "))
    }
}

impl std::error::Error for Error {}

impl From<shared::Error> for Error {
    fn from(e: shared::Error) -> Self {
        match e {
            shared::Error::Usage(m) => Error::Usage(m),
            shared::Error::Refused(m) => Error::Refused(m),
            shared::Error::UnknownUser(name) => Error::Usage(format!(
                "unknown user `{name}`; check the name given to --user"
            )),
            other => Error::Store(other),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}
