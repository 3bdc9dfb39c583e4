//! The test kit: the one account fixture, the one device constructor, the one
//! django-otp state assertion, and the root guard, for every test crate of
//! the workspace (`pam-totp-tests`' own tests, `totp-enroll`'s and
//! `shared`'s integration tests take this crate as a dev-dependency).
//!
//! * [`TestUser`]: a local account (`useradd -m` … `userdel -r`), with a
//!   password, its per-user device file, and [`TestUser::command`] to run a
//!   program as that user;
//! * [`device`] (and [`random_device`], [`django_device`]): a confirmed
//!   device with django-otp's defaults, as `shared`'s own type;
//! * [`assert_django_state`]: a device's persisted state against an
//!   `expected` record of `shared/tests/data/django-otp.json`;
//! * root: a test that needs root carries
//!   `#[cfg_attr(not_root, ignore = "needs root")]` (the crate's `build.rs`
//!   sets `not_root` when the build does not run as root), so a run by
//!   another user reports it as ignored; its first line is
//!   [`require_root`], which fails the test if it runs without root anyway
//!   (built as root, run as someone else). A root test never passes without
//!   having run.

use std::borrow::Borrow;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::backup::{self, BackupCodes};
use shared::device::{Device, DeviceFile, Params};
use shared::oath;
use shared::{Secret, Timestamp};

/// Result type of the kit: failures say what broke.
pub type Result<T> = std::result::Result<T, String>;

// ---------------------------------------------------------------------------
// Root
// ---------------------------------------------------------------------------

/// Whether the process runs as root (`/proc/self` is owned by the effective
/// uid; `build.rs` asks the same question at build time).
pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The first line of a test that needs root. Such a test is also marked
/// `#[cfg_attr(not_root, ignore = "needs root")]`, so it only runs here
/// without root when the binary was built as root and run by another user
/// (or with `--include-ignored`): then it fails, it never passes unrun.
///
/// # Panics
/// When the process does not run as root.
pub fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} needs root (it adds users, PAM services or chowns files); it is \
         reported as ignored only when the tests are built without root: run \
         `cargo test` as root, as CI does"
    );
}

// ---------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------

