//! Helpers for the CLI tests: run the real `totp-enroll` binary in a
//! temporary directory with its own settings file, temporary accounts that
//! `userdel -r` removes on drop, QR decoding with zbarimg.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_debug_implementations
)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::device::DeviceFile;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_totp-enroll")
}

/// What a run printed and returned.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit status `code`, showing the output when it is not.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts a failure with exactly one line on stderr, naming `needle`.
    pub fn one_line_error(self, code: i32, needle: &str) -> Self {
        let out = self.expect(code);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "one line on stderr: {:?}",
            out.stderr
        );
        assert!(
            out.stderr.contains(needle),
            "stderr should name {needle:?}: {:?}",
            out.stderr
        );
        out
    }

    /// The stdout as JSON records, one per line.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Runs `cmd` with `stdin`.
pub fn run(mut cmd: Command, stdin: &str) -> Out {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn totp-enroll");
    {
        let mut input = child.stdin.take().unwrap();
        // The binary may exit before reading everything.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A temporary directory with a settings file and a device file path.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub devices: PathBuf,
}

impl Env {
    /// Empty settings (all defaults), devices in `<dir>/devices.toml`.
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// Settings with `text`.
    pub fn with_config(text: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("enroll-test")
            .tempdir()
            .unwrap();
        // Readable by the temporary accounts some tests run as.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("pam_totp.toml");
        fs::write(&config, text).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        let devices = dir.path().join("devices.toml");
        Env {
            dir,
            config,
            devices,
        }
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `totp-enroll --config <cfg> --path <devices> ARGS`.
    pub fn enroll(&self, args: &[&str], stdin: &str) -> Out {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--path")
            .arg(&self.devices)
            .env_remove("NO_COLOR");
        run(cmd, stdin)
    }

    /// `totp-enroll --config <cfg> ARGS` (the settings' path decides the file).
    pub fn enroll_nopath(&self, args: &[&str], stdin: &str) -> Out {
        let mut cmd = Command::new(bin());
        cmd.args(args).arg("--config").arg(&self.config);
        run(cmd, stdin)
    }

    /// The device file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        fs::read(&self.devices).unwrap()
    }

    /// The device file, parsed by shared.
    pub fn devices(&self) -> DeviceFile {
        parse_devices(&self.devices)
    }
}

/// Parses a device file with shared.
pub fn parse_devices(path: &Path) -> DeviceFile {
    DeviceFile::parse(&fs::read_to_string(path).unwrap(), path).unwrap()
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The code an app shows now for a SHA1/6/30 key.
pub fn code_now(key_hex: &str) -> String {
    let key = shared::Secret::from_hex(key_hex).unwrap();
    shared::oath::totp(shared::Algorithm::Sha1, key.expose(), now_secs(), 0, 30, 6).unwrap()
}

/// Decodes the QR code(s) in an image file with zbarimg.
pub fn zbarimg(path: &Path) -> String {
    let out = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .expect("zbarimg (Debian zbar-tools) must be installed");
    assert!(
        out.status.success(),
        "zbarimg found no QR code in {}",
        path.display()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

/// Writes a greyscale PNG, `scale` pixels per module.
pub fn write_png(path: &Path, modules: &[Vec<bool>], scale: usize) {
    let h = modules.len();
    let w = modules.iter().map(Vec::len).max().unwrap();
    let mut pixels = Vec::with_capacity(w * h * scale * scale);
    for row in modules {
        for _ in 0..scale {
            for x in 0..w {
                let dark = row.get(x).copied().unwrap_or(false);
                pixels.extend(std::iter::repeat_n(if dark { 0u8 } else { 255 }, scale));
            }
        }
    }
    let file = fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, (w * scale) as u32, (h * scale) as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
}

// ------------------------------------------------------------------ accounts

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

/// Whether the tests run as root (the account tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A local account made with `useradd -m` and removed with `userdel -r`.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    /// A fresh account named `enr<tag><pid>`; `None` when not root.
    pub fn create(tag: &str) -> Option<TestUser> {
        if !is_root() {
            eprintln!("skipped: needs root to create accounts");
            return None;
        }
        let name = format!("enr{tag}{}", std::process::id() % 100_000);
        Some(TestUser::create_named(&name))
    }

    /// The account `name`, replacing a leftover of an interrupted run.
    pub fn create_named(name: &str) -> TestUser {
        let _lock = account_lock();
        if user_exists(name) {
            userdel(name);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // useradd fails while another process holds /etc/passwd's lock.
            let out = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", "-c", "totp-enroll test", name])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "useradd {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let user = nix::unistd::User::from_name(name).unwrap().unwrap();
        TestUser {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        }
    }

    /// `totp-enroll ARGS` run as this account (real and effective ids).
    /// The binary is copied into the home first: the build directory may
    /// sit where the account cannot reach it (e.g. under /root).
    pub fn enroll(&self, args: &[&str], stdin: &str) -> Out {
        let copy = self.home.join(".totp-enroll-under-test");
        if !copy.exists() {
            fs::copy(bin(), &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(&copy)
            .args(args)
            .current_dir(&self.home)
            .env("HOME", &self.home);
        run(cmd, stdin)
    }

    /// The per-user device file.
    pub fn devices_path(&self) -> PathBuf {
        self.home.join(".config/pam_totp/devices.toml")
    }
}

fn userdel(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("userdel").args(["-r", name]).output().unwrap();
        if out.status.success() || out.status.code() == Some(12) || !user_exists(name) {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "cleanup: userdel -r {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = account_lock();
        userdel(&self.name);
    }
}

/// Mode bits and owner of a path.
pub fn mode_owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid())
}
