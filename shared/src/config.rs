//! Settings (`/etc/security/pam_totp.toml`, docs/design.md §5) and path templates
//! (docs/design.md §2).

use std::path::{Path, PathBuf};

use crate::device::Params;
use crate::error::{Error, Result};
use crate::limits;
use crate::tomlfile::{Doc, Fields, Located};
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

/// The settings of docs/design.md §5. `Default` is what a missing file means.
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
    /// `[store]`: where device state lives.
    pub store: StoreSettings,
}

/// Longest accepted `deadline_ms`.
pub const MAX_DEADLINE_MS: i64 = 60_000;
/// Shortest accepted `deadline_ms`.
pub const MIN_DEADLINE_MS: i64 = 100;
/// `deadline_ms` when the settings do not say.
pub const DEFAULT_DEADLINE_MS: u32 = 3000;

/// `[store]` (docs/design.md §5, §9): the device files, or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StoreSettings {
    /// `backend = "file"` (the default): device files under `path`.
    #[default]
    File,
    /// `backend = "postgresql"`.
    Postgresql(PgSettings),
}

/// The PostgreSQL store's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// The libpq connection string or URI, passed to libpq as it is.
    pub conninfo: String,
    /// Whose tables.
    pub layout: Layout,
    /// One whole attempt, connecting included, in milliseconds.
    pub deadline_ms: u32,
}

impl std::fmt::Debug for PgSettings {
    // The connection string may hold a password: never in a Debug line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("conninfo", &"..")
            .field("layout", &self.layout)
            .field("deadline_ms", &self.deadline_ms)
            .finish()
    }
}

/// The table layout of the PostgreSQL store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `layout = "pam-totp"`: our own tables (`totp-enroll db init`).
    PamTotp,
    /// `layout = "django-otp"`: a Django site's `otp_totp_totpdevice`,
    /// joined to `user_table.username_column` (checked SQL identifiers,
    /// `table` or `schema.table`).
    DjangoOtp {
        /// The user table, e.g. `auth_user`.
        user_table: String,
        /// Its login-name column, e.g. `username`.
        username_column: String,
    },
}

/// Whether `s` is a plain SQL identifier (letters, digits, `_`, not
/// starting with a digit, at most 63 bytes), optionally `schema.`-qualified
/// when `qualified`.
pub fn is_identifier(s: &str, qualified: bool) -> bool {
    let plain = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !p.as_bytes()[0].is_ascii_digit()
    };
    match s.split_once('.') {
        Some((schema, table)) if qualified => plain(schema) && plain(table),
        Some(_) => false,
        None => plain(s),
    }
}

/// Refuses the first of `keys` that the file sets: it means nothing in the
/// settings read so far (`why` says when it does).
fn refuse_set(f: &Fields<'_>, keys: &[(&str, &Option<Located<'_>>)], why: &str) -> Result<()> {
    match keys
        .iter()
        .find_map(|(key, value)| Some((key, value.as_ref()?)))
    {
        Some((key, (_, span))) => Err(f.error_at(key, Some(span.clone()), why)),
        None => Ok(()),
    }
}

