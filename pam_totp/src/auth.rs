//! One authentication, in safe code, read top to bottom in [`authenticate`]:
//! arguments → settings → user → `shared::login::prepare` → obtain the code
//! → `shared::login::attempt` → an [`Outcome`] or an [`Error`]. [`pam_code`]
//! is the one place that turns them into PAM return codes.
//!
//! Everything PAM-specific (items, conversation, syslog) is behind the
//! [`Host`] trait, implemented over libpam in `ffi`.

use std::path::Path;

use shared::config::DEFAULT_CONFIG;
use shared::login::{self, Prepared, DEFAULT_DIGITS};
use shared::secret::normalize_code;
use shared::store::Store;
use shared::user::UserInfo;
use shared::verify::{Login, Policy, Rejection};
use shared::{Answer, Settings, Timestamp};

use crate::acceptance::{args_line, earlier, Acceptance, Earlier};
use crate::args::{Args, FirstPass, Resolved};
pub use crate::host::{Host, Level, Style};
pub use crate::outcome::{pam_code, Error, Outcome};
/// Longest answer taken from the conversation or `PAM_AUTHTOK`, in bytes
/// (libpam's `PAM_MAX_RESP_SIZE`). A longer one is a failed attempt.
pub const MAX_ANSWER_LEN: usize = 512;
/// What a longer answer is replaced with: never a valid code of any device.
const OVERLONG: &str = "overlong answer";

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

/// `stash_code`, the first of the two lines that replace `forward_pass`: one
/// prompt for password and code, the password handed on as `PAM_AUTHTOK`,
/// the code (the last `[enroll] digits` characters) kept for the
/// `use_stored_code` line after the password module. It runs before the
/// first factor, so it treats every user alike: the same prompt, no store
/// read, nothing verified, nothing counted
/// (docs/design.md §6, "Before the first factor"; issue 11, finding 2).
fn stash(host: &mut dyn Host, cfg: &Resolved) -> Result<Outcome, Error> {
    let name = host.user().map_err(|c| Error::Pam("pam_get_user", c))?;
    // Where to cut: the site's code length (`[enroll] digits`), the same for
    // every user. No store is read before the first factor: a database
    // would be contacted by anyone who types a name, a device file's
    // timing would tell enrolled users apart, and a file left over from
    // before a move to PostgreSQL would decide (red-team finding R2-3).
    let digits = cfg.stash_digits;
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
    use crate::code;
    use std::ffi::c_int;

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
        tell_replayed(&mut host, &args(&["stash_code"]));
        assert!(
            host.infos.is_empty(),
            "stash_code runs before the password and checks nothing"
        );
    }
}
