//! The device model and the device file (docs/design.md §3): parsing with errors that
//! name file, line and key, validation, and the canonical writer.

use std::path::Path;

use crate::backup::{self, BackupCodes};
use crate::error::{Error, Result};
use crate::limits;
use crate::oath::Algorithm;
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::tomlfile::{quote, Doc, Fields};

/// The only device-file version this build reads and writes.
pub const VERSION: i64 = 1;
/// Most devices one file may hold.
pub const MAX_DEVICES: usize = 32;
/// Largest device file accepted, in bytes.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;
/// Shortest key accepted (imports from older systems).
pub const MIN_KEY_LEN: usize = 10;
/// Keys shorter than this get a warning from totp-enroll.
pub const WEAK_KEY_LEN: usize = 16;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 64;
/// Longest device name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// One TOTP device: its parameters and its verification state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Unique within the file; what `totp-enroll` and the logs call it.
    pub name: String,
    /// The shared secret.
    pub key: Secret,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// 6 or 8.
    pub digits: u32,
    /// Seconds per time step, 1..=3600.
    pub step: u32,
    /// Unix time at which counting starts.
    pub t0: i64,
    /// Steps accepted either side of now+drift, 0..=10.
    pub tolerance: u32,
    /// Learnt clock offset of the device, in steps.
    pub drift: i16,
    /// Last accepted time step; -1 = never.
    pub last_t: i64,
    /// Only confirmed devices are accepted at login.
    pub confirmed: bool,
    /// When the device was created.
    pub created_at: Option<Timestamp>,
    /// Last successful verification.
    pub last_used_at: Option<Timestamp>,
    /// Consecutive failures.
    pub throttling_failure_count: u32,
    /// Time of the last failure.
    pub throttling_failure_timestamp: Option<Timestamp>,
}

/// Parameters of a new device (from flags, settings or an import).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// 6 or 8.
    pub digits: u32,
    /// Seconds per step.
    pub step: u32,
    /// Start of counting.
    pub t0: i64,
    /// Steps either side.
    pub tolerance: u32,
}

impl Default for Params {
    /// django-otp's defaults.
    fn default() -> Self {
        Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            step: 30,
            t0: 0,
            tolerance: 1,
        }
    }
}

impl Params {
    /// Checks the ranges of docs/design.md §3; the error names the flag or key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !limits::is_digits(i64::from(self.digits)) {
            return Err(format!("digits must be 6 or 8, not {}", self.digits));
        }
        if !limits::STEP.contains(&i64::from(self.step)) {
            return Err(format!(
                "step must be {} to {} seconds, not {}",
                limits::STEP.start(),
                limits::STEP.end(),
                self.step
            ));
        }
        if !limits::TOLERANCE.contains(&i64::from(self.tolerance)) {
            return Err(format!(
                "tolerance must be {} to {}, not {}",
                limits::TOLERANCE.start(),
                limits::TOLERANCE.end(),
                self.tolerance
            ));
        }
        Ok(())
    }
}

/// Checks a device name: non-empty, at most 64 bytes, printable, no quotes.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("a device name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a device name must be at most {MAX_NAME_LEN} bytes"
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("a device name must not contain control characters".into());
    }
    if name.chars().any(is_invisible_format) {
        return Err(
            "a device name must not contain invisible format or line/paragraph separator \
             characters (Unicode Cf, Zl, Zp)"
                .into(),
        );
    }
    Ok(())
}

/// Unicode general categories Cf (format: bidi overrides and isolates,
/// zero-width characters, BOM, tags), Zl and Zp. They change how a name is
/// shown (`list`, syslog) without being seen; issue 11, finding 9.
fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Why `device` cannot join `devices`: the same key and algorithm under
/// another step or t0. Such twins would count `last_t` on two scales, so
/// the replay guard shared by twins (docs/design.md §4) could neither
/// compare them nor be skipped. Never names the key.
fn clock_conflict(devices: &[Device], device: &Device) -> Option<&'static str> {
    devices
        .iter()
        .any(|d| {
            d.key == device.key
                && d.algorithm == device.algorithm
                && (d.step != device.step || d.t0 != device.t0)
        })
        .then_some(
            "the same key as an earlier device with another step or t0; one key, one clock \
             (give the new device the same step and t0, or a new key)",
        )
}

/// Checks a key length: 10 to 64 bytes.
pub fn validate_key(key: &Secret) -> std::result::Result<(), String> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(format!(
            "a key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes ({} to {} hex digits), not {} bytes",
            MIN_KEY_LEN * 2,
            MAX_KEY_LEN * 2,
            key.len()
        ));
    }
    Ok(())
}

