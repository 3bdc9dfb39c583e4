//! Core cost of a login's arithmetic: HOTP, django-otp verification at
//! tolerance 1 and 10 (worst case: a wrong code, so every candidate of the
//! window is hashed), and the raw HMAC on the same input as the floor.
//!
//! `make bench` (bench/run.sh) runs this and reports verify as a multiple of
//! `(2 * tolerance + 1) * raw HMAC`. Benchmarks print figures; they never fail
//! on timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hmac::{Hmac, Mac};

use shared::device::{Device, Params};
use shared::oath::{hotp, time_step};
use shared::verify::{verify, Policy, Verdict};
use shared::{Algorithm, Secret, Timestamp};

/// A fixed instant, so every run hashes the same counters.
const NOW: i64 = 1_700_000_000;

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

/// A key of the algorithm's natural length (what totp-enroll generates).
fn key(algorithm: Algorithm) -> Vec<u8> {
    (0..algorithm.new_key_len())
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
        .collect()
}

/// The raw HMAC over the 8-byte big-endian counter, key set-up included: the
/// floor one HOTP computation cannot go under.
fn raw_hmac(algorithm: Algorithm, key: &[u8], counter: u64) -> u8 {
    let msg = counter.to_be_bytes();
    match algorithm {
        Algorithm::Sha1 => {
            let mut m = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
            m.update(&msg);
            m.finalize().into_bytes()[19]
        }
        Algorithm::Sha256 => {
            let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(&msg);
            m.finalize().into_bytes()[31]
        }
        Algorithm::Sha512 => {
            let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(key).unwrap();
            m.update(&msg);
            m.finalize().into_bytes()[63]
        }
    }
}

/// A confirmed, never-used device and a 6-digit code that matches no step of
/// its window at `NOW`, so `verify` hashes all `2 * tolerance + 1` candidates.
fn device_and_wrong_code(algorithm: Algorithm, tolerance: u32) -> (Device, String) {
    let params = Params {
        algorithm,
        tolerance,
        ..Params::default()
    };
    let mut device = Device::new(
        "phone",
        Secret::new(key(algorithm)),
        &params,
        Timestamp::from_secs(NOW - 3600),
    );
    device.confirmed = true;
    let centre = time_step(NOW, 0, 30, 0);
    let window: Vec<String> = (-i64::from(tolerance)..=i64::from(tolerance))
        .map(|o| hotp(algorithm, &key(algorithm), (centre + o) as u64, 6))
        .collect();
    let wrong = (0..1_000_000u32)
        .map(|v| format!("{v:06}"))
        .find(|c| !window.contains(c))
        .unwrap();
    (device, wrong)
}

fn core(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    let counter = time_step(NOW, 0, 30, 0) as u64;
    for algorithm in ALGORITHMS {
        let k = key(algorithm);
        let name = algorithm.name();
        g.bench_with_input(BenchmarkId::new("hmac", name), &k, |b, k| {
            b.iter(|| raw_hmac(algorithm, black_box(k), black_box(counter)))
        });
        g.bench_with_input(BenchmarkId::new("hotp", name), &k, |b, k| {
            b.iter(|| hotp(algorithm, black_box(k), black_box(counter), 6))
        });
        for tolerance in [1u32, 10] {
            let (device, wrong) = device_and_wrong_code(algorithm, tolerance);
            let policy = Policy {
                sync: true,
                throttle_factor: 0,
                ..Policy::default()
            };
            let now = Timestamp::from_secs(NOW);
            // The bench measures what it claims: a refusal after the full window.
            let (verdict, _) = verify(&device, &wrong, now, &policy);
            assert!(
                matches!(verdict, Verdict::Rejected(_)),
                "{name} t{tolerance}: {verdict:?}"
            );
            g.bench_with_input(
                BenchmarkId::new(format!("verify_t{tolerance}"), name),
                &(device, wrong),
                |b, (device, wrong)| {
                    b.iter(|| verify(black_box(device), black_box(wrong), now, &policy))
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short: `make bench` must stay within minutes on a shared 2-core machine.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(40);
    targets = core
}
criterion_main!(benches);