fn parse_store(f: &mut Fields<'_>) -> Result<StoreSettings> {
    let backend = f.string("backend")?;
    let postgresql = match backend {
        None => false,
        Some(("file", _)) => false,
        Some(("postgresql", _)) => true,
        Some((other, span)) => {
            return Err(f.error_at(
                "backend",
                Some(span),
                format!("unknown backend `{other}`; use \"file\" or \"postgresql\""),
            ))
        }
    };
    let conninfo = f.string("conninfo")?;
    let layout = f.string("layout")?;
    let user_table = f.string("user_table")?;
    let username_column = f.string("username_column")?;
    let deadline = f.int_incl("deadline_ms", MIN_DEADLINE_MS, MAX_DEADLINE_MS)?;
    if !postgresql {
        refuse_set(
            f,
            &[
                ("conninfo", &conninfo),
                ("layout", &layout),
                ("user_table", &user_table),
                ("username_column", &username_column),
            ],
            "only used with backend = \"postgresql\"",
        )?;
        if deadline.is_some() {
            return Err(f.error_at(
                "deadline_ms",
                None,
                "only used with backend = \"postgresql\"",
            ));
        }
        return Ok(StoreSettings::File);
    }
    let conninfo = match conninfo {
        Some((c, span)) if c.contains('\0') => {
            return Err(f.error_at("conninfo", Some(span), "must not contain a NUL character"))
        }
        Some((c, _)) => c.to_owned(),
        None => return Err(f.missing("conninfo")),
    };
    let django = match layout {
        None | Some(("pam-totp", _)) => false,
        Some(("django-otp", _)) => true,
        Some((other, span)) => {
            return Err(f.error_at(
                "layout",
                Some(span),
                format!("unknown layout `{other}`; use \"pam-totp\" or \"django-otp\""),
            ))
        }
    };
    let layout = if django {
        let ident = |key: &str,
                     value: Option<(&str, std::ops::Range<usize>)>,
                     default: &str,
                     qualified: bool| {
            match value {
                None => Ok(default.to_owned()),
                Some((v, _)) if is_identifier(v, qualified) => Ok(v.to_owned()),
                Some((_, span)) => Err(f.error_at(
                    key,
                    Some(span),
                    if qualified {
                        "must be a table name (letters, digits, _), optionally schema.table"
                    } else {
                        "must be a column name (letters, digits, _)"
                    },
                )),
            }
        };
        Layout::DjangoOtp {
            user_table: ident("user_table", user_table, "auth_user", true)?,
            username_column: ident("username_column", username_column, "username", false)?,
        }
    } else {
        refuse_set(
            f,
            &[
                ("user_table", &user_table),
                ("username_column", &username_column),
            ],
            "only used with layout = \"django-otp\"",
        )?;
        Layout::PamTotp
    };
    Ok(StoreSettings::Postgresql(PgSettings {
        conninfo,
        layout,
        deadline_ms: deadline.map_or(DEFAULT_DEADLINE_MS, |d| d as u32),
    }))
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
        if let Some((table, span)) = f.table("store")? {
            let mut st = Fields::new(&doc, table, span, "store");
            s.store = parse_store(&mut st)?;
            st.finish()?;
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
    #![allow(clippy::unwrap_used, clippy::panic)]
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

    #[test]
    fn the_store_is_the_device_files_unless_the_settings_name_postgresql() {
        let p = Path::new("/etc/x.toml");
        assert_eq!(Settings::parse("", p).unwrap().store, StoreSettings::File);
        let s = Settings::parse(
            "[store]\nbackend = \"postgresql\"\nconninfo = \"host=pg1,pg2 target_session_attrs=read-write\"\n",
            p,
        )
        .unwrap();
        let StoreSettings::Postgresql(pg) = s.store else {
            panic!("not postgresql")
        };
        assert_eq!(pg.layout, Layout::PamTotp);
        assert_eq!(pg.deadline_ms, DEFAULT_DEADLINE_MS);
        assert_eq!(pg.conninfo, "host=pg1,pg2 target_session_attrs=read-write");
        assert!(
            !format!("{pg:?}").contains("pg1"),
            "Debug hides the conninfo"
        );
        let s = Settings::parse(
            "[store]\nbackend = \"postgresql\"\nconninfo = \"x\"\nlayout = \"django-otp\"\n\
             user_table = \"public.auth_user\"\nusername_column = \"email\"\ndeadline_ms = 1500\n",
            p,
        )
        .unwrap();
        let StoreSettings::Postgresql(pg) = s.store else {
            panic!("not postgresql")
        };
        assert_eq!(
            pg.layout,
            Layout::DjangoOtp {
                user_table: "public.auth_user".into(),
                username_column: "email".into()
            }
        );
        assert_eq!(pg.deadline_ms, 1500);
    }

    #[test]
    fn store_errors_name_the_file_the_line_and_the_key() {
        let p = Path::new("/etc/x.toml");
        let err = |text: &str| Settings::parse(text, p).unwrap_err().to_string();
        assert_eq!(
            err("[store]\nbackend = \"mysql\"\n"),
            "/etc/x.toml:2: key `store.backend`: unknown backend `mysql`; use \"file\" or \"postgresql\""
        );
        assert_eq!(
            err("[store]\nbackend = \"postgresql\"\n"),
            "/etc/x.toml:1: key `store.conninfo`: missing; this key is required"
        );
        assert_eq!(
            err("[store]\nconninfo = \"x\"\n"),
            "/etc/x.toml:2: key `store.conninfo`: only used with backend = \"postgresql\""
        );
        assert_eq!(
            err(
                "[store]\nbackend = \"postgresql\"\nconninfo = \"x\"\nuser_table = \"auth_user\"\n"
            ),
            "/etc/x.toml:4: key `store.user_table`: only used with layout = \"django-otp\""
        );
        assert_eq!(
            err("[store]\nbackend = \"postgresql\"\nconninfo = \"x\"\nlayout = \"django-otp\"\nuser_table = \"a; drop\"\n"),
            "/etc/x.toml:5: key `store.user_table`: must be a table name (letters, digits, _), optionally schema.table"
        );
        assert_eq!(
            err("[store]\nbackend = \"postgresql\"\nconninfo = \"x\"\ndeadline_ms = 10\n"),
            "/etc/x.toml:4: key `store.deadline_ms`: 10 is out of range; allowed: 100 to 60000"
        );
        assert_eq!(
            err("[store]\nbackend = \"postgresql\"\nconninfo = \"x\"\nlayuot = \"pam-totp\"\n"),
            "/etc/x.toml:4: key `store.layuot`: unknown key (misspelt, or from a newer version?)"
        );
    }
}
