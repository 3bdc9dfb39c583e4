//! The commands. Each one parses nothing and decides nothing about the file
//! format or the verification rules: it calls `shared` and talks to the user.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use shared::device::{validate_key, validate_name, Device, DeviceFile, WEAK_KEY_LEN};
use shared::manage::{self, Confirmation};
use shared::secret::{Answer, Secret};
use shared::store::Store;
use shared::user::{ActAs, UserInfo};
use shared::verify::Rejection;
use shared::Timestamp;

use crate::cli::{
    AddArgs, BatchArgs, ConfirmArgs, ImportArgs, NameArg, QrArgs, QrStyle, ShowArgs,
    DEFAULT_IMPORT_NAME, DEFAULT_NAME,
};
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::google::GaFile;
use crate::output::{
    self, colour_terminal, grouped, note, print, print_json, DeviceJson, StateJson,
};
use crate::qr::Matrix;

/// Wrong codes `add` and `confirm` accept in one run before giving up.
const MAX_WRONG_CODES: u32 = 3;
/// Lines of input read at most while confirming.
const MAX_INPUT_LINES: u32 = 10;
/// Longest throttle wait sat out while confirming; longer ones are refused.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(10);
/// Largest google-authenticator file read.
const MAX_GA_FILE: u64 = 64 * 1024;

// ---------------------------------------------------------------- add

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
    validate_name(name).map_err(|m| Error::Usage(format!("--name: {m}")))?;
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
    text.push_str(&setup_text(&device, &url, &matrix, &a.qr));
    print(&text)?;
    if a.no_confirm {
        print(&format!(
            "\nThe device is not confirmed yet and cannot be used to log in: run\n  \
             totp-enroll confirm {}\nwith a code from the app.\n",
            manage::shell_word(name)
        ))?;
        return Ok(());
    }
    print(&format!(
        "\nTo confirm, enter the {}-digit code the app shows now.\n",
        device.digits
    ))?;
    confirm_loop(ctx, name, true)?;
    print(&format!("Device `{name}` is confirmed.\n"))?;
    Ok(())
}

/// A new key from the OS: getrandom(2), which needs no file descriptor and
/// blocks until the kernel's pool is seeded.
fn random_key(len: usize) -> Result<Secret> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::Refused(format!("cannot get random bytes from the OS: {e}")))?;
    Ok(Secret::new(buf))
}

fn warn_weak_key(key: &Secret) {
    if key.len() < WEAK_KEY_LEN {
        note(&format!(
            "warning: the key is only {} bytes; keys of {WEAK_KEY_LEN} bytes or more (20 for SHA1) \
             resist guessing better: consider a fresh device with `totp-enroll add`",
            key.len()
        ));
    }
}

/// The QR code, the manual-entry secret and the URL, for `add` and `show`.
fn setup_text(device: &Device, url: &str, matrix: &Matrix, qr: &QrArgs) -> String {
    let mut text = String::new();
    match qr.qr {
        QrStyle::None => {}
        QrStyle::Utf8 => {
            text.push_str("Scan this QR code with your authenticator app:\n\n");
            text.push_str(&matrix.to_utf8(colour_terminal()));
            text.push('\n');
        }
        QrStyle::Ansi => {
            text.push_str("Scan this QR code with your authenticator app:\n\n");
            text.push_str(&matrix.to_ansi());
            text.push('\n');
        }
    }
    let b32 = device.key.to_base32();
    text.push_str(&format!(
        "Or type this secret into the app (time-based, {}, {} digits, {} s):\n  {}\n\n\
         otpauth URL:\n  {url}\n",
        device.algorithm,
        device.digits,
        device.step,
        grouped(&b32)
    ));
    for (what, path) in [("PNG", &qr.qr_png), ("SVG", &qr.qr_svg)] {
        if let Some(p) = path {
            text.push_str(&format!("QR code written to {} ({what}).\n", p.display()));
        }
    }
    text
}

/// QR images written to temporary names next to their targets, moved into
/// place by `commit` once the device is saved, removed if dropped before.
/// Inside the user's home, root does all of it as the user (see
/// [`context::acting_user`]).
struct PendingImages {
    files: Vec<PendingImage>,
}

