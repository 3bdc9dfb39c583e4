//! A device made by `totp-enroll` is accepted by `pam_totp.so` at login,
//! through real libpam (pam_wrapper + pamtester): the two programs agree on
//! the file, the key, the parameters and the replay state, because both are
//! built on `shared`.
//!
//! The binary is the `totp-enroll` of the target directory these tests were
//! built in (`cargo build -p totp-enroll` first, cheap when up to date), or
//! `TOTP_ENROLL=/abs/path/totp-enroll` to test another build.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::pam::{
    code_at, module, target_dir, workspace_root, DeviceDir, PamResult, Pamtester, Services,
};
use shared::device::Device;
use shared::Timestamp;

/// The totp-enroll binary, built once per test process.
fn enroll_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TOTP_ENROLL") {
            return PathBuf::from(p);
        }
        let target = target_dir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let profile = exe
            .ancestors()
            .nth(2)
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "totp-enroll"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(workspace_root());
        if profile == "release" {
            cmd.arg("--release");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "cargo build -p totp-enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join(profile).join("totp-enroll")
    })
    .clone()
}

/// Runs totp-enroll with `stdin`; returns stdout, asserting success.
fn enroll(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(enroll_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "totp-enroll {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).unwrap()
}

/// An empty settings file (defaults) owned by root, for `--config`.
fn empty_settings(dir: &Path) -> PathBuf {
    let path = dir.join("enroll-settings.toml");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// The device as the JSON of `add --json` describes it.
fn device_of(record: &serde_json::Value) -> Device {
    let mut d = Device::new(
        record["device_name"].as_str().unwrap(),
        shared::Secret::from_hex(record["key_hex"].as_str().unwrap()).unwrap(),
        &shared::device::Params {
            algorithm: record["algorithm"].as_str().unwrap().parse().unwrap(),
            digits: record["digits"].as_u64().unwrap() as u32,
            step: record["step"].as_u64().unwrap() as u32,
            t0: record["t0"].as_i64().unwrap(),
            tolerance: record["tolerance"].as_u64().unwrap() as u32,
        },
        Timestamp::now(),
    );
    d.confirmed = true;
    d
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_device_enrolled_and_confirmed_with_totp_enroll_logs_in_through_libpam() {
    require_root("a_device_enrolled_and_confirmed_with_totp_enroll_logs_in");
    let services = Services::new().unwrap();
    let devices = DeviceDir::new().unwrap();
    let settings = empty_settings(devices.dir());
    let file = devices.file("root");
    let (file_s, settings_s) = (file.to_str().unwrap(), settings.to_str().unwrap());
    services
        .probe(
            "totp",
            &module().unwrap(),
            &format!("{} config={}", devices.path_arg(), settings.display()),
        )
        .unwrap();

    let out = enroll(
        &[
            "add",
            "--json",
            "--no-confirm",
            "--path",
            file_s,
            "--config",
            settings_s,
            "--algorithm",
            "SHA256",
            "--digits",
            "8",
        ],
        "",
    );
    let record = json(&out);
    let d = device_of(&record);
    let now = Timestamp::now().secs_floor();

    // Unconfirmed: the module does not accept it.
    let run = Pamtester::new(&services, "totp", "root")
        .answers(&[&code_at(&d, now)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert!(!devices.read("root").unwrap().devices[0].confirmed);
    // Confirmed with the app's current code, under the module's rules.
    let now = Timestamp::now().secs_floor();
    let out = enroll(
        &[
            "confirm", "default", "--json", "--path", file_s, "--config", settings_s,
        ],
        &format!("{}\n", code_at(&d, now)),
    );
    let mut lines = out.lines();
    let confirmed = json(lines.next().unwrap());
    assert_eq!(confirmed["confirmed"], true);
    // The first confirmed device comes with its backup codes.
    assert_eq!(json(lines.next().unwrap())["count"], 10);

    // The next step's code logs in (tolerance 1) ...
    let next = code_at(&d, now + 30);
    let run = Pamtester::new(&services, "totp", "root")
        .answers(&[&next])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    // ... once: the module and totp-enroll share the replay state.
    let run = Pamtester::new(&services, "totp", "root")
        .answers(&[&next])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let state = devices.read("root").unwrap();
    assert!(state.devices[0].confirmed);
    assert!(state.devices[0].last_t > now / 30);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_enrolls_a_user_and_the_user_logs_in_with_the_file_in_their_home() {
    require_root("root_enrolls_a_user_and_the_user_logs_in");
    let user = TestUser::create("pamtotp-enr1").unwrap();
    let services = Services::new().unwrap();
    let settings = empty_settings(services.dir());
    services
        .probe(
            "totp",
            &module().unwrap(),
            &format!("config={}", settings.display()),
        )
        .unwrap();
    // Root makes the device in the user's home, confirmed from the start
    // (batch --confirmed: root hands the secret over).
    let out = enroll(
        &[
            "batch",
            "--users",
            &user.name,
            "--confirmed",
            "--config",
            settings.to_str().unwrap(),
        ],
        "",
    );
    let d = device_of(&json(&out));
    let now = Timestamp::now().secs_floor();
    let run = Pamtester::new(&services, "totp", &user.name)
        .answers(&[&code_at(&d, now)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    // The module updated the file the user owns, and it is still theirs.
    let path = user.home.join(".config/pam_totp/devices.toml");
    let meta = fs::metadata(&path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, user.uid));
    let listed = enroll(
        &[
            "list",
            "--json",
            "--user",
            &user.name,
            "--config",
            settings.to_str().unwrap(),
        ],
        "",
    );
    let r = json(&listed);
    assert_eq!(r["last_t"].as_i64().unwrap(), now / 30);
}

/// A google-authenticator file's scratch codes, imported by totp-enroll,
/// log in through libpam once each (issue 12); a backup code from
/// `backup-codes --json` too, and the module says how many are left.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn imported_scratch_codes_and_new_backup_codes_log_in_once_each_through_libpam() {
    require_root("imported_scratch_codes_and_new_backup_codes_log_in_once_each");
    let services = Services::new().unwrap();
    let devices = DeviceDir::new().unwrap();
    let settings = empty_settings(devices.dir());
    let file = devices.file("root");
    let (file_s, settings_s) = (file.to_str().unwrap(), settings.to_str().unwrap());
    services
        .probe(
            "totp",
            &module().unwrap(),
            &format!("{} config={}", devices.path_arg(), settings.display()),
        )
        .unwrap();
    let ga = devices.dir().join("google_authenticator");
    let scratch = ["11223344", "55667788", "99001122"];
    fs::write(
        &ga,
        format!(
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" WINDOW_SIZE 3\n\" TOTP_AUTH\n{}\n",
            scratch.join("\n")
        ),
    )
    .unwrap();
    enroll(
        &[
            "import-google-authenticator",
            ga.to_str().unwrap(),
            "--path",
            file_s,
            "--config",
            settings_s,
        ],
        "",
    );
    let text = devices.text("root").unwrap();
    for (i, code) in scratch.iter().enumerate() {
        assert!(!text.contains(code), "scratch code in clear");
        let run = Pamtester::new(&services, "totp", "root")
            .answers(&[code])
            .run()
            .unwrap();
        assert_eq!(run.result, PamResult::Success, "{code}: {run}");
        let left = scratch.len() - 1 - i;
        let noun = if left == 1 { "code" } else { "codes" };
        assert!(
            run.stdout.contains(&format!("{left} backup {noun} left")),
            "{run}"
        );
        // The throttle of the set (factor 1) is clear again after a success,
        // so the refusal below is about reuse, not about waiting.
        let run = Pamtester::new(&services, "totp", "root")
            .answers(&[code])
            .run()
            .unwrap();
        assert_eq!(run.result, PamResult::AuthErr, "{code} twice: {run}");
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }

    let out = enroll(
        &[
            "backup-codes",
            "--json",
            "--count",
            "2",
            "--path",
            file_s,
            "--config",
            settings_s,
        ],
        "",
    );
    let record = json(&out);
    let code = record["codes"][1].as_str().unwrap().to_owned();
    let run = Pamtester::new(&services, "totp", "root")
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(run.stdout.contains("1 backup code left"), "{run}");
    assert!(run.stdout.contains("running out"), "{run}");
    assert!(
        run.log_text()
            .contains("accepted: user root, backup code, 1 left"),
        "{run}"
    );
    assert!(!run.log_text().to_lowercase().contains(&code.to_lowercase()));
}
