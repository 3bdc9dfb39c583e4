//! `batch`: devices for many users at once, one JSON record each (root).

use super::*;

/// `batch`: one record per user; failures are reported and do not stop the
/// others.
pub fn batch(common: &crate::cli::Common, a: &BatchArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
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
    if let Some(from) = &a.users_from {
        let text = if from.as_os_str() == "-" {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::Usage(format!("cannot read user names from stdin: {e}")))?;
            s
        } else {
            fs::read_to_string(from)
                .map_err(|e| Error::Usage(format!("--users-from {}: {e}", from.display())))?
        };
        users.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if users.is_empty() {
        return Err(Error::Usage(
            "no user names given to --users/--users-from".into(),
        ));
    }
    // Resolve the issuer once (a host name lookup per user is waste).
    let issuer = context::issuer(&settings, a.issuer.as_deref()).unwrap_or_default();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = 0usize;
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
            "{failed} of {} users got no device; see the records with an \"error\" field",
            users.len()
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
