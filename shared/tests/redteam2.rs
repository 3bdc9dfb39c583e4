//! Red-team findings, second round (branch `redteam2`): one regression
//! test per finding, named after it, each seen failing on the code it was
//! written against. See docs/redteam2.md for the reproduction notes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use pam_totp_tests::kit;
use shared::device::DeviceFile;
use shared::login;
use shared::store::{Access, Change, FileSpec, Store};
use shared::verify::{Login, Policy};
use shared::{Secret, Timestamp};

/// RFC 4226's test key.
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// The TOTP instant every attempt is made at (the store's frozen clock).
const NOW: i64 = 1_764_310_000;
/// Set (to a directory) when this binary is re-run under strace to make
/// one login there.
const HELPER_ENV: &str = "PAM_TOTP_REDTEAM2_LOGIN_DIR";
/// Set with [`HELPER_ENV`]: the helper saves a change of devices instead.
const CHANGE_ENV: &str = "PAM_TOTP_REDTEAM2_CHANGE";

/// One confirmed device (the test kit's), its last step well behind NOW.
fn state() -> DeviceFile {
    let mut d = kit::device("phone", KEY_HEX).unwrap();
    d.last_t = NOW / 30 - 100;
    DeviceFile {
        devices: vec![d],
        ..DeviceFile::default()
    }
}

fn code(t: i64) -> String {
    kit::code_at(&kit::device("phone", KEY_HEX).unwrap(), t)
}

fn store_in(dir: &std::path::Path) -> Store {
    let owner = fs::metadata("/proc/self").unwrap().uid();
    let spec = FileSpec {
        path: dir.join("devices.toml"),
        owner,
        access: Access::AsCaller,
        home: None,
    };
    Store::file(spec, "alice").at(Timestamp::from_secs(NOW))
}

/// Not a test of its own: the login that
/// `finding_r2_1_...` runs under strace (does nothing otherwise).
#[test]
fn helper_one_right_code_login_in_the_directory_named_by_the_environment() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let store = store_in(&dir);
    if std::env::var_os(CHANGE_ENV).is_some() {
        // A change of devices (what `totp-enroll add` saves).
        let mut next = state();
        let mut second = next.devices[0].clone();
        second.name = "tablet".into();
        second.key = Secret::from_hex("00112233445566778899aabbccddeeff00112233").unwrap();
        next.devices.push(second);
        store
            .update(|_, _| Ok::<_, shared::Error>(Change::Save(next, ())))
            .unwrap();
        return;
    }
    let attempt = login::attempt(&store, &code(NOW), &Policy::default()).unwrap();
    assert!(
        matches!(attempt.login, Login::Accepted { .. }),
        "{attempt:?}"
    );
}

/// Finding R2-1 (file store, crash consistency): a login stores its
/// failure with `renameat2(RENAME_EXCHANGE)` and no fsync of the
/// directory, then, for a right code, writes the success *in place* into
/// the spare, which is the inode the directory on disk still names (the
/// exchange is not durable yet). A crash (power loss) during that
/// `pwrite64` + `fdatasync` leaves the device file's name on a torn inode
/// after the reboot, whatever `Locked::save_staged`'s comment promises
/// ("a crash never shows a torn file"). The same happens in
/// `Locked::save_staged`'s best-effort scrub of the spare after a change
/// of devices, before `save`'s directory fsync.
///
/// Asserted from the system calls of one real login (strace): after an
/// exchange, no in-place write until the directory has been fsynced.
#[test]
fn finding_r2_1_a_login_never_overwrites_the_inode_the_unsynced_directory_still_names() {
    assert_no_in_place_write_after_an_unsynced_exchange(false);
}

/// Finding R2-2: the same for a change of devices (`totp-enroll add`,
/// `remove`, ...): `Locked::save_staged` exchanges, then scrubs the spare
/// (the old inode, which the directory on disk still names) in place,
/// and only then does `Locked::save` fsync the directory. A crash during
/// the scrub leaves the name on a file that is half old devices, half new
/// (shared/src/store/file.rs, `save_staged`, the `if scrub` block).
#[test]
fn finding_r2_2_a_change_of_devices_never_scrubs_the_inode_the_unsynced_directory_still_names() {
    assert_no_in_place_write_after_an_unsynced_exchange(true);
}

fn assert_no_in_place_write_after_an_unsynced_exchange(change: bool) {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed (.ci/apt-packages)");
    }
    let dir = tempfile::tempdir().unwrap();
    // The device file and its spare, as totp-enroll leaves them.
    let setup = store_in(dir.path());
    setup
        .update(|_, _| Ok::<_, shared::Error>(Change::Save(state(), ())))
        .unwrap();
    setup
        .update(|_, _| Ok::<_, shared::Error>(Change::Save(state(), ())))
        .unwrap();
    let trace = dir.path().join("trace");
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=pwrite64,fsync,fdatasync,renameat2",
            "-o",
        ])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_one_right_code_login_in_the_directory_named_by_the_environment",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir.path())
        .env(
            if change {
                CHANGE_ENV
            } else {
                "PAM_TOTP_REDTEAM2_UNUSED"
            },
            "1",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = fs::read_to_string(&trace).unwrap();
    let dir_name = format!("<{}>", dir.path().display());
    let mut exchanged_unsynced = false;
    let mut seen_exchange = false;
    for line in text.lines() {
        if line.contains("renameat2(") && line.contains("RENAME_EXCHANGE") {
            exchanged_unsynced = true;
            seen_exchange = true;
        } else if line.contains("fsync(") && line.contains(&dir_name) {
            exchanged_unsynced = false;
        } else if line.contains("pwrite64(") {
            assert!(
                !exchanged_unsynced,
                "an in-place write after an exchange the directory does not hold yet \
                 (a crash now leaves the name on a torn file):\n{text}"
            );
        }
    }
    assert!(seen_exchange, "no exchange traced:\n{text}");
}
