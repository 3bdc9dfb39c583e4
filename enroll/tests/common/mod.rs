//! Helpers for the CLI tests: run the real `totp-enroll` binary in a
//! temporary directory with its own settings file, the test kit's accounts
//! (`pam_totp_tests::kit`) running the binary, QR decoding with zbarimg.
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
use std::time::{SystemTime, UNIX_EPOCH};

use pam_totp_tests::kit;
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

/// The code an app shows now for a SHA1/6/30 key (the kit's device).
pub fn code_now(key_hex: &str) -> String {
    kit::code_now(&kit::device("app", key_hex).unwrap())
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

/// Writes a binary greyscale PGM (netpbm P5), `scale` pixels per module:
/// an image zbarimg reads, written without an image crate, so that the
/// terminal QR tests need no PNG encoder (the `png` feature may be off).
pub fn write_pgm(path: &Path, modules: &[Vec<bool>], scale: usize) {
    let h = modules.len();
    let w = modules.iter().map(Vec::len).max().unwrap();
    let mut image = format!("P5\n{} {}\n255\n", w * scale, h * scale).into_bytes();
    for row in modules {
        for _ in 0..scale {
            for x in 0..w {
                let dark = row.get(x).copied().unwrap_or(false);
                image.extend(std::iter::repeat_n(if dark { 0u8 } else { 255 }, scale));
            }
        }
    }
    fs::write(path, image).unwrap();
}

// ------------------------------------------------------------------ accounts

/// Whether the tests run as root ([`pam_totp_tests::kit::is_root`]).
pub fn is_root() -> bool {
    kit::is_root()
}

/// The kit's account fixture ([`pam_totp_tests::kit::TestUser`]; its fields
/// and methods through `Deref`), plus running this crate's binary as it.
pub struct TestUser(kit::TestUser);

impl std::ops::Deref for TestUser {
    type Target = kit::TestUser;
    fn deref(&self) -> &kit::TestUser {
        &self.0
    }
}

impl TestUser {
    /// A fresh account named `enr<tag><pid>`. A test that makes one is marked
    /// `#[cfg_attr(not_root, ignore = "needs root")]`; without root this fails.
    pub fn new(tag: &str) -> TestUser {
        kit::require_root(tag);
        TestUser::create_named(&format!("enr{tag}{}", std::process::id() % 100_000))
    }

    /// The account `name`, replacing a leftover of an interrupted run.
    pub fn create_named(name: &str) -> TestUser {
        TestUser(kit::TestUser::create(name).unwrap_or_else(|e| panic!("{e}")))
    }

    /// `totp-enroll ARGS` run as this account (real and effective ids).
    pub fn enroll(&self, args: &[&str], stdin: &str) -> Out {
        let mut cmd = self.0.command(Path::new(bin())).unwrap();
        cmd.args(args);
        run(cmd, stdin)
    }
}

/// Mode bits and owner of a path.
pub fn mode_owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid())
}
