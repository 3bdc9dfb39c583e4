//! The module arguments of a PAM service line (docs/design.md §6).
//!
//! Every argument is checked: an unknown, repeated or malformed one is an
//! error that the caller logs and turns into `PAM_SERVICE_ERR` (fail closed:
//! a typo such as `nullokk` must not silently change who gets in).

use std::path::PathBuf;

use shared::config::StoreSettings;
use shared::verify::Policy;
use shared::{PathTemplate, Settings};

/// Longest prompt accepted from `prompt=`.
const MAX_PROMPT_LEN: usize = 256;

/// Where the code comes from before (or instead of) prompting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirstPass {
    /// Always prompt (the default).
    #[default]
    Prompt,
    /// `use_first_pass`: take `PAM_AUTHTOK` from an earlier module; never prompt.
    Use,
    /// `try_first_pass`: try `PAM_AUTHTOK` if it looks like a code (an
    /// uncounted try: only acceptance changes state), prompt if it does
    /// not or if it is refused.
    Try,
    /// `use_stored_code`: the code a `stash_code` line of the same stack
    /// kept; never prompt.
    Stored,
}

/// Largest `throttle_max=`: django-otp's own cap on one delay.
const MAX_THROTTLE_MAX: u32 = 3_153_600_000;

/// The parsed arguments of one service line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// `path=TEMPLATE`: the device file, overriding the settings file.
    pub path: Option<PathTemplate>,
    /// `config=FILE`: the settings file instead of `/etc/security/pam_totp.toml`.
    pub config: Option<PathBuf>,
    /// `nullok`: users without a confirmed device pass through (`PAM_IGNORE`).
    pub nullok: bool,
    /// `use_first_pass` / `try_first_pass`.
    pub first_pass: FirstPass,
    /// `stash_code`: one prompt for password and code; the password part
    /// becomes `PAM_AUTHTOK` for the next module, the code is kept for a
    /// `use_stored_code` line after the password module. Nothing is
    /// verified and nothing is read that tells users apart.
    pub stash_code: bool,
    /// `prompt=TEXT`.
    pub prompt: Option<String>,
    /// `echo`: show the code while it is typed.
    pub echo: bool,
    /// `throttle_factor=N`, overriding the settings file.
    pub throttle_factor: Option<u32>,
    /// `throttle_max=N`, overriding the settings file.
    pub throttle_max: Option<u32>,
    /// `no_sync`: do not learn drift from accepted codes.
    pub no_sync: bool,
    /// `debug`: log the decisions (never a key or a code).
    pub debug: bool,
    /// Hidden `test_panic` (only with the `test-panic` feature): panic inside
    /// the module, to test the FFI guard.
    #[cfg(feature = "test-panic")]
    pub test_panic: bool,
}

