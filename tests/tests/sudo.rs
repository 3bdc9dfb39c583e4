//! Real sudo with the second factor: a test user with a sudoers rule, the
//! README's sudo stack (`packaging/examples/pam.d-sudo`: password, then the
//! code) installed as its own PAM service, and `sudo -S` answering the
//! prompts on stdin.
//!
//! The machine's /etc/pam.d/sudo is never touched: the rule in
//! /etc/sudoers.d says `Defaults:<user> pam_service=sudo-totp-test-<case>`,
//! and both files are removed by guards.
//!
//! Run as root: `cargo test -p pam-totp-tests --test sudo`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::sys::{
    example, module_path, pam_stack, sudo_as, PamService, SudoRun, SudoersRule,
};
use shared::device::Device;

/// One test's machine state; fields drop in order (rule and service before
/// the account).
struct Sudo {
    _rule: SudoersRule,
    _service: PamService,
    device: Device,
    user: TestUser,
}

impl Sudo {
    fn new(case: &str, extra_args: &[&str], extra_defaults: &str) -> Self {
        let user = TestUser::create(&format!("totpe2e-sudo-{case}")).unwrap();
        let device = random_device("phone").unwrap();
        user.write_devices(std::slice::from_ref(&device)).unwrap();
        let service_name = format!("sudo-totp-test-{case}");
        let stack = pam_stack(
            &example("pam.d-sudo").unwrap(),
            &module_path().unwrap(),
            extra_args,
        )
        .unwrap();
        let service = PamService::install(&service_name, &stack).unwrap();
        // The rule an admin would write, plus what makes a test exact: its
        // own PAM service, one attempt per run, no cached credentials.
        let rule = SudoersRule::install(
            &format!("totpe2e-{case}"),
            &format!(
                "# pam-totp e2e test, removed when the test ends\n\
                 Defaults:{u} pam_service={service_name}\n\
                 Defaults:{u} passwd_tries=1, timestamp_timeout=0, !lecture{extra_defaults}\n\
                 {u} ALL=(root) ALL\n",
                u = user.name
            ),
        )
        .unwrap();
        Sudo {
            _rule: rule,
            _service: service,
            device,
            user,
        }
    }

    /// `sudo -S id -un` as the user with these answers.
    fn sudo(&self, answers: &[&str]) -> SudoRun {
        sudo_as(&self.user, answers, &["/usr/bin/id", "-un"]).unwrap()
    }

    fn ran_as_root(r: &SudoRun) -> bool {
        r.succeeded() && r.stdout.trim() == "root"
    }

    fn explain(&self, r: &SudoRun) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}--- stderr (what the user saw):\n{}--- device file:\n{}",
            r.exit,
            r.stdout,
            r.stderr,
            self.user.read_devices().unwrap_or_default()
        )
    }
}

