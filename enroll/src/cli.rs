//! The command line: every command and flag of docs/design.md §7, with help text and
//! examples. Parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::oath::Algorithm;

/// The device name `add` and `batch` use when `--name` is not given.
pub const DEFAULT_NAME: &str = "default";
/// The device name `import-google-authenticator` uses by default.
pub const DEFAULT_IMPORT_NAME: &str = "google-authenticator";

/// `--qr-png NAME.png` in the examples, `--qr-svg NAME.svg` in a build
/// without the `png` feature (the same width: the columns stay aligned).
#[cfg(feature = "png")]
macro_rules! qr_image {
    ($name:literal) => {
        concat!("--qr-png ", $name, ".png")
    };
}
#[cfg(not(feature = "png"))]
macro_rules! qr_image {
    ($name:literal) => {
        concat!("--qr-svg ", $name, ".svg")
    };
}

const MAIN_EXAMPLES: &str = concat!(
    "\
Examples:
  totp-enroll                         add a device for yourself (scan, then type a code)
  totp-enroll add --name laptop       a second device with its own name
  totp-enroll list                    your devices and their state
  totp-enroll show default            the QR code and URL again, and the drift
  totp-enroll backup-codes            a new set of one-time backup codes
  sudo totp-enroll --user alice add --no-confirm ",
    qr_image!("alice"),
    "
                                      root prepares a device for alice

Without a command, totp-enroll runs `add`.
Exit status: 0 done; 1 refused or failed (wrong code, device exists, file
refused); 2 usage or configuration error."
);

/// Create and manage the TOTP devices that pam_totp.so accepts at login.
#[derive(Debug, Parser)]
#[command(
    name = "totp-enroll",
    version,
    after_help = MAIN_EXAMPLES,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command understands.
    #[command(flatten)]
    pub common: Common,
    /// What to do; `add` when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags of `add`, for the default command.
    #[command(flatten)]
    pub add: AddArgs,
}

/// Options of every command.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// Manage this user's devices (root only; others may name only themselves)
    #[arg(
        long,
        short = 'u',
        value_name = "USER",
        global = true,
        help_heading = "Common options"
    )]
    pub user: Option<String>,
    /// Use this device file instead of the one the settings' `path` names
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help_heading = "Common options"
    )]
    pub path: Option<PathBuf>,
    /// Read settings from FILE (default /etc/security/pam_totp.toml; must be owned by root)
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help_heading = "Common options"
    )]
    pub config: Option<PathBuf>,
    /// Machine-readable output: one JSON object per line; never prompts
    #[arg(long, global = true, help_heading = "Common options")]
    pub json: bool,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a device: show its secret, URL and QR code, then confirm it with a code (default)
    #[command(after_help = ADD_EXAMPLES)]
    Add(AddArgs),
    /// Confirm a device by entering the code its app shows now
    #[command(after_help = CONFIRM_EXAMPLES)]
    Confirm(ConfirmArgs),
    /// List the devices: name, confirmed, algorithm, digits/step, last use, drift, throttle state
    #[command(after_help = LIST_EXAMPLES)]
    List,
    /// Show a device's setup information again (secret, URL, QR) and its drift state
    #[command(after_help = SHOW_EXAMPLES)]
    Show(ShowArgs),
    /// Delete a device (asks first when it is the last confirmed one)
    #[command(after_help = REMOVE_EXAMPLES)]
    Remove(RemoveArgs),
    /// Clear a device's failure count and throttle (admin unlock)
    #[command(after_help = RESET_EXAMPLES)]
    Reset(NameArg),
    /// Tell which time step a code belongs to (clock skew), without using it up
    #[command(after_help = CHECK_EXAMPLES)]
    Check(NameArg),
    /// Change a device's tolerance or name
    #[command(after_help = SET_EXAMPLES)]
    Set(SetArgs),
    /// Turn a ~/.google_authenticator TOTP secret into a device
    #[command(after_help = IMPORT_EXAMPLES)]
    ImportGoogleAuthenticator(ImportArgs),
    /// Make a new set of backup codes (replacing the old set) and print them once
    #[command(after_help = BACKUP_EXAMPLES)]
    BackupCodes(BackupArgs),
    /// Create devices for many users at once (root); one JSON record per user
    #[command(after_help = BATCH_EXAMPLES)]
    Batch(BatchArgs),
    /// Print a shell completion script
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// The PostgreSQL store: `db init` creates or upgrades pam-totp's tables (root)
    #[command(subcommand, after_help = DB_EXAMPLES)]
    Db(DbCommand),
}

