//! `backup-codes`, the set a first confirmed device comes with, and the
//! line `list` shows. The codes are made, hashed and stored by
//! `shared::manage`; here they are only shown, once.

use super::*;
use shared::backup::{BackupCodes, NewSet, MAX_CODES};

/// `backup-codes --json`: the new codes, once.
#[derive(serde::Serialize)]
struct CodesJson<'a> {
    user: &'a str,
    codes: Vec<&'a str>,
    count: usize,
}

/// `backup-codes`: a new set, replacing the old one (after asking, unless
/// `--yes` or `--json`).
pub fn backup_codes(ctx: &Ctx, a: &BackupArgs) -> Result<()> {
    if !(1..=MAX_CODES).contains(&a.count) {
        return Err(Error::Usage(format!(
            "--count must be 1 to {MAX_CODES}, not {}",
            a.count
        )));
    }
    if !a.yes && !ctx.json {
        if let Some(left) = manage::backup_count(&ctx.store)? {
            if !replace_agreed(ctx, left)? {
                return Err(Error::Refused(
                    "the old backup codes are kept; nothing changed".into(),
                ));
            }
        }
    }
    let new = manage::new_backup_codes(&ctx.store, a.count)?;
    show_codes(ctx, &new)
}

/// Asks on the terminal whether to replace a set with `left` codes.
fn replace_agreed(ctx: &Ctx, left: usize) -> Result<bool> {
    {
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "{} has a set of backup codes ({left} unused). A new set makes the old codes \
             useless. Replace it? [y/N] ",
            ctx.user.name
        );
        let _ = err.flush();
    }
    Ok(read_line(&io::stdin())?
        .is_some_and(|a| matches!(a.expose().trim().to_ascii_lowercase().as_str(), "y" | "yes")))
}

/// After a first device is confirmed: its set of backup codes, shown once.
pub(super) fn give_first_set(ctx: &Ctx) -> Result<()> {
    match manage::first_backup_codes(&ctx.store)? {
        Some(new) => show_codes(ctx, &new),
        None => Ok(()),
    }
}

/// Prints new codes: JSON `{"user", "codes", "count"}` or a block to copy.
fn show_codes(ctx: &Ctx, new: &NewSet) -> Result<()> {
    if ctx.json {
        return print_json(&CodesJson {
            user: &ctx.user.name,
            codes: new.codes.iter().map(|c| c.as_str()).collect(),
            count: new.codes.len(),
        });
    }
    let mut text = zeroize::Zeroizing::new(String::with_capacity(256 + new.codes.len() * 16));
    text.push_str(&format!(
        "\nBackup codes for {}: each works once, typed at the verification code prompt\n\
         when your phone is not at hand. Keep them somewhere safe, away from the phone;\n\
         they are not shown again (the device file keeps only their hashes).\n\n",
        ctx.user.name
    ));
    for pair in new.codes.chunks(2) {
        for code in pair {
            text.push_str("    ");
            text.push_str(code);
        }
        text.push('\n');
    }
    text.push('\n');
    print(&text)
}

/// The backup-code set as `list` shows it.
#[derive(serde::Serialize)]
pub(super) struct BackupLine<'a> {
    user: &'a str,
    backup_codes_left: usize,
    failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttled_until: Option<String>,
}

impl BackupLine<'_> {
    /// The sentence under `list`'s table.
    pub(super) fn sentence(&self) -> String {
        let noun = if self.backup_codes_left == 1 {
            "code"
        } else {
            "codes"
        };
        let mut s = format!("\nBackup codes: {} {noun} left", self.backup_codes_left);
        match (&self.throttled_until, self.failures) {
            (Some(until), n) => s.push_str(&format!(", throttled until {until} ({n} failures)")),
            (None, 0) => {}
            (None, n) => s.push_str(&format!(", {n} failures")),
        }
        if self.backup_codes_left <= 2 {
            s.push_str("; make a new set with `totp-enroll backup-codes`");
        }
        s.push_str(".\n");
        s
    }
}

/// `list`'s view of `set` at `now`.
pub(super) fn backup_line<'a>(ctx: &'a Ctx, set: &BackupCodes, now: Timestamp) -> BackupLine<'a> {
    BackupLine {
        user: &ctx.user.name,
        backup_codes_left: set.remaining(),
        failures: set.throttling_failure_count,
        throttled_until: shared::backup::throttled_until(set, now, &ctx.settings.policy)
            .map(|t| whole_secs(t).to_string()),
    }
}
