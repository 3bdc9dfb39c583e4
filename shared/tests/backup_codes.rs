//! Backup codes (issue 12; docs/design.md §3, §4, §8): django-otp's
//! `StaticDevice` made exact, through `shared` and its store.
//!
//! The oracle is `static_scenarios` in `data/django-otp.json`, produced by
//! the real django-otp 1.7.5. Its tokens are django-otp's (8 lowercase
//! base32 characters, compared byte for byte); ours are 10 Crockford
//! characters, read case-insensitively with `-` and spaces ignored. So
//! each event's token is translated: a token that django-otp holds (or
//! held) becomes our code for it (the token with `00` appended), typed in
//! our display form; a token django-otp does not hold because its exact
//! comparison refuses it (`EFGH6789`, ` efgh6789`) becomes a code our set
//! does not hold either. That is the deliberate difference of docs/design.md §3:
//! our input is forgiving; the states (result, failure count, failure
//! time, last use, remaining codes) must be django-otp's exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use pam_totp_tests::kit::{self, assert_django_backup_state, backup_code_for, typed_backup_code};
use serde_json::Value;
use shared::backup::{self, hash_count, BackupCodes, CodeFormat};
use shared::device::{Device, DeviceFile, Params};
use shared::oath::{hotp, Algorithm};
use shared::store::{Access, FileSpec, Store};
use shared::verify::{current_step, verify_login, Login, Policy, Rejection};
use shared::{Secret, Timestamp};

fn django() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/django-otp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn spec(dir: &Path) -> FileSpec {
    FileSpec {
        path: dir.join("devices.toml"),
        owner: 0,
        access: Access::AsCaller,
        home: None,
    }
}

fn write_state(path: &Path, file: &DeviceFile) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(file.to_toml("alice").as_bytes()).unwrap();
}

fn read_state(path: &PathBuf) -> DeviceFile {
    DeviceFile::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap()
}

