//! Every verify scenario of `shared/tests/data/django-otp.json` (the
//! project's copy of the vectors recorded from the real django-otp 1.7.5 with a fixed clock) replayed **through the
//! built module**: a real pamtester login under pam_wrapper for each event,
//! at the event's instant (libfaketime, the clock frozen there, fractions
//! of a second included), then the device file read back with `shared` and
//! compared with django-otp's persisted state: drift, last_t, failure count
//! and timestamp, last use. A throttled event must also be refused without a
//! prompt, with `PAM_MAXTRIES` and the remaining wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_totp_tests::kit::django_vectors as vectors;
use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::pam::{module, DeviceDir, FakeTime, PamResult, Pamtester, Services};

const USER: &str = "root";

/// Replays the scenario `name` through the module.
fn replay(name: &str) {
    require_root(name);
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

    devices.write(USER, &[django_device(init)]).unwrap();

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

        let s = &devices.read(USER).unwrap().devices[0];
        assert_django_state(s, want, &ctx);
    }
}

/// One test per scenario, named after it.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            #[cfg_attr(not_root, ignore = "needs root")]
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
