//! `totp-enroll batch` for 1000 users takes well under a minute.
//!
//! The users exist only in a passwd file read through nss_wrapper (Debian
//! libnss-wrapper, LD_PRELOADed into the binary), with homes in a temporary
//! directory owned by their uids: per-user mode, each file written with its
//! user's file-system identity, exactly as for real accounts, and /etc is
//! never touched. `enroll/bench/batch-1000.sh` is the same measurement as a
//! script (for a release build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const USERS: u32 = 1000;
const FIRST_UID: u32 = 41000;

fn nss_wrapper() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so",
        "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
        "/usr/lib64/libnss_wrapper.so",
        "/usr/lib/libnss_wrapper.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("libnss_wrapper.so (Debian libnss-wrapper) must be installed")
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn batch_creates_devices_for_1000_users_well_under_a_minute() {
    // Root: it writes files as other uids.
    pam_totp_tests::kit::require_root("batch_creates_devices_for_1000_users");
    let env = common::Env::with_config("issuer = \"Example Corp\"\n");
    let homes = env.path("home");
    fs::create_dir(&homes).unwrap();
    let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
    let mut group = fs::read_to_string("/etc/group").unwrap();
    let mut names = String::new();
    for i in 1..=USERS {
        let (name, uid) = (format!("bt{i:04}"), FIRST_UID + i);
        let home = homes.join(&name);
        fs::DirBuilder::new().mode(0o700).create(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();
        writeln!(passwd, "{name}:x:{uid}:{uid}::{}:/bin/sh", home.display()).unwrap();
        writeln!(group, "{name}:x:{uid}:").unwrap();
        writeln!(names, "{name}").unwrap();
    }
    fs::write(env.path("passwd"), passwd).unwrap();
    fs::write(env.path("group"), group).unwrap();
    fs::write(env.path("users"), names).unwrap();

    let start = Instant::now();
    let out = Command::new(common::bin())
        .args(["batch", "--users-from"])
        .arg(env.path("users"))
        .arg("--config")
        .arg(&env.config)
        .env("LD_PRELOAD", nss_wrapper())
        .env("NSS_WRAPPER_PASSWD", env.path("passwd"))
        .env("NSS_WRAPPER_GROUP", env.path("group"))
        .output()
        .unwrap();
    let took = start.elapsed();
    eprintln!("batch: {USERS} users in {:.2} s", took.as_secs_f64());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The time is a figure, not a pass mark: enroll/bench/batch-1000.sh
    // measures it; here only the behaviour is asserted.

    let stdout = String::from_utf8(out.stdout).unwrap();
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), USERS as usize);
    for (i, r) in records.iter().enumerate() {
        let (name, uid) = (format!("bt{:04}", i + 1), FIRST_UID + i as u32 + 1);
        assert_eq!(r["user"], name.as_str());
        let url = r["config_url"].as_str().unwrap();
        assert!(url.starts_with(&format!("otpauth://totp/Example%20Corp%3A{name}?secret=")));
        let file = homes.join(&name).join(".config/pam_totp/devices.toml");
        let meta = fs::metadata(&file).unwrap();
        assert_eq!(
            (meta.mode() & 0o777, meta.uid()),
            (0o600, uid),
            "{}",
            file.display()
        );
    }
    // Every key differs.
    let mut keys: Vec<&str> = records
        .iter()
        .map(|r| r["key_hex"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), USERS as usize);
}