fn shows_wait_message(text: &str) -> bool {
    // pam_totp's PAM_ERROR_MSG: "Too many failed verification codes; try
    // again in N seconds."
    text.contains("Too many failed verification codes; try again in ") && text.contains(" second")
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sudo_with_the_password_and_the_correct_code_runs_the_command() {
    require_root("sudo_with_the_password_and_the_correct_code_runs_the_command");
    let s = Sudo::new("ok", &[], "");
    let r = s.sudo(&[&s.user.password, &oathtool_code_now(&s.device).unwrap()]);
    assert!(Sudo::ran_as_root(&r), "{}", s.explain(&r));
    assert!(
        r.stderr.contains("Verification code: "),
        "{}",
        s.explain(&r)
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sudo_with_a_wrong_code_is_refused() {
    require_root("sudo_with_a_wrong_code_is_refused");
    let s = Sudo::new("wrong", &[], "");
    let r = s.sudo(&[&s.user.password, &wrong_code(&s.device)]);
    assert!(!Sudo::ran_as_root(&r), "{}", s.explain(&r));
    assert_ne!(r.exit, Some(0), "{}", s.explain(&r));
    assert!(
        r.stderr.contains("Verification code: "),
        "{}",
        s.explain(&r)
    );
    let state = s.user.read_devices().unwrap();
    assert!(
        state.contains("throttling_failure_count = 1"),
        "{}",
        s.explain(&r)
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sudo_with_a_replayed_code_is_refused() {
    require_root("sudo_with_a_replayed_code_is_refused");
    let s = Sudo::new("replay", &[], "");
    let code = oathtool_code_now(&s.device).unwrap();
    let r = s.sudo(&[&s.user.password, &code]);
    assert!(Sudo::ran_as_root(&r), "first use: {}", s.explain(&r));
    let r = s.sudo(&[&s.user.password, &code]);
    assert!(!Sudo::ran_as_root(&r), "replay: {}", s.explain(&r));
}

/// Whether this sudo knows `Defaults !pam_silent` (sudo 1.9.16 and later).
/// Older ones always call pam_authenticate with PAM_SILENT, and pam_totp
/// then keeps its messages to itself (docs/design.md §6), like pam_faillock.
fn sudo_has_pam_silent_option() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(probe.path(), "Defaults !pam_silent\n").unwrap();
    std::process::Command::new("visudo")
        .arg("-cqf")
        .arg(probe.path())
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sudo_after_repeated_failures_is_throttled_with_a_wait_message() {
    require_root("sudo_after_repeated_failures_is_throttled_with_a_wait_message");
    // Default throttling: each failure doubles the block (1 s, 2 s, 4 s…),
    // so one of the next attempts, made as fast as sudo allows, lands in it.
    let verbose = sudo_has_pam_silent_option();
    let s = Sudo::new("throttle", &[], if verbose { ", !pam_silent" } else { "" });
    let started = Instant::now();
    let mut failures = 0;
    let throttled = loop {
        let r = s.sudo(&[&s.user.password, &wrong_code(&s.device)]);
        assert!(!Sudo::ran_as_root(&r), "{}", s.explain(&r));
        assert!(
            failures < 8 && started.elapsed() < Duration::from_secs(60),
            "never throttled for long after {failures} failures: {}",
            s.explain(&r)
        );
        if r.stderr.contains("Verification code: ") {
            failures += 1;
            continue;
        }
        assert!(
            failures >= 1,
            "throttled before any failure: {}",
            s.explain(&r)
        );
        // sudo's failure delay (pam_unix, 2 s) runs after each refusal: go
        // on until the block outlasts one more attempt.
        let remaining = s.user.throttle_remaining().unwrap();
        if remaining > 4.0 {
            break r;
        }
        std::thread::sleep(Duration::from_secs_f64(remaining + 0.2));
    };
    // While blocked, the correct code is not even asked for, and the attempt
    // changes nothing in the device file.
    let state = s.user.read_devices().unwrap();
    let r = s.sudo(&[&s.user.password, &oathtool_code_now(&s.device).unwrap()]);
    assert!(!Sudo::ran_as_root(&r), "{}", s.explain(&r));
    assert!(
        !r.stderr.contains("Verification code: "),
        "{}",
        s.explain(&r)
    );
    assert_eq!(
        s.user.read_devices().unwrap(),
        state,
        "a throttled attempt changed the state"
    );
    if verbose {
        assert!(
            shows_wait_message(&throttled.stderr),
            "no wait message: {}",
            s.explain(&throttled)
        );
        assert!(
            shows_wait_message(&r.stderr),
            "no wait message: {}",
            s.explain(&r)
        );
    } else {
        // PAM_SILENT is honoured: nothing from the module reaches the user.
        assert!(
            !shows_wait_message(&r.stderr),
            "message despite PAM_SILENT: {}",
            s.explain(&r)
        );
        eprintln!(
            "note: this sudo has no `Defaults !pam_silent` (added in sudo 1.9.16) and always \
             passes PAM_SILENT, so the wait message cannot be shown; checked the refusal only"
        );
    }
}
