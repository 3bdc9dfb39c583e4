//! `import-google-authenticator [FILE]`.

use super::*;

/// `import-google-authenticator [FILE]`.
pub fn import_google(ctx: &Ctx, a: &ImportArgs) -> Result<()> {
    let path = a
        .file
        .clone()
        .unwrap_or_else(|| ctx.user.home.join(".google_authenticator"));
    let path = std::path::absolute(&path).unwrap_or(path);
    let text = read_as_user(ctx, &path)?;
    let ga = GaFile::parse(&text)
        .map_err(|m| Error::Refused(format!("{}: not imported: {m}", path.display())))?;
    let name = a.name.as_deref().unwrap_or(DEFAULT_IMPORT_NAME);
    validate_key(&ga.secret)
        .map_err(|m| Error::Refused(format!("{}: not imported: {m}", path.display())))?;
    let mut device = Device::new(name, ga.secret.clone(), &ga.params(), Timestamp::now());
    // The secret is already in service (pam_google_authenticator accepted
    // it), so there is nothing left to confirm.
    device.confirmed = true;
    device.last_t = ga.last_t.unwrap_or(-1);

    refuse_taken(ctx, name)?;
    manage::add(&ctx.store, &device)?;
    warn_weak_key(&ga.secret);
    if ga.scratch_codes > 0 {
        note(&format!(
            "{} scratch codes were not imported: pam-totp has no backup codes yet, so they stop \
             working once pam_google_authenticator is taken out of the PAM stack",
            ga.scratch_codes
        ));
    }
    for n in &ga.notes {
        note(n);
    }
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Imported<'a> {
            #[serde(flatten)]
            device: DeviceJson<'a>,
            scratch_codes_not_imported: usize,
        }
        let url = ctx.url(&device, &Default::default());
        let b32 = device.key.to_base32();
        let hex = device.key.to_hex();
        return print_json(&Imported {
            device: device_json(ctx, &device, Some(&url), Some((&b32, &hex)), None),
            scratch_codes_not_imported: ga.scratch_codes,
        });
    }
    print(&format!(
        "Imported {} as device `{name}` of {} (confirmed): SHA1, 6 digits, step {} s, \
         tolerance ±{} (WINDOW_SIZE {}), last_t {}{}.\nSaved in {}.\n",
        path.display(),
        ctx.user.name,
        device.step,
        device.tolerance,
        ga.window,
        device.last_t,
        if ga.disallow_reuse {
            " (DISALLOW_REUSE)"
        } else {
            ""
        },
        ctx.store
    ))
}

/// Reads a file of the target user: inside their home, as them (root does
/// not read through someone's symlinks with root's rights), with shared's
/// checks (no symbolic link, no FIFO, a regular file of at most 64 KiB).
fn read_as_user(ctx: &Ctx, path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let _act = act(context::acting_user(path, &ctx.user))?;
    shared::fsafe::read_regular(path)?.ok_or_else(|| {
        Error::Refused(format!(
            "{}: no such file; name the google-authenticator file to import",
            path.display()
        ))
    })
}
