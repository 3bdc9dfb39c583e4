//! Properties of the verification rules that must hold for every input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;
use shared::device::{Device, DeviceFile, Params};
use shared::oath::{hotp, Algorithm};
use shared::verify::{
    current_step, throttle_delay_secs, verify, Policy, Verdict, MAX_THROTTLE_DELAY_SECS,
};
use shared::{Secret, Timestamp};

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

prop_compose! {
    fn device()(
        key in proptest::collection::vec(any::<u8>(), 10..=64),
        algorithm in algorithm(),
        digits in prop_oneof![Just(6u32), Just(8u32)],
        step in 1u32..=3600,
        t0 in -1_000_000i64..1_000_000,
        tolerance in 0u32..=10,
        drift in -20i16..=20,
        last_t_back in -1i64..=25,
        now in 1_000_000i64..4_000_000_000,
        count in 0u32..6,
    ) -> (Device, Timestamp) {
        let now = Timestamp::from_secs(now);
        let mut d = Device::new("phone", Secret::new(key), &Params { algorithm, digits, step, t0, tolerance }, now);
        d.confirmed = true;
        d.drift = drift;
        let centre = current_step(&d, now);
        d.last_t = if last_t_back < 0 { -1 } else { (centre - 12 + last_t_back).max(-1) };
        d.throttling_failure_count = count;
        (d, now)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_step_at_or_before_last_t_is_never_accepted((d, now) in device(), offset in -12i64..=12) {
        // Any code from around the window, including the replayed ones.
        let t = current_step(&d, now) + offset;
        prop_assume!(t >= 0);
        let code = hotp(d.algorithm, d.key.expose(), t as u64, d.digits);
        let policy = Policy { sync: true, throttle_factor: 0, ..Policy::default() };
        let (verdict, next) = verify(&d, &code, now, &policy);
        if let Verdict::Accepted { step, .. } = verdict {
            prop_assert!(step > d.last_t, "accepted step {} <= last_t {}", step, d.last_t);
            prop_assert_eq!(next.last_t, step);
        } else {
            prop_assert_eq!(next.last_t, d.last_t);
        }
    }

    #[test]
    fn one_success_moves_drift_by_at_most_the_tolerance((d, now) in device(), offset in -10i64..=10) {
        let t = current_step(&d, now) + offset;
        prop_assume!(t >= 0);
        let code = hotp(d.algorithm, d.key.expose(), t as u64, d.digits);
        let policy = Policy { sync: true, throttle_factor: 0, ..Policy::default() };
        let (verdict, next) = verify(&d, &code, now, &policy);
        let moved = (i64::from(next.drift) - i64::from(d.drift)).abs();
        prop_assert!(moved <= i64::from(d.tolerance), "{:?} moved drift by {}", verdict, moved);
        if !matches!(verdict, Verdict::Accepted { .. }) {
            prop_assert_eq!(moved, 0);
        }
    }

    #[test]
    fn the_throttle_delay_never_shrinks_as_failures_grow(factor in 0u32..=100_000, count in 0u32..=200) {
        let a = throttle_delay_secs(count, factor);
        let b = throttle_delay_secs(count + 1, factor);
        prop_assert!(b >= a);
        prop_assert!(b <= MAX_THROTTLE_DELAY_SECS);
        if factor > 0 && count > 0 {
            prop_assert!(a >= i64::from(factor));
        }
    }

    #[test]
    fn verification_never_panics_on_any_input((d, now) in device(), input in ".{0,80}", factor in 0u32..4) {
        let policy = Policy { sync: true, throttle_factor: factor, ..Policy::default() };
        let (verdict, next) = verify(&d, &input, now, &policy);
        // Whatever it says, a refusal is recorded and nothing else changes.
        if let Verdict::Rejected(_) = verdict {
            prop_assert_eq!(next.throttling_failure_count, d.throttling_failure_count + 1);
            prop_assert_eq!(next.last_t, d.last_t);
        }
    }

    #[test]
    fn parsing_never_panics_on_any_text(text in "(?s).{0,400}") {
        let _ = DeviceFile::parse(&text, Path::new("/x/devices.toml"));
        let _ = shared::Settings::parse(&text, Path::new("/etc/x.toml"));
    }

    #[test]
    fn every_valid_device_survives_the_file_format((d, _now) in device(), name in "[a-zA-Z0-9 _.:é-]{1,32}") {
        let mut d = d;
        d.name = name;
        d.last_used_at = Some(Timestamp::from_micros(1_700_000_000_123_456));
        let file = DeviceFile { devices: vec![d] };
        let text = file.to_toml("alice");
        let back = DeviceFile::parse(&text, Path::new("/x/devices.toml")).unwrap();
        prop_assert_eq!(back, file);
    }
}