impl Device {
    /// A new, unconfirmed device with fresh state.
    pub fn new(name: &str, key: Secret, params: &Params, now: Timestamp) -> Self {
        Device {
            name: name.to_owned(),
            key,
            algorithm: params.algorithm,
            digits: params.digits,
            step: params.step,
            t0: params.t0,
            tolerance: params.tolerance,
            drift: 0,
            last_t: -1,
            confirmed: false,
            created_at: Some(now),
            last_used_at: None,
            throttling_failure_count: 0,
            throttling_failure_timestamp: None,
        }
    }

    /// The parameters of this device.
    pub fn params(&self) -> Params {
        Params {
            algorithm: self.algorithm,
            digits: self.digits,
            step: self.step,
            t0: self.t0,
            tolerance: self.tolerance,
        }
    }
}

/// The contents of one device file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceFile {
    /// Devices in file order (the order in which codes are tried).
    pub devices: Vec<Device>,
    /// The backup-code set, tried after every device.
    pub backup: Option<BackupCodes>,
}

impl DeviceFile {
    /// Parses and validates a device file. `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        if text.len() as u64 > MAX_FILE_SIZE {
            return Err(Error::invalid(
                path,
                None,
                None,
                format!("file is larger than {MAX_FILE_SIZE} bytes"),
            ));
        }
        let (doc, root) = Doc::parse(path, text)?;
        let mut top = Fields::new(&doc, root.get_ref(), root.span(), "");
        match top.int_incl("version", i64::MIN, i64::MAX)? {
            Some(VERSION) => {}
            Some(other) => {
                let span = top.take("version").map(|v| v.1);
                return Err(top.error_at(
                    "version",
                    span,
                    format!("unsupported version {other}; this build reads version {VERSION}"),
                ));
            }
            None => return Err(top.missing("version")),
        }
        let backup = match top.table("backup_codes")? {
            None => None,
            Some((table, span)) => {
                let mut f = Fields::new(&doc, table, span, "backup_codes");
                let set = backup::parse_table(&mut f)?;
                f.finish()?;
                Some(set)
            }
        };
        let tables = top.tables("device")?;
        if tables.len() > MAX_DEVICES {
            return Err(top.error_at(
                "device",
                Some(tables[MAX_DEVICES].1.clone()),
                format!("too many devices; at most {MAX_DEVICES}"),
            ));
        }
        let mut devices: Vec<Device> = Vec::with_capacity(tables.len());
        for (i, (table, span)) in tables.into_iter().enumerate() {
            let mut f = Fields::new(&doc, table, span, &format!("device[{}]", i + 1));
            let device = parse_device(&mut f)?;
            if devices.iter().any(|d| d.name == device.name) {
                let span = f.take("name").map(|v| v.1);
                return Err(f.error_at(
                    "name",
                    span,
                    "duplicate device name; names must be unique",
                ));
            }
            if let Some(problem) = clock_conflict(&devices, &device) {
                let span = f.take("key").map(|v| v.1);
                return Err(f.error_at("key", span, problem));
            }
            f.finish()?;
            devices.push(device);
        }
        top.finish()?;
        Ok(DeviceFile { devices, backup })
    }

    /// The canonical text of the file, with a header naming its user.
    ///
    /// Measured first, then written into one allocation of exactly that
    /// size: a `String` that grows copies the keys into a new buffer and
    /// frees the old one without wiping it.
    pub fn to_toml(&self, user: &str) -> String {
        self.to_toml_with_room(user, 0)
    }

    /// [`DeviceFile::to_toml`] in a buffer of at least `room` bytes, so
    /// that padding it up to `room` does not grow (and copy) it.
    pub fn to_toml_with_room(&self, user: &str, room: usize) -> String {
        let mut s = String::with_capacity(self.toml_len(user).max(room));
        self.write_toml(user, &mut s);
        s
    }

    /// The length of [`DeviceFile::to_toml`]'s text, counted without
    /// writing it (so without a copy of the keys).
    pub fn toml_len(&self, user: &str) -> usize {
        let mut len = Measure(0);
        self.write_toml(user, &mut len);
        len.0
    }

    fn write_toml(&self, user: &str, s: &mut impl std::fmt::Write) {
        let _ = writeln!(
            s,
            "# pam-totp devices for {}. Written by totp-enroll; pam_totp.so updates\n\
             # the state fields (drift, last_t, throttling_*, last_used_at).\n\
             version = {VERSION}",
            user.replace(['\n', '\r'], " ")
        );
        for d in &self.devices {
            let _ = writeln!(s, "\n[[device]]");
            let _ = writeln!(s, "name = {}", quote(&d.name));
            let _ = writeln!(s, "key = \"{}\"", &*d.key.to_hex());
            let _ = writeln!(s, "algorithm = \"{}\"", d.algorithm.name());
            let _ = writeln!(s, "digits = {}", d.digits);
            let _ = writeln!(s, "step = {}", d.step);
            let _ = writeln!(s, "t0 = {}", d.t0);
            let _ = writeln!(s, "tolerance = {}", d.tolerance);
            let _ = writeln!(s, "drift = {}", d.drift);
            let _ = writeln!(s, "last_t = {}", d.last_t);
            write_state(
                s,
                d.confirmed,
                d.created_at,
                d.last_used_at,
                d.throttling_failure_count,
                d.throttling_failure_timestamp,
            );
        }
        if let Some(set) = &self.backup {
            set.write_toml(s);
        }
    }

    /// The device called `name`.
    pub fn find(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The device called `name`, for changing it.
    pub fn find_mut(&mut self, name: &str) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| d.name == name)
    }

    /// Adds a device; refuses a duplicate name or a 33rd device.
    pub fn add(&mut self, device: Device) -> std::result::Result<(), String> {
        if self.find(&device.name).is_some() {
            return Err(format!("a device named `{}` exists already", device.name));
        }
        if let Some(problem) = clock_conflict(&self.devices, &device) {
            return Err(problem.to_owned());
        }
        if self.devices.len() >= MAX_DEVICES {
            return Err(format!("at most {MAX_DEVICES} devices per user"));
        }
        self.devices.push(device);
        Ok(())
    }

    /// True when at least one device is confirmed.
    pub fn has_confirmed(&self) -> bool {
        self.devices.iter().any(|d| d.confirmed)
    }

    /// The confirmed backup-code set, if any (counted as a confirmed device
    /// at login even when no code is left, as django-otp counts its
    /// `StaticDevice`: using up the codes never turns 2FA off).
    pub fn confirmed_backup(&self) -> Option<&BackupCodes> {
        self.backup.as_ref().filter(|b| b.confirmed)
    }
}

