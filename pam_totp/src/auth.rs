//! One authentication, in safe code, read top to bottom in [`authenticate`]:
//! arguments → settings → user → `shared::login::prepare` → obtain the code
//! → `shared::login::attempt` → an [`Outcome`] or an [`Error`]. [`pam_code`]
//! is the one place that turns them into PAM return codes.
//!
//! Everything PAM-specific (items, conversation, syslog) is behind the
//! [`Host`] trait, implemented over libpam in `ffi`.

use std::ffi::c_int;
use std::fmt;
use std::path::Path;

use shared::config::DEFAULT_CONFIG;
use shared::login::{self, Prepared, DEFAULT_DIGITS};
use shared::secret::normalize_code;
use shared::store::Store;
use shared::user::UserInfo;
use shared::verify::{Login, Policy, Rejection};
use shared::{Answer, Settings, Timestamp};

use crate::args::{Args, FirstPass, Resolved};
use crate::code;
/// Longest answer taken from the conversation or `PAM_AUTHTOK`, in bytes
/// (libpam's `PAM_MAX_RESP_SIZE`). A longer one is a failed attempt.
pub const MAX_ANSWER_LEN: usize = 512;
/// What a longer answer is replaced with: never a valid code of any device.
const OVERLONG: &str = "overlong answer";

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
    /// A `pam_syslog` line.
    fn log(&mut self, level: Level, message: &str);
    /// True under `PAM_SILENT`: no informational or error messages.
    fn silent(&self) -> bool;
    /// `PAM_RHOST`, the remote host, when the application set it (for
    /// the log lines of a failing central store).
    fn rhost(&mut self) -> Option<String> {
        None
    }
}

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
        Ok(Outcome::Accepted { .. }) => code::PAM_SUCCESS,
        Ok(Outcome::Rejected(_) | Outcome::NotEnrolled | Outcome::NoToken) => code::PAM_AUTH_ERR,
        Ok(Outcome::Skipped) => code::PAM_IGNORE,
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

/// Runs one authentication and logs errors; returns what [`pam_code`] maps.
pub fn run(host: &mut dyn Host, args: &[&[u8]]) -> Result<Outcome, Error> {
    let result = authenticate(host, args);
    if let Err(e) = &result {
        let mut line = e.to_string();
        // A central store that fails: name the remote host too, so that
        // the line says which login was turned away (and fail2ban-like
        // tools can tell); control characters cannot forge a line.
        if matches!(e, Error::Unavailable(shared::Error::Database(_))) {
            if let Some(rhost) = host.rhost() {
                line.push_str(", rhost ");
                line.extend(rhost.chars().map(|c| if c.is_control() { '?' } else { c }));
            }
        }
        host.log(Level::Error, &line);
    }
    result
}

/// Whom the code is checked for. Every kind walks the same path through
/// [`obtain`], so prompts and first-pass handling never tell them apart.
enum Target {
    /// Not in the password database.
    Unknown,
    /// No device file or no confirmed device, without `nullok`.
    NotEnrolled(Store),
    /// Has a confirmed device that is not throttled.
    Ready(Store),
}

/// The decision, without the final log of errors.
pub fn authenticate(host: &mut dyn Host, args: &[&[u8]]) -> Result<Outcome, Error> {
    let args = Args::parse(args.iter().copied()).map_err(Error::Args)?;
    #[cfg(feature = "test-panic")]
    if args.test_panic {
        #[allow(clippy::panic)]
        {
            panic!("test_panic: a deliberate panic inside pam_sm_authenticate");
        }
    }
    let cfg = Resolved::merge(&args, load_settings(&args)?);

    let name = host.user().map_err(|c| Error::Pam("pam_get_user", c))?;
    let (target, digits) = match UserInfo::by_name(&name).map_err(Error::Unavailable)? {
        None => (Target::Unknown, DEFAULT_DIGITS),
        Some(user) => {
            let store =
                Store::open(&cfg.store, &cfg.template, &user).map_err(Error::Unavailable)?;
            if cfg.debug {
                debug_config(host, &args, &store, &cfg.policy, &name);
            }
            match login::prepare(&store, &cfg.policy).map_err(Error::Unavailable)? {
                Prepared::Ready { digits } => (Target::Ready(store), digits),
                Prepared::AllThrottled { until, now } => {
                    return Ok(throttled(host, &name, until, now))
                }
                Prepared::NoDevice if cfg.nullok => {
                    host.log(
                        Level::Info,
                        &format!("{}; nullok: skipped", not_enrolled(&name, &store)),
                    );
                    return Ok(Outcome::Skipped);
                }
                Prepared::NoDevice => (Target::NotEnrolled(store), DEFAULT_DIGITS),
            }
        }
    };

    let mut source = cfg.first_pass;
    loop {
        let Some((code, from)) = obtain(host, &cfg, source, digits)? else {
            return Ok(refuse(host, &target, &name, Outcome::NoToken));
        };
        let outcome = match &target {
            Target::Ready(store) => attempt(host, store, &name, &code, &cfg.policy)?,
            Target::Unknown => Outcome::UnknownUser,
            Target::NotEnrolled(_) => Outcome::NotEnrolled,
        };
        // try_first_pass: a refused token is followed by a prompt.
        let refused = !matches!(
            outcome,
            Outcome::Accepted { .. } | Outcome::Throttled { .. }
        );
        if from == FirstPass::Try && refused {
            source = FirstPass::Prompt;
            continue;
        }
        return Ok(refuse(host, &target, &name, outcome));
    }
}