impl Args {
    /// Parses the arguments as libpam hands them over (bytes, one per word;
    /// the `[prompt=Your code: ]` bracket form arrives as one argument).
    /// An error is one line without control characters: it goes to syslog
    /// and quotes the argument.
    pub fn parse<'a, I>(args: I) -> Result<Args, String>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        Args::parse_raw(args).map_err(|e| {
            e.chars()
                .flat_map(|c| {
                    let escaped: Vec<char> = if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        vec![c]
                    };
                    escaped
                })
                .collect()
        })
    }

    fn parse_raw<'a, I>(args: I) -> Result<Args, String>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut out = Args::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for raw in args {
            let arg = std::str::from_utf8(raw).map_err(|_| {
                format!(
                    "module argument `{}` is not UTF-8",
                    String::from_utf8_lossy(raw)
                )
            })?;
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg, None),
            };
            let name = canonical(key).ok_or_else(|| {
                format!("unknown module argument `{key}`; see pam_totp(8) for the list")
            })?;
            if seen.contains(&name) {
                return Err(format!("module argument `{name}` is given twice"));
            }
            seen.push(name);
            match (name, value) {
                ("path", Some(v)) => out.path = Some(PathTemplate::parse(v)?),
                ("config", Some(v)) => {
                    if !v.starts_with('/') {
                        return Err(format!("config=`{v}` must be an absolute path"));
                    }
                    out.config = Some(PathBuf::from(v));
                }
                ("prompt", Some(v)) => {
                    if v.is_empty() || v.len() > MAX_PROMPT_LEN || v.chars().any(char::is_control) {
                        return Err(format!(
                            "prompt= must be 1 to {MAX_PROMPT_LEN} bytes without control \
                             characters; use [prompt=Text with spaces: ] for spaces"
                        ));
                    }
                    out.prompt = Some(v.to_owned());
                }
                ("throttle_factor", Some(v)) => {
                    let range = shared::limits::THROTTLE_FACTOR;
                    let n = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| {
                            format!(
                                "throttle_factor=`{v}` must be a whole number from {} to {}",
                                range.start(),
                                range.end()
                            )
                        })?;
                    out.throttle_factor = Some(n as u32);
                }
                ("throttle_max", Some(v)) => {
                    let n = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_THROTTLE_MAX).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "throttle_max=`{v}` must be a whole number of seconds from 1 \
                                 to {MAX_THROTTLE_MAX}"
                            )
                        })?;
                    out.throttle_max = Some(n);
                }
                ("nullok", None) => out.nullok = true,
                ("use_first_pass", None) => out.first_pass = FirstPass::Use,
                ("try_first_pass", None) => out.first_pass = FirstPass::Try,
                ("use_stored_code", None) => out.first_pass = FirstPass::Stored,
                ("stash_code", None) => out.stash_code = true,
                // The one-line form checked the code before the password,
                // so a stranger could count failures and see who is
                // enrolled (issue 11, finding 2). It fails closed rather
                // than pass with the password alone.
                ("forward_pass", _) => {
                    return Err(
                        "forward_pass is now two lines: `auth requisite pam_totp.so \
                                stash_code` before the password module and `auth required \
                                pam_totp.so use_stored_code` after it; see pam_totp(8)"
                            .into(),
                    );
                }
                ("echo", None) => out.echo = true,
                ("no_sync", None) => out.no_sync = true,
                ("debug", None) => out.debug = true,
                #[cfg(feature = "test-panic")]
                ("test_panic", None) => out.test_panic = true,
                (flag, None) => {
                    return Err(format!("module argument `{flag}` needs a value: {flag}=…"));
                }
                (flag, Some(_)) => {
                    return Err(format!("module argument `{flag}` takes no value"));
                }
            }
        }
        let sources = ["use_first_pass", "try_first_pass", "use_stored_code"];
        let given: Vec<&str> = sources
            .iter()
            .copied()
            .filter(|s| seen.contains(s))
            .collect();
        if given.len() > 1 {
            return Err(format!("{} exclude each other", given.join(" and ")));
        }
        if out.stash_code && !given.is_empty() {
            return Err(format!("stash_code and {} exclude each other", given[0]));
        }
        if out.first_pass == FirstPass::Stored && (out.prompt.is_some() || out.echo) {
            return Err("use_stored_code never prompts: prompt= and echo do not apply".into());
        }
        Ok(out)
    }
}

/// The default prompt (docs/design.md §6).
pub const PROMPT: &str = "Verification code: ";
/// The prompt with `stash_code`.
pub const FORWARD_PROMPT: &str = "Password & verification code: ";

/// The arguments of one service line merged over the settings file: the one
/// value everything downstream reads (neither is read again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The device-file template: `path=`, else the settings' `path`.
    pub template: PathTemplate,
    /// The settings' policy with `throttle_factor=` and `no_sync` applied.
    pub policy: Policy,
    /// `nullok`.
    pub nullok: bool,
    /// Where the code comes from first.
    pub first_pass: FirstPass,
    /// `stash_code`.
    pub stash_code: bool,
    /// Where `stash_code` cuts the code off the answer: the site's code
    /// length, the settings' `[enroll] digits` (default 6).
    pub stash_digits: u32,
    /// The prompt text: `prompt=`, else the default for the mode.
    pub prompt: String,
    /// `echo`.
    pub echo: bool,
    /// `debug`.
    pub debug: bool,
    /// The settings' `[store]`; `path=` names a device file, so it means
    /// the file store.
    pub store: StoreSettings,
}

impl Resolved {
    /// Arguments win over the settings file.
    pub fn merge(args: &Args, settings: Settings) -> Resolved {
        let mut policy = settings.policy;
        if let Some(factor) = args.throttle_factor {
            policy.throttle_factor = factor;
        }
        if let Some(max) = args.throttle_max {
            policy.throttle_max = Some(max);
        }
        if args.no_sync {
            policy.sync = false;
        }
        let default_prompt = if args.stash_code {
            FORWARD_PROMPT
        } else {
            PROMPT
        };
        let store = match args.path {
            Some(_) => StoreSettings::File,
            None => settings.store,
        };
        Resolved {
            store,
            template: args.path.clone().unwrap_or(settings.path),
            policy,
            nullok: args.nullok,
            first_pass: args.first_pass,
            stash_code: args.stash_code,
            stash_digits: settings.enroll.digits,
            prompt: args
                .prompt
                .clone()
                .unwrap_or_else(|| default_prompt.to_owned()),
            echo: args.echo,
            debug: args.debug,
        }
    }
}

