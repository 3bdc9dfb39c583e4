//! `import-google-authenticator [FILE]`.

use super::*;
use shared::backup::BackupCodes;

/// Largest google-authenticator file read.
const MAX_GA_FILE: u64 = 64 * 1024;

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
    validate_name(name).map_err(|m| Error::Usage(format!("--name: {m}")))?;
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
/// not read through someone's symlinks with root's rights).
fn read_as_user(ctx: &Ctx, path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let _act = act(context::acting_user(path, &ctx.user))?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                Error::Refused(format!(
                    "{}: is a symbolic link; name the file itself",
                    path.display()
                ))
            } else if e.kind() == io::ErrorKind::NotFound {
                Error::Refused(format!(
                    "{}: no such file; name the google-authenticator file to import",
                    path.display()
                ))
            } else {
                file_error(path, "open", e)
            }
        })?;
    read_limited(file, path)
}

fn read_limited(file: File, path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let meta = file.metadata().map_err(|e| file_error(path, "stat", e))?;
    if !meta.is_file() {
        return Err(Error::Refused(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    // Room for the whole cap up front, and wiped when dropped: the file
    // holds a secret, and a growing String frees copies of it unwiped.
    let mut text = zeroize::Zeroizing::new(String::with_capacity(MAX_GA_FILE as usize + 1));
    file.take(MAX_GA_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| file_error(path, "read", e))?;
    if text.len() as u64 > MAX_GA_FILE {
        return Err(Error::Refused(format!(
            "{}: larger than {MAX_GA_FILE} bytes",
            path.display()
        )));
    }
    Ok(text)
}