/// Every event of every static scenario, through `shared::login::attempt`
/// on a real device file at the event's instant: each durable state is
/// django-otp's.
#[test]
fn every_django_static_scenario_is_reproduced_event_by_event_through_the_store() {
    let v = django();
    let scenarios = v["static_scenarios"].as_array().unwrap();
    assert!(!scenarios.is_empty());
    let mut events_seen = 0;
    for sc in scenarios {
        let name = sc["name"].as_str().unwrap();
        let initial: Vec<String> = sc["initial_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        let codes: Vec<String> = initial.iter().map(|t| backup_code_for(t)).collect();
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let set = BackupCodes::from_codes(&refs, CodeFormat::Crockford10, Timestamp::from_secs(0))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        write_state(
            &spec.path,
            &DeviceFile {
                devices: vec![],
                backup: Some(set),
            },
        );
        // OTP_STATIC_THROTTLE_FACTOR's default; the TOTP factor plays no part.
        let policy = Policy {
            throttle_factor: 0,
            ..Policy::default()
        };
        for (i, ev) in sc["events"].as_array().unwrap().iter().enumerate() {
            let now = Timestamp::from_secs_f64(ev["time"].as_f64().unwrap());
            let token = ev["token"].as_str().unwrap();
            let exp = &ev["expected"];
            let what = format!("{name} event {i} ({})", ev["note"]);
            let before = read_state(&spec.path).backup.unwrap();
            assert_eq!(
                backup::throttled_until(&before, now, &policy).is_none(),
                exp["verify_is_allowed_before"].as_bool().unwrap(),
                "{what}: verify_is_allowed before"
            );
            let store = Store::file(spec.clone(), "alice").at(now);
            let done = shared::login::attempt(&store, &typed_backup_code(token, &initial), &policy)
                .unwrap();
            let accepted = matches!(done.login, Login::BackupCode { .. });
            assert_eq!(accepted, exp["result"].as_bool().unwrap(), "{what}: result");
            let after = read_state(&spec.path).backup.unwrap();
            assert_django_backup_state(&after, exp, &what);
            if let Login::BackupCode { remaining } = done.login {
                assert_eq!(remaining, after.remaining(), "{what}: reported count");
            }
            events_seen += 1;
        }
    }
    assert_eq!(events_seen, 6);
}

/// The forgiving input of docs/design.md §3, where django-otp's exact comparison
/// (the scenario's `EFGH6789` and ` efgh6789`) would refuse.
#[test]
fn a_code_is_accepted_in_any_case_with_spaces_dashes_and_look_alikes() {
    let set = BackupCodes::from_codes(
        &["10abc0defg", "zzzz777700"],
        CodeFormat::Crockford10,
        Timestamp::from_secs(0),
    )
    .unwrap();
    let policy = Policy::default();
    for input in ["1OABC-ODEFG", " lo abc 0defg ", "10ABC0DEFG", "i0abc-0defg"] {
        let (verdict, next) = backup::verify(&set, input, Timestamp::from_secs(10), &policy);
        assert_eq!(verdict, backup::Verdict::Accepted { index: 0 }, "{input}");
        assert_eq!(next.remaining(), 1);
    }
}

const NOW: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

fn phone() -> Device {
    let mut d = Device::new(
        "phone",
        Secret::new(vec![7; 20]),
        &Params::default(),
        Timestamp::from_secs(NOW - 1000),
    );
    d.confirmed = true;
    d
}

fn phone_code(d: &Device, now: Timestamp) -> String {
    hotp(
        Algorithm::Sha1,
        d.key.expose(),
        current_step(d, now) as u64,
        d.digits,
    )
    .unwrap()
}

fn wrong_totp(d: &Device) -> String {
    kit::other_code(&phone_code(d, now())).to_owned()
}

/// A phone and a set of two known codes.
fn mixed() -> (DeviceFile, [&'static str; 2]) {
    let codes = ["abcde-fghjk", "mnpqr-stvwx"];
    let set = BackupCodes::from_codes(&codes, CodeFormat::Crockford10, now()).unwrap();
    (
        DeviceFile {
            devices: vec![phone()],
            backup: Some(set),
        },
        codes,
    )
}

#[test]
fn a_normal_totp_login_computes_no_argon2_hash() {
    let (file, _) = mixed();
    let code = phone_code(&file.devices[0], now());
    let before = hash_count();
    let (login, _) = verify_login(&file, &code, now(), &Policy::default());
    assert!(matches!(login, Login::Accepted { .. }), "{login:?}");
    assert_eq!(hash_count() - before, 0, "a TOTP login hashed");
}

#[test]
fn a_totp_shaped_wrong_code_computes_no_hash_but_counts_on_the_set() {
    let (file, _) = mixed();
    let before = hash_count();
    for input in [wrong_totp(&file.devices[0]), "12345678".into()] {
        let (login, next) = verify_login(&file, &input, now(), &Policy::default());
        assert!(
            matches!(login, Login::Rejected { tried: 2, .. }),
            "{login:?}"
        );
        let set = next.backup.unwrap();
        assert_eq!(set.throttling_failure_count, 1);
        assert_eq!(set.throttling_failure_timestamp, Some(now()));
        assert_eq!(set.remaining(), 2);
    }
    assert_eq!(hash_count() - before, 0, "a TOTP-shaped input was hashed");
}

#[test]
fn a_backup_shaped_attempt_computes_exactly_one_hash_whatever_the_set_size() {
    let new = BackupCodes::generate(50, now()).unwrap();
    let file = DeviceFile {
        devices: vec![phone()],
        backup: Some(new.set),
    };
    let before = hash_count();
    let (login, _) = verify_login(&file, "00000-00000", now(), &Policy::default());
    assert!(matches!(login, Login::Rejected { .. }), "{login:?}");
    assert_eq!(hash_count() - before, 1);
    let before = hash_count();
    let (login, _) = verify_login(&file, &new.codes[49], now(), &Policy::default());
    assert_eq!(login, Login::BackupCode { remaining: 49 });
    assert_eq!(hash_count() - before, 1);
}

/// django-otp's `match_token` walks the TOTP device first, then the static
/// device; we record no failure on the devices tried before the one that
/// matched (docs/design.md §4's one deliberate difference).
#[test]
fn the_set_is_tried_after_the_totp_devices_and_only_the_matching_one_changes() {
    let (file, codes) = mixed();
    let policy = Policy::default();
    // A backup code: the phone refuses it (malformed for it) but records
    // nothing; the code is removed.
    let (login, next) = verify_login(&file, codes[0], now(), &policy);
    assert_eq!(login, Login::BackupCode { remaining: 1 });
    assert_eq!(next.devices[0], file.devices[0]);
    let set = next.backup.clone().unwrap();
    assert_eq!(set.last_used_at, Some(now()));
    assert_eq!(set.codes, vec![file.backup.as_ref().unwrap().codes[1]]);
    // The same code again: refused, both tried and both counted.
    let later = now().plus_secs(1);
    let (login, again) = verify_login(&next, codes[0], later, &policy);
    assert_eq!(
        login,
        Login::Rejected {
            reason: Rejection::Wrong,
            tried: 2
        }
    );
    assert_eq!(again.devices[0].throttling_failure_count, 1);
    assert_eq!(again.backup.as_ref().unwrap().throttling_failure_count, 1);
    // A TOTP code: the set is not tried and keeps its state.
    let code = phone_code(&file.devices[0], now());
    let (login, next) = verify_login(&file, &code, now(), &policy);
    assert!(matches!(login, Login::Accepted { index: 0, .. }));
    assert_eq!(next.backup, file.backup);
}

#[test]
fn each_device_keeps_its_own_throttle_and_factor() {
    let (mut file, codes) = mixed();
    // The phone is blocked: a backup code still works.
    file.devices[0].throttling_failure_count = 3;
    file.devices[0].throttling_failure_timestamp = Some(now());
    let at = now().plus_secs(1);
    let (login, next) = verify_login(&file, codes[1], at, &Policy::default());
    assert_eq!(login, Login::BackupCode { remaining: 1 });
    assert_eq!(
        next.devices[0], file.devices[0],
        "a throttled device is untouched"
    );
    // The set is blocked (static factor 1, one failure, 0.5 s ago): a valid
    // code is refused without being consumed.
    let (mut file, codes) = mixed();
    let set = file.backup.as_mut().unwrap();
    set.throttling_failure_count = 1;
    set.throttling_failure_timestamp = Some(now());
    let half = Timestamp::from_micros(NOW * 1_000_000 + 500_000);
    let (login, next) = verify_login(&file, codes[0], half, &Policy::default());
    assert!(
        matches!(login, Login::Rejected { tried: 1, .. }),
        "{login:?}"
    );
    assert_eq!(next.backup, file.backup, "a throttled set is untouched");
    // With the static factor at 0 the same attempt goes through.
    let no_static = Policy {
        static_throttle_factor: 0,
        ..Policy::default()
    };
    let (login, _) = verify_login(&file, codes[0], half, &no_static);
    assert_eq!(login, Login::BackupCode { remaining: 1 });
    // Both blocked: nothing is tried.
    file.devices[0].throttling_failure_count = 3;
    file.devices[0].throttling_failure_timestamp = Some(now());
    let (login, _) = verify_login(&file, codes[0], half, &Policy::default());
    assert!(matches!(login, Login::AllThrottled { .. }), "{login:?}");
}

#[test]
fn a_user_with_only_backup_codes_left_is_prompted_and_an_empty_set_still_counts() {
    let (mut file, _) = mixed();
    file.devices.clear();
    assert!(matches!(
        shared::login::prepared(&file, now(), &Policy::default()),
        shared::login::Prepared::Ready { digits: 6 }
    ));
    file.backup.as_mut().unwrap().codes.clear();
    assert!(matches!(
        shared::login::prepared(&file, now(), &Policy::default()),
        shared::login::Prepared::Ready { .. }
    ));
}

/// `grep` of the device file for every issued code, in any case and with
/// or without the dash, finds nothing.
#[test]
fn the_device_file_never_holds_a_code_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    write_state(
        &spec.path,
        &DeviceFile {
            devices: vec![phone()],
            backup: None,
        },
    );
    let store = Store::file(spec.clone(), "alice");
    let new = shared::manage::new_backup_codes(&store, 20).unwrap();
    assert_eq!(new.codes.len(), 20);
    assert_eq!(shared::manage::backup_count(&store).unwrap(), Some(20));
    let text = std::fs::read_to_string(&spec.path).unwrap().to_lowercase();
    for code in &new.codes {
        let lower = code.to_lowercase();
        for form in [lower.clone(), lower.replace('-', "")] {
            assert!(!text.contains(&form), "{form} is in the file");
        }
    }
}

#[test]
fn a_new_set_replaces_the_old_one_and_its_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let (mut file, codes) = mixed();
    file.backup.as_mut().unwrap().throttling_failure_count = 9;
    write_state(&spec.path, &file);
    let store = Store::file(spec.clone(), "alice");
    let new = shared::manage::new_backup_codes(&store, 3).unwrap();
    let stored = read_state(&spec.path).backup.unwrap();
    assert_eq!(stored.remaining(), 3);
    assert_eq!(stored.throttling_failure_count, 0);
    let (login, _) = verify_login(&read_state(&spec.path), codes[0], now(), &Policy::default());
    assert!(
        matches!(login, Login::Rejected { .. }),
        "old codes are gone"
    );
    let (login, _) = verify_login(
        &read_state(&spec.path),
        &new.codes[2],
        now(),
        &Policy::default(),
    );
    assert_eq!(login, Login::BackupCode { remaining: 2 });
}

