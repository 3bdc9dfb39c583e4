//! Settings (`/etc/security/pam_totp.toml`, DESIGN §5) and path templates
//! (DESIGN §2).

use std::path::{Path, PathBuf};

use crate::device::Params;
use crate::error::{Error, Result};
use crate::limits;
use crate::tomlfile::{Doc, Fields};
use crate::user::UserInfo;
use crate::verify::Policy;

/// Where the system settings live.
pub const DEFAULT_CONFIG: &str = "/etc/security/pam_totp.toml";
/// The per-user device file.
pub const DEFAULT_PATH: &str = "~/.config/pam_totp/devices.toml";
/// Largest settings file read.
pub const MAX_CONFIG_SIZE: usize = 64 * 1024;

/// A device-file path template: `~/` = the user's home, `%u` = user name,
/// `%h` = home, `%%` = `%`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    parts: Vec<Part>,
}

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Copied as it is (`%%` already turned into `%`).
    Literal(String),
    /// `%u`: the user name.
    User,
    /// `%h`: the home directory as the password database has it.
    Home,
    /// A leading `~/`: the home directory, then one `/`.
    HomeDir,
}

impl PathTemplate {
    /// Parses and checks a template, once: absolute or `~/…`, only `%u`,
    /// `%h`, `%%`, and naming the user (`%u`, `%h` or a leading `~/`): a
    /// template that names no user gives every user one shared file, so one
    /// user's code would open another's login (issue 11, finding 9).
    pub fn parse(template: &str) -> std::result::Result<Self, String> {
        let (mut parts, rest) = match template.strip_prefix("~/") {
            Some(rest) => (vec![Part::HomeDir], rest),
            None if template.starts_with('/') => (Vec::new(), template),
            None => {
                return Err(format!(
                    "path template `{template}` must be absolute or start with ~/"
                ))
            }
        };
        let mut literal = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('u') => Part::User,
                Some('h') => Part::Home,
                Some(x) => {
                    return Err(format!(
                        "path template `{template}` has unknown `%{x}`; use %u, %h or %%"
                    ))
                }
                None => return Err(format!("path template `{template}` ends with a lone %")),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let template = PathTemplate {
            text: template.to_owned(),
            parts,
        };
        if !(template.uses_user() || template.uses_home()) {
            return Err(format!(
                "path template `{}` names no user: every user would share one file; \
                 use %u, %h or ~/ (e.g. /var/lib/pam_totp/%u.toml)",
                template.text
            ));
        }
        Ok(template)
    }

    /// Whether the template names the user's home (`~/` or `%h`).
    pub fn uses_home(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Home | Part::HomeDir))
    }

    /// Whether the template names the user (`%u`).
    pub fn uses_user(&self) -> bool {
        self.parts.contains(&Part::User)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path for `user`.
    pub fn expand(&self, user: &UserInfo) -> PathBuf {
        let home = user.home.to_string_lossy();
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::User => out.push_str(&user.name),
                Part::Home => out.push_str(&home),
                Part::HomeDir => {
                    out.push_str(home.trim_end_matches('/'));
                    out.push('/');
                }
            }
        }
        PathBuf::from(out)
    }
}

impl Default for PathTemplate {
    fn default() -> Self {
        match PathTemplate::parse(DEFAULT_PATH) {
            Ok(t) => t,
            // DEFAULT_PATH is a valid template (a unit test says so); this
            // arm only keeps the type total.
            Err(_) => PathTemplate {
                text: DEFAULT_PATH.to_owned(),
                parts: vec![
                    Part::HomeDir,
                    Part::Literal(".config/pam_totp/devices.toml".to_owned()),
                ],
            },
        }
    }
}

/// The largest `throttle_max` (settings and module argument): django-otp's
/// own cap on one delay, 100 years.
pub const MAX_THROTTLE_MAX: i64 = crate::verify::MAX_THROTTLE_DELAY_SECS;

/// The settings of DESIGN §5. `Default` is what a missing file means.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// `sync`, `throttle_factor` and `static_throttle_factor`.
    pub policy: Policy,
    /// Issuer shown by authenticator apps; `None` = the host name.
    pub issuer: Option<String>,
    /// Logo URL for the `otpauth://` URL.
    pub image: Option<String>,
    /// Where device files are.
    pub path: PathTemplate,
    /// Parameters of new devices.
    pub enroll: Params,
}