/// The known argument names, as `'static` strings.
fn canonical(key: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "path",
        "config",
        "nullok",
        "use_first_pass",
        "try_first_pass",
        "forward_pass",
        "stash_code",
        "use_stored_code",
        "prompt",
        "echo",
        "throttle_factor",
        "throttle_max",
        "no_sync",
        "debug",
        #[cfg(feature = "test-panic")]
        "test_panic",
    ];
    KNOWN.iter().copied().find(|k| *k == key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn no_arguments_mean_the_defaults() {
        assert_eq!(parse(&[]).unwrap(), Args::default());
    }

    #[test]
    fn every_documented_argument_is_understood() {
        let a = parse(&[
            "path=/var/lib/pam_totp/%u.toml",
            "config=/etc/x.toml",
            "nullok",
            "try_first_pass",
            "prompt=Your code: ",
            "echo",
            "throttle_factor=0",
            "throttle_max=3600",
            "no_sync",
            "debug",
        ])
        .unwrap();
        assert_eq!(a.path.unwrap().as_str(), "/var/lib/pam_totp/%u.toml");
        assert_eq!(a.config.unwrap(), PathBuf::from("/etc/x.toml"));
        assert!(a.nullok && a.echo && a.no_sync && a.debug);
        assert_eq!(a.throttle_max, Some(3600));
        assert!(parse(&["stash_code"]).unwrap().stash_code);
        assert_eq!(
            parse(&["use_stored_code"]).unwrap().first_pass,
            FirstPass::Stored
        );
        assert_eq!(a.first_pass, FirstPass::Try);
        assert_eq!(a.prompt.as_deref(), Some("Your code: "));
        assert_eq!(a.throttle_factor, Some(0));
        assert_eq!(
            parse(&["use_first_pass"]).unwrap().first_pass,
            FirstPass::Use
        );
    }

    #[test]
    fn arguments_override_the_settings_file_and_the_rest_comes_from_it() {
        let settings = Settings::parse(
            "sync = true\nthrottle_factor = 3\npath = \"/var/lib/pam_totp/%u.toml\"\n",
            std::path::Path::new("/etc/x.toml"),
        )
        .unwrap();
        let plain = Resolved::merge(&parse(&[]).unwrap(), settings.clone());
        assert_eq!(plain.template.as_str(), "/var/lib/pam_totp/%u.toml");
        assert_eq!(plain.policy.throttle_factor, 3);
        assert!(plain.policy.sync);
        assert_eq!(plain.prompt, PROMPT);
        let over = Resolved::merge(
            &parse(&[
                "path=/srv/%u",
                "throttle_factor=0",
                "no_sync",
                "stash_code",
                "nullok",
                "throttle_max=60",
            ])
            .unwrap(),
            settings.clone(),
        );
        assert_eq!(over.template.as_str(), "/srv/%u");
        assert_eq!(over.policy.throttle_factor, 0);
        assert_eq!(over.policy.throttle_max, Some(60));
        assert!(!over.policy.sync);
        assert!(over.nullok && over.stash_code);
        assert_eq!(over.prompt, FORWARD_PROMPT);
        let asked = Resolved::merge(&parse(&["prompt=Code:"]).unwrap(), settings);
        assert_eq!(asked.prompt, "Code:");
    }

    #[test]
    fn unknown_and_malformed_arguments_are_errors_that_name_them() {
        let cases: &[(&[&str], &str)] = &[
            (&["nullokk"], "unknown module argument `nullokk`"),
            (&["path=relative/x"], "must be absolute"),
            (&["path=/var/%x"], "%x"),
            (&["path"], "needs a value"),
            (&["nullok=1"], "takes no value"),
            (&["config=etc/x.toml"], "absolute"),
            (&["throttle_factor=-1"], "throttle_factor=`-1`"),
            (&["throttle_factor=86401"], "0 to 86400"),
            (&["throttle_factor=x"], "whole number"),
            (&["prompt="], "prompt="),
            (&["nullok", "nullok"], "given twice"),
            (&["path=/a/%u", "path=/b/%u"], "given twice"),
            (&["use_first_pass", "try_first_pass"], "exclude each other"),
            (&["use_stored_code", "try_first_pass"], "exclude each other"),
            (&["stash_code", "use_stored_code"], "exclude each other"),
            (&["use_stored_code", "echo"], "never prompts"),
            (&["throttle_max=0"], "1 to 3153600000"),
            (&["throttle_max=3153600001"], "1 to 3153600000"),
            (&["forward_pass"], "two lines"),
            (&["test_panic"], "unknown module argument"),
        ];
        for (args, want) in cases {
            #[cfg(feature = "test-panic")]
            if args == &["test_panic"] {
                continue;
            }
            let err = parse(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        let err = Args::parse([&b"\xff"[..]]).unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
        let err = Args::parse([&b"x\ny\x1b[2J"[..]]).unwrap_err();
        assert!(!err.chars().any(char::is_control), "{err}");
    }
}
