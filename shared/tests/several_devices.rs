//! The several-devices rule of docs/design.md §4, device by device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_totp_tests::kit;
use shared::device::{Device, DeviceFile};
use shared::oath::{hotp, Algorithm};
use shared::verify::{current_step, readiness, verify_login, Login, Policy, Readiness, Rejection};
use shared::Timestamp;

const NOW: i64 = 1_700_000_000;

/// The kit's device with the key `key_byte` × 20.
fn device(name: &str, key_byte: u8) -> Device {
    kit::device(name, &format!("{key_byte:02x}").repeat(20)).unwrap()
}

fn code_for(d: &Device, now: Timestamp) -> String {
    hotp(
        Algorithm::Sha1,
        d.key.expose(),
        current_step(d, now) as u64,
        d.digits,
    )
    .unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

#[test]
fn the_first_device_that_accepts_is_updated_and_no_other_records_a_failure() {
    let file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1), device("b", 2), device("c", 3)],
    };
    let code = code_for(&file.devices[1], now());
    let (login, next) = verify_login(&file, &code, now(), &Policy::default());
    assert!(
        matches!(login, Login::Accepted { index: 1, .. }),
        "{login:?}"
    );
    assert_eq!(next.devices[0], file.devices[0], "device a untouched");
    assert_eq!(next.devices[2], file.devices[2], "device c untouched");
    assert_eq!(
        next.devices[1].last_t,
        current_step(&file.devices[1], now())
    );
}

#[test]
fn when_no_device_accepts_every_tried_device_records_a_failure() {
    let mut file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1), device("b", 2), device("unconfirmed", 3)],
    };
    file.devices[2].confirmed = false;
    let (login, next) = verify_login(&file, "000000", now(), &Policy::default());
    assert_eq!(
        login,
        Login::Rejected {
            reason: Rejection::Wrong,
            tried: 2
        }
    );
    assert_eq!(next.devices[0].throttling_failure_count, 1);
    assert_eq!(next.devices[1].throttling_failure_count, 1);
    assert_eq!(
        next.devices[2], file.devices[2],
        "unconfirmed devices are not tried"
    );
}

#[test]
fn throttled_devices_are_skipped_and_untouched() {
    let mut file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1), device("b", 2)],
    };
    file.devices[0].throttling_failure_count = 3;
    file.devices[0].throttling_failure_timestamp = Some(now());
    // Device a's own valid code does not get through while it is throttled.
    let code = code_for(&file.devices[0], now());
    let (login, next) = verify_login(&file, &code, now().plus_secs(1), &Policy::default());
    assert!(
        matches!(login, Login::Rejected { tried: 1, .. }),
        "{login:?}"
    );
    assert_eq!(next.devices[0], file.devices[0]);
    assert_eq!(next.devices[1].throttling_failure_count, 1);
}

#[test]
fn when_every_confirmed_device_is_throttled_nothing_changes_and_the_earliest_release_is_given() {
    let mut file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1), device("b", 2)],
    };
    file.devices[0].throttling_failure_count = 4; // 8 s
    file.devices[0].throttling_failure_timestamp = Some(now());
    file.devices[1].throttling_failure_count = 2; // 2 s
    file.devices[1].throttling_failure_timestamp = Some(now());
    let at = now().plus_secs(1);
    assert_eq!(
        readiness(&file, at, &Policy::default()),
        Readiness::AllThrottled {
            until: now().plus_secs(2)
        }
    );
    let (login, next) = verify_login(&file, "123456", at, &Policy::default());
    assert_eq!(
        login,
        Login::AllThrottled {
            until: now().plus_secs(2)
        }
    );
    assert_eq!(next, file);
}

#[test]
fn a_file_without_confirmed_devices_has_no_device_to_try() {
    let mut file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1)],
    };
    file.devices[0].confirmed = false;
    let code = code_for(&file.devices[0], now());
    let (login, next) = verify_login(&file, &code, now(), &Policy::default());
    assert_eq!(login, Login::NoDevice);
    assert_eq!(next, file);
}

#[test]
fn a_replayed_code_is_reported_as_a_replay_and_counted_as_a_failure() {
    let file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1)],
    };
    let code = code_for(&file.devices[0], now());
    let (first, after) = verify_login(&file, &code, now(), &Policy::default());
    assert!(matches!(first, Login::Accepted { .. }));
    let (second, after2) = verify_login(&after, &code, now().plus_secs(2), &Policy::default());
    assert_eq!(
        second,
        Login::Rejected {
            reason: Rejection::Replayed,
            tried: 1
        }
    );
    assert_eq!(after2.devices[0].throttling_failure_count, 1);
}

