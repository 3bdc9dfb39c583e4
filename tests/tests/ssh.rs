//! Real SSH logins with the second factor: a private `sshd` on 127.0.0.1
//! (its own config, host key and PAM service, see `pam_totp_tests::sys`)
//! and the real `ssh` client on a terminal, answering the prompts as a user
//! would. The PAM stacks and sshd_config lines are the README's, read from
//! `packaging/examples/`.
//!
//! Three setups:
//! * key plus code (`pam.d-sshd-publickey`, `sshd_config.d-totp-publickey.conf`,
//!   `AuthenticationMethods publickey,keyboard-interactive`);
//! * password then code (`pam.d-sshd`, `sshd_config.d-totp.conf`);
//! * password and code at one prompt (`pam.d-sshd-forward-pass`).
//!
//! Run as root: `cargo test -p pam-totp-tests --test ssh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::sys::{
    example, module_path, pam_stack, sshd_config_lines, ClientKey, Session, Sshd,
};
use shared::device::Device;

const REMOTE: &str = "echo \"logged in as $(id -un)\"";

/// One test's machine state. Fields drop in order: sshd (and its PAM
/// service) first, then the account.
struct Login {
    sshd: Sshd,
    key: Option<ClientKey>,
    device: Option<Device>,
    user: TestUser,
}

impl Login {
    fn ssh(&self, answers: &[&str]) -> Session {
        self.sshd
            .login(&self.user, self.key.as_ref(), answers, REMOTE)
            .unwrap_or_else(|e| panic!("running ssh: {e}\nsshd log:\n{}", self.sshd.log()))
    }

    fn device(&self) -> &Device {
        self.device.as_ref().expect("this setup has a device")
    }

    fn code(&self) -> String {
        oathtool_code_now(self.device()).unwrap()
    }

    fn wrong_code(&self) -> String {
        wrong_code(self.device())
    }

    fn logged_in(&self, s: &Session) -> bool {
        s.succeeded()
            && s.transcript
                .contains(&format!("logged in as {}", self.user.name))
    }

    /// The login failed and the user was told "Permission denied".
    fn assert_denied(&self, s: &Session) {
        assert!(!self.logged_in(s), "{}", self.explain(s));
        assert!(
            s.transcript.contains("Permission denied"),
            "{}",
            self.explain(s)
        );
    }

    /// Context for a failed assertion: what the user saw and what sshd said.
    fn explain(&self, s: &Session) -> String {
        format!(
            "exit {:?}, {} prompt(s); the user saw:\n{}\n--- sshd log:\n{}",
            s.exit,
            s.prompts,
            s.transcript,
            self.sshd.log()
        )
    }
}

enum Setup {
    /// publickey, then PAM asks for the code.
    KeyAndCode,
    /// PAM asks for the password, then the code.
    PasswordThenCode,
    /// PAM asks once, "Password & verification code: ".
    ForwardPass,
}

/// Creates the user `totpe2e-<case>` (with a device unless `with_device` is
/// false), installs the setup's PAM stack with `extra_args` on the
/// pam_totp.so line, and starts sshd.
fn setup(case: &str, setup: &Setup, with_device: bool, extra_args: &[&str]) -> Login {
    let user = TestUser::create(&format!("totpe2e-{case}")).unwrap();
    let device = if with_device {
        let d = random_device("phone").unwrap();
        user.write_devices(std::slice::from_ref(&d)).unwrap();
        Some(d)
    } else {
        None
    };
    let (pam_example, sshd_example) = match setup {
        Setup::KeyAndCode => ("pam.d-sshd-publickey", "sshd_config.d-totp-publickey.conf"),
        Setup::PasswordThenCode => ("pam.d-sshd", "sshd_config.d-totp.conf"),
        Setup::ForwardPass => ("pam.d-sshd-forward-pass", "sshd_config.d-totp.conf"),
    };
    let module = module_path().unwrap();
    let stack = pam_stack(&example(pam_example).unwrap(), &module, extra_args).unwrap();
    let config = sshd_config_lines(&example(sshd_example).unwrap());
    let key = match setup {
        Setup::KeyAndCode => {
            let key = ClientKey::generate().unwrap();
            user.authorize_key(&key).unwrap();
            Some(key)
        }
        Setup::PasswordThenCode | Setup::ForwardPass => None,
    };
    let sshd = Sshd::start(case, &stack, &config, &user).unwrap();
    Login {
        sshd,
        key,
        device,
        user,
    }
}