struct PendingImage {
    tmp: PathBuf,
    path: PathBuf,
    /// The identity that writes it; `None`: the caller's.
    writer: Option<(u32, u32)>,
}

fn act(writer: Option<(u32, u32)>) -> Result<Option<ActAs>> {
    Ok(match writer {
        Some((uid, gid)) => Some(ActAs::user(uid, gid)?),
        None => None,
    })
}

impl PendingImages {
    fn prepare(ctx: &Ctx, qr: &QrArgs, matrix: &Matrix) -> Result<PendingImages> {
        let mut pending = PendingImages { files: Vec::new() };
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

    fn commit(mut self) -> Result<()> {
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

fn file_error(path: &Path, action: &'static str, e: io::Error) -> Error {
    Error::Store(shared::Error::io(path, action, e))
}

// ---------------------------------------------------------------- confirm

/// `confirm NAME`.
pub fn confirm(ctx: &Ctx, a: &ConfirmArgs) -> Result<()> {
    let file = read_existing(ctx)?;
    let device = find(ctx, &file, &a.name)?;
    if device.confirmed {
        if ctx.json {
            return print_device_json(ctx, device, None, Some(Timestamp::now()));
        }
        return print(&format!("Device `{}` is confirmed already.\n", a.name));
    }
    let interactive = !ctx.json;
    if interactive {
        print(&format!(
            "Enter the {}-digit code the app shows now for `{}`.\n",
            device.digits, a.name
        ))?;
    }
    let device = confirm_loop(ctx, &a.name, interactive)?;
    if ctx.json {
        // The state, not the secret: confirming is not a setup step.
        return print_device_json(ctx, &device, None, Some(Timestamp::now()));
    }
    print(&format!("Device `{}` is confirmed.\n", a.name))
}

/// Reads codes from stdin until one confirms the device `name` (under the
/// module's rules), the input ends, or too many are wrong. `--json` (not
/// interactive) takes one code and no prompt.
fn confirm_loop(ctx: &Ctx, name: &str, interactive: bool) -> Result<Device> {
    let stdin = io::stdin();
    let prompt = interactive && stdin.is_terminal();
    let max_wrong = if interactive { MAX_WRONG_CODES } else { 1 };
    let mut wrong = 0;
    let mut lines = 0;
    let unconfirmed = |why: &str| {
        Error::Refused(format!(
            "{why}; device `{name}` stays unconfirmed: run `totp-enroll confirm {}` to try again",
            manage::shell_word(name)
        ))
    };
    let mut retry: Option<Answer> = None;
    loop {
        let code = match retry.take() {
            Some(c) => c,
            None => {
                if lines >= MAX_INPUT_LINES {
                    return Err(unconfirmed("no valid code entered"));
                }
                lines += 1;
                if prompt {
                    let mut err = io::stderr().lock();
                    let _ = write!(err, "Code: ");
                    let _ = err.flush();
                }
                match read_line(&stdin)? {
                    None => return Err(unconfirmed("no code entered")),
                    Some(c) if c.expose().trim().is_empty() => continue,
                    Some(c) => c,
                }
            }
        };
        match manage::confirm(&ctx.store, name, code.expose(), &ctx.settings.policy)? {
            Confirmation::Confirmed(d) => return Ok(d),
            Confirmation::Rejected(reason) => {
                wrong += 1;
                let what = match reason {
                    Rejection::Replayed => "that code was used already",
                    Rejection::Malformed => "that is not a code of the right length",
                    Rejection::Wrong => "wrong code",
                };
                if wrong >= max_wrong {
                    return Err(unconfirmed(what));
                }
                note(&format!("{what}; enter the code the app shows now."));
            }
            Confirmation::Throttled { until, now } => {
                let wait =
                    Duration::from_micros(u64::try_from(until.micros_since(now)).unwrap_or(0));
                if wait > MAX_THROTTLE_WAIT {
                    return Err(unconfirmed(&format!(
                        "too many wrong codes: codes are refused until {until} (root can \
                         `totp-enroll reset`)"
                    )));
                }
                note(&format!(
                    "too many wrong codes: waiting {} s before checking this one",
                    wait.as_secs() + 1
                ));
                std::thread::sleep(wait + Duration::from_millis(50));
                retry = Some(code);
            }
        }
    }
}

/// The value of `--key`/`--secret`: as given, or with `-` the first line of
/// stdin (so that the secret is not in the process list or shell history).
fn secret_arg(flag: &str, value: &str) -> Result<Answer> {
    if value != "-" {
        return Ok(Answer::new(value.to_owned()));
    }
    read_line(&io::stdin())?.ok_or_else(|| {
        Error::Usage(format!(
            "{flag} -: stdin ended before a line with the secret"
        ))
    })
}

/// One line from stdin, at most 256 bytes, without the newline.
fn read_line(stdin: &io::Stdin) -> Result<Option<Answer>> {
    let mut buf = zeroize::Zeroizing::new(String::new());
    let n = stdin
        .lock()
        .take(256)
        .read_line(&mut buf)
        .map_err(|e| Error::Refused(format!("cannot read the code from stdin: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(Answer::new(
        buf.trim_end_matches(['\n', '\r']).to_owned(),
    )))
}

// ---------------------------------------------------------------- list, show

/// `list`.
pub fn list(ctx: &Ctx) -> Result<()> {
    let file = ctx.store.read()?.devices.unwrap_or_default();
    let now = Timestamp::now();
    if ctx.json {
        for d in &file.devices {
            print_device_json(ctx, d, None, Some(now))?;
        }
        return Ok(());
    }
    if file.devices.is_empty() {
        return print(&format!(
            "{} has no devices ({}).\nAdd one with `totp-enroll add`.\n",
            ctx.user.name, ctx.store
        ));
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "CONFIRMED".into(),
        "ALGORITHM".into(),
        "DIGITS/STEP".into(),
        "LAST USED".into(),
        "DRIFT".into(),
        "STATUS".into(),
    ]];
    for d in &file.devices {
        let s = StateJson::of(d, now, &ctx.settings.policy);
        let status = match (&s.throttled_until, d.throttling_failure_count) {
            (Some(until), n) => format!("throttled until {until} ({n} failures)"),
            (None, 0) => "ok".into(),
            (None, 1) => "1 failure".into(),
            (None, n) => format!("{n} failures"),
        };
        rows.push([
            d.name.clone(),
            if d.confirmed { "yes" } else { "no" }.into(),
            d.algorithm.name().into(),
            format!("{}/{}s", d.digits, d.step),
            d.last_used_at
                .map_or_else(|| "never".into(), |t| whole_secs(t).to_string()),
            format!("{:+}", d.drift),
            status,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    print(&text)
}

/// `show NAME`.
pub fn show(ctx: &Ctx, a: &ShowArgs) -> Result<()> {
    let file = read_existing(ctx)?;
    let d = find(ctx, &file, &a.name)?;
    let url = ctx.url(d, &a.url);
    let matrix = Matrix::encode(&url).map_err(Error::Usage)?;
    let images = PendingImages::prepare(ctx, &a.qr, &matrix)?;
    images.commit()?;
    let now = Timestamp::now();
    if ctx.json {
        return print_device_json(ctx, d, Some(&url), Some(now));
    }
    let s = StateJson::of(d, now, &ctx.settings.policy);
    let mut text = format!(
        "Device `{}` of {} ({}):\n  confirmed:     {}\n  parameters:    {}, {} digits, step {} s, t0 {}, tolerance ±{}\n",
        d.name,
        ctx.user.name,
        ctx.store,
        if d.confirmed { "yes" } else { "no: run `totp-enroll confirm`" },
        d.algorithm,
        d.digits,
        d.step,
        d.t0,
        d.tolerance
    );
    text.push_str(&format!(
        "  current step:  {} by the clock, {} expected from the device (drift {:+})\n",
        s.clock_t, s.current_t, d.drift
    ));
    text.push_str(&match d.last_t {
        -1 => "  last_t:        -1 (no code accepted yet)\n".to_owned(),
        t => format!(
            "  last_t:        {t} ({} steps before the current one)\n",
            s.current_t.saturating_sub(t)
        ),
    });
    text.push_str(&match (d.last_used_at, s.seconds_since_last_use) {
        (Some(t), Some(secs)) => {
            format!("  last used:     {} ({secs} s ago)\n", whole_secs(t))
        }
        _ => "  last used:     never\n".to_owned(),
    });
    text.push_str(&match &s.throttled_until {
        Some(u) => format!(
            "  failures:      {} (throttled until {u}; `totp-enroll reset` clears it)\n",
            d.throttling_failure_count
        ),
        None => format!(
            "  failures:      {} (not throttled)\n",
            d.throttling_failure_count
        ),
    });
    text.push('\n');
    text.push_str(&setup_text(d, &url, &matrix, &a.qr));
    print(&text)
}

// ---------------------------------------------------------------- remove, reset

/// `remove NAME`.
pub fn remove(ctx: &Ctx, a: &NameArg) -> Result<()> {
    manage::remove(&ctx.store, &a.name)?;
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Removed<'a> {
            user: &'a str,
            device_name: &'a str,
            removed: bool,
        }
        return print_json(&Removed {
            user: &ctx.user.name,
            device_name: &a.name,
            removed: true,
        });
    }
    print(&format!(
        "Removed device `{}` of {}.\n",
        a.name, ctx.user.name
    ))
}

/// `reset NAME`: failure count 0, failure timestamp cleared.
pub fn reset(ctx: &Ctx, a: &NameArg) -> Result<()> {
    let (device, before) = manage::reset(&ctx.store, &a.name)?;
    if ctx.json {
        return print_device_json(ctx, &device, None, Some(Timestamp::now()));
    }
    print(&format!(
        "Device `{}` of {}: {before} failures cleared, no longer throttled.\n",
        a.name, ctx.user.name
    ))
}

// ---------------------------------------------------------------- import

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

// ---------------------------------------------------------------- batch

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
    validate_name(name).map_err(|m| Error::Usage(format!("--name: {m}")))?;
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
    let store = Store::for_user(&settings.path, &info)?;
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

// ---------------------------------------------------------------- helpers

/// An instant without its fraction, for people.
fn whole_secs(t: Timestamp) -> Timestamp {
    Timestamp::from_secs(t.secs_floor())
}

fn read_existing(ctx: &Ctx) -> Result<DeviceFile> {
    Ok(ctx
        .store
        .read()?
        .devices
        .ok_or_else(|| manage::no_devices(&ctx.store))?)
}

fn find<'a>(ctx: &Ctx, file: &'a DeviceFile, name: &str) -> Result<&'a Device> {
    Ok(file
        .find(name)
        .ok_or_else(|| manage::no_such_device(&ctx.store, name))?)
}

/// Refuses early, before anything is written, a name that is taken (the
/// transaction checks again under the lock).
fn refuse_taken(ctx: &Ctx, name: &str) -> Result<()> {
    match ctx.store.read()?.devices {
        Some(file) if file.find(name).is_some() => Err(manage::name_taken(&ctx.store, name).into()),
        _ => Ok(()),
    }
}

/// Prints the JSON record of `d`: with `url`, the setup fields (URL and
/// secret); with `now`, the verification state. Without `url`, no secret.
fn print_device_json(
    ctx: &Ctx,
    d: &Device,
    url: Option<&str>,
    now: Option<Timestamp>,
) -> Result<()> {
    let b32 = d.key.to_base32();
    let hex = d.key.to_hex();
    let secrets = url.map(|_| (b32.as_str(), hex.as_str()));
    print_json(&device_json(ctx, d, url, secrets, now))
}

fn device_json<'a>(
    ctx: &'a Ctx,
    d: &'a Device,
    url: Option<&'a str>,
    secrets: Option<(&'a str, &'a str)>,
    now: Option<Timestamp>,
) -> DeviceJson<'a> {
    DeviceJson {
        user: &ctx.user.name,
        device_name: &d.name,
        config_url: url,
        secret_base32: secrets.map(|(b, _)| output::unpadded(b)),
        key_hex: secrets.map(|(_, h)| h),
        algorithm: d.algorithm.name(),
        digits: d.digits,
        step: d.step,
        t0: d.t0,
        tolerance: d.tolerance,
        confirmed: d.confirmed,
        state: now.map(|n| StateJson::of(d, n, &ctx.settings.policy)),
    }
}
