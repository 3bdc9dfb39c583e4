//! The module arguments of a PAM service line (DESIGN §6).
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
    /// `try_first_pass`: try `PAM_AUTHTOK` if it looks like a code, prompt if
    /// it does not or if it is refused.
    Try,
}

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
    /// `forward_pass`: one prompt for password and code; the password part
    /// becomes `PAM_AUTHTOK` for the next module.
    pub forward_pass: bool,
    /// `prompt=TEXT`.
    pub prompt: Option<String>,
    /// `echo`: show the code while it is typed.
    pub echo: bool,
    /// `throttle_factor=N`, overriding the settings file.
    pub throttle_factor: Option<u32>,
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
    pub fn parse<'a, I>(args: I) -> Result<Args, String>
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
                ("nullok", None) => out.nullok = true,
                ("use_first_pass", None) => out.first_pass = FirstPass::Use,
                ("try_first_pass", None) => out.first_pass = FirstPass::Try,
                ("forward_pass", None) => out.forward_pass = true,
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
        if seen.contains(&"use_first_pass") && seen.contains(&"try_first_pass") {
            return Err("use_first_pass and try_first_pass exclude each other".into());
        }
        Ok(out)
    }
}

/// The default prompt (docs/design.md §6).
pub const PROMPT: &str = "Verification code: ";
/// The prompt with `forward_pass`.
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
    /// `forward_pass`.
    pub forward_pass: bool,
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
        if args.no_sync {
            policy.sync = false;
        }
        let default_prompt = if args.forward_pass {
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
            forward_pass: args.forward_pass,
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
        "prompt",
        "echo",
        "throttle_factor",
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
            "forward_pass",
            "prompt=Your code: ",
            "echo",
            "throttle_factor=0",
            "no_sync",
            "debug",
        ])
        .unwrap();
        assert_eq!(a.path.unwrap().as_str(), "/var/lib/pam_totp/%u.toml");
        assert_eq!(a.config.unwrap(), PathBuf::from("/etc/x.toml"));
        assert!(a.nullok && a.forward_pass && a.echo && a.no_sync && a.debug);
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
                "forward_pass",
                "nullok",
            ])
            .unwrap(),
            settings.clone(),
        );
        assert_eq!(over.template.as_str(), "/srv/%u");
        assert_eq!(over.policy.throttle_factor, 0);
        assert!(!over.policy.sync);
        assert!(over.nullok && over.forward_pass);
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
    }
}
