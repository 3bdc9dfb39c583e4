//! `totp-enroll backup-codes`, the set a first device comes with, `list`'s
//! count and `show`'s silence about codes (issue 12; docs/design.md §7, §8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{code_now, Env};
use shared::verify::{verify_login, Login, Policy};
use shared::Timestamp;

const KEY: &str = "3132333435363738393031323334353637383930";
const KEY2: &str = "4142434445464748494a4b4c4d4e4f5051525354";

/// The codes in a text: words of the form xxxxx-xxxxx.
fn codes_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.len() == 11 && w.as_bytes()[5] == b'-')
        .map(str::to_owned)
        .collect()
}

/// `add` with a known key, confirmed with the current code.
fn add(env: &Env, name: &str, key: &str, extra: &[&str]) -> common::Out {
    let mut args = vec!["add", "--name", name, "--key", key, "--qr", "none"];
    args.extend_from_slice(extra);
    env.enroll(&args, &format!("{}\n", code_now(key))).expect(0)
}

/// Every form of `code` a grep might look for.
fn forms(code: &str) -> Vec<String> {
    let bare = code.replace('-', "");
    vec![
        code.to_lowercase(),
        code.to_uppercase(),
        bare.to_lowercase(),
        bare.to_uppercase(),
    ]
}

#[test]
fn the_first_confirmed_device_comes_with_ten_codes_shown_once_and_stored_only_hashed() {
    let env = Env::new();
    let out = add(&env, "phone", KEY, &[]);
    let codes = codes_in(&out.stdout);
    assert_eq!(codes.len(), 10, "{}", out.stdout);
    assert!(out.stdout.contains("not shown again"), "{}", out.stdout);
    let text = String::from_utf8(env.bytes()).unwrap();
    for code in &codes {
        for form in forms(code) {
            assert!(!text.contains(&form), "{form} is in the device file");
        }
    }
    let file = env.devices();
    assert_eq!(file.backup.as_ref().unwrap().remaining(), 10);
    // Each printed code is a working one.
    let (login, _) = verify_login(&file, &codes[3], Timestamp::now(), &Policy::default());
    assert_eq!(login, Login::BackupCode { remaining: 9 });
    // A second device gets none.
    let out = add(&env, "tablet", KEY2, &[]);
    assert!(codes_in(&out.stdout).is_empty(), "{}", out.stdout);
    assert_eq!(env.devices().backup.unwrap().remaining(), 10);
}

#[test]
fn no_backup_codes_leaves_the_first_device_without_a_set() {
    let env = Env::new();
    let out = add(&env, "phone", KEY, &["--no-backup-codes"]);
    assert!(codes_in(&out.stdout).is_empty(), "{}", out.stdout);
    assert!(env.devices().backup.is_none());
}

#[test]
fn confirming_a_first_device_later_gives_it_its_set() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--key",
            KEY,
            "--no-confirm",
            "--qr",
            "none",
            "--json",
        ],
        "",
    )
    .expect(0);
    assert!(env.devices().backup.is_none());
    let out = env
        .enroll(
            &["confirm", "default", "--json"],
            &format!("{}\n", code_now(KEY)),
        )
        .expect(0);
    let records = out.json();
    assert_eq!(records.len(), 2, "{}", out.stdout);
    assert_eq!(records[1]["count"], 10);
    assert_eq!(env.devices().backup.unwrap().remaining(), 10);
}

#[test]
fn backup_codes_json_prints_user_codes_and_count_and_replaces_the_old_set_without_asking() {
    let env = Env::new();
    let first = codes_in(&add(&env, "phone", KEY, &[]).stdout);
    let out = env
        .enroll(&["backup-codes", "--count", "3", "--json"], "")
        .expect(0);
    let r = &out.json()[0];
    assert_eq!(r["count"], 3);
    assert!(r["user"].is_string());
    let codes: Vec<String> = r["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 3);
    let file = env.devices();
    assert_eq!(file.backup.as_ref().unwrap().remaining(), 3);
    let now = Timestamp::now();
    let (old, _) = verify_login(&file, &first[0], now, &Policy::default());
    assert!(matches!(old, Login::Rejected { .. }), "old codes are void");
    let (new, _) = verify_login(&file, &codes[2].to_uppercase(), now, &Policy::default());
    assert_eq!(new, Login::BackupCode { remaining: 2 });
}

#[test]
fn backup_codes_asks_before_replacing_a_set_and_no_keeps_it() {
    let env = Env::new();
    add(&env, "phone", KEY, &[]);
    let before = env.bytes();
    let out = env.enroll(&["backup-codes"], "n\n").expect(1);
    assert!(out.stderr.contains("Replace it? [y/N]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("old backup codes are kept"),
        "{}",
        out.stderr
    );
    assert_eq!(env.bytes(), before, "nothing changed");
    let out = env
        .enroll(&["backup-codes", "--count", "4"], "y\n")
        .expect(0);
    assert_eq!(codes_in(&out.stdout).len(), 4);
    let out = env.enroll(&["backup-codes", "--yes"], "").expect(0);
    assert!(!out.stderr.contains("Replace it?"), "{}", out.stderr);
    assert_eq!(codes_in(&out.stdout).len(), 10);
}

#[test]
fn backup_codes_is_refused_without_a_device_and_for_a_bad_count() {
    let env = Env::new();
    env.enroll(&["backup-codes", "--yes"], "")
        .one_line_error(1, "has no devices");
    add(&env, "phone", KEY, &[]);
    env.enroll(&["backup-codes", "--count", "0", "--yes"], "")
        .one_line_error(2, "--count must be 1 to 100");
    env.enroll(&["backup-codes", "--count", "101", "--yes"], "")
        .one_line_error(2, "--count must be 1 to 100");
}

#[test]
fn list_shows_how_many_codes_remain_and_show_prints_none() {
    let env = Env::new();
    let codes = codes_in(&add(&env, "phone", KEY, &[]).stdout);
    let out = env.enroll(&["list"], "").expect(0);
    assert!(
        out.stdout.contains("Backup codes: 10 codes left."),
        "{}",
        out.stdout
    );
    let out = env.enroll(&["list", "--json"], "").expect(0);
    let records = out.json();
    assert_eq!(records.last().unwrap()["backup_codes_left"], 10);
    env.enroll(&["backup-codes", "--count", "2", "--yes"], "")
        .expect(0);
    let out = env.enroll(&["list"], "").expect(0);
    assert!(
        out.stdout
            .contains("2 codes left; make a new set with `totp-enroll backup-codes`"),
        "{}",
        out.stdout
    );
    let out = env.enroll(&["show", "phone", "--qr", "none"], "").expect(0);
    for code in &codes {
        for form in forms(code) {
            assert!(!out.stdout.contains(&form), "show printed a code");
        }
    }
}