/// `db` subcommands.
#[derive(Debug, Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum DbCommand {
    /// Create or upgrade the pam-totp layout's tables in the configured database (idempotent)
    Init,
}

const DB_EXAMPLES: &str = "\
Examples:
  sudo totp-enroll db init                 create the tables [store] conninfo points at
  sudo totp-enroll db init --config /etc/security/pam_totp.toml --json

Needs [store] backend = \"postgresql\" and layout = \"pam-totp\" (the default) in
the settings. Running it again is harmless. With layout = \"django-otp\" it
refuses: the Django site's migrations own those tables. The SQL it runs is
shipped as pam-totp.sql for DBAs who prefer to run it themselves.";

const ADD_EXAMPLES: &str = concat!(
    "\
Examples:
  totp-enroll add                          new device `default`, QR in the terminal, then a code
  totp-enroll add --name phone --digits 8 --algorithm SHA256
  totp-enroll add --secret 'JBSW Y3DP EHPK 3PXP' --name old-phone
                                           keep a secret your app already has
  totp-enroll add --no-confirm --qr none ",
    qr_image!("qr"),
    "
                                           write the QR code to a file; confirm later
  totp-enroll add --json --no-confirm      JSON for scripts (no prompt)

The device is saved unconfirmed before the code is asked for, so the QR code
you scanned stays valid: a wrong code (or --no-confirm) leaves it unconfirmed
and `totp-enroll confirm NAME` finishes the job. Unconfirmed devices are not
accepted at login. QR images contain the secret: they are written mode 0600.
Issuer: --issuer, else the settings' `issuer`, else the host name; an empty
--issuer means none."
);

const CONFIRM_EXAMPLES: &str = "\
Examples:
  totp-enroll confirm default              asks for the code
  echo 123456 | totp-enroll confirm default --json
                                           reads the code from stdin, no prompt

The code is checked exactly as pam_totp.so checks it at login (tolerance,
drift, replay protection, throttling). Exit 1 on a wrong code.";

const LIST_EXAMPLES: &str = "\
Examples:
  totp-enroll list
  sudo totp-enroll list --user alice --json

`list` never prints keys; `show` does.";

const SHOW_EXAMPLES: &str = "\
Examples:
  totp-enroll show default                 secret, URL, QR code, drift state
  totp-enroll show default --qr none --json";

const REMOVE_EXAMPLES: &str = "\
Examples:
  totp-enroll remove old-phone
  sudo totp-enroll remove default --user alice --yes

Removing the last confirmed device asks first (--yes skips the question; it
is required when nobody can answer, e.g. with --json or without a terminal):
after it, logins that ask for a code are refused (or, with `nullok`, no
longer ask).";

const CHECK_EXAMPLES: &str = "\
Examples:
  totp-enroll check default                type the code the app shows now
  echo 123456 | sudo totp-enroll check phone --user alice --json

