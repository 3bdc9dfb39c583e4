//! Backup codes through the built module (issue 12; docs/design.md §4, §8):
//! real pamtester logins under pam_wrapper, each at a frozen instant
//! (libfaketime), the device file read back with `shared`.
//!
//! - every event of the vectors' `static_scenarios` (django-otp 1.7.5's
//!   `StaticDevice`), translated to our code format exactly as
//!   `shared/tests/backup_codes.rs` explains;
//! - a user with a TOTP device and a backup set, against django-otp's
//!   `match_token` with each device free or throttled;
//! - 16 simultaneous logins with one unused backup code, 20 rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use pam_totp_tests::kit::{
    assert_django_backup_state, backup_code_for, require_root, typed_backup_code,
};
use pam_totp_tests::pam::{
    code_at, device, module, DeviceDir, FakeTime, PamResult, Pamtester, Services,
};
use pam_totp_tests::sys::PamService;
use serde_json::Value;
use shared::backup::{BackupCodes, CodeFormat};
use shared::device::{Device, DeviceFile};
use shared::Timestamp;

const USER: &str = "root";

fn vectors() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/data/django-otp.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A probe service over the module with the default settings
/// (`static_throttle_factor` 1, django-otp's default).
fn setup() -> (DeviceDir, Services) {
    let devices = DeviceDir::new().unwrap();
    let services = Services::new().unwrap();
    let args = format!(
        "{} config={}",
        devices.path_arg(),
        devices.settings().unwrap().display()
    );
    services.probe("totp", &module().unwrap(), &args).unwrap();
    (devices, services)
}