/// Runs a command, failing with its output when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// useradd/userdel take the passwd lock; serialise them within the process.
fn account_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .args(["-u", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` until it succeeds or `ok` accepts its output, for 20 s: another
/// process may hold the passwd lock, a session of the user may still be
/// finishing (userdel refuses while the user owns a process).
fn retry(
    what: &str,
    mut attempt: impl FnMut() -> Result<Output>,
    ok: impl Fn(&Output) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = attempt()?;
        if out.status.success() || ok(&out) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn userdel(name: &str) -> Result<()> {
    retry(
        &format!("userdel -r {name}"),
        || {
            Command::new("userdel")
                .args(["-r", name])
                .output()
                .map_err(|e| format!("userdel: {e}"))
        },
        // 12: the home could not be removed (already gone); the account is.
        |out| out.status.code() == Some(12) || !user_exists(name),
    )
}

pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// A local account created with `useradd -m` for one test, with a random
/// password, removed with `userdel -r` (home included) when dropped.
#[derive(Debug)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// Password (set with chpasswd), for stacks that ask for it.
    pub password: String,
    /// Numeric uid.
    pub uid: u32,
    /// Numeric primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

impl TestUser {
    /// Creates the account `name` (removing a leftover of an interrupted run
    /// first) with a random password and a home directory. Needs root.
    pub fn create(name: &str) -> Result<Self> {
        if !is_root() {
            return Err(format!("creating the account {name} needs root"));
        }
        let _lock = account_lock();
        if user_exists(name) {
            userdel(name)?;
        }
        let useradd = || {
            Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", "-c", "pam-totp test", name])
                .output()
                .map_err(|e| format!("useradd: {e}"))
        };
        retry(&format!("useradd {name}"), useradd, |_| false)?;
        // From here on the guard owns the account, also if a step below fails.
        let mut user = TestUser {
            name: name.to_owned(),
            password: format!("Pw-{}", random_hex(8)?),
            uid: 0,
            gid: 0,
            home: PathBuf::new(),
        };
        let id = |flag: &str| -> Result<u32> {
            let out = run(Command::new("id").arg(flag).arg(name))?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|e| format!("id {flag} {name}: {e}"))
        };
        user.uid = id("-u")?;
        user.gid = id("-g")?;
        let out = run(Command::new("getent").args(["passwd", name]))?;
        user.home = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .nth(5)
            .map(PathBuf::from)
            .ok_or("getent passwd: no home field")?;
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("chpasswd: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{}:{}", user.name, user.password)
                .map_err(|e| format!("chpasswd: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("chpasswd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "chpasswd: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(user)
    }

    /// `program` run as this account (real and effective ids, its groups),
    /// in its home with `HOME` set. The program is copied into the home
    /// first: the build directory may sit where the account cannot reach it
    /// (e.g. under /root).
    pub fn command(&self, program: &Path) -> Result<Command> {
        let base = program
            .file_name()
            .ok_or_else(|| format!("{}: no file name", program.display()))?;
        let copy = self
            .home
            .join(format!(".{}-under-test", base.to_string_lossy()));
        if !copy.exists() {
            fs::copy(program, &copy).map_err(|e| format!("copying {}: {e}", program.display()))?;
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("chmod {}: {e}", copy.display()))?;
        }
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(&copy)
            .current_dir(&self.home)
            .env("HOME", &self.home);
        Ok(cmd)
    }

    /// Creates `rel` (and its parents) under the home, owned by the user.
    pub fn mkdir_owned(&self, rel: &str, mode: u32) -> Result<PathBuf> {
        let mut dir = self.home.clone();
        for part in Path::new(rel).components() {
            dir.push(part);
            if !dir.is_dir() {
                fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            }
            std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        }
        Ok(dir)
    }

    /// Writes `path` with `text` and `mode`, owned by the user.
    pub fn write_owned(&self, path: &Path, text: &str, mode: u32) -> Result<()> {
        write_file(path, text, mode)?;
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))
    }

    /// The per-user device file (docs/design.md §2),
    /// `~/.config/pam_totp/devices.toml`.
    pub fn devices_path(&self) -> PathBuf {
        self.home.join(".config/pam_totp/devices.toml")
    }

    /// Writes the device file in the default per-user place, with `shared`'s
    /// own serialiser: directory 0700, file 0600, both owned by the user.
    pub fn write_devices<D: Borrow<Device>>(&self, devices: &[D]) -> Result<()> {
        self.mkdir_owned(".config/pam_totp", 0o700)?;
        // Through Default: the file may gain parts (backup codes) a test
        // of devices leaves empty.
        let mut file = DeviceFile::default();
        file.devices
            .extend(devices.iter().map(|d| d.borrow().clone()));
        self.write_owned(&self.devices_path(), &file.to_toml(&self.name), 0o600)
    }

    /// The device file as it is now (the module updates it).
    pub fn read_devices(&self) -> Result<String> {
        let path = self.devices_path();
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    }

    /// How many seconds from now the (single) device stays blocked, from the
    /// state the module saved: `2^(count-1) * throttle_factor` after the
    /// last failure (docs/design.md §4, default factor 1). 0 when not blocked.
    pub fn throttle_remaining(&self) -> Result<f64> {
        let path = self.devices_path();
        let file = DeviceFile::parse(&self.read_devices()?, &path).map_err(|e| e.to_string())?;
        let d = file.devices.first().ok_or("no device in the file")?;
        let (count, Some(failed)) = (d.throttling_failure_count, d.throttling_failure_timestamp)
        else {
            return Ok(0.0);
        };
        if count == 0 {
            return Ok(0.0);
        }
        let block_us = 1_000_000_i64 << (count - 1).min(40);
        let left_us = failed
            .micros_since(Timestamp::now())
            .saturating_add(block_us);
        Ok((left_us as f64 / 1e6).max(0.0))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = account_lock();
        if let Err(e) = userdel(&self.name) {
            eprintln!("cleanup: {e}");
        }
    }
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

/// `n` bytes from the OS random source, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// The one device constructor: a confirmed device with django-otp's
/// defaults (SHA1, 6 digits, 30 s, t0 0, tolerance 1, never used, no
/// failures) and the key `key_hex`, created at 2023-11-14T22:13:20Z. Tests
/// change the fields they are about.
pub fn device(name: &str, key_hex: &str) -> Result<Device> {
    let key = Secret::from_hex(key_hex).ok_or_else(|| format!("bad hex key {key_hex}"))?;
    let mut d = Device::new(
        name,
        key,
        &Params::default(),
        Timestamp::from_secs(1_700_000_000),
    );
    d.confirmed = true;
    Ok(d)
}

/// [`device`] with a fresh random 20-byte key, as `totp-enroll add` makes.
pub fn random_device(name: &str) -> Result<Device> {
    device(name, &random_hex(20)?)
}

/// The code `device` shows at unix time `secs` (no drift), zero-padded.
pub fn code_at(device: &Device, secs: i64) -> String {
    oath::totp(
        device.algorithm,
        device.key.expose(),
        secs,
        device.t0,
        device.step,
        device.digits,
    )
    .unwrap_or_default()
}

/// A six-digit code that is not `right`: a wrong code that is surely wrong.
pub fn other_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// The code `device` shows now.
pub fn code_now(device: &Device) -> String {
    code_at(device, Timestamp::now().secs_floor())
}

/// A code that `device` accepts at none of the steps around now (three
/// steps either side: the tolerance window plus a margin for the clock).
pub fn wrong_code(device: &Device) -> String {
    let now = Timestamp::now().secs_floor();
    let near: Vec<String> = (-3..=3)
        .map(|k| code_at(device, now + k * i64::from(device.step)))
        .collect();
    (0..)
        .map(|n: u32| format!("{:0w$}", (n * 7919) % 1_000_000, w = device.digits as usize))
        .find(|c| !near.contains(c))
        .unwrap_or_else(|| "0".repeat(device.digits as usize))
}

/// The code of a SHA1, 30 s, 6-digit `device` now, computed by `oathtool`:
/// an implementation independent of the one under test, for the tests that
/// log in through real clients.
pub fn oathtool_code_now(device: &Device) -> Result<String> {
    let out = run(Command::new("oathtool").args(["--totp", &device.key.to_hex()]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ---------------------------------------------------------------------------
// django-otp
// ---------------------------------------------------------------------------

/// `shared/tests/data/django-otp.json`: what the real django-otp 1.7.5 did,
/// recorded with a fixed clock.
pub fn django_vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/data/django-otp.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A django-otp time (float seconds, or null) as a timestamp.
pub fn django_time(v: &Value) -> Option<Timestamp> {
    v.as_f64().map(Timestamp::from_secs_f64)
}

fn int(record: &Value, key: &str) -> i64 {
    record[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {record}"))
}

/// Our backup code for a token of django-otp's `static_scenarios`: its
/// tokens are 8 lowercase base32 characters, ours 10 Crockford ones, so a
/// token becomes the code with `00` appended (shared/tests/backup_codes.rs
/// explains the translation).
pub fn backup_code_for(token: &str) -> String {
    format!("{token}00")
}

/// What a person types for a backup scenario event's `token`: our code for
/// it in display form when django-otp holds (or held) it among `initial`;
/// otherwise a text our set does not hold either.
pub fn typed_backup_code(token: &str, initial: &[String]) -> String {
    if initial.iter().any(|t| t == token) {
        backup::display(backup_code_for(token).to_ascii_uppercase().as_bytes())
    } else {
        // Not one of django-otp's tokens: not one of ours either.
        format!("{}zz", token.trim().to_ascii_lowercase())
    }
}

/// Asserts that a backup-code set's state (failure count and time, last
/// use, remaining codes) equals django-otp's `expected` record of a static
/// scenario event; `context` names the scenario and event.
///
/// # Panics
/// On the first field that differs, naming it and `context`.
pub fn assert_django_backup_state(set: &BackupCodes, expected: &Value, context: &str) {
    assert_django_throttling(
        set.throttling_failure_count,
        set.throttling_failure_timestamp,
        set.last_used_at,
        expected,
        context,
    );
    let remaining: Vec<[u8; 32]> = expected["remaining_tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("remaining_tokens is not an array; {context}"))
        .iter()
        .map(|t| {
            let token = t
                .as_str()
                .unwrap_or_else(|| panic!("a token is not a string; {context}"));
            set.hash_for(&backup_code_for(token))
                .unwrap_or_else(|| panic!("no hash for token {token}; {context}"))
        })
        .collect();
    assert_eq!(set.codes, remaining, "remaining codes; {context}");
}

/// The device of a verify scenario's `initial` record: [`device`] with
/// django's key, parameters and state.
///
/// # Panics
/// When the record lacks a field (the vectors are fixed data).
pub fn django_device(initial: &Value) -> Device {
    let key = initial["key_hex"].as_str().unwrap_or_default();
    let mut d = device("phone", key).unwrap_or_else(|e| panic!("{e}"));
    let narrow = |key: &str| u32::try_from(int(initial, key)).unwrap_or(u32::MAX);
    d.digits = narrow("digits");
    d.step = narrow("step");
    d.t0 = int(initial, "t0");
    d.tolerance = narrow("tolerance");
    d.drift = i16::try_from(int(initial, "drift")).unwrap_or(i16::MAX);
    d.last_t = int(initial, "last_t");
    d.throttling_failure_count = narrow("throttling_failure_count");
    d.throttling_failure_timestamp = django_time(&initial["throttling_failure_timestamp"]);
    d.last_used_at = django_time(&initial["last_used_at"]);
    d
}

/// The one django-state assertion: `device`'s persisted state (drift,
/// last_t, failure count and time, last use) equals django-otp's `expected`
/// record, field by field; `context` names the scenario and event.
///
/// # Panics
/// On the first field that differs, naming it and `context`.
pub fn assert_django_state(device: &Device, expected: &Value, context: &str) {
    assert_eq!(
        i64::from(device.drift),
        int(expected, "drift"),
        "drift; {context}"
    );
    assert_eq!(device.last_t, int(expected, "last_t"), "last_t; {context}");
    assert_django_throttling(
        device.throttling_failure_count,
        device.throttling_failure_timestamp,
        device.last_used_at,
        expected,
        context,
    );
}

/// The state django-otp's devices share (failure count and time, last
/// use) against its `expected` record: for [`assert_django_state`] and
/// [`assert_django_backup_state`].
fn assert_django_throttling(
    failure_count: u32,
    failure_timestamp: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    expected: &Value,
    context: &str,
) {
    assert_eq!(
        i64::from(failure_count),
        int(expected, "throttling_failure_count"),
        "throttling_failure_count; {context}"
    );
    assert_eq!(
        failure_timestamp,
        django_time(&expected["throttling_failure_timestamp"]),
        "throttling_failure_timestamp; {context}"
    );
    assert_eq!(
        last_used_at,
        django_time(&expected["last_used_at"]),
        "last_used_at; {context}"
    );
}
