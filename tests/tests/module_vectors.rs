//! Every verify scenario of `shared/tests/data/django-otp.json` (a copy of
//! `../shared/vectors/django-otp.json`, recorded
//! from the real django-otp 1.7.5 with a fixed clock) replayed **through the
//! built module**: a real pamtester login under pam_wrapper for each event,
//! at the event's instant (libfaketime, the clock frozen there, fractions
//! of a second included), then the device file read back with `shared` and
//! compared with django-otp's persisted state: drift, last_t, failure count
//! and timestamp, last use. A throttled event must also be refused without a
//! prompt, with `PAM_MAXTRIES` and the remaining wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pam_totp_tests::pam::{device, module, DeviceDir, FakeTime, PamResult, Pamtester, Services};
use pam_totp_tests::sys::skip_unless_root;
use serde_json::Value;
use shared::Timestamp;

const USER: &str = "root";

fn vectors() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/data/django-otp.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn timestamp(v: &Value) -> Option<Timestamp> {
    v.as_f64().map(Timestamp::from_secs_f64)
}

/// Replays the scenario `name` through the module.
fn replay(name: &str) {
    if !skip_unless_root(name) {
        return;
    }
    let all = vectors();
    let scenario = all["verify_scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    let settings = &scenario["settings"];
    let init = &scenario["initial"];

    let devices = DeviceDir::new().unwrap();
    let services = Services::new().unwrap();
    let mut args = format!(
        "{} config={} throttle_factor={}",
        devices.path_arg(),
        devices.settings().unwrap().display(),
        settings["OTP_TOTP_THROTTLE_FACTOR"].as_u64().unwrap()
    );
    if settings["OTP_TOTP_SYNC"] == false {
        args.push_str(" no_sync");
    }
    services.probe("totp", &module().unwrap(), &args).unwrap();

    let mut d = device("dev", init["key_hex"].as_str().unwrap()).unwrap();
    d.step = init["step"].as_u64().unwrap() as u32;
    d.t0 = init["t0"].as_i64().unwrap();
    d.digits = init["digits"].as_u64().unwrap() as u32;
    d.tolerance = init["tolerance"].as_u64().unwrap() as u32;
    d.drift = init["drift"].as_i64().unwrap() as i16;
    d.last_t = init["last_t"].as_i64().unwrap();
    d.throttling_failure_count = init["throttling_failure_count"].as_u64().unwrap() as u32;
    d.throttling_failure_timestamp = timestamp(&init["throttling_failure_timestamp"]);
    d.last_used_at = timestamp(&init["last_used_at"]);
    devices.write(USER, &[d]).unwrap();

    for (i, event) in scenario["events"].as_array().unwrap().iter().enumerate() {
        let time = event["time"].as_f64().unwrap();
        let token = event["token"].as_str().unwrap();
        let want = &event["expected"];
        let ctx = format!("{name} event {i} at {time} ({})", event["note"]);
        let run = Pamtester::new(&services, "totp", USER)
            .answers(&[token])
            .at(FakeTime::at(time))
            .run()
            .unwrap();

        let allowed = want["verify_is_allowed_before"].as_bool().unwrap();
        let expected = match (want["result"].as_bool().unwrap(), allowed) {
            (true, _) => PamResult::Success,
            (false, true) => PamResult::AuthErr,
            (false, false) => PamResult::MaxTries,
        };
        assert_eq!(run.result, expected, "{ctx}: {run}");
        assert_eq!(
            run.prompted(),
            allowed,
            "prompted iff allowed; {ctx}: {run}"
        );
        if !allowed {
            let until = want["locked_until"].as_f64().unwrap();
            let secs = (until - time).ceil() as i64;
            let unit = if secs == 1 { "second" } else { "seconds" };
            let msg = format!("try again in {secs} {unit}.");
            assert!(run.stderr.contains(&msg), "{ctx}: want {msg:?}: {run}");
        }

        let s = devices.read(USER).unwrap().devices[0].clone();
        assert_eq!(
            i64::from(s.drift),
            want["drift"].as_i64().unwrap(),
            "drift; {ctx}"
        );
        assert_eq!(s.last_t, want["last_t"].as_i64().unwrap(), "last_t; {ctx}");
        assert_eq!(
            u64::from(s.throttling_failure_count),
            want["throttling_failure_count"].as_u64().unwrap(),
            "throttling_failure_count; {ctx}"
        );
        assert_eq!(
            s.throttling_failure_timestamp,
            timestamp(&want["throttling_failure_timestamp"]),
            "throttling_failure_timestamp; {ctx}"
        );
        assert_eq!(
            s.last_used_at,
            timestamp(&want["last_used_at"]),
            "last_used_at; {ctx}"
        );
    }
}

/// One test per scenario, named after it.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_verify_scenario_of_the_vectors_has_a_test_here() {
            let mine = [$(stringify!($name)),*];
            let all = vectors();
            let names: Vec<&str> = all["verify_scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, mine, "add the new scenarios to scenarios!()");
        }
    };
}

scenarios!(
    basic_accept_replay_throttle,
    tolerance_window_and_drift_sync,
    sync_disabled,
    throttle_exponential_factor1,
    throttle_disabled_factor0,
    loop_order_first_match_wins,
    tolerance_2_and_8_digits_step60_t0,
    near_epoch_negative_t_skipped,
    fractional_time_truncation,
);
