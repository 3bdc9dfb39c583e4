//! What totp-enroll prints: JSON records (docs/design.md §7 fields, in that order)
//! and the human text around them.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;
use shared::device::Device;
use shared::oath::time_step;
use shared::verify::{current_step, throttled_until, Policy};
use shared::Timestamp;

use crate::error::Result;

/// One device as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct DeviceJson<'a> {
    /// Account name.
    pub user: &'a str,
    /// Device name.
    pub device_name: &'a str,
    /// The `otpauth://` URL (not in `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_url: Option<&'a str>,
    /// Unpadded base32 secret, as apps take it by hand (not in `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_base32: Option<&'a str>,
    /// The key as the device file stores it (not in `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<&'a str>,
    /// SHA1, SHA256, SHA512.
    pub algorithm: &'static str,
    /// 6 or 8.
    pub digits: u32,
    /// Seconds per step.
    pub step: u32,
    /// Start of counting.
    pub t0: i64,
    /// Steps either side.
    pub tolerance: u32,
    /// Accepted at login?
    pub confirmed: bool,
    /// Verification state (`list`, `show`, `reset`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateJson>,
}

/// The verification state of a device at one instant.
#[derive(Debug, Serialize)]
pub struct StateJson {
    /// The step now by the clock: floor((now - t0) / step).
    pub clock_t: i64,
    /// The step the device is expected to show: clock_t + drift.
    pub current_t: i64,
    /// Last accepted step; -1 = never.
    pub last_t: i64,
    /// Learnt clock offset in steps.
    pub drift: i16,
    /// When the device was created.
    pub created_at: Option<String>,
    /// Last successful verification.
    pub last_used_at: Option<String>,
    /// Whole seconds since then.
    pub seconds_since_last_use: Option<i64>,
    /// Consecutive failures.
    pub throttling_failure_count: u32,
    /// Time of the last failure.
    pub throttling_failure_timestamp: Option<String>,
    /// Until when codes are refused, if they are now.
    pub throttled_until: Option<String>,
}

impl StateJson {
    /// The state of `d` at `now`.
    pub fn of(d: &Device, now: Timestamp, policy: &Policy) -> StateJson {
        StateJson {
            clock_t: time_step(now.secs_floor(), d.t0, d.step, 0),
            current_t: current_step(d, now),
            last_t: d.last_t,
            drift: d.drift,
            created_at: d.created_at.map(|t| t.to_string()),
            last_used_at: d.last_used_at.map(|t| t.to_string()),
            seconds_since_last_use: d
                .last_used_at
                .map(|t| now.micros_since(t).div_euclid(1_000_000)),
            throttling_failure_count: d.throttling_failure_count,
            throttling_failure_timestamp: d.throttling_failure_timestamp.map(|t| t.to_string()),
            throttled_until: throttled_until(d, now, policy).map(|t| t.to_string()),
        }
    }
}

/// The base32 secret without padding, as apps take it by hand.
pub fn unpadded(base32: &str) -> &str {
    base32.trim_end_matches('=')
}

/// The secret in groups of four for reading aloud or typing.
pub fn grouped(base32: &str) -> String {
    let s = unpadded(base32);
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The user named with `--user` when it is not the caller: every suggested
/// `totp-enroll …` command line printed from then on names them, so that
/// root can copy it as it is.
static ACTING_FOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Commands that act on one user's devices (suggestions of these get
/// `--user NAME`).
const USER_COMMANDS: &[&str] = &[
    "add",
    "confirm",
    "list",
    "show",
    "remove",
    "reset",
    "check",
    "set",
    "import-google-authenticator",
];

/// From now on, suggestions name `user` (see [`for_user`]).
pub fn acting_for(user: &str) {
    let _ = ACTING_FOR.set(user.to_owned());
}

/// `text` with `--user NAME` put into every suggested `totp-enroll COMMAND`
/// when acting for another user.
pub fn for_user(text: &str) -> String {
    match ACTING_FOR.get() {
        Some(user) => with_user(text, user),
        None => text.to_owned(),
    }
}

fn with_user(text: &str, user: &str) -> String {
    let user = shared::manage::shell_word(user);
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(i) = rest.find("totp-enroll ") {
        let (head, tail) = rest.split_at(i + "totp-enroll ".len());
        out.push_str(head);
        let word = tail
            .split(|c: char| c.is_whitespace() || c == '`')
            .next()
            .unwrap_or_default();
        if USER_COMMANDS.contains(&word) {
            out.push_str(&format!("--user {user} "));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<()> {
    let text = for_user(text);
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes one JSON record and a newline to stdout.
pub fn print_json<T: Serialize>(record: &T) -> Result<()> {
    let mut line = serde_json::to_string(record)
        .map_err(|e| crate::error::Error::Output(io::Error::other(e)))?;
    line.push('\n');
    // Data, not prose: never rewritten by `for_user`.
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A note for the person at the terminal, on stderr (keeps stdout for data).
pub fn note(text: &str) {
    let text = for_user(text);
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Whether stdout is a terminal that takes colours (NO_COLOR and TERM=dumb
/// opt out).
pub fn colour_terminal() -> bool {
    io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_made_for_another_user_name_that_user() {
        assert_eq!(
            with_user(
                "run `totp-enroll confirm phone` now; totp-enroll --help",
                "alice"
            ),
            "run `totp-enroll --user alice confirm phone` now; totp-enroll --help"
        );
        assert_eq!(
            with_user("  totp-enroll reset default\n", "o'brien"),
            "  totp-enroll --user 'o'\\''brien' reset default\n"
        );
    }

    #[test]
    fn secrets_are_grouped_by_four_without_padding() {
        assert_eq!(grouped("GEZDGNBVGY3TQOJQ"), "GEZD GNBV GY3T QOJQ");
        assert_eq!(
            grouped("GEZDGNBVGY3TQOJQGEZA===="),
            "GEZD GNBV GY3T QOJQ GEZA"
        );
    }
}
