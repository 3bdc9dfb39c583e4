//! Who runs totp-enroll, for whom, with which settings and device file.
//!
//! Users manage their own devices; root manages anyone's (`--user`). When
//! root touches a file inside a user's home, shared's store does it with the
//! file-system identity of that user, so what it creates belongs to the user.

use std::path::{Path, PathBuf};

use posix::unistd::{geteuid, getuid};
use shared::config::{Settings, DEFAULT_CONFIG};
use shared::device::{Device, Params};
use shared::otpauth::{config_url, UrlParams};
use shared::store::{Access, FileSpec, Store};
use shared::user::UserInfo;

use crate::cli::{Common, ParamArgs, UrlArgs};
use crate::error::{Error, Result};

/// Everything a command needs to know about where it acts.
#[derive(Debug)]
pub struct Ctx {
    /// The account whose devices are managed.
    pub user: UserInfo,
    /// The settings (defaults when the file is missing).
    pub settings: Settings,
    /// Where the user's devices are.
    pub store: Store,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// Resolves `--user`, `--config` and `--path`. A non-root caller naming
    /// someone else is refused before any file is read.
    pub fn new(common: &Common) -> Result<Ctx> {
        let root = geteuid().is_root();
        let uid = getuid().as_raw();
        let caller = UserInfo::by_uid(uid)?.ok_or_else(|| {
            Error::Refused(format!("your uid {uid} is not in the password database"))
        })?;
        let user = match &common.user {
            None => caller,
            Some(name) if !root && *name != caller.name => {
                return Err(Error::Refused(format!(
                "only root may manage another user's devices; drop `--user {name}` or run as root"
            )))
            }
            Some(name) => UserInfo::by_name(name)?.ok_or_else(|| {
                Error::Usage(format!(
                    "unknown user `{name}`; check the name given to --user"
                ))
            })?,
        };
        if user.uid != uid {
            crate::output::acting_for(&user.name);
        }
        let settings = load_settings(common.config.as_deref())?;
        if common.path.is_none() {
            refuse_missing_home(&settings, &user)?;
        }
        let store = match &common.path {
            Some(path) => Store::file(spec_for_path(path, &user)?, &user.name),
            None => Store::open(&settings.store, &settings.path, &user)?,
        };
        Ok(Ctx {
            user,
            settings,
            store,
            json: common.json,
        })
    }

    /// New-device parameters: flags over the settings' `[enroll]`, checked.
    pub fn params(&self, flags: &ParamArgs) -> Result<Params> {
        params(&self.settings, flags)
    }

    /// The device's `otpauth://` URL.
    pub fn url(&self, device: &Device, flags: &UrlArgs) -> String {
        device_url(
            &self.settings,
            device,
            flags.account.as_deref().unwrap_or(&self.user.name),
            flags.issuer.as_deref(),
            flags.image.as_deref(),
        )
    }
}

/// Reads the settings. The default file may be missing (defaults); a file
/// named with `--config` must exist.
pub fn load_settings(path: Option<&Path>) -> Result<Settings> {
    match path {
        // Named by --config: a missing file is an error (shared's rule, the
        // same as the module's config=), not a quiet return to the defaults.
        Some(file) => Settings::load_named(file).map_err(|e| match e {
            shared::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::Usage(format!(
                    "settings file {} does not exist; check --config",
                    file.display()
                ))
            }
            other => Error::Config(other),
        }),
        None => Settings::load(Path::new(DEFAULT_CONFIG)).map_err(Error::Config),
    }
}

/// A per-user device file needs the home directory: say so, and name the
/// way out (central mode), instead of the file system's "Permission
/// denied" or "No such file or directory" further down.
fn refuse_missing_home(settings: &Settings, user: &UserInfo) -> Result<()> {
    if !settings.path.uses_home() || Path::new(&user.home).is_dir() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{}'s home directory {} does not exist, and the device file is kept in it \
         (path = \"{}\"): create the home directory, or use central mode: set e.g. \
         path = \"/var/lib/pam_totp/%u.toml\" in {DEFAULT_CONFIG} (pam_totp.toml(5))",
        user.name,
        user.home.display(),
        settings.path.as_str()
    )))
}

/// See [`Ctx::params`].
pub fn params(settings: &Settings, flags: &ParamArgs) -> Result<Params> {
    let base = &settings.enroll;
    let p = Params {
        algorithm: flags.algorithm.unwrap_or(base.algorithm),
        digits: flags.digits.unwrap_or(base.digits),
        step: flags.step.unwrap_or(base.step),
        t0: flags.t0.unwrap_or(base.t0),
        tolerance: flags.tolerance.unwrap_or(base.tolerance),
    };
    p.validate().map_err(|m| Error::Usage(format!("--{m}")))?;
    Ok(p)
}

/// See [`Ctx::issuer`].
pub fn issuer(settings: &Settings, flag: Option<&str>) -> Option<String> {
    if let Some(i) = flag {
        return Some(i.to_owned());
    }
    if let Some(i) = &settings.issuer {
        return Some(i.clone());
    }
    posix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

/// The URL of `device` for `account`, with issuer and image resolved.
pub fn device_url(
    settings: &Settings,
    device: &Device,
    account: &str,
    issuer_flag: Option<&str>,
    image_flag: Option<&str>,
) -> String {
    let issuer = issuer(settings, issuer_flag);
    let image = image_flag
        .map(str::to_owned)
        .or_else(|| settings.image.clone());
    config_url(&UrlParams {
        user: account,
        key: &device.key,
        algorithm: device.algorithm,
        digits: device.digits,
        step: device.step,
        issuer: issuer.as_deref(),
        image: image.as_deref(),
    })
}

/// The spec for `--path FILE`: owned by the target user; accessed as that
/// user when root names a file inside the user's home, else as the caller
/// (a non-root caller only ever acts as themself).
fn spec_for_path(path: &Path, user: &UserInfo) -> Result<FileSpec> {
    let path: PathBuf = std::path::absolute(path)
        .map_err(|e| Error::Usage(format!("--path {}: {e}", path.display())))?;
    if path.file_name().is_none() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(Error::Usage(format!(
            "--path {} must name a file, not a directory",
            path.display()
        )));
    }
    let access = match acting_user(&path, user) {
        Some((uid, gid)) => Access::AsUser { uid, gid },
        None => Access::AsCaller,
    };
    Ok(FileSpec {
        path,
        owner: user.uid,
        access,
        // An explicit file: a missing directory is created, not a sign of
        // an unmounted home.
        home: None,
    })
}

/// The file-system identity (uid, gid) that writes `path` (absolute) for
/// `user`: the user's when root writes inside their home, so that root never
/// follows the user's symlinks with root's rights and what it creates
/// belongs to the user; `None` (the caller's own) otherwise.
pub fn acting_user(path: &Path, user: &UserInfo) -> Option<(u32, u32)> {
    match Access::for_path(path, user) {
        Access::AsUser { uid, gid } if geteuid().is_root() => Some((uid, gid)),
        _ => None,
    }
}