/// The state keys a device and a backup-code set share (django-otp's
/// `Device` and `ThrottlingMixin` fields), in the file's order.
pub(crate) fn write_state(
    s: &mut impl std::fmt::Write,
    confirmed: bool,
    created_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    failures: u32,
    failure_at: Option<Timestamp>,
) {
    let _ = writeln!(s, "confirmed = {confirmed}");
    if let Some(t) = created_at {
        let _ = writeln!(s, "created_at = {t}");
    }
    if let Some(t) = last_used_at {
        let _ = writeln!(s, "last_used_at = {t}");
    }
    let _ = writeln!(s, "throttling_failure_count = {failures}");
    if let Some(t) = failure_at {
        let _ = writeln!(s, "throttling_failure_timestamp = {t}");
    }
}

/// Counts the bytes written to it.
struct Measure(usize);

impl std::fmt::Write for Measure {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

fn parse_device(f: &mut Fields<'_>) -> Result<Device> {
    let (name, name_span) = f.string("name")?.ok_or_else(|| f.missing("name"))?;
    validate_name(name).map_err(|p| f.error_at("name", Some(name_span), p))?;
    let (key_hex, key_span) = f.string("key")?.ok_or_else(|| f.missing("key"))?;
    let key = Secret::from_hex(key_hex).ok_or_else(|| {
        f.error_at(
            "key",
            Some(key_span.clone()),
            "not an even-length hex string",
        )
    })?;
    validate_key(&key).map_err(|p| f.error_at("key", Some(key_span), p))?;
    let algorithm = match f.string("algorithm")? {
        None => Algorithm::Sha1,
        Some((s, span)) => s
            .parse()
            .map_err(|p: String| f.error_at("algorithm", Some(span), p))?,
    };
    let digits = match f.int_incl("digits", i64::MIN, i64::MAX)? {
        None => 6,
        Some(d) if limits::is_digits(d) => d as u32,
        Some(_) => {
            let span = f.take("digits").map(|v| v.1);
            return Err(f.error_at("digits", span, "must be 6 or 8"));
        }
    };
    let confirmed = f
        .boolean("confirmed")?
        .ok_or_else(|| f.missing("confirmed"))?;
    Ok(Device {
        name: name.to_owned(),
        key,
        algorithm,
        digits,
        step: f
            .int_incl("step", *limits::STEP.start(), *limits::STEP.end())?
            .unwrap_or(30) as u32,
        t0: f.int_incl("t0", -(1 << 53), 1 << 53)?.unwrap_or(0),
        tolerance: f
            .int_incl(
                "tolerance",
                *limits::TOLERANCE.start(),
                *limits::TOLERANCE.end(),
            )?
            .unwrap_or(1) as u32,
        drift: f
            .int_incl("drift", i64::from(i16::MIN), i64::from(i16::MAX))?
            .unwrap_or(0) as i16,
        last_t: f.int_incl("last_t", -1, i64::MAX)?.unwrap_or(-1),
        confirmed,
        created_at: f.timestamp("created_at")?,
        last_used_at: f.timestamp("last_used_at")?,
        throttling_failure_count: f
            .int_incl("throttling_failure_count", 0, i64::from(u32::MAX))?
            .unwrap_or(0) as u32,
        throttling_failure_timestamp: f.timestamp("throttling_failure_timestamp")?,
    })
}
