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

/// Runs one authentication and logs errors; returns what [`pam_code`] maps.
pub fn run(host: &mut dyn Host, args: &[&[u8]]) -> Result<Outcome, Error> {
    let result = authenticate(host, args);
    if let Err(e) = &result {
        let mut line = e.to_string();
        // A central store that fails: name the remote host too, so that
        // the line says which login was turned away (and fail2ban-like
        // tools can tell); control characters cannot forge a line.
        if matches!(e, Error::Unavailable(shared::Error::Database(_))) {
            if let (_, Some(rhost)) = host.origin() {
                line.push_str(", rhost ");
                line.push_str(&log_word(Some(&rhost)));
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
    let raw = args;
    let args = Args::parse(args.iter().copied()).map_err(Error::Args)?;
    #[cfg(feature = "test-panic")]
    if args.test_panic {
        #[allow(clippy::panic)]
        {
            panic!("test_panic: a deliberate panic inside pam_sm_authenticate");
        }
    }
    let cfg = Resolved::merge(&args, load_settings(&args)?);
    if cfg.stash_code {
        return stash(host, &cfg);
    }

    let name = host.user().map_err(|c| Error::Pam("pam_get_user", c))?;
    let (target, digits) = match UserInfo::by_name(&name).map_err(Error::Unavailable)? {
        None => (Target::Unknown, DEFAULT_DIGITS),
        Some(user) => {
            let store =
                Store::open(&cfg.store, &cfg.template, &user).map_err(Error::Unavailable)?;
            if cfg.debug {
                debug_config(host, &args, &store, &cfg.policy, &name);
            }
            let this = Acceptance::new(args_line(raw), &name, &store, Timestamp::now());
            match earlier(host.acceptance().as_deref(), &this) {
                Earlier::Accepted => {
                    // Used once: a later pass on the same handle that skips
                    // the accepting line must not find it again (red-team
                    // finding R3).
                    host.set_acceptance("");
                    host.log(
                        Level::Info,
                        &format!(
                            "accepted: user {name}, a code was accepted earlier in this PAM \
                             transaction for {store}; not asked again"
                        ),
                    );
                    return Ok(Outcome::AcceptedEarlier);
                }
                // This very line accepted before: a new pass on the same
                // handle. Its old acceptance must not carry a later line.
                Earlier::NewPass => host.set_acceptance(""),
                Earlier::None => {}
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
        // A try_first_pass token may be a password that looks like a
        // code: only its acceptance counts (issue 11, finding 9).
        let counted = from != FirstPass::Try;
        let outcome = match &target {
            Target::Ready(store) => attempt(host, store, &name, &code, &cfg, raw, counted)?,
            Target::Unknown => Outcome::UnknownUser,
            Target::NotEnrolled(_) => Outcome::NotEnrolled,
        };
        // try_first_pass: a refused token is followed by a prompt.
        let refused = !matches!(
            outcome,
            Outcome::Accepted { .. } | Outcome::BackupAccepted { .. } | Outcome::Throttled { .. }
        );
        if from == FirstPass::Try && refused {
            source = FirstPass::Prompt;
            continue;
        }
        return Ok(refuse(host, &target, &name, outcome));
    }
}

/// `stash_code`, the first of the two `forward_pass` lines: one prompt for
/// password and code, the password handed on as `PAM_AUTHTOK`, the code
/// kept for the `use_stored_code` line after the password module. It runs
/// before the first factor, so it treats every user alike: the same
/// prompt, no throttle state read, nothing verified, nothing counted
/// (docs/design.md §6, "Before the first factor"; issue 11, finding 2).
fn stash(host: &mut dyn Host, cfg: &Resolved) -> Result<Outcome, Error> {
    let name = host.user().map_err(|c| Error::Pam("pam_get_user", c))?;
    // Where to cut: the digits of the user's first confirmed device. Any
    // error is the verifying line's to report.
    let digits = match UserInfo::by_name(&name) {
        Ok(Some(user)) => Store::for_user(&cfg.template, &user)
            .map(|store| login::code_length(&store))
            .unwrap_or(DEFAULT_DIGITS),
        _ => DEFAULT_DIGITS,
    };
    let answer = ask(host, cfg)?;
    let code = if answer.len() > MAX_ANSWER_LEN {
        Answer::new(OVERLONG.to_owned())
    } else {
        match answer.split_forward_pass(digits as usize) {
            Some((password, code)) => {
                host.set_authtok(&password)
                    .map_err(|c| Error::Pam("pam_set_item(PAM_AUTHTOK)", c))?;
                code
            }
            // Shorter than a code: certainly malformed; nothing to hand on.
            None => answer,
        }
    };
    host.keep_code(&code)
        .map_err(|c| Error::Pam("pam_set_data", c))?;
    if cfg.debug {
        host.log(
            Level::Debug,
            &format!("stash_code: user {name}: password handed on, code kept"),
        );
    }
    Ok(Outcome::Stashed)
}

/// One prompt, as configured; no answer reads as an empty one.
fn ask(host: &mut dyn Host, cfg: &Resolved) -> Result<Answer, Error> {
    let style = if cfg.echo {
        Style::PromptEchoOn
    } else {
        Style::PromptEchoOff
    };
    Ok(host
        .converse(style, &cfg.prompt)
        .map_err(|c| Error::Pam("conversation", c))?
        .unwrap_or_default())
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
            refusal(host, "unknown user");
            Outcome::UnknownUser
        }
        Target::NotEnrolled(store) => {
            refusal(host, &format!("{}; refused", not_enrolled(name, store)));
            Outcome::NotEnrolled
        }
        Target::Ready(_) => {
            if outcome == Outcome::NoToken {
                refusal(
                    host,
                    &format!(
                        "no code for user {name}: use_first_pass without a PAM_AUTHTOK, or \
                         use_stored_code without an earlier stash_code line"
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
/// (`use_first_pass`; `try_first_pass` when it is shaped like a code), from
/// a `stash_code` line (`use_stored_code`), else by prompting.
/// Returns the code and where it came from; `None`: `use_first_pass` or
/// `use_stored_code` and nothing to use.
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
        FirstPass::Stored => {
            match host
                .take_stored_code()
                .map_err(|c| Error::Pam("pam_get_data", c))?
            {
                Some(code) => Some(code),
                None => return Ok(None),
            }
        }
        FirstPass::Try => host
            .authtok()
            .map_err(|c| Error::Pam("pam_get_item", c))?
            .filter(|t| looks_like_code(t, digits)),
    };
    if let Some(token) = token {
        return Ok(Some((bounded(token), source)));
    }
    Ok(Some((bounded(ask(host, cfg)?), FirstPass::Prompt)))
}

/// With `try_first_pass`: is `PAM_AUTHTOK` worth trying as a code? A token
/// of another shape is a password from an earlier module: not tried.
fn looks_like_code(token: &Answer, digits: u32) -> bool {
    token.len() <= MAX_ANSWER_LEN && normalize_code(token.expose(), digits).is_some()
}

/// The answer, or for one longer than [`MAX_ANSWER_LEN`] a code no device
/// accepts.
fn bounded(answer: Answer) -> Answer {
    if answer.len() > MAX_ANSWER_LEN {
        Answer::new(OVERLONG.to_owned())
    } else {
        answer
    }
}

/// One locked, durable attempt, logged.
fn attempt(
    host: &mut dyn Host,
    store: &Store,
    name: &str,
    code: &Answer,
    cfg: &Resolved,
    raw: &[&[u8]],
    counted: bool,
) -> Result<Outcome, Error> {
    let policy = &cfg.policy;
    let done = if counted {
        login::attempt(store, code.expose(), policy)
    } else {
        login::attempt_uncounted(store, code.expose(), policy)
    }
    .map_err(Error::Unavailable)?;
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
            host.set_acceptance(
                &Acceptance::new(args_line(raw), name, store, Timestamp::now()).record(),
            );
            Outcome::Accepted { device, drift }
        }
        Login::BackupCode { remaining } => backup_accepted(host, name, remaining),
        Login::Rejected { reason, tried } => {
            let why = match reason {
                Rejection::Replayed => "replayed code (already used)",
                Rejection::Wrong => "wrong code",
                Rejection::Malformed => "malformed code",
            };
            let line = format!("rejected: user {name}, {why}, {tried} device(s) tried");
            if counted {
                refusal(host, &line);
            } else {
                // Not a refusal of the login (a prompt follows), so not a
                // line for fail2ban either.
                host.log(
                    Level::Notice,
                    &format!("{line} (try_first_pass token: not counted)"),
                );
            }
            match reason {
                Rejection::Wrong => diagnose(host, store, name, code),
                Rejection::Replayed => tell_replayed(host, cfg),
                Rejection::Malformed => {}
            }
            Outcome::Rejected(reason)
        }
        Login::AllThrottled { until } => throttled(host, name, until, done.now),
        Login::NoDevice => {
            refusal(
                host,
                &format!("user {name}: the device file went away during the login; refused"),
            );
            Outcome::NotEnrolled
        }
    })
}

/// Below this many codes left, the user is told to make a new set.
pub const FEW_BACKUP_CODES: usize = 2;

/// Logs an accepted backup code (never the code) and tells the user how
/// many remain, with a warning when few do (not under `PAM_SILENT`).
fn backup_accepted(host: &mut dyn Host, name: &str, remaining: usize) -> Outcome {
    host.log(
        Level::Info,
        &format!("accepted: user {name}, backup code, {remaining} left"),
    );
    if !host.silent() {
        host.info(&backup_codes_left(remaining));
        if remaining <= FEW_BACKUP_CODES {
            host.info(
                "Warning: you are running out of backup codes; \
                 run `totp-enroll backup-codes` for a new set.",
            );
        }
    }
    Outcome::BackupAccepted { remaining }
}

/// "N backup codes left", in good English for 1.
pub fn backup_codes_left(remaining: usize) -> String {
    let noun = if remaining == 1 { "code" } else { "codes" };
    format!("{remaining} backup {noun} left")
}

/// Tells the user how long to wait, logs, and gives the outcome.
fn throttled(host: &mut dyn Host, name: &str, until: Timestamp, now: Timestamp) -> Outcome {
    let micros = until.micros_since(now).max(0);
    let secs = (micros + 999_999) / 1_000_000;
    refusal(
        host,
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

/// How long an acceptance carries a later line: the rest of one pass
/// through the stack takes milliseconds (modules between the two lines
/// may prompt); a new `pam_authenticate` on a kept handle (a screen
/// locker) that skips the accepting line is asked again once this passed.
pub const ACCEPTANCE_SECS: i64 = 10;

/// What a `pam_totp.so` line keeps when it accepts a code: which line it
/// was (its arguments), for whom, which device file, and when. A later
/// line of the same pass skips the prompt only for the same user and
/// device file (another `path=` or `config=` asks again).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Acceptance {
    line: String,
    user: String,
    store: String,
    at: Timestamp,
}

impl Acceptance {
    fn new(line: String, user: &str, store: &Store, at: Timestamp) -> Acceptance {
        Acceptance {
            line,
            user: user.to_owned(),
            store: store.to_string(),
            at,
        }
    }

    /// One line per field; a field's own line breaks become spaces.
    fn record(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "v1\n{}\n{}\n{}\n{}",
            clean(&self.line),
            clean(&self.user),
            clean(&self.store),
            self.at.as_micros()
        )
    }

    fn parse(record: &str) -> Option<Acceptance> {
        let mut f = record.split('\n');
        if f.next()? != "v1" {
            return None;
        }
        let (line, user, store) = (f.next()?, f.next()?, f.next()?);
        let at = Timestamp::from_micros(f.next()?.parse().ok()?);
        if f.next().is_some() {
            return None;
        }
        Some(Acceptance {
            line: line.to_owned(),
            user: user.to_owned(),
            store: store.to_owned(),
            at,
        })
    }
}

/// What an earlier acceptance means for this line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Earlier {
    /// Another line accepted a code for the same user and file, moments
    /// ago: this pass is authenticated; do not ask again.
    Accepted,
    /// This same line accepted before: a new pass on the same handle.
    NewPass,
    /// Nothing that counts: ask.
    None,
}

/// The rule for a second `pam_totp.so` line (docs/design.md §6).
fn earlier(record: Option<&str>, this: &Acceptance) -> Earlier {
    let Some(before) = record.and_then(Acceptance::parse) else {
        return Earlier::None;
    };
    if before.line == this.line {
        return Earlier::NewPass;
    }
    let age = this.at.micros_since(before.at);
    if before.user == this.user
        && before.store == this.store
        && (0..=ACCEPTANCE_SECS * 1_000_000).contains(&age)
    {
        Earlier::Accepted
    } else {
        Earlier::None
    }
}

/// A service line's arguments, as one string (which line this is).
fn args_line(raw: &[&[u8]]) -> String {
    raw.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A refusal's log line (notice), ending in the one stable format fail2ban
/// filters match (packaging/fail2ban/): `; service=NAME rhost=HOST`, with
/// `-` for an item the application did not set. Values are cut at the
/// first space or control character, so that no client can forge the tail.
fn refusal(host: &mut dyn Host, text: &str) {
    let (service, rhost) = host.origin();
    host.log(
        Level::Notice,
        &format!(
            "{text}; service={} rhost={}",
            log_word(service.as_deref()),
            log_word(rhost.as_deref())
        ),
    );
}

/// A value for a `key=value` log field: up to the first space, `=`, `;` or
/// control character, at most 255 bytes; `-` when absent or empty.
fn log_word(value: Option<&str>) -> String {
    let word: String = value
        .unwrap_or_default()
        .chars()
        .take_while(|c| !c.is_whitespace() && !c.is_control() && *c != ';' && *c != '=')
        .take(255)
        .collect();
    if word.is_empty() {
        "-".to_owned()
    } else {
        word
    }
}

/// A wrong code that a device shows a few steps away from now: the log
/// says how far its clock seems off (docs/design.md §4: diagnosis only,
/// never accepted). Read without the lock, after the refusal was saved.
fn diagnose(host: &mut dyn Host, store: &Store, name: &str, code: &Answer) {
    let Ok(snap) = store.read() else {
        return;
    };
    if let Some(file) = snap.devices {
        if let Some(why) = login::diagnose(&file, code.expose(), snap.now) {
            host.log(Level::Notice, &format!("clock skew? user {name}, {why}"));
        }
    }
}

/// Tells the user that the code was right but used already (the first
/// login after enrolling with the code on screen). A code is only checked
/// after the first factor in every stack the project ships (`stash_code`
/// checks nothing; `use_stored_code` comes after the password), so this
/// tells a stranger nothing (docs/design.md §6 "Before the first factor").
fn tell_replayed(host: &mut dyn Host, cfg: &Resolved) {
    if host.silent() || cfg.stash_code {
        return;
    }
    host.info(REPLAYED_INFO);
}

/// What the user is told about a replayed code.
pub const REPLAYED_INFO: &str =
    "That code was used already: each code works once. Wait for the next code and try again.";

fn debug_config(host: &mut dyn Host, args: &Args, store: &Store, policy: &Policy, name: &str) {
    let config = args.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
    host.log(
        Level::Debug,
        &format!(
            "user {name}: settings {}, device file {store}, sync {}, throttle_factor {}, \
             static_throttle_factor {}",
            config.display(),
            policy.sync,
            policy.throttle_factor,
            policy.static_throttle_factor
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
        answers: Vec<&'static [u8]>,
        prompts: Vec<(Style, String)>,
        authtok: Option<String>,
        set: Vec<Vec<u8>>,
        kept: Option<Answer>,
        logs: Vec<String>,
        infos: Vec<String>,
        silent: bool,
        accepted: Vec<String>,
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
            Ok(Some(Answer::from_bytes(self.answers.remove(0).to_vec())))
        }
        fn authtok(&mut self) -> Result<Option<Answer>, c_int> {
            Ok(self.authtok.clone().map(Answer::new))
        }
        fn set_authtok(&mut self, token: &Answer) -> Result<(), c_int> {
            self.set.push(token.expose_bytes().to_vec());
            Ok(())
        }
        fn keep_code(&mut self, code: &Answer) -> Result<(), c_int> {
            self.kept = Some(code.clone());
            Ok(())
        }
        fn take_stored_code(&mut self) -> Result<Option<Answer>, c_int> {
            Ok(self.kept.take())
        }
        fn log(&mut self, _: Level, message: &str) {
            self.logs.push(message.to_owned());
        }
        fn silent(&self) -> bool {
            self.silent
        }
        fn info(&mut self, text: &str) {
            self.infos.push(text.to_owned());
        }
        fn origin(&mut self) -> (Option<String>, Option<String>) {
            (Some("sshd".into()), Some("192.0.2.7 x".into()))
        }
        fn acceptance(&mut self) -> Option<String> {
            self.accepted.last().cloned()
        }
        fn set_acceptance(&mut self, record: &str) {
            self.accepted.push(record.to_owned());
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
            answers: vec![b"123456", b"654321"],
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
    fn finding_4_stash_code_hands_a_latin_1_password_on_byte_for_byte() {
        // Issue 11, finding 4: the password part was rewritten lossily to
        // UTF-8 (a Latin-1 password never worked).
        let mut host = Mock {
            answers: vec![b"p\xe4ss w\xf6rd 12345678"],
            ..Mock::default()
        };
        let outcome = stash(&mut host, &args(&["stash_code"])).unwrap();
        assert_eq!(outcome, Outcome::Stashed);
        assert_eq!(pam_code(&Ok(outcome)), code::PAM_IGNORE);
        assert_eq!(host.set, [b"p\xe4ss w\xf6rd 12".to_vec()]);
        assert_eq!(host.kept.as_ref().unwrap().expose(), "345678");
        assert_eq!(host.prompts[0].1, FORWARD_PROMPT);
    }

    #[test]
    fn use_stored_code_takes_the_kept_code_once_and_never_prompts() {
        let cfg = args(&["use_stored_code"]);
        let mut host = Mock {
            kept: Some(Answer::new("123456".into())),
            ..Mock::default()
        };
        let (code, from) = obtain(&mut host, &cfg, cfg.first_pass, 6).unwrap().unwrap();
        assert_eq!((code.expose(), from), ("123456", FirstPass::Stored));
        assert!(obtain(&mut host, &cfg, cfg.first_pass, 6)
            .unwrap()
            .is_none());
        assert!(host.prompts.is_empty());
    }

    #[test]
    fn an_answer_shorter_than_a_code_hands_nothing_on() {
        let mut host = Mock {
            answers: vec![b"12"],
            ..Mock::default()
        };
        stash(&mut host, &args(&["stash_code"])).unwrap();
        assert_eq!(host.kept.unwrap().expose(), "12");
        assert!(host.set.is_empty());
    }

    #[test]
    fn an_overlong_answer_becomes_a_code_no_device_accepts() {
        let long = format!("{}123456", " ".repeat(MAX_ANSWER_LEN));
        let long: &'static [u8] = Box::leak(long.into_bytes().into_boxed_slice());
        let mut host = Mock {
            answers: vec![long],
            ..Mock::default()
        };
        stash(&mut host, &args(&["stash_code"])).unwrap();
        let code = host.kept.take().unwrap();
        assert!(normalize_code(code.expose(), 6).is_none());
        assert!(normalize_code(code.expose(), 8).is_none());
        assert!(host.set.is_empty(), "an overlong answer hands nothing on");
        let mut host = Mock {
            answers: vec![long],
            ..Mock::default()
        };
        let code = super::ask(&mut host, &args(&[])).unwrap();
        assert!(normalize_code(bounded(code).expose(), 6).is_none());
    }

    #[test]
    fn try_first_pass_only_tries_tokens_shaped_like_a_code() {
        assert!(looks_like_code(&Answer::new("123 456".into()), 6));
        assert!(!looks_like_code(&Answer::new("hunter2".into()), 6));
        assert!(!looks_like_code(&Answer::new("12345678".into()), 6));
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
                answers: vec![b"654321"],
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
    fn an_accepted_backup_code_is_pam_success() {
        let r = Ok(Outcome::BackupAccepted { remaining: 3 });
        assert_eq!(pam_code(&r), code::PAM_SUCCESS);
    }

    #[test]
    fn an_accepted_backup_code_tells_how_many_are_left_and_warns_when_few() {
        let mut host = Mock::default();
        backup_accepted(&mut host, "alice", 3);
        assert_eq!(host.infos, ["3 backup codes left"]);
        assert_eq!(host.logs, ["accepted: user alice, backup code, 3 left"]);
        let mut host = Mock::default();
        backup_accepted(&mut host, "alice", 1);
        assert_eq!(host.infos[0], "1 backup code left");
        assert!(host.infos[1].starts_with("Warning: you are running out"));
        let mut host = Mock {
            silent: true,
            ..Mock::default()
        };
        backup_accepted(&mut host, "alice", 0);
        assert!(host.infos.is_empty(), "PAM_SILENT shows nothing");
        assert_eq!(host.logs, ["accepted: user alice, backup code, 0 left"]);
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

    fn acceptance(line: &str, user: &str, store: &str, secs: i64) -> Acceptance {
        Acceptance {
            line: line.into(),
            user: user.into(),
            store: store.into(),
            at: Timestamp::from_secs(secs),
        }
    }

    #[test]
    fn another_line_s_fresh_acceptance_for_the_same_user_and_file_is_taken() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        let this = acceptance("", "alice", "/f", 100 + ACCEPTANCE_SECS);
        assert_eq!(earlier(Some(&before), &this), Earlier::Accepted);
    }

    #[test]
    fn the_same_line_again_is_a_new_pass_and_is_asked() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        let this = acceptance("nullok", "alice", "/f", 101);
        assert_eq!(earlier(Some(&before), &this), Earlier::NewPass);
    }

    #[test]
    fn another_user_another_file_an_old_or_broken_record_is_asked() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        for this in [
            acceptance("", "bob", "/f", 100),
            acceptance("", "alice", "/g", 100),
            acceptance("", "alice", "/f", 101 + ACCEPTANCE_SECS),
            acceptance("", "alice", "/f", 99),
        ] {
            assert_eq!(earlier(Some(&before), &this), Earlier::None, "{this:?}");
        }
        let this = acceptance("", "alice", "/f", 100);
        for broken in [
            "",
            "v2\nnullok\nalice\n/f\n100000000",
            "v1\nx\nalice\n/f",
            "v1\na\nb\nc\nnot a time",
        ] {
            assert_eq!(earlier(Some(broken), &this), Earlier::None, "{broken:?}");
        }
        assert_eq!(earlier(None, &this), Earlier::None);
    }

    #[test]
    fn an_acceptance_earlier_in_the_transaction_is_pam_success() {
        assert_eq!(pam_code(&Ok(Outcome::AcceptedEarlier)), code::PAM_SUCCESS);
    }

    #[test]
    fn refusal_lines_end_in_service_and_rhost_and_a_client_cannot_forge_the_tail() {
        let mut host = Mock::default();
        refusal(
            &mut host,
            "rejected: user alice, wrong code, 1 device(s) tried",
        );
        assert_eq!(
            host.logs,
            ["rejected: user alice, wrong code, 1 device(s) tried; service=sshd rhost=192.0.2.7"]
        );
        assert_eq!(log_word(None), "-");
        assert_eq!(log_word(Some("")), "-");
        assert_eq!(log_word(Some("h;rhost=1.2.3.4")), "h");
        assert_eq!(log_word(Some("a\nb")), "a");
    }

    #[test]
    fn a_replayed_code_is_told_unless_silent_or_before_the_first_factor() {
        let mut host = Mock::default();
        tell_replayed(&mut host, &args(&[]));
        assert_eq!(host.infos, [REPLAYED_INFO]);
        let mut host = Mock::default();
        tell_replayed(&mut host, &args(&["forward_pass"]));
        assert!(
            host.infos.is_empty(),
            "forward_pass checks before the password"
        );
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