Reports the time step the code belongs to, relative to this host's clock
(and the device's learnt drift), up to 10 steps beyond the tolerance either
way: e.g. \"code matches step +2: the device's clock is about 60 s ahead\".
Nothing is recorded: the code is not used up and no failure is counted. Only
someone who can read the device file (its owner, or root) can run it.
Exit status 0 when the module would accept the code now, 1 otherwise.";

const SET_EXAMPLES: &str = "\
Examples:
  totp-enroll set default --tolerance 2     accept 2 steps either side
  totp-enroll set default --name phone      rename
  sudo totp-enroll set phone --user alice --tolerance 0

The rest of the device's state (drift, last use, failures) is kept.";

const RESET_EXAMPLES: &str = "\
Examples:
  sudo totp-enroll reset default --user alice   unlock alice after too many wrong codes";

const IMPORT_EXAMPLES: &str = "\
Examples:
  totp-enroll import-google-authenticator              reads ~/.google_authenticator
  sudo totp-enroll import-google-authenticator --user alice
  totp-enroll import-google-authenticator /backup/ga --name phone

Mapping: the secret as is; STEP_SIZE n -> step n; WINDOW_SIZE w ->
tolerance (w-1)/2 (at most 10; the default window 3 is tolerance 1);
DISALLOW_REUSE -> last_t = the latest used step. TOTP_AUTH must be present:
counter-based (HOTP) files are refused. The scratch codes become your
backup codes (hashed; each works once), replacing any set you had.
The device is saved confirmed: its secret is already in use for logins.";

const BACKUP_EXAMPLES: &str = "\
Examples:
  totp-enroll backup-codes                 10 new codes; asks before replacing the old ones
  totp-enroll backup-codes --count 5 --yes
  sudo totp-enroll --user alice backup-codes --json
                                           root makes codes for alice (no question)

Each code works once, at the same prompt as a verification code: keep them
somewhere safe, away from your phone. They are shown only now; the device
file keeps only their hashes. `totp-enroll list` shows how many are left.";

const BATCH_EXAMPLES: &str = "\
Examples:
  totp-enroll batch --users alice,bob,carol > secrets.jsonl
  getent group staff | cut -d: -f4 | tr , '\\n' | totp-enroll batch --users-from - --confirmed

One JSON object per line and user: the device fields (config_url,
secret_base32, ...) or {\"user\": ..., \"error\": ...}. Users that do not exist
or already have the device are reported and do not stop the others; the exit
status is 1 if any user failed. Devices are unconfirmed unless --confirmed.";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  totp-enroll completions bash > /etc/bash_completion.d/totp-enroll
  totp-enroll completions zsh > ~/.zfunc/_totp-enroll
  totp-enroll completions fish > ~/.config/fish/completions/totp-enroll.fish";

/// Parameters of a new device; unset ones come from the settings' `[enroll]`.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct ParamArgs {
    /// Code length: 6 or 8
    #[arg(long, value_name = "N", value_parser = parse_digits)]
    pub digits: Option<u32>,
    /// Seconds per code, 1 to 3600 (default 30)
    #[arg(long, value_name = "SECONDS", value_parser = parse_step)]
    pub step: Option<u32>,
    /// Unix time at which counting starts (default 0)
    #[arg(long, value_name = "UNIX_TIME", allow_hyphen_values = true)]
    pub t0: Option<i64>,
    /// Steps accepted either side of the current one, 0 to 10 (default 1)
    #[arg(long, value_name = "STEPS", value_parser = parse_tolerance)]
    pub tolerance: Option<u32>,
    /// HMAC hash: SHA1 (what every app supports), SHA256 or SHA512
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub algorithm: Option<Algorithm>,
}

/// What the `otpauth://` URL says besides the secret.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct UrlArgs {
    /// Issuer shown by the app (empty = none; default: settings, else host name)
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Logo URL for apps that show one (default: the settings' `image`)
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
    /// Account name in the app (default: the user name)
    #[arg(long, value_name = "TEXT")]
    pub account: Option<String>,
}

/// How to show the QR code.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct QrArgs {
    /// Terminal QR code: utf8 half blocks, ansi background colours, or none
    #[arg(long, value_enum, value_name = "STYLE", default_value_t = QrStyle::Utf8)]
    pub qr: QrStyle,
    // Absent from a build without the `png` cargo feature, which refuses it
    // with a message naming --qr-svg (main.rs).
    /// Also write the QR code as a PNG image (mode 0600: it holds the secret)
    #[cfg(feature = "png")]
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<PathBuf>,
    /// Also write the QR code as an SVG image (mode 0600: it holds the secret)
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,
}

/// Terminal QR styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum QrStyle {
    /// UTF-8 half blocks (two modules per character), black on white on a terminal
    #[default]
    Utf8,
    /// Two spaces per module with ANSI background colours
    Ansi,
    /// No terminal QR code
    None,
}

