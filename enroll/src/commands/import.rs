//! `import-google-authenticator [FILE]`.

use super::*;
use shared::backup::BackupCodes;

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

    // Hashed before anything is written (a bad code refuses the import).
    let scratch: Vec<&str> = ga.scratch.iter().map(|c| c.as_str()).collect();
    let set = (!scratch.is_empty())
        .then(|| BackupCodes::from_scratch_codes(&scratch, Timestamp::now()))
        .transpose()
        .map_err(|m| Error::Refused(format!("{}: not imported: {m}", path.display())))?;

    refuse_taken(ctx, name)?;
    manage::import(&ctx.store, &device, set.as_ref())?;
    warn_weak_key(&ga.secret);
    if ga.scratch_codes > 0 && !ctx.json {
        note(&format!(
            "{} scratch codes became your backup codes: each works once at the code prompt",
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
            backup_codes_imported: usize,
        }
        let url = ctx.url(&device, &Default::default());
        let b32 = device.key.to_base32();
        let hex = device.key.to_hex();
        return print_json(&Imported {
            device: device_json(ctx, &device, Some(&url), Some((&b32, &hex)), None),
            backup_codes_imported: set.as_ref().map_or(0, |s| s.remaining()),
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