#[test]
fn the_first_confirmed_device_gets_a_set_and_later_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let store = Store::file(spec.clone(), "alice");
    let mut unconfirmed = phone();
    unconfirmed.confirmed = false;
    shared::manage::add(&store, &unconfirmed).unwrap();
    assert!(shared::manage::first_backup_codes(&store)
        .unwrap()
        .is_none());
    let mut file = read_state(&spec.path);
    file.devices[0].confirmed = true;
    write_state(&spec.path, &file);
    let new = shared::manage::first_backup_codes(&store).unwrap().unwrap();
    assert_eq!(new.codes.len(), backup::DEFAULT_COUNT);
    assert!(shared::manage::first_backup_codes(&store)
        .unwrap()
        .is_none());
}

#[test]
fn imported_scratch_codes_log_in_once_each() {
    let scratch = ["12345678", "87654321"];
    let set = BackupCodes::from_scratch_codes(&scratch, now()).unwrap();
    let mut file = DeviceFile {
        devices: vec![phone()],
        backup: Some(set),
    };
    let policy = Policy::default();
    let mut at = now();
    for (i, code) in scratch.iter().enumerate() {
        let (login, next) = verify_login(&file, code, at, &policy);
        assert_eq!(login, Login::BackupCode { remaining: 1 - i });
        file = next;
        at = at.plus_secs(100);
        let (login, next) = verify_login(&file, code, at, &policy);
        assert!(matches!(login, Login::Rejected { .. }), "{login:?}");
        file = next;
        at = at.plus_secs(100);
    }
}