/// The settings: the file named by `config=` must exist (a typo there must
/// not quietly bring back the defaults, and with them perhaps per-user
/// files and `nullok` users let in without a code); the default file may be
/// missing.
fn load_settings(args: &Args) -> Result<Settings, Error> {
    match &args.config {
        Some(path) => Settings::load_named(path),
        None => Settings::load(Path::new(DEFAULT_CONFIG)),
    }
    .map_err(Error::Config)
}

/// The outcome for a user who cannot log in (logged), or `outcome` itself.
fn refuse(host: &mut dyn Host, target: &Target, name: &str, outcome: Outcome) -> Outcome {
    match target {
        Target::Unknown => {
            host.log(Level::Notice, "unknown user");
            Outcome::UnknownUser
        }
        Target::NotEnrolled(store) => {
            host.log(
                Level::Notice,
                &format!("{}; refused", not_enrolled(name, store)),
            );
            Outcome::NotEnrolled
        }
        Target::Ready(_) => {
            if outcome == Outcome::NoToken {
                host.log(
                    Level::Notice,
                    &format!(
                        "use_first_pass: no PAM_AUTHTOK from an earlier module for user {name}"
                    ),
                );
            }
            outcome
        }
    }
}

fn not_enrolled(name: &str, store: &Store) -> String {
    format!("user {name} has no confirmed device in {store}")
}

/// Obtains the code, the same way for every user: from `PAM_AUTHTOK` first
/// (`use_first_pass`; `try_first_pass` when it is shaped like a code), else
/// by prompting; with `forward_pass` the password part is handed on.
/// Returns the code and where it came from; `None`: `use_first_pass` and no
/// token.
fn obtain(
    host: &mut dyn Host,
    cfg: &Resolved,
    source: FirstPass,
    digits: u32,
) -> Result<Option<(Answer, FirstPass)>, Error> {
    let token = match source {
        FirstPass::Prompt => None,
        FirstPass::Use => match host.authtok().map_err(|c| Error::Pam("pam_get_item", c))? {
            Some(token) => Some(token),
            None => return Ok(None),
        },
        FirstPass::Try => host
            .authtok()
            .map_err(|c| Error::Pam("pam_get_item", c))?
            .filter(|t| looks_like_code(t, cfg, digits)),
    };
    if let Some(token) = token {
        return Ok(Some((code_of(host, cfg, token, digits)?, source)));
    }
    let style = if cfg.echo {
        Style::PromptEchoOn
    } else {
        Style::PromptEchoOff
    };
    let answer = host
        .converse(style, &cfg.prompt)
        .map_err(|c| Error::Pam("conversation", c))?
        .unwrap_or_default();
    Ok(Some((
        code_of(host, cfg, answer, digits)?,
        FirstPass::Prompt,
    )))
}

/// With `try_first_pass`: is `PAM_AUTHTOK` worth trying as a code? A password
/// from an earlier module is not, and trying it would record a failure.
fn looks_like_code(token: &Answer, cfg: &Resolved, digits: u32) -> bool {
    if token.expose().len() > MAX_ANSWER_LEN {
        return false;
    }
    let candidate = if cfg.forward_pass {
        match token.split_forward_pass(digits as usize) {
            Some((_, code)) => code,
            None => return false,
        }
    } else {
        token.clone()
    };
    normalize_code(candidate.expose(), digits).is_some()
}