fn login(services: &Services, answer: &str, at: f64) -> pam_totp_tests::pam::Run {
    Pamtester::new(services, "totp", USER)
        .answers(&[answer])
        .at(FakeTime::at(at))
        .run()
        .unwrap()
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn every_django_static_scenario_is_reproduced_through_the_module() {
    require_root("every_django_static_scenario_is_reproduced_through_the_module");
    let all = vectors();
    for sc in all["static_scenarios"].as_array().unwrap() {
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
        let (devices, services) = setup();
        devices
            .write_file(
                USER,
                &DeviceFile {
                    devices: vec![],
                    backup: Some(set),
                },
            )
            .unwrap();
        for (i, ev) in sc["events"].as_array().unwrap().iter().enumerate() {
            let time = ev["time"].as_f64().unwrap();
            let answer = typed_backup_code(ev["token"].as_str().unwrap(), &initial);
            let want = &ev["expected"];
            let ctx = format!("{name} event {i} at {time} ({})", ev["note"]);
            let run = login(&services, &answer, time);
            let allowed = want["verify_is_allowed_before"].as_bool().unwrap();
            let expected = match (want["result"].as_bool().unwrap(), allowed) {
                (true, _) => PamResult::Success,
                (false, true) => PamResult::AuthErr,
                // The set is the only device: throttled, nothing is asked.
                (false, false) => PamResult::MaxTries,
            };
            assert_eq!(run.result, expected, "{ctx}: {run}");
            assert_eq!(
                run.prompted(),
                allowed,
                "prompted iff allowed; {ctx}: {run}"
            );
            let left = want["remaining_tokens"].as_array().unwrap().len();
            if expected == PamResult::Success {
                let noun = if left == 1 { "code" } else { "codes" };
                assert!(
                    run.stdout.contains(&format!("{left} backup {noun} left")),
                    "{ctx}: {run}"
                );
                assert!(
                    run.log_text()
                        .contains(&format!("accepted: user {USER}, backup code, {left} left")),
                    "{ctx}: {run}"
                );
                if left <= 2 {
                    assert!(run.stdout.contains("running out of backup codes"), "{ctx}");
                }
            }
            let lower = answer.to_lowercase();
            assert!(
                !run.log_text().to_lowercase().contains(&lower),
                "the code is logged; {ctx}: {run}"
            );

            let s = devices.read(USER).unwrap().backup.unwrap();
            assert_django_backup_state(&s, want, &ctx);
        }
    }
}

const T: i64 = 1_700_000_000;
const CODES: [&str; 3] = ["abcde-fghjk", "mnpqr-stvwx", "01234-56789"];

fn phone() -> Device {
    device("phone", "3132333435363738393031323334353637383930").unwrap()
}

/// A user with a phone and a set of `CODES`; `phone_blocked`/`set_blocked`
/// put one failure at `T` on either (blocked for 1 s at factor 1).
fn mixed(devices: &DeviceDir, phone_blocked: bool, set_blocked: bool) {
    let mut d = phone();
    let mut set =
        BackupCodes::from_codes(&CODES, CodeFormat::Crockford10, Timestamp::from_secs(0)).unwrap();
    if phone_blocked {
        d.throttling_failure_count = 1;
        d.throttling_failure_timestamp = Some(Timestamp::from_secs(T));
    }
    if set_blocked {
        set.throttling_failure_count = 1;
        set.throttling_failure_timestamp = Some(Timestamp::from_secs(T));
    }
    devices
        .write_file(
            USER,
            &DeviceFile {
                devices: vec![d],
                backup: Some(set),
            },
        )
        .unwrap();
}

/// django-otp's `match_token(user, token)` walks the user's devices (the
/// TOTP device, then the static one) and calls `verify_token` on each
/// until one accepts; a throttled device refuses without any change, a
/// refusal counts a failure on that device. We differ in one documented
/// way: a device tried before the one that matched records nothing.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_user_with_a_phone_and_backup_codes_gets_match_token_behaviour_on_both_throttle_states() {
    require_root("a_user_with_a_phone_and_backup_codes_gets_match_token_behaviour");
    let (devices, services) = setup();
    let at = T as f64 + 0.5;
    let totp = code_at(&phone(), T);
    let state = || devices.read(USER).unwrap();

    // Both free. A TOTP code: the phone matches, the set is not tried.
    mixed(&devices, false, false);
    let run = login(&services, &totp, at);
    assert_eq!(run.result, PamResult::Success, "{run}");
    let s = state();
    assert_eq!(s.devices[0].last_t, T / 30);
    assert_eq!(s.backup.as_ref().unwrap().remaining(), 3);
    assert_eq!(s.backup.as_ref().unwrap().throttling_failure_count, 0);
    assert!(!run.stdout.contains("backup"), "{run}");
    // A backup code at the same prompt: the set matches, the code is gone,
    // the phone records nothing (our one difference from match_token).
    mixed(&devices, false, false);
    let run = login(&services, "ABCDE FGHJK", at);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(run.stdout.contains("2 backup codes left"), "{run}");
    let s = state();
    assert_eq!(s.devices[0].throttling_failure_count, 0);
    assert_eq!(s.backup.as_ref().unwrap().remaining(), 2);
    // A wrong code: both tried, both count.
    mixed(&devices, false, false);
    let run = login(&services, "zzzzz-zzzzz", at);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let s = state();
    assert_eq!(s.devices[0].throttling_failure_count, 1);
    assert_eq!(s.backup.as_ref().unwrap().throttling_failure_count, 1);

    // The phone blocked, the set free: a backup code works; a TOTP code is
    // refused and counts on the set only.
    mixed(&devices, true, false);
    let run = login(&services, CODES[1], at);
    assert_eq!(run.result, PamResult::Success, "{run}");
    let s = state();
    assert_eq!(s.devices[0].throttling_failure_count, 1, "untouched");
    assert_eq!(s.backup.as_ref().unwrap().remaining(), 2);
    mixed(&devices, true, false);
    let run = login(&services, &totp, at);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let s = state();
    assert_eq!(s.devices[0].throttling_failure_count, 1, "untouched");
    assert_eq!(s.devices[0].last_t, -1);
    assert_eq!(s.backup.as_ref().unwrap().throttling_failure_count, 1);

    // The set blocked, the phone free: a TOTP code works; a valid backup
    // code is refused, not consumed, and counts on the phone only.
    mixed(&devices, false, true);
    let run = login(&services, &totp, at);
    assert_eq!(run.result, PamResult::Success, "{run}");
    mixed(&devices, false, true);
    let run = login(&services, CODES[0], at);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let s = state();
    assert_eq!(s.devices[0].throttling_failure_count, 1);
    let set = s.backup.unwrap();
    assert_eq!(set.remaining(), 3, "a throttled valid code is not consumed");
    assert_eq!(set.throttling_failure_count, 1);
    assert_eq!(
        set.throttling_failure_timestamp,
        Some(Timestamp::from_secs(T))
    );

    // Both blocked: no prompt, PAM_MAXTRIES, nothing changes.
    mixed(&devices, true, true);
    let before = devices.text(USER).unwrap();
    let run = login(&services, CODES[0], at);
    assert_eq!(run.result, PamResult::MaxTries, "{run}");
    assert!(!run.prompted(), "{run}");
    assert_eq!(devices.text(USER).unwrap(), before);
    // A second later both are free again and the backup code works.
    let run = login(&services, CODES[0], T as f64 + 1.0);
    assert_eq!(run.result, PamResult::Success, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sixteen_simultaneous_logins_with_one_backup_code_let_exactly_one_in() {
    require_root("sixteen_simultaneous_logins_with_one_backup_code");
    const LOGINS: usize = 16;
    const ROUNDS: usize = 20;
    let devices = DeviceDir::new().unwrap();
    let name = format!("pam-totp-test-backup-race-{}", std::process::id());
    let _service = PamService::install(
        &name,
        &format!(
            "auth required {} {} config={}\n\
             account required pam_permit.so\n",
            module().unwrap().display(),
            devices.path_arg(),
            devices.settings().unwrap().display()
        ),
    )
    .unwrap();
    for round in 0..ROUNDS {
        // A fresh set each round: one code, unused, no throttle state.
        let new = BackupCodes::generate(1, Timestamp::now()).unwrap();
        devices
            .write_file(
                USER,
                &DeviceFile {
                    devices: vec![],
                    backup: Some(new.set),
                },
            )
            .unwrap();
        let mut children: Vec<_> = (0..LOGINS)
            .map(|_| {
                Command::new("pamtester")
                    .args([&name, USER, "authenticate"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let line = format!("{}\n", &*new.codes[0]);
        for c in &mut children {
            let mut stdin = c.stdin.take().unwrap();
            stdin.write_all(line.as_bytes()).unwrap();
        }
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let ok = outputs.iter().filter(|o| o.status.success()).count();
        let crashed: Vec<_> = outputs
            .iter()
            .filter(|o| o.status.code().is_none_or(|c| c > 1))
            .collect();
        assert!(crashed.is_empty(), "round {round}: {crashed:?}");
        assert_eq!(ok, 1, "round {round}: {ok} of {LOGINS} logins succeeded");
        let set = devices.read(USER).unwrap().backup.unwrap();
        assert_eq!(set.remaining(), 0, "round {round}");
    }
}