impl Settings {
    /// Parses a settings file; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Settings> {
        if text.len() > MAX_CONFIG_SIZE {
            return Err(Error::invalid(
                path,
                None,
                None,
                format!("file is larger than {MAX_CONFIG_SIZE} bytes"),
            ));
        }
        let (doc, root) = Doc::parse(path, text)?;
        let mut f = Fields::new(&doc, root.get_ref(), root.span(), "");
        let mut s = Settings::default();
        if let Some(sync) = f.boolean("sync")? {
            s.policy.sync = sync;
        }
        let (lo, hi) = (
            *limits::THROTTLE_FACTOR.start(),
            *limits::THROTTLE_FACTOR.end(),
        );
        if let Some(factor) = f.int_incl("throttle_factor", lo, hi)? {
            s.policy.throttle_factor = factor as u32;
        }
        if let Some(factor) = f.int_incl("static_throttle_factor", 0, 86_400)? {
            s.policy.static_throttle_factor = factor as u32;
        }
        if let Some(max) = f.int_incl("throttle_max", 1, MAX_THROTTLE_MAX)? {
            s.policy.throttle_max = Some(max as u32);
        }
        s.issuer = f.string("issuer")?.map(|(v, _)| v.to_owned());
        s.image = f.string("image")?.map(|(v, _)| v.to_owned());
        if let Some((template, span)) = f.string("path")? {
            s.path =
                PathTemplate::parse(template).map_err(|p| f.error_at("path", Some(span), p))?;
        }
        if let Some((table, span)) = f.table("enroll")? {
            let mut e = Fields::new(&doc, table, span, "enroll");
            if let Some(d) = e.int_incl("digits", 6, 8)? {
                if !limits::is_digits(d) {
                    let span = e.take("digits").map(|v| v.1);
                    return Err(e.error_at("digits", span, "must be 6 or 8"));
                }
                s.enroll.digits = d as u32;
            }
            if let Some(step) = e.int_incl("step", *limits::STEP.start(), *limits::STEP.end())? {
                s.enroll.step = step as u32;
            }
            let (lo, hi) = (*limits::TOLERANCE.start(), *limits::TOLERANCE.end());
            if let Some(t) = e.int_incl("tolerance", lo, hi)? {
                s.enroll.tolerance = t as u32;
            }
            if let Some((a, span)) = e.string("algorithm")? {
                s.enroll.algorithm = a
                    .parse()
                    .map_err(|p: String| e.error_at("algorithm", Some(span), p))?;
            }
            e.finish()?;
        }
        f.finish()?;
        Ok(s)
    }

    /// Reads the settings at `path` (trusted only if root owns it and no
    /// one else can write it). A missing file means the defaults.
    pub fn load(path: &Path) -> Result<Settings> {
        match crate::fsafe::read_trusted_config(path)? {
            None => Ok(Settings::default()),
            Some(text) => Settings::parse(&text, path),
        }
    }

    /// Reads a settings file that was named explicitly (`config=FILE`,
    /// `--config FILE`): unlike the default file, a missing one is an error,
    /// so that a typo cannot quietly bring back the defaults.
    pub fn load_named(path: &Path) -> Result<Settings> {
        match crate::fsafe::read_trusted_config(path)? {
            None => Err(Error::io(
                path,
                "open the settings file",
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )),
            Some(text) => Settings::parse(&text, path),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
        }
    }

    #[test]
    fn templates_expand_home_user_and_percent() {
        let t = PathTemplate::parse("~/.config/pam_totp/devices.toml").unwrap();
        assert_eq!(
            t.expand(&alice()),
            PathBuf::from("/home/alice/.config/pam_totp/devices.toml")
        );
        let t = PathTemplate::parse("/var/lib/pam_totp/%u.toml").unwrap();
        assert_eq!(
            t.expand(&alice()),
            PathBuf::from("/var/lib/pam_totp/alice.toml")
        );
        let t = PathTemplate::parse("%h/x%%y").unwrap_err();
        assert!(t.contains("absolute"));
        let t = PathTemplate::parse("/d/%h/x%%y").unwrap();
        assert_eq!(t.expand(&alice()), PathBuf::from("/d//home/alice/x%y"));
    }

    #[test]
    fn the_default_template_is_a_valid_template() {
        let parsed = PathTemplate::parse(DEFAULT_PATH).unwrap();
        assert_eq!(PathTemplate::default(), parsed);
        assert!(parsed.uses_home() && !parsed.uses_user());
    }

    #[test]
    fn templates_know_whether_they_name_the_home() {
        assert!(PathTemplate::default().uses_home());
        assert!(PathTemplate::parse("/srv/%h/x").unwrap().uses_home());
        assert!(!PathTemplate::parse("/var/lib/pam_totp/%u.toml")
            .unwrap()
            .uses_home());
        assert!(!PathTemplate::parse("/var/%%h/%u").unwrap().uses_home());
    }

    #[test]
    fn unknown_template_escapes_are_configuration_errors() {
        assert!(PathTemplate::parse("/var/%x").unwrap_err().contains("%x"));
        assert!(PathTemplate::parse("/var/%").unwrap_err().contains("lone"));
        assert!(PathTemplate::parse("relative/%u").is_err());
    }

    #[test]
    fn settings_file_sets_every_field_and_rejects_unknown_keys() {
        let s = Settings::parse(
            "sync = false\nthrottle_factor = 0\nstatic_throttle_factor = 5\nissuer = \"Example\"\nimage = \"https://x/i.png\"\n\
             path = \"/var/lib/pam_totp/%u.toml\"\n[enroll]\ndigits = 8\nstep = 60\ntolerance = 2\nalgorithm = \"SHA256\"\n",
            Path::new("/etc/x.toml"),
        )
        .unwrap();
        assert!(!s.policy.sync);
        assert_eq!(s.policy.throttle_factor, 0);
        assert_eq!(s.policy.static_throttle_factor, 5);
        assert_eq!(Settings::default().policy.static_throttle_factor, 1);
        assert_eq!(s.enroll.digits, 8);
        assert_eq!(s.enroll.algorithm, crate::Algorithm::Sha256);
        let e = Settings::parse("sync = true\nsnyc = 1\n", Path::new("/etc/x.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/x.toml:2: key `snyc`: unknown key (misspelt, or from a newer version?)"
        );
        let e = Settings::parse("[enroll]\nstep = 0\n", Path::new("/etc/x.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/x.toml:2: key `enroll.step`: 0 is out of range; allowed: 1 to 3600"
        );
    }
}