/// The code in an answer: bounded in length; with `forward_pass` the
/// trailing `digits` characters, the rest being handed on as `PAM_AUTHTOK`.
fn code_of(
    host: &mut dyn Host,
    cfg: &Resolved,
    answer: Answer,
    digits: u32,
) -> Result<Answer, Error> {
    if answer.expose().len() > MAX_ANSWER_LEN {
        return Ok(Answer::new(OVERLONG.to_owned()));
    }
    if !cfg.forward_pass {
        return Ok(answer);
    }
    match answer.split_forward_pass(digits as usize) {
        Some((password, code)) => {
            host.set_authtok(&password)
                .map_err(|c| Error::Pam("pam_set_item(PAM_AUTHTOK)", c))?;
            Ok(code)
        }
        // Shorter than a code: certainly malformed; nothing to hand on.
        None => Ok(answer),
    }
}

/// One locked, durable attempt, logged.
fn attempt(
    host: &mut dyn Host,
    store: &Store,
    name: &str,
    code: &Answer,
    policy: &Policy,
) -> Result<Outcome, Error> {
    let done = login::attempt(store, code.expose(), policy).map_err(Error::Unavailable)?;
    Ok(match done.login {
        Login::Accepted {
            device,
            offset,
            drift,
            ..
        } => {
            host.log(
                Level::Info,
                &format!("accepted: user {name}, device {device}, offset {offset}, drift {drift}"),
            );
            Outcome::Accepted { device, drift }
        }
        Login::Rejected { reason, tried } => {
            let why = match reason {
                Rejection::Replayed => "replayed code (already used)",
                Rejection::Wrong => "wrong code",
                Rejection::Malformed => "malformed code",
            };
            host.log(
                Level::Notice,
                &format!("rejected: user {name}, {why}, {tried} device(s) tried"),
            );
            Outcome::Rejected(reason)
        }
        Login::AllThrottled { until } => throttled(host, name, until, done.now),
        Login::NoDevice => {
            host.log(
                Level::Notice,
                &format!("user {name}: the device file went away during the login; refused"),
            );
            Outcome::NotEnrolled
        }
    })
}

/// Tells the user how long to wait, logs, and gives the outcome.
fn throttled(host: &mut dyn Host, name: &str, until: Timestamp, now: Timestamp) -> Outcome {
    let micros = until.micros_since(now).max(0);
    let secs = (micros + 999_999) / 1_000_000;
    host.log(
        Level::Notice,
        &format!("throttled: user {name}, too many failures, every device blocked until {until}"),
    );
    if !host.silent() {
        let unit = if secs == 1 { "second" } else { "seconds" };
        let _ = host.converse(
            Style::ErrorMsg,
            &format!("Too many failed verification codes; try again in {secs} {unit}."),
        );
    }
    Outcome::Throttled { until }
}

