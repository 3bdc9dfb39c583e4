//! What the module needs from libpam, as a trait: the seam between the
//! decision (`auth`, safe code, tested with a mock) and libpam (`ffi`).

use std::ffi::c_int;

use shared::Answer;

/// Severity of a log line (`pam_syslog` with `LOG_AUTHPRIV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Configuration, file and system errors.
    Error,
    /// Refused codes and throttling.
    Notice,
    /// Accepted codes.
    Info,
    /// `debug` only.
    Debug,
}

/// A conversation message style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Ask with the answer hidden.
    PromptEchoOff,
    /// Ask with the answer shown (`echo`).
    PromptEchoOn,
    /// Tell the user something went wrong.
    ErrorMsg,
}

/// What the module needs from libpam. A failing call returns the PAM code
/// to give back.
pub trait Host {
    /// The user being authenticated (`pam_get_user`).
    fn user(&mut self) -> Result<String, c_int>;
    /// One conversation message; prompts return the answer.
    fn converse(&mut self, style: Style, text: &str) -> Result<Option<Answer>, c_int>;
    /// `PAM_AUTHTOK` as set by an earlier module.
    fn authtok(&mut self) -> Result<Option<Answer>, c_int>;
    /// Sets `PAM_AUTHTOK` for the next module.
    fn set_authtok(&mut self, token: &Answer) -> Result<(), c_int>;
    /// Keeps `code` with the PAM handle for a later `use_stored_code` line
    /// (`pam_set_data`), replacing any code kept before.
    fn keep_code(&mut self, code: &Answer) -> Result<(), c_int>;
    /// The code a `stash_code` line kept, taken: a second call gets `None`.
    fn take_stored_code(&mut self) -> Result<Option<Answer>, c_int>;
    /// A `pam_syslog` line.
    fn log(&mut self, level: Level, message: &str);
    /// True under `PAM_SILENT`: no informational or error messages.
    fn silent(&self) -> bool;
    /// An informational message (`PAM_TEXT_INFO`); it asks for nothing and
    /// a failure to show it changes nothing. Callers check [`Host::silent`].
    fn info(&mut self, text: &str);
    /// The service name and the remote host (`PAM_SERVICE`, `PAM_RHOST`)
    /// as the application set them, for refusal log lines.
    fn origin(&mut self) -> (Option<String>, Option<String>);
    /// The acceptance record an earlier `pam_totp.so` line of this PAM
    /// transaction kept (module data `pam_totp.accepted`), if any.
    fn acceptance(&mut self) -> Option<String>;
    /// Replaces the acceptance record (an empty one clears it).
    fn set_acceptance(&mut self, record: &str);
}
