//! `batch`: devices for many users at once, one JSON record each (root).

use super::*;
use shared::user::is_valid_name;

/// The largest `--users-from` list, in bytes (a million users' names).
const MAX_USERS_FROM: u64 = 16 << 20;

/// Reads a `--users-from` file safely (issue 11, finding 9): no symlink
/// as the last component (`O_NOFOLLOW`), no wait on a FIFO or device
/// (`O_NONBLOCK`, then a regular file is required on the open descriptor),
/// no controlling terminal, a bounded size.
fn read_users_from(path: &Path) -> Result<String> {
    let refuse = |why: String| Error::Usage(format!("--users-from {}: {why}", path.display()));
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == posix::Errno::ELOOP.raw() => {
                refuse("is a symbolic link; name the file itself".into())
            }
            _ => refuse(e.to_string()),
        })?;
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > MAX_USERS_FROM {
        return Err(refuse(format!("longer than {MAX_USERS_FROM} bytes")));
    }
    let mut text = String::new();
    file.take(MAX_USERS_FROM + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(text)
}

fn libc_flags() -> i32 {
    (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).bits()
}

/// `batch`: one record per user; failures are reported and do not stop the
/// others.
pub fn batch(common: &crate::cli::Common, a: &BatchArgs) -> Result<()> {
    if !posix::unistd::geteuid().is_root() {
        return Err(Error::Refused(
            "batch creates devices for other users: run it as root".into(),
        ));
    }
    if common.path.is_some() || common.user.is_some() {
        return Err(Error::Usage(
            "batch writes each user's own device file: drop --path/--user (a `path` template \
             in the --config file sets where the files go)"
                .into(),
        ));
    }
    let settings = context::load_settings(common.config.as_deref())?;
    let params = context::params(&settings, &a.params)?;
    let name = a.name.as_deref().unwrap_or(DEFAULT_NAME);
    let mut users: Vec<String> = a
        .users
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    let mut skipped = 0usize;
    if let Some(from) = &a.users_from {
        let (text, source) = if from.as_os_str() == "-" {
            let mut s = String::new();
            io::stdin()
                .take(MAX_USERS_FROM + 1)
                .read_to_string(&mut s)
                .map_err(|e| Error::Usage(format!("cannot read user names from stdin: {e}")))?;
            (s, "stdin".to_owned())
        } else {
            (read_users_from(from)?, from.display().to_string())
        };
        if text.len() as u64 > MAX_USERS_FROM {
            return Err(Error::Usage(format!(
                "--users-from {source}: longer than {MAX_USERS_FROM} bytes"
            )));
        }
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if is_valid_name(line) {
                users.push(line.to_owned());
            } else {
                // Never echoed: the "list" may be a secret file.
                skipped += 1;
                eprintln!(
                    "totp-enroll: --users-from {source}:{}: not a user name (the line is not \
                     shown); skipped",
                    number + 1
                );
            }
        }
    }
    if users.is_empty() {
        return Err(Error::Usage(
            "no user names given to --users/--users-from".into(),
        ));
    }
    // Resolve the issuer once (a host name lookup per user is waste).
    let issuer = context::issuer(&settings, a.issuer.as_deref()).unwrap_or_default();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = skipped;
    for user in &users {
        let line = match batch_one(&settings, &params, name, user, a, &issuer) {
            Ok(line) => line,
            Err(e) => {
                failed += 1;
                #[derive(serde::Serialize)]
                struct Failed<'a> {
                    user: &'a str,
                    error: String,
                }
                serde_json::to_string(&Failed {
                    user,
                    error: e.to_string(),
                })
                .map_err(|e| Error::Output(io::Error::other(e)))?
            }
        };
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if failed > 0 {
        return Err(Error::Refused(format!(
            "{failed} of {} users got no device; see the records with an \"error\" field \
             and the skipped lines",
            users.len() + skipped
        )));
    }
    Ok(())
}

fn batch_one(
    settings: &shared::Settings,
    params: &shared::device::Params,
    name: &str,
    user: &str,
    a: &BatchArgs,
    issuer: &str,
) -> Result<String> {
    let info =
        UserInfo::by_name(user)?.ok_or_else(|| Error::Refused(format!("unknown user `{user}`")))?;
    let store = Store::open(&settings.store, &settings.path, &info)?;
    let mut device = Device::new(
        name,
        random_key(params.algorithm.new_key_len())?,
        params,
        Timestamp::now(),
    );
    device.confirmed = a.confirmed;
    manage::add(&store, &device)?;
    let url = context::device_url(
        settings,
        &device,
        &info.name,
        Some(issuer),
        a.image.as_deref(),
    );
    let b32 = device.key.to_base32();
    let hex = device.key.to_hex();
    let record = DeviceJson {
        user: &info.name,
        device_name: name,
        config_url: Some(&url),
        secret_base32: Some(output::unpadded(&b32)),
        key_hex: Some(&hex),
        algorithm: device.algorithm.name(),
        digits: device.digits,
        step: device.step,
        t0: device.t0,
        tolerance: device.tolerance,
        confirmed: device.confirmed,
        state: None,
    };
    serde_json::to_string(&record).map_err(|e| Error::Output(io::Error::other(e)))
}
