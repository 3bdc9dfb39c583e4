//! The commands, one file per family. Each one decides nothing about the
//! file format, the verification rules or the store: it calls `shared`
//! (`shared::manage`, `shared::store::Store`) and talks to the user. This
//! file holds what several of them use.

mod add;
mod backup;
mod batch;
mod check;
mod confirm;
mod db;
mod import;
mod list;
mod remove;

pub use add::add;
use add::PendingImages;
pub use backup::backup_codes;
use backup::{backup_line, give_first_set};
pub use batch::batch;
pub use check::{check, set};
pub use confirm::confirm;
use confirm::{confirm_loop, ONCE};
pub use db::db;
pub use import::import_google;
pub use list::{list, show};
pub use remove::{remove, reset};

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use posix::fcntl::OFlag;
use shared::device::{validate_key, Device, DeviceFile, WEAK_KEY_LEN};
use shared::manage::{self, Confirmation};
use shared::secret::{Answer, Secret};
use shared::store::Store;
use shared::user::{ActAs, UserInfo};
use shared::verify::Rejection;
use shared::Timestamp;

use crate::cli::{
    AddArgs, BackupArgs, BatchArgs, ConfirmArgs, ImportArgs, NameArg, QrArgs, QrStyle, RemoveArgs,
    SetArgs, ShowArgs, DEFAULT_IMPORT_NAME, DEFAULT_NAME,
};
use crate::context::{self, Ctx};
use crate::error::{Error, Result};
use crate::google::GaFile;
use crate::output::{
    self, colour_terminal, grouped, note, print, print_json, DeviceJson, StateJson,
};
use crate::qr::Matrix;

/// A new key from the OS ([`Secret::random`]).
fn random_key(len: usize) -> Result<Secret> {
    Secret::random(len).map_err(Error::Refused)
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

/// The manual-entry secret, the URL and the images written, for `add` and
/// `show`. The terminal QR code comes last, right above the prompt
/// ([`qr_text`]), so that it is what stays on a small screen.
fn setup_text(device: &Device, url: &str, qr: &QrArgs) -> String {
    let b32 = device.key.to_base32();
    let mut text = format!(
        "Secret, to type into the app (time-based, {}, {} digits, {} s):\n  {}\n\n\
         otpauth URL:\n  {url}\n",
        device.algorithm,
        device.digits,
        device.step,
        grouped(&b32)
    );
    #[cfg(feature = "png")]
    let images = [("PNG", &qr.qr_png), ("SVG", &qr.qr_svg)];
    #[cfg(not(feature = "png"))]
    let images = [("SVG", &qr.qr_svg)];
    for (what, path) in images {
        if let Some(p) = path {
            text.push_str(&format!("QR code written to {} ({what}).\n", p.display()));
        }
    }
    text
}

/// The terminal QR code of `url` with a line saying what to do with it, or,
/// when the terminal is too small to show it with `reserve` lines below
/// (the prompt), a note saying so and how to get it another way
/// (`retry`: the command that shows it again).
fn qr_text(url: &str, qr: &QrArgs, reserve: usize, retry: &str) -> Result<String> {
    let ansi = match qr.qr {
        QrStyle::None => return Ok(String::new()),
        QrStyle::Utf8 => false,
        QrStyle::Ansi => true,
    };
    let matrix = Matrix::encode_for_terminal(url).map_err(Error::Usage)?;
    let (lines, cols) = matrix.terminal_size(ansi);
    if let Some((terminal_size::Width(w), terminal_size::Height(h))) =
        terminal_size::terminal_size()
    {
        let (w, h) = (usize::from(w), usize::from(h));
        if cols > w || lines + reserve > h {
            return Ok(format!(
                "\nThe QR code needs {cols}x{} characters and this terminal has {w}x{h}, so it \
                 is not shown: type the secret above into the app, or enlarge the terminal \
                 and run `{retry}`, or write an image with `{retry} {} FILE`.\n",
                lines + reserve,
                crate::qr::IMAGE_OPTION
            ));
        }
    }
    let mut text = String::from("\nOr scan this QR code with the app:\n");
    text.push_str(&if ansi {
        matrix.to_ansi()
    } else {
        matrix.to_utf8(colour_terminal())
    });
    Ok(text)
}

fn act(writer: Option<(u32, u32)>) -> Result<Option<ActAs>> {
    Ok(match writer {
        Some((uid, gid)) => Some(ActAs::user(uid, gid)?),
        None => None,
    })
}

fn file_error(path: &Path, action: &'static str, e: io::Error) -> Error {
    Error::Store(shared::Error::io(path, action, e))
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