fn debug_config(host: &mut dyn Host, args: &Args, store: &Store, policy: &Policy, name: &str) {
    let config = args.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
    host.log(
        Level::Debug,
        &format!(
            "user {name}: settings {}, device file {store}, sync {}, throttle_factor {}",
            config.display(),
            policy.sync,
            policy.throttle_factor
        ),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::args::{FORWARD_PROMPT, PROMPT};
    use std::path::PathBuf;

    /// A host that answers prompts from a list and records the rest.
    #[derive(Default)]
    struct Mock {
        answers: Vec<&'static str>,
        prompts: Vec<(Style, String)>,
        authtok: Option<String>,
        set: Vec<String>,
        logs: Vec<String>,
    }

    impl Host for Mock {
        fn user(&mut self) -> Result<String, c_int> {
            Ok("nobody".into())
        }
        fn converse(&mut self, style: Style, text: &str) -> Result<Option<Answer>, c_int> {
            self.prompts.push((style, text.to_owned()));
            if style == Style::ErrorMsg {
                return Ok(None);
            }
            if self.answers.is_empty() {
                return Err(code::PAM_CONV_ERR);
            }
            Ok(Some(Answer::new(self.answers.remove(0).to_owned())))
        }
        fn authtok(&mut self) -> Result<Option<Answer>, c_int> {
            Ok(self.authtok.clone().map(Answer::new))
        }
        fn set_authtok(&mut self, token: &Answer) -> Result<(), c_int> {
            self.set.push(token.expose().to_owned());
            Ok(())
        }
        fn log(&mut self, _: Level, message: &str) {
            self.logs.push(message.to_owned());
        }
        fn silent(&self) -> bool {
            false
        }
    }

    fn args(list: &[&str]) -> Resolved {
        let args = Args::parse(list.iter().map(|a| a.as_bytes())).unwrap();
        Resolved::merge(&args, Settings::default())
    }

    /// The code obtained by prompting.
    fn ask(host: &mut Mock, cfg: &Resolved, digits: u32) -> Result<Answer, Error> {
        let (code, from) = obtain(host, cfg, FirstPass::Prompt, digits)?.unwrap();
        assert_eq!(from, FirstPass::Prompt);
        Ok(code)
    }

    #[test]
    fn the_default_prompt_is_echo_off_and_echo_turns_it_on() {
        let mut host = Mock {
            answers: vec!["123456", "654321"],
            ..Mock::default()
        };
        assert_eq!(ask(&mut host, &args(&[]), 6).unwrap().expose(), "123456");
        ask(&mut host, &args(&["echo", "prompt=Code:"]), 6).unwrap();
        assert_eq!(
            host.prompts,
            [
                (Style::PromptEchoOff, PROMPT.to_owned()),
                (Style::PromptEchoOn, "Code:".to_owned())
            ]
        );
    }

    #[test]
    fn forward_pass_splits_the_code_off_and_hands_the_password_on() {
        let mut host = Mock {
            answers: vec!["hunter2 x12345678"],
            ..Mock::default()
        };
        let code = ask(&mut host, &args(&["forward_pass"]), 8).unwrap();
        assert_eq!(code.expose(), "12345678");
        assert_eq!(host.set, ["hunter2 x"]);
        assert_eq!(host.prompts[0].1, FORWARD_PROMPT);
    }

    #[test]
    fn an_answer_shorter_than_a_code_hands_nothing_on() {
        let mut host = Mock::default();
        let code = code_of(
            &mut host,
            &args(&["forward_pass"]),
            Answer::new("12".into()),
            6,
        );
        assert_eq!(code.unwrap().expose(), "12");
        assert!(host.set.is_empty());
    }

    #[test]
    fn an_overlong_answer_becomes_a_code_no_device_accepts() {
        let mut host = Mock::default();
        let long = format!("{}123456", " ".repeat(MAX_ANSWER_LEN));
        let code = code_of(&mut host, &args(&["forward_pass"]), Answer::new(long), 6).unwrap();
        assert!(normalize_code(code.expose(), 6).is_none());
        assert!(normalize_code(code.expose(), 8).is_none());
        assert!(host.set.is_empty(), "an overlong answer hands nothing on");
    }

    #[test]
    fn try_first_pass_only_tries_tokens_shaped_like_a_code() {
        let plain = args(&["try_first_pass"]);
        let fwd = args(&["try_first_pass", "forward_pass"]);
        assert!(looks_like_code(&Answer::new("123 456".into()), &plain, 6));
        assert!(!looks_like_code(&Answer::new("hunter2".into()), &plain, 6));
        assert!(!looks_like_code(&Answer::new("12345678".into()), &plain, 6));
        assert!(looks_like_code(
            &Answer::new("hunter2123456".into()),
            &fwd,
            6
        ));
        assert!(!looks_like_code(&Answer::new("hunter2".into()), &fwd, 6));
    }

    #[test]
    fn try_first_pass_prompts_after_a_token_that_is_not_a_code_and_use_first_pass_never_prompts() {
        for (list, token, prompts, from) in [
            (&["try_first_pass"][..], "hunter2", 1, FirstPass::Prompt),
            (&["try_first_pass"][..], "123456", 0, FirstPass::Try),
            (&["use_first_pass"][..], "hunter2", 0, FirstPass::Use),
        ] {
            let cfg = args(list);
            let mut host = Mock {
                answers: vec!["654321"],
                authtok: Some(token.into()),
                ..Mock::default()
            };
            let (_, got) = obtain(&mut host, &cfg, cfg.first_pass, 6).unwrap().unwrap();
            assert_eq!(host.prompts.len(), prompts, "{list:?} {token}");
            assert_eq!(got, from, "{list:?} {token}");
        }
        let mut host = Mock::default();
        let cfg = args(&["use_first_pass"]);
        assert!(obtain(&mut host, &cfg, cfg.first_pass, 6)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_wait_is_rounded_up_to_whole_seconds_and_logged() {
        let mut host = Mock::default();
        let now = Timestamp::from_micros(1_700_000_001_500_000);
        let until = Timestamp::from_secs(1_700_000_003);
        let outcome = throttled(&mut host, "alice", until, now);
        assert_eq!(outcome, Outcome::Throttled { until });
        assert_eq!(
            host.prompts,
            [(
                Style::ErrorMsg,
                "Too many failed verification codes; try again in 2 seconds.".to_owned()
            )]
        );
        assert!(host.logs[0].starts_with("throttled: user alice"));
    }

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
