//! Issue 11, the store-level findings, through the real module
//! (pam_wrapper + pamtester): regression tests named after the finding they
//! pin. The store-only findings (6, 8, 9) are in `shared/tests/hardening.rs`;
//! the fault-injection matrix is `tests/tests/faults.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_now, device, module, random_key_hex, wrong_code, DeviceDir, PamResult, Pamtester, Run,
    Services,
};
use pam_totp_tests::sys::TestUser;
use shared::device::{Device, DeviceFile};
use shared::Timestamp;

/// The user of these tests: always present, no home involved (central mode).
const USER: &str = "root";

struct Fixture {
    services: Services,
    devices: DeviceDir,
    module: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            services: Services::new().unwrap(),
            devices: DeviceDir::new().unwrap(),
            module: module().unwrap(),
        };
        // throttle_factor=0: nothing is ever blocked, so every attempt
        // prompts and is compared; the failure count still moves (§4).
        f.services
            .probe(
                "totp",
                &f.module,
                &format!(
                    "{} config={} throttle_factor=0",
                    f.devices.path_arg(),
                    f.devices.settings().unwrap().display()
                ),
            )
            .unwrap();
        f
    }

    fn login(&self, code: &str, wrapper: &[&str]) -> Run {
        Pamtester::new(&self.services, "totp", USER)
            .answers(&[code])
            .wrapped(wrapper)
            .run()
            .unwrap()
    }

    fn state(&self) -> Device {
        self.devices.read(USER).unwrap().devices[0].clone()
    }
}

/// The PAM result in a word; a process killed by a signal (SIGXFSZ) says so.
fn short(run: &Run) -> String {
    match (&run.result, run.exit) {
        (PamResult::Other(_), None) => "killed by a signal".into(),
        (PamResult::Other(_), Some(code)) => format!("exit {code}"),
        (r, _) => format!("{r:?}"),
    }
}

/// A device that has been used before (a success some steps ago): the
/// state a wrong code and a right code both start from.
fn used_device() -> Device {
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    let now = Timestamp::now();
    d.last_t = now.secs_floor() / 30 - 10;
    d.last_used_at = Some(Timestamp::from_secs(now.secs_floor() - 300));
    d
}

/// Finding 1 (High): sudo and su keep their caller's `RLIMIT_FSIZE`. A
/// failure used to make the state file longer than a success, so a limit
/// between the two sizes made every wrong code's write fail (refused, never
/// counted) while a right code still fitted and was accepted: unthrottled
/// guessing. Property, for every limit around the file's size: if a wrong
/// code goes uncounted under a limit, a right code is refused under it too.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_1_a_file_size_limit_cannot_make_a_wrong_code_go_uncounted() {
    require_root("finding_1_a_file_size_limit_cannot_make_a_wrong_code_go_uncounted");
    let f = Fixture::new();
    let d = used_device();
    let start = DeviceFile {
        devices: vec![d.clone()],
        ..DeviceFile::default()
    }
    .to_toml(USER);
    let base = start.len();
    let mut broken = Vec::new();
    let mut seen = Vec::new();
    // Every limit from well under today's size to well over a failure's.
    for limit in (base.saturating_sub(40)..base + 200).step_by(8) {
        let fsize = format!("--fsize={limit}");
        let wrapper = ["prlimit", fsize.as_str()];

        f.devices.write(USER, std::slice::from_ref(&d)).unwrap();
        let wrong = f.login(&wrong_code(&d), &wrapper);
        let after_wrong = f.state();
        let counted = after_wrong.throttling_failure_count == d.throttling_failure_count + 1;
        assert_ne!(wrong.result, PamResult::Success, "limit {limit}: {wrong}");

        f.devices.write(USER, std::slice::from_ref(&d)).unwrap();
        let right = f.login(&code_now(&d), &wrapper);
        let accepted = right.result == PamResult::Success;
        if accepted {
            // Accepted only with its state on disk.
            let s = f.state();
            assert!(s.last_t > d.last_t, "limit {limit}: accepted, state {s:?}");
            assert_eq!(s.throttling_failure_count, 0, "limit {limit}");
        }
        seen.push(format!(
            "limit {limit}: wrong code {} ({}), right code {}",
            if counted { "counted" } else { "uncounted" },
            short(&wrong),
            short(&right)
        ));
        if !counted && accepted {
            broken.push(limit);
        }
    }
    eprintln!("{}", seen.join("\n"));
    assert!(
        broken.is_empty(),
        "under RLIMIT_FSIZE {broken:?} a wrong code went uncounted while a right code was \
         accepted (file of {base} bytes before the attempt):\n{}",
        seen.join("\n")
    );
}

/// Finding 9: with per-user files and `nullok`, a home that is not there
/// (not mounted yet: ecryptfs, pam_mount, systemd-homed) used to read as
/// "no device", and `nullok` let the login through without a code. It is
/// `PAM_AUTHINFO_UNAVAIL`; a home that is there without the device
/// directory is still "no device" (`PAM_IGNORE` under `nullok`).
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_9_with_nullok_a_missing_home_is_authinfo_unavail_not_ignored() {
    require_root("finding_9_with_nullok_a_missing_home_is_authinfo_unavail_not_ignored");
    let user = TestUser::create(&format!("pthome{}", std::process::id() % 100_000)).unwrap();
    let f = Fixture::new();
    f.services
        .probe(
            "home-nullok",
            &f.module,
            &format!("nullok config={}", f.devices.settings().unwrap().display()),
        )
        .unwrap();
    let login = || {
        Pamtester::new(&f.services, "home-nullok", &user.name)
            .answers(&["123456"])
            .run()
            .unwrap()
    };
    // The home is there, the device directory is not: no device.
    let run = login();
    assert_eq!(run.result, PamResult::Ignored, "{run}");
    // The home is away (as before its file system is mounted).
    let away = user.home.with_extension("away");
    std::fs::rename(&user.home, &away).unwrap();
    let run = login();
    std::fs::rename(&away, &user.home).unwrap();
    assert_eq!(run.result, PamResult::AuthInfoUnavail, "{run}");
    assert!(!run.prompted(), "{run}");
}