#[test]
fn a_code_with_the_wrong_length_for_every_device_is_malformed() {
    let file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1)],
    };
    let (login, _) = verify_login(&file, "12345", now(), &Policy::default());
    assert_eq!(
        login,
        Login::Rejected {
            reason: Rejection::Malformed,
            tried: 1
        }
    );
}

#[test]
fn spaces_inside_a_code_are_accepted_as_apps_display_them() {
    let file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1)],
    };
    let code = code_for(&file.devices[0], now());
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    let (login, _) = verify_login(&file, &spaced, now(), &Policy::default());
    assert!(matches!(login, Login::Accepted { .. }), "{login:?}");
}

#[test]
fn a_code_accepted_by_one_device_is_not_accepted_again_by_a_twin_with_the_same_key() {
    // The same secret under two names (imported twice, or added twice with
    // --key): each device keeps its own last_t, but a code is one code.
    let file = DeviceFile {
        backup: None,
        devices: vec![device("a", 1), device("twin", 1)],
    };
    let code = code_for(&file.devices[0], now());
    let (first, after) = verify_login(&file, &code, now(), &Policy::default());
    assert!(
        matches!(first, Login::Accepted { index: 0, .. }),
        "{first:?}"
    );
    let (second, after2) = verify_login(&after, &code, now().plus_secs(2), &Policy::default());
    assert_eq!(
        second,
        Login::Rejected {
            reason: Rejection::Replayed,
            tried: 2
        }
    );
    assert_eq!(after2.devices[1].last_t, file.devices[1].last_t);
    // The next step's code is still good, on the first twin.
    let later = now().plus_secs(30);
    let (third, _) = verify_login(
        &after2,
        &code_for(&file.devices[0], later),
        later,
        &Policy {
            throttle_factor: 0,
            ..Policy::default()
        },
    );
    assert!(matches!(third, Login::Accepted { .. }), "{third:?}");
}

#[test]
fn finding_5_a_used_8_digit_code_cannot_be_replayed_as_6_digits() {
    // Issue 11, finding 5: a 6-digit code is the last six digits of the
    // 8-digit code for the same counter, so devices with the same key and
    // algorithm are twins whatever their length.
    let mut long = device("long", 1);
    long.digits = 8;
    let short = device("short", 1);
    let file = DeviceFile {
        devices: vec![long, short],
        ..DeviceFile::default()
    };
    let code = code_for(&file.devices[0], now());
    assert_eq!(code.len(), 8);
    let (first, after) = verify_login(&file, &code, now(), &Policy::default());
    assert!(
        matches!(first, Login::Accepted { index: 0, .. }),
        "{first:?}"
    );
    let (second, _) = verify_login(&after, &code[2..], now().plus_secs(1), &Policy::default());
    assert!(
        !matches!(second, Login::Accepted { .. }),
        "the last six digits of a used 8-digit code were accepted: {second:?}"
    );
}

#[test]
fn throttle_max_caps_one_delay_and_comes_from_the_settings() {
    let mut d = device("a", 1);
    d.throttling_failure_count = 20; // 2^19 s, six days
    d.throttling_failure_timestamp = Some(now());
    let file = DeviceFile {
        devices: vec![d],
        ..DeviceFile::default()
    };
    let capped = Policy {
        throttle_max: Some(60),
        ..Policy::default()
    };
    assert_eq!(capped.delay_secs(20), 60);
    assert_eq!(Policy::default().delay_secs(20), 1 << 19);
    assert_eq!(
        readiness(&file, now().plus_secs(59), &capped),
        Readiness::AllThrottled {
            until: now().plus_secs(60)
        }
    );
    assert_eq!(
        readiness(&file, now().plus_secs(60), &capped),
        Readiness::Ready
    );
    let s =
        shared::Settings::parse("throttle_max = 3600\n", std::path::Path::new("/x.toml")).unwrap();
    assert_eq!(s.policy.throttle_max, Some(3600));
    assert!(
        shared::Settings::parse("throttle_max = 0\n", std::path::Path::new("/x.toml")).is_err()
    );
}