/// Flags of `add`.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct AddArgs {
    /// Device name, unique per user (default "default")
    #[arg(long, short = 'n', value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// Parameters of the new device.
    #[command(flatten)]
    pub params: ParamArgs,
    /// Use this key (hex, 10 to 64 bytes) instead of a random one; `-` reads
    /// it from the first line of stdin, out of sight of `ps` and shell history
    #[arg(long, value_name = "HEX", conflicts_with = "secret")]
    pub key: Option<String>,
    /// Use this base32 secret (as apps show it; spaces allowed) instead of a
    /// random key; `-` reads it from the first line of stdin
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,
    /// URL contents.
    #[command(flatten)]
    pub url: UrlArgs,
    /// Do not ask for a code: the device stays unconfirmed until `totp-enroll confirm NAME`
    #[arg(long)]
    pub no_confirm: bool,
    /// Do not make backup codes for a first device
    #[arg(long)]
    pub no_backup_codes: bool,
    /// QR output.
    #[command(flatten)]
    pub qr: QrArgs,
}

/// `confirm NAME`.
#[derive(Debug, Args, Clone)]
pub struct ConfirmArgs {
    /// The device to confirm
    pub name: String,
}

/// `show NAME`.
#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The device to show
    pub name: String,
    /// URL contents.
    #[command(flatten)]
    pub url: UrlArgs,
    /// QR output.
    #[command(flatten)]
    pub qr: QrArgs,
}

/// `remove NAME`.
#[derive(Debug, Args, Clone)]
pub struct RemoveArgs {
    /// The device
    pub name: String,
    /// Do not ask, even when it is the last confirmed device
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `set NAME`.
#[derive(Debug, Args, Clone)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
pub struct SetArgs {
    /// The device
    pub name: String,
    /// Steps accepted either side of the current one, 0 to 10
    #[arg(long, value_name = "STEPS", group = "change")]
    pub tolerance: Option<u32>,
    /// A new name for the device
    #[arg(long = "name", short = 'n', value_name = "NEW", group = "change")]
    pub new_name: Option<String>,
}

/// A device name.
#[derive(Debug, Args, Clone)]
pub struct NameArg {
    /// The device
    pub name: String,
}

/// `import-google-authenticator [FILE]`.
#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// The google-authenticator file (default: ~/.google_authenticator of the user)
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Device name (default "google-authenticator")
    #[arg(long, short = 'n', value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
}

/// `backup-codes`.
#[derive(Debug, Args, Clone)]
pub struct BackupArgs {
    /// How many codes, 1 to 100
    #[arg(long, value_name = "N", default_value_t = shared::backup::DEFAULT_COUNT)]
    pub count: usize,
    /// Replace an existing set without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `batch`.
#[derive(Debug, Args, Clone)]
#[command(group = clap::ArgGroup::new("who").required(true).multiple(true))]
pub struct BatchArgs {
    /// Comma-separated user names
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', group = "who")]
    pub users: Vec<String>,
    /// Read user names from FILE, one per line ("-" = stdin)
    #[arg(long, value_name = "FILE", group = "who")]
    pub users_from: Option<PathBuf>,
    /// Device name for every user (default "default")
    #[arg(long, short = 'n', value_name = "NAME", value_parser = parse_name)]
    pub name: Option<String>,
    /// Parameters of the new devices.
    #[command(flatten)]
    pub params: ParamArgs,
    /// Issuer shown by the app (empty = none; default: settings, else host name)
    #[arg(long, value_name = "TEXT")]
    pub issuer: Option<String>,
    /// Logo URL for apps that show one (default: the settings' `image`)
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
    /// Save the devices confirmed (you hand the secrets out yourself)
    #[arg(long)]
    pub confirmed: bool,
}

/// `completions SHELL`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells we write completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

/// A number within one of `shared::limits`' ranges.
fn in_range(s: &str, range: std::ops::RangeInclusive<i64>) -> Result<u32, String> {
    s.parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| {
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

fn parse_step(s: &str) -> Result<u32, String> {
    in_range(s, shared::limits::STEP)
}

fn parse_tolerance(s: &str) -> Result<u32, String> {
    in_range(s, shared::limits::TOLERANCE)
}

fn parse_digits(s: &str) -> Result<u32, String> {
    s.parse::<i64>()
        .ok()
        .filter(|n| shared::limits::is_digits(*n))
        .map(|n| n as u32)
        .ok_or_else(|| "must be 6 or 8".to_owned())
}

/// A device name, checked by shared's rule.
fn parse_name(s: &str) -> Result<String, String> {
    shared::device::validate_name(s).map(|()| s.to_owned())
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.to_ascii_uppercase().replace('-', "").parse()
}
