//! `add`: create a device, show it (secret, URL, QR code), confirm it.

use super::*;

/// `add`: create a device, show it, confirm it.
pub fn add(ctx: &Ctx, a: &AddArgs) -> Result<()> {
    if ctx.json && !a.no_confirm {
        return Err(Error::Usage(
            "--json never prompts, so it cannot ask for a confirmation code: add --no-confirm \
             and confirm later with `totp-enroll confirm NAME`"
                .into(),
        ));
    }
    let name = a.name.as_deref().unwrap_or(DEFAULT_NAME);
    let params = ctx.params(&a.params)?;
    let key = match (&a.key, &a.secret) {
        (Some(hex), _) => {
            Secret::from_hex(secret_arg("--key", hex)?.expose().trim()).ok_or_else(|| {
                Error::Usage("--key must be an even number of hex digits (0-9, a-f)".into())
            })?
        }
        (None, Some(b32)) => Secret::from_base32(secret_arg("--secret", b32)?.expose().trim())
            .ok_or_else(|| {
                Error::Usage("--secret must be base32 (letters A-Z and digits 2-7)".into())
            })?,
        (None, None) => random_key(params.algorithm.new_key_len())?,
    };
    validate_key(&key).map_err(|m| Error::Usage(format!("--key/--secret: {m}")))?;

    let device = Device::new(name, key, &params, Timestamp::now());
    let url = ctx.url(&device, &a.url);
    let matrix = Matrix::encode(&url).map_err(Error::Usage)?;

    // Refuse early, before anything is written, when the name is taken.
    refuse_taken(ctx, name)?;
    let images = PendingImages::prepare(ctx, &a.qr, &matrix)?;
    manage::add(&ctx.store, &device)?;
    images.commit()?;
    // After the work, so that an error stays the only line on stderr.
    warn_weak_key(&device.key);

    if ctx.json {
        return print_device_json(ctx, &device, Some(&url), None);
    }
    let mut text = format!(
        "New device `{name}` for {} ({}, {} digits, a code every {} s), saved in {}.\n\n",
        ctx.user.name, device.algorithm, device.digits, device.step, ctx.store
    );
    text.push_str(&setup_text(&device, &url, &a.qr));
    let retry = format!("totp-enroll show {}", manage::shell_word(name));
    if a.no_confirm {
        text.push_str(&format!(
            "\nThe device is not confirmed yet and cannot be used to log in: run\n  \
             totp-enroll confirm {}\nwith a code from the app.\n",
            manage::shell_word(name)
        ));
        // Below the code: the shell's prompt.
        text.push_str(&qr_text(&url, &a.qr, 1, &retry)?);
        return print(&text);
    }
    text.push_str(&format!(
        "\nTo confirm, enter the {}-digit code the app shows now.\n",
        device.digits
    ));
    // Below the code: the "Code: " prompt.
    text.push_str(&qr_text(&url, &a.qr, 1, &retry)?);
    print(&text)?;
    confirm_loop(ctx, name, true)?;
    print(&format!("Device `{name}` is confirmed.\n{ONCE}"))?;
    if !a.no_backup_codes {
        give_first_set(ctx)?;
    }
    Ok(())
}

/// QR images written to temporary names next to their targets, moved into
/// place by `commit` once the device is saved, removed if dropped before.
/// Inside the user's home, root does all of it as the user (see
/// [`context::acting_user`]).
pub(super) struct PendingImages {
    files: Vec<PendingImage>,
}

struct PendingImage {
    tmp: PathBuf,
    path: PathBuf,
    /// The identity that writes it; `None`: the caller's.
    writer: Option<(u32, u32)>,
}

impl PendingImages {
    pub(super) fn prepare(ctx: &Ctx, qr: &QrArgs, matrix: &Matrix) -> Result<PendingImages> {
        let mut pending = PendingImages { files: Vec::new() };
        #[cfg(feature = "png")]
        if let Some(path) = &qr.qr_png {
            let png = matrix.to_png().map_err(Error::Refused)?;
            pending.stage(ctx, path, &png)?;
        }
        if let Some(path) = &qr.qr_svg {
            pending.stage(ctx, path, matrix.to_svg().as_bytes())?;
        }
        Ok(pending)
    }

    fn stage(&mut self, ctx: &Ctx, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path.file_name().ok_or_else(|| {
            Error::Usage(format!(
                "{} must name a file, not a directory",
                path.display()
            ))
        })?;
        let path = std::path::absolute(path)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        let writer = context::acting_user(&path, &ctx.user);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _act = act(writer)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(&tmp)
            .map_err(|e| file_error(&path, "create", e))?;
        self.files.push(PendingImage {
            tmp,
            path: path.clone(),
            writer,
        });
        file.write_all(bytes)
            .and_then(|()| file.set_permissions(fs::Permissions::from_mode(0o600)))
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(&path, "write", e))
    }

    pub(super) fn commit(mut self) -> Result<()> {
        for image in std::mem::take(&mut self.files) {
            let _act = act(image.writer)?;
            fs::rename(&image.tmp, &image.path).map_err(|e| {
                let _ = fs::remove_file(&image.tmp);
                file_error(&image.path, "write", e)
            })?;
        }
        Ok(())
    }
}

impl Drop for PendingImages {
    fn drop(&mut self) {
        for image in &self.files {
            // Never clean up in the user's home with root's rights.
            if let Ok(guard) = act(image.writer) {
                let _ = fs::remove_file(&image.tmp);
                drop(guard);
            }
        }
    }
}