/// The throttle message (PAM_ERROR_MSG) tells the user to wait, with a time.
fn shows_wait_message(transcript: &str) -> bool {
    // pam_totp's PAM_ERROR_MSG: "Too many failed verification codes; try
    // again in N seconds."
    transcript.contains("Too many failed verification codes; try again in ")
        && transcript.contains(" second")
}

// --- key plus code ---------------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_key_and_the_correct_code_run_a_remote_command() {
    require_root("a_key_and_the_correct_code_run_a_remote_command");
    let l = setup("key-ok", &Setup::KeyAndCode, true, &[]);
    let s = l.ssh(&[&l.code()]);
    eprintln!(
        "--- a successful login, as the user saw it:\n{}",
        s.transcript
    );
    assert!(l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(s.prompts, 1, "one prompt, for the code: {}", l.explain(&s));
    assert!(
        s.transcript.contains("Verification code: "),
        "{}",
        l.explain(&s)
    );
    // The module recorded the accepted step.
    let state = l.user.read_devices().unwrap();
    assert!(
        !state.contains("last_t = -1"),
        "last_t not updated:\n{state}"
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_key_and_a_wrong_code_are_denied() {
    require_root("a_key_and_a_wrong_code_are_denied");
    let l = setup("key-wrong", &Setup::KeyAndCode, true, &[]);
    let s = l.ssh(&[&l.wrong_code()]);
    eprintln!("--- a refused login, as the user saw it:\n{}", s.transcript);
    assert_eq!(s.exit, Some(255), "{}", l.explain(&s));
    l.assert_denied(&s);
    let state = l.user.read_devices().unwrap();
    assert!(
        state.contains("throttling_failure_count = 1"),
        "the failure was not recorded:\n{state}"
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_code_replayed_on_a_second_connection_is_denied() {
    require_root("a_code_replayed_on_a_second_connection_is_denied");
    let l = setup("key-replay", &Setup::KeyAndCode, true, &[]);
    let code = l.code();
    let first = l.ssh(&[&code]);
    assert!(l.logged_in(&first), "first use: {}", l.explain(&first));
    let second = l.ssh(&[&code]);
    assert!(!l.logged_in(&second), "replay: {}", l.explain(&second));
    assert!(
        second.transcript.contains("Permission denied"),
        "{}",
        l.explain(&second)
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn after_repeated_failures_the_next_attempt_is_throttled_with_a_wait_message() {
    require_root("after_repeated_failures_the_next_attempt_is_throttled_with_a_wait_message");
    // Default settings (throttle_factor 1): after n failures the device is
    // blocked for 2^(n-1) s. Wrong codes on new connections as fast as a
    // client can make them: each failure doubles the block, so one of the
    // next attempts must land inside it.
    let l = setup("key-throttle", &Setup::KeyAndCode, true, &[]);
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let s = l.ssh(&[&l.wrong_code()]);
        assert!(!l.logged_in(&s), "{}", l.explain(&s));
        assert!(
            failures < 8 && started.elapsed() < Duration::from_secs(60),
            "never throttled for long after {failures} failures: {}",
            l.explain(&s)
        );
        if s.prompts == 1 {
            failures += 1;
            continue;
        }
        // Throttled: no prompt, the wait message instead.
        assert_eq!(s.prompts, 0, "{}", l.explain(&s));
        assert!(
            failures >= 1,
            "throttled before any failure: {}",
            l.explain(&s)
        );
        assert!(
            shows_wait_message(&s.transcript),
            "no wait message: {}",
            l.explain(&s)
        );
        eprintln!(
            "--- a throttled login after {failures} failures, as the user saw it:\n{}",
            s.transcript
        );
        // Long enough left for one more login? Otherwise let the block run
        // out: the next failure doubles it.
        let remaining = l.user.throttle_remaining().unwrap();
        if remaining > 3.0 {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(remaining + 0.2));
    }
    // While blocked, even the correct code does not get in: no prompt at
    // all, and the attempt changes nothing.
    let state = l.user.read_devices().unwrap();
    let s = l.ssh(&[&l.code()]);
    assert!(!l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(s.prompts, 0, "prompted while throttled: {}", l.explain(&s));
    assert!(shows_wait_message(&s.transcript), "{}", l.explain(&s));
    assert_eq!(
        l.user.read_devices().unwrap(),
        state,
        "a throttled attempt changed the state"
    );
    // Once the block has run out, the correct code gets in again.
    std::thread::sleep(Duration::from_secs_f64(
        l.user.throttle_remaining().unwrap() + 0.2,
    ));
    let s = l.ssh(&[&l.code()]);
    assert!(l.logged_in(&s), "after the block: {}", l.explain(&s));
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_user_without_a_device_file_gets_in_with_the_key_alone_under_nullok() {
    require_root("a_user_without_a_device_file_gets_in_with_the_key_alone_under_nullok");
    let l = setup("key-nullok", &Setup::KeyAndCode, false, &["nullok"]);
    let s = l.ssh(&[]);
    assert!(l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(s.prompts, 0, "asked for a code: {}", l.explain(&s));
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_user_without_a_device_file_is_denied_without_nullok() {
    require_root("a_user_without_a_device_file_is_denied_without_nullok");
    let l = setup("key-nodev", &Setup::KeyAndCode, false, &[]);
    let s = l.ssh(&["123456"]);
    // Prompted anyway: whether a user has enrolled is not revealed.
    assert_eq!(s.prompts, 1, "{}", l.explain(&s));
    l.assert_denied(&s);
}

// --- password then code ----------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_password_then_the_correct_code_run_a_remote_command() {
    require_root("the_password_then_the_correct_code_run_a_remote_command");
    let l = setup("pw-ok", &Setup::PasswordThenCode, true, &[]);
    let s = l.ssh(&[&l.user.password, &l.code()]);
    assert!(l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(s.prompts, 2, "password and code: {}", l.explain(&s));
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_password_then_a_wrong_code_are_denied() {
    require_root("the_password_then_a_wrong_code_are_denied");
    let l = setup("pw-wrong", &Setup::PasswordThenCode, true, &[]);
    let s = l.ssh(&[&l.user.password, &l.wrong_code()]);
    assert_eq!(s.prompts, 2, "{}", l.explain(&s));
    l.assert_denied(&s);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_wrong_password_is_denied_without_asking_for_the_code() {
    require_root("a_wrong_password_is_denied_without_asking_for_the_code");
    let l = setup("pw-badpw", &Setup::PasswordThenCode, true, &[]);
    let code = l.code();
    let s = l.ssh(&["not-the-password", &code]);
    assert!(!l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(
        s.prompts,
        1,
        "the code was asked after a wrong password: {}",
        l.explain(&s)
    );
}

// --- forward_pass: one prompt ---------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn password_and_code_at_one_prompt_run_a_remote_command_with_forward_pass() {
    require_root("password_and_code_at_one_prompt_run_a_remote_command_with_forward_pass");
    let l = setup("fp-ok", &Setup::ForwardPass, true, &[]);
    let answer = format!("{}{}", l.user.password, l.code());
    let s = l.ssh(&[&answer]);
    assert!(l.logged_in(&s), "{}", l.explain(&s));
    assert_eq!(s.prompts, 1, "{}", l.explain(&s));
    assert!(
        s.transcript.contains("Password & verification code: "),
        "{}",
        l.explain(&s)
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn forward_pass_denies_the_password_with_a_wrong_code() {
    require_root("forward_pass_denies_the_password_with_a_wrong_code");
    let l = setup("fp-wrong", &Setup::ForwardPass, true, &[]);
    let s = l.ssh(&[&format!("{}{}", l.user.password, l.wrong_code())]);
    l.assert_denied(&s);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn forward_pass_denies_a_wrong_password_with_the_correct_code() {
    require_root("forward_pass_denies_a_wrong_password_with_the_correct_code");
    let l = setup("fp-badpw", &Setup::ForwardPass, true, &[]);
    let s = l.ssh(&[&format!("not-the-password{}", l.code())]);
    l.assert_denied(&s);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn forward_pass_denies_a_replayed_code() {
    require_root("forward_pass_denies_a_replayed_code");
    let l = setup("fp-replay", &Setup::ForwardPass, true, &[]);
    let answer = format!("{}{}", l.user.password, l.code());
    let first = l.ssh(&[&answer]);
    assert!(l.logged_in(&first), "first use: {}", l.explain(&first));
    let second = l.ssh(&[&answer]);
    assert!(!l.logged_in(&second), "replay: {}", l.explain(&second));
}

/// Issue 14, item 6: a throttled user in the password-then-code setup,
/// with the ssh client's defaults (3 prompt rounds, password offered after
/// keyboard-interactive). With the shipped sshd_config the client asks for
/// a password again after the wait message (sshd's reaction to
/// `PAM_MAXTRIES`), a prompt nothing typed can get through. With
/// `MaxAuthTries 1` added, sshd ends the connection right after the wait
/// message. Either way, nobody gets in.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_throttled_login_over_ssh_never_gets_in_and_max_auth_tries_1_ends_it_cleanly() {
    require_root("a_throttled_login_over_ssh_never_gets_in");
    for (case, max_auth_tries_1) in [("pw-throttle", false), ("pw-throttle-mat", true)] {
        let user = TestUser::create(&format!("totpe2e-{case}")).unwrap();
        let device = random_device("phone").unwrap();
        user.write_devices(std::slice::from_ref(&device)).unwrap();
        let stack = pam_stack(
            &example("pam.d-sshd").unwrap(),
            &module_path().unwrap(),
            &["throttle_factor=600"],
        )
        .unwrap();
        let mut config = sshd_config_lines(&example("sshd_config.d-totp.conf").unwrap());
        if max_auth_tries_1 {
            config.push("MaxAuthTries 1".into());
        }
        let sshd = Sshd::start(case, &stack, &config, &user).unwrap();
        let login = |answers: &[&str]| {
            sshd.login_methods(
                &user,
                None,
                answers,
                REMOTE,
                3,
                "keyboard-interactive,password",
            )
            .unwrap()
        };
        let wrong = wrong_code(&device);
        let first = login(&[&user.password, &wrong]);
        assert!(!first.succeeded(), "{}", first.transcript);
        let code = oathtool_code_now(&device).unwrap();
        let pw = user.password.as_str();
        let s = login(&[pw, &code, pw, &code, pw, &code, pw]);
        eprintln!(
            "--- throttled; password then code; {}; the user saw:\n{}\n({} prompts, exit {:?})",
            if max_auth_tries_1 {
                "shipped sshd_config + MaxAuthTries 1"
            } else {
                "shipped sshd_config"
            },
            s.transcript,
            s.prompts,
            s.exit
        );
        assert!(!s.succeeded(), "{}", s.transcript);
        assert!(shows_wait_message(&s.transcript), "{}", s.transcript);
        if max_auth_tries_1 {
            assert_eq!(s.prompts, 1, "the password, then the end: {}", s.transcript);
        }
    }
}
