//! `pam_totp.so` through real libpam (pam_wrapper + pamtester / pypamtest):
//! every row of the return-code table of docs/design.md §6, every module argument,
//! the first-pass and forward-pass modes, the hooks other than
//! authentication, logging, the exported symbols and the panic guard.
//!
//! The module under test is the one `cargo build -p pam_totp` just built
//! (see `pam_totp_tests::pam::module`). Device files live in a private
//! central-mode directory (`path=<tmp>/%u.toml`) unless a test is about the
//! per-user mode; every service line points `config=` at an empty settings
//! file, so the machine's `/etc/security/pam_totp.toml` never matters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::pam::{
    code_at, code_now, device, module, module_with_feature, pypamtest, random_key_hex, wrong_code,
    DeviceDir, PamResult, Pamtester, Run, Services, FORWARD_PROMPT, PAM_GET_ITEMS, PAM_SET_ITEMS,
    PROMPT,
};
use shared::device::Device;
use shared::Timestamp;

/// The user of the central-mode tests: always present, no home involved.
const USER: &str = "root";

/// A service directory, a device directory and the module.
struct Fixture {
    services: Services,
    devices: DeviceDir,
    module: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            services: Services::new().unwrap(),
            devices: DeviceDir::new().unwrap(),
            module: module().unwrap(),
        }
    }

    /// The arguments every line gets: the device directory and an empty
    /// settings file (defaults).
    fn base_args(&self) -> String {
        format!(
            "{} config={}",
            self.devices.path_arg(),
            self.devices.settings().unwrap().display()
        )
    }

    /// A probe service `name` with the module and `args` (after the base).
    fn service(&self, name: &str, args: &str) {
        self.services
            .probe(name, &self.module, &format!("{} {args}", self.base_args()))
            .unwrap();
    }

    /// A device for USER with a fresh key, written to the file.
    fn enroll(&self) -> Device {
        let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
        self.devices.write(USER, std::slice::from_ref(&d)).unwrap();
        d
    }

    fn login(&self, service: &str, answers: &[&str]) -> Run {
        Pamtester::new(&self.services, service, USER)
            .answers(answers)
            .run()
            .unwrap()
    }

    fn state(&self) -> Device {
        self.devices.read(USER).unwrap().devices[0].clone()
    }
}

// ---------------------------------------------------------------------------
// docs/design.md §6: the return-code table, row by row
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_code_accepted_by_a_device_is_pam_success_and_its_state_is_saved() {
    require_root("a_code_accepted_by_a_device_is_pam_success");
    let f = Fixture::new();
    f.service("totp", "");
    let d = f.enroll();
    let before = Timestamp::now();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    let s = f.state();
    assert!(s.last_t >= before.secs_floor() / 30 - 1, "{s:?}");
    assert_eq!(s.throttling_failure_count, 0);
    assert!(s.last_used_at.unwrap() >= before);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_wrong_code_is_pam_auth_err_and_recorded_as_a_failure() {
    require_root("a_wrong_code_is_pam_auth_err");
    let f = Fixture::new();
    f.service("totp", "");
    let d = f.enroll();
    let run = f.login("totp", &[&wrong_code(&d)]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let s = f.state();
    assert_eq!(s.throttling_failure_count, 1);
    assert!(s.throttling_failure_timestamp.is_some());
    assert_eq!(s.last_t, -1);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_replayed_code_is_pam_auth_err() {
    require_root("a_replayed_code_is_pam_auth_err");
    let f = Fixture::new();
    f.service("totp", "throttle_factor=0");
    let d = f.enroll();
    let code = code_now(&d);
    assert_eq!(f.login("totp", &[&code]).result, PamResult::Success);
    let last_t = f.state().last_t;
    let run = f.login("totp", &[&code]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert!(run.log_text().contains("replayed"), "{run}");
    let s = f.state();
    assert_eq!(s.last_t, last_t);
    assert_eq!(s.throttling_failure_count, 1);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_malformed_code_is_pam_auth_err_and_counts_as_a_failure() {
    require_root("a_malformed_code_is_pam_auth_err");
    let f = Fixture::new();
    f.service("totp", "throttle_factor=0");
    f.enroll();
    for (i, answer) in ["12a456", "", "1234567", "12345"].iter().enumerate() {
        let run = f.login("totp", &[answer]);
        assert_eq!(run.result, PamResult::AuthErr, "{answer:?}: {run}");
        assert_eq!(f.state().throttling_failure_count as usize, i + 1);
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_code_with_spaces_as_apps_show_it_is_accepted() {
    require_root("a_code_with_spaces_as_apps_show_it_is_accepted");
    let f = Fixture::new();
    f.service("totp", "");
    let d = f.enroll();
    let code = code_now(&d);
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    let run = f.login("totp", &[&spaced]);
    assert_eq!(run.result, PamResult::Success, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn an_overlong_answer_is_a_failed_attempt() {
    require_root("an_overlong_answer_is_a_failed_attempt");
    let f = Fixture::new();
    f.service("totp", "");
    let d = f.enroll();
    // A valid code buried in 600 spaces: longer than the bound, so refused.
    let answer = format!("{}{}", " ".repeat(600), code_now(&d));
    let run = f.login("totp", &[&answer]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(f.state().throttling_failure_count, 1);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn every_device_throttled_means_no_prompt_a_wait_message_and_pam_maxtries() {
    require_root("every_device_throttled_means_pam_maxtries");
    let f = Fixture::new();
    f.service("totp", "");
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    // 10 failures: blocked for 2^9 = 512 s from the last one.
    d.throttling_failure_count = 10;
    d.throttling_failure_timestamp = Some(Timestamp::now());
    f.devices.write(USER, std::slice::from_ref(&d)).unwrap();
    let before = f.devices.text(USER).unwrap();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::MaxTries, "{run}");
    assert!(!run.prompted(), "throttled logins are not prompted: {run}");
    let msg = run
        .stderr
        .lines()
        .find(|l| l.contains("try again in"))
        .unwrap_or_else(|| panic!("no wait message: {run}"));
    let secs: u32 = msg
        .split("try again in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((505..=512).contains(&secs), "{msg}");
    assert_eq!(
        f.devices.text(USER).unwrap(),
        before,
        "a blocked attempt changes nothing"
    );
    assert!(run.log_text().contains("throttled: user root"), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_wait_message_is_not_shown_under_pam_silent() {
    require_root("the_wait_message_is_not_shown_under_pam_silent");
    let f = Fixture::new();
    f.service("totp", "");
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    d.throttling_failure_count = 10;
    d.throttling_failure_timestamp = Some(Timestamp::now());
    f.devices.write(USER, &[d]).unwrap();
    let run = Pamtester::new(&f.services, "totp", USER)
        .operation("authenticate(PAM_SILENT)")
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::MaxTries, "{run}");
    assert!(!run.stderr.contains("try again"), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn with_several_devices_a_throttled_one_is_skipped_and_another_accepts() {
    require_root("with_several_devices_a_throttled_one_is_skipped");
    let f = Fixture::new();
    f.service("totp", "");
    let mut blocked = device("old-phone", &random_key_hex(20).unwrap()).unwrap();
    blocked.throttling_failure_count = 10;
    blocked.throttling_failure_timestamp = Some(Timestamp::now());
    let ok = device("new-phone", &random_key_hex(32).unwrap()).unwrap();
    f.devices
        .write(USER, &[blocked.clone(), ok.clone()])
        .unwrap();
    let run = f.login("totp", &[&code_now(&ok)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(run.log_text().contains("device new-phone"), "{run}");
    let saved = f.devices.read(USER).unwrap();
    assert_eq!(
        saved.devices[0], blocked,
        "the throttled device is untouched"
    );
    assert!(saved.devices[1].last_t > 0);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn no_device_file_with_nullok_is_pam_ignore_without_a_prompt() {
    require_root("no_device_file_with_nullok_is_pam_ignore");
    let f = Fixture::new();
    f.service("totp", "nullok");
    let run = f.login("totp", &["123456"]);
    assert_eq!(run.result, PamResult::Ignored, "{run}");
    assert!(!run.prompted(), "{run}");
    assert!(!f.devices.file(USER).exists(), "no file is created");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn no_confirmed_device_with_nullok_is_pam_ignore_without_a_prompt() {
    require_root("no_confirmed_device_with_nullok_is_pam_ignore");
    let f = Fixture::new();
    f.service("totp", "nullok");
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    d.confirmed = false;
    f.devices.write(USER, std::slice::from_ref(&d)).unwrap();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Ignored, "{run}");
    assert!(!run.prompted(), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn no_device_file_without_nullok_prompts_then_pam_auth_err() {
    require_root("no_device_file_without_nullok_prompts_then_pam_auth_err");
    let f = Fixture::new();
    f.service("totp", "");
    let run = f.login("totp", &["123456"]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "enrollment is not revealed: {run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn an_unconfirmed_device_without_nullok_prompts_then_pam_auth_err() {
    require_root("an_unconfirmed_device_without_nullok_prompts");
    let f = Fixture::new();
    f.service("totp", "");
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    d.confirmed = false;
    f.devices.write(USER, std::slice::from_ref(&d)).unwrap();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    assert_eq!(f.state().last_t, -1, "an unconfirmed device never accepts");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn an_unknown_user_is_prompted_then_pam_user_unknown() {
    require_root("an_unknown_user_is_prompted_then_pam_user_unknown");
    let f = Fixture::new();
    f.service("totp", "");
    let run = Pamtester::new(&f.services, "totp", "pam-totp-no-such-user")
        .answers(&["123456"])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::UserUnknown, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    assert!(
        !run.log_text().contains("pam-totp-no-such-user"),
        "a mistyped password in the user field must not be logged: {run}"
    );
}

/// Rows "file insecure, unparsable, or state cannot be saved": fail closed
/// with PAM_AUTHINFO_UNAVAIL whatever `nullok` says, and log the path.
fn assert_unavailable(f: &Fixture, answer: &str, why: &str) {
    for args in ["", "nullok"] {
        f.service("totp", args);
        let run = f.login("totp", &[answer]);
        assert_eq!(
            run.result,
            PamResult::AuthInfoUnavail,
            "{why} ({args}): {run}"
        );
        assert!(!run.prompted(), "{why}: {run}");
        let log = run.log_text();
        assert!(
            log.contains(&f.devices.file(USER).display().to_string()),
            "{why}: the log names the file: {run}"
        );
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_device_file_readable_by_others_is_pam_authinfo_unavail_even_with_nullok() {
    require_root("a_device_file_readable_by_others_is_pam_authinfo_unavail");
    let f = Fixture::new();
    let d = f.enroll();
    fs::set_permissions(f.devices.file(USER), fs::Permissions::from_mode(0o640)).unwrap();
    assert_unavailable(&f, &code_now(&d), "mode 0640");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_symlinked_device_file_is_pam_authinfo_unavail_even_with_nullok() {
    require_root("a_symlinked_device_file_is_pam_authinfo_unavail");
    let f = Fixture::new();
    let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    f.devices
        .write("elsewhere", std::slice::from_ref(&d))
        .unwrap();
    symlink(f.devices.file("elsewhere"), f.devices.file(USER)).unwrap();
    assert_unavailable(&f, &code_now(&d), "symlink");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_device_file_owned_by_another_user_is_pam_authinfo_unavail() {
    require_root("a_device_file_owned_by_another_user_is_pam_authinfo_unavail");
    let f = Fixture::new();
    let d = f.enroll();
    let path = f.devices.file(USER);
    let status = Command::new("chown")
        .arg("54321")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    assert_unavailable(&f, &code_now(&d), "foreign owner");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_device_directory_others_can_write_is_pam_authinfo_unavail_even_with_nullok() {
    require_root("a_device_directory_others_can_write_is_pam_authinfo_unavail");
    let f = Fixture::new();
    let d = f.enroll();
    fs::set_permissions(f.devices.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    for args in ["", "nullok"] {
        f.service("totp", args);
        let run = f.login("totp", &[&code_now(&d)]);
        assert_eq!(run.result, PamResult::AuthInfoUnavail, "{args}: {run}");
        assert!(run.log_text().contains("writable by others"), "{run}");
    }
    // With the sticky bit (as /tmp), the directory is acceptable.
    fs::set_permissions(f.devices.dir(), fs::Permissions::from_mode(0o1777)).unwrap();
    f.service("totp", "");
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn an_unparsable_device_file_is_pam_authinfo_unavail_even_with_nullok() {
    require_root("an_unparsable_device_file_is_pam_authinfo_unavail");
    let f = Fixture::new();
    f.devices
        .write_text(
            USER,
            "version = 1\n[[device]]\nname = \"phone\"\nkey = 12\n",
            0o600,
        )
        .unwrap();
    assert_unavailable(&f, "123456", "unparsable");
    f.devices
        .write_text(USER, "version = 1\nsurprise = true\n", 0o600)
        .unwrap();
    assert_unavailable(&f, "123456", "unknown key");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn state_that_cannot_be_saved_is_pam_authinfo_unavail_and_the_code_is_not_spent() {
    require_root("state_that_cannot_be_saved_is_pam_authinfo_unavail");
    let f = Fixture::new();
    f.service("totp", "");
    let d = f.enroll();
    let before = f.devices.text(USER).unwrap();
    // The store writes the spare `.<name>.spare` beside the file; a
    // directory in its place makes every save fail (root ignores
    // permissions, not this).
    let blocker = f.devices.dir().join(format!(".{USER}.toml.spare"));
    fs::create_dir(&blocker).unwrap();
    let code = code_now(&d);
    let run = f.login("totp", &[&code]);
    assert_eq!(run.result, PamResult::AuthInfoUnavail, "{run}");
    assert!(run.log_text().contains(".root.toml.spare"), "{run}");
    assert_eq!(f.devices.text(USER).unwrap(), before, "old file untouched");
    // The code was not accepted, so it still works once saving works.
    fs::remove_dir(&blocker).unwrap();
    let run = f.login("totp", &[&code]);
    assert_eq!(run.result, PamResult::Success, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_bad_module_argument_is_pam_service_err_and_logged() {
    require_root("a_bad_module_argument_is_pam_service_err");
    let f = Fixture::new();
    let d = f.enroll();
    for (args, logged) in [
        ("nullokk", "unknown module argument `nullokk`"),
        ("throttle_factor=fast", "throttle_factor=`fast`"),
        ("use_first_pass try_first_pass", "exclude each other"),
        ("test_panic", "unknown module argument `test_panic`"),
    ] {
        f.service("totp", args);
        let run = f.login("totp", &[&code_now(&d)]);
        assert_eq!(run.result, PamResult::ServiceErr, "{args}: {run}");
        assert!(!run.prompted(), "{args}: {run}");
        assert!(run.log_text().contains(logged), "{args}: {run}");
    }
    // path= is checked too (the base arguments give one already).
    f.services
        .probe("bad-path", &f.module, "path=/var/%x.toml")
        .unwrap();
    let run = f.login("bad-path", &["123456"]);
    assert_eq!(run.result, PamResult::ServiceErr, "{run}");
    assert_eq!(f.state().last_t, -1);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_bad_insecure_or_missing_settings_file_is_pam_service_err_and_logged() {
    require_root("a_bad_insecure_or_missing_settings_file_is_pam_service_err");
    let f = Fixture::new();
    let d = f.enroll();

    // Named by config= but missing (a typo): no quiet return to the
    // defaults, even with nullok.
    let missing = f.devices.dir().join("no-such-settings.toml");
    let line = format!(
        "{} config={} nullok",
        f.devices.path_arg(),
        missing.display()
    );
    f.services.probe("typo", &f.module, &line).unwrap();
    let run = f.login("typo", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::ServiceErr, "{run}");
    assert!(run.log_text().contains("no-such-settings.toml"), "{run}");
    let config = f.devices.dir().join("settings.toml");
    let line = format!("{} config={}", f.devices.path_arg(), config.display());
    f.services.probe("totp", &f.module, &line).unwrap();

    fs::write(&config, "sync = true\nthrottle_factr = 0\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::ServiceErr, "{run}");
    assert!(run.log_text().contains("throttle_factr"), "{run}");

    fs::write(&config, "sync = true\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::ServiceErr, "{run}");
    assert!(run.log_text().contains("settings.toml"), "{run}");
}

// ---------------------------------------------------------------------------
// The other hooks
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn setcred_succeeds_and_the_account_session_and_password_hooks_are_ignored() {
    require_root("setcred_succeeds_and_the_other_hooks_are_ignored");
    let f = Fixture::new();
    let m = f.module.display();
    // Only PAM_IGNORE reaches the sufficient pam_permit; PAM_SUCCESS jumps
    // over it to a pam_deny, any error ends the stack.
    let mut text = String::new();
    for kind in ["account", "session", "password"] {
        text.push_str(&format!(
            "{kind} [success=2 ignore=ignore default=die] {m}\n\
             {kind} sufficient pam_permit.so\n\
             {kind} required pam_deny.so\n\
             {kind} required pam_deny.so\n"
        ));
    }
    text.push_str(&format!("auth required {m}\n"));
    f.services.add("hooks", &text).unwrap();
    for op in ["acct_mgmt", "open_session", "close_session", "chauthtok"] {
        let run = Pamtester::new(&f.services, "hooks", USER)
            .operation(op)
            .run()
            .unwrap();
        assert_eq!(run.exit, Some(0), "{op} must return PAM_IGNORE: {run}");
    }
    let run = Pamtester::new(&f.services, "hooks", USER)
        .operation("setcred")
        .run()
        .unwrap();
    assert_eq!(run.exit, Some(0), "setcred: {run}");
    assert!(run.stdout.contains("successfully"), "{run}");
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_prompt_argument_changes_the_prompt() {
    require_root("the_prompt_argument_changes_the_prompt");
    let f = Fixture::new();
    f.service("totp", "[prompt=Code from your phone: ]");
    let d = f.enroll();
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(run.stderr.contains("Code from your phone: "), "{run}");
    assert!(!run.stderr.contains(PROMPT), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_code_is_asked_with_echo_off_unless_echo_is_given() {
    require_root("the_code_is_asked_with_echo_off_unless_echo_is_given");
    let f = Fixture::new();
    let d = f.enroll();
    let line = |args: &str| {
        format!(
            "auth required {} {} {args}\n",
            f.module.display(),
            f.base_args()
        )
    };
    f.services
        .add(
            "off",
            &format!(
                "{}auth required {PAM_GET_ITEMS}\n",
                line("throttle_factor=0")
            ),
        )
        .unwrap();
    f.services
        .add(
            "on",
            &format!(
                "{}auth required {PAM_GET_ITEMS}\n",
                line("throttle_factor=0 echo")
            ),
        )
        .unwrap();
    let code = code_now(&d);
    // Answers only for echo-on prompts: the echo-off prompt finds none.
    let r = pypamtest(&f.services, "off", USER, &[], &[&code], &[]).unwrap();
    assert_ne!(r.code, 0, "{r:?}");
    let r = pypamtest(&f.services, "on", USER, &[], &[&code], &[]).unwrap();
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn throttle_factor_zero_never_blocks_but_still_counts() {
    require_root("throttle_factor_zero_never_blocks");
    let f = Fixture::new();
    f.service("totp", "throttle_factor=0");
    let d = f.enroll();
    for i in 1..=3 {
        let run = f.login("totp", &[&wrong_code(&d)]);
        assert_eq!(run.result, PamResult::AuthErr, "{run}");
        assert_eq!(f.state().throttling_failure_count, i);
    }
    let run = f.login("totp", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(f.state().throttling_failure_count, 0);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn no_sync_keeps_the_drift_and_sync_learns_it() {
    require_root("no_sync_keeps_the_drift");
    let f = Fixture::new();
    f.service("nosync", "no_sync");
    f.service("sync", "");
    let d = f.enroll();
    let now = Timestamp::now().secs_floor();
    // The next step's code: offset +1.
    let run = f.login("nosync", &[&code_at(&d, now + 30)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(f.state().drift, 0);
    let d2 = f.enroll();
    let run = f.login("sync", &[&code_at(&d2, now + 30)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    let drift = f.state().drift;
    // +1, or 0 if the clock moved into the next step meanwhile.
    assert!(drift == 1 || drift == 0, "{drift}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn settings_file_values_apply_and_module_arguments_override_them() {
    require_root("settings_file_values_apply_and_module_arguments_override_them");
    let f = Fixture::new();
    let config = f.devices.dir().join("settings.toml");
    fs::write(&config, "throttle_factor = 0\n").unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let line = format!("{} config={}", f.devices.path_arg(), config.display());
    f.services.probe("file", &f.module, &line).unwrap();
    f.services
        .probe("arg", &f.module, &format!("{line} throttle_factor=600"))
        .unwrap();
    let d = f.enroll();
    // From the file: factor 0, two failures in a row are both tried.
    assert_eq!(
        f.login("file", &[&wrong_code(&d)]).result,
        PamResult::AuthErr
    );
    assert_eq!(
        f.login("file", &[&wrong_code(&d)]).result,
        PamResult::AuthErr
    );
    assert_eq!(f.state().throttling_failure_count, 2);
    // The argument says 600 s per failure: now blocked.
    let run = f.login("arg", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::MaxTries, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn per_user_mode_uses_the_file_in_the_home_and_keeps_it_the_users() {
    require_root("per_user_mode_uses_the_file_in_the_home");
    let user = TestUser::create("pamtotp-mod1").unwrap();
    let services = Services::new().unwrap();
    let m = module().unwrap();
    let settings = services.dir().join("settings.toml");
    fs::write(&settings, "").unwrap();
    fs::set_permissions(&settings, fs::Permissions::from_mode(0o644)).unwrap();
    services
        .probe("totp", &m, &format!("config={}", settings.display()))
        .unwrap();
    let d = random_device("phone").unwrap();
    user.write_devices(std::slice::from_ref(&d)).unwrap();
    let file = user.devices_path();
    let run = Pamtester::new(&services, "totp", &user.name)
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(
        meta.uid(),
        user.uid,
        "the new file is the user's (written as the user)"
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
    let saved = shared::DeviceFile::parse(&fs::read_to_string(&file).unwrap(), &file).unwrap();
    assert!(saved.devices[0].last_t > 0);
}

// ---------------------------------------------------------------------------
// use_first_pass, try_first_pass, forward_pass
// ---------------------------------------------------------------------------

/// A service: pam_set_items (PAM_AUTHTOK from its environment), then the
/// module with `args`.
fn first_pass_service(f: &Fixture, name: &str, args: &str) {
    f.services
        .add(
            name,
            &format!(
                "auth required {PAM_SET_ITEMS}\n\
                 auth [success=done ignore=ignore default=die] {} {} {args}\n\
                 auth required pam_deny.so\n",
                f.module.display(),
                f.base_args()
            ),
        )
        .unwrap();
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn use_first_pass_takes_the_code_from_pam_authtok_without_prompting() {
    require_root("use_first_pass_takes_the_code_from_pam_authtok");
    let f = Fixture::new();
    first_pass_service(&f, "ufp", "use_first_pass");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "ufp", USER)
        .env("PAM_AUTHTOK", &code_now(&d))
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(!run.prompted(), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn use_first_pass_without_a_token_fails_without_prompting_or_counting() {
    require_root("use_first_pass_without_a_token_fails");
    let f = Fixture::new();
    first_pass_service(&f, "ufp", "use_first_pass");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "ufp", USER)
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert!(!run.prompted(), "{run}");
    assert_eq!(f.state().throttling_failure_count, 0);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn try_first_pass_uses_a_token_shaped_like_a_code_without_prompting() {
    require_root("try_first_pass_uses_a_token_shaped_like_a_code");
    let f = Fixture::new();
    first_pass_service(&f, "tfp", "try_first_pass");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "tfp", USER)
        .env("PAM_AUTHTOK", &code_now(&d))
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert!(!run.prompted(), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn try_first_pass_prompts_when_the_token_is_a_password_without_counting_it() {
    require_root("try_first_pass_prompts_when_the_token_is_a_password");
    let f = Fixture::new();
    first_pass_service(&f, "tfp", "try_first_pass");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "tfp", USER)
        .env("PAM_AUTHTOK", "correct horse battery staple")
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    assert_eq!(
        f.state().throttling_failure_count,
        0,
        "the password was not tried"
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_9_a_try_first_pass_password_that_looks_like_a_code_counts_no_failure() {
    // Issue 11, finding 9: a password of six digits from an earlier module
    // was tried as a code and counted, so the real code typed at the prompt
    // right after met a throttle.
    require_root("finding_9_a_try_first_pass_password_that_looks_like_a_code");
    let f = Fixture::new();
    first_pass_service(&f, "tfp", "try_first_pass");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "tfp", USER)
        .env("PAM_AUTHTOK", &wrong_code(&d))
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    let s = f.state();
    assert_eq!(s.throttling_failure_count, 0, "{run}");
    assert!(s.throttling_failure_timestamp.is_none(), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn try_first_pass_prompts_again_after_a_wrong_token() {
    require_root("try_first_pass_prompts_again_after_a_wrong_token");
    let f = Fixture::new();
    first_pass_service(&f, "tfp", "try_first_pass throttle_factor=0");
    let d = f.enroll();
    let run = Pamtester::new(&f.services, "tfp", USER)
        .env("PAM_AUTHTOK", &wrong_code(&d))
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    assert!(run.log_text().contains("rejected"), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn stash_code_hands_the_password_part_on_and_use_stored_code_checks_the_code() {
    require_root("stash_code_hands_the_password_part_on");
    let f = Fixture::new();
    f.services
        .add(
            "fwd",
            &format!(
                "auth requisite {m} {a} stash_code\n\
                 auth required {m} {a} use_stored_code\n\
                 auth required {PAM_GET_ITEMS}\n",
                m = f.module.display(),
                a = f.base_args()
            ),
        )
        .unwrap();
    let d = f.enroll();
    let password = "pässword with spaces 123";
    let answer = format!("{password}{}", code_now(&d));
    let r = pypamtest(&f.services, "fwd", USER, &[&answer], &[], &[]).unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.authtok.as_deref(), Some(password));
    assert!(f.state().last_t > 0);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_one_line_forward_pass_fails_closed_and_says_how_to_split_it() {
    require_root("the_one_line_forward_pass_fails_closed");
    let f = Fixture::new();
    f.service("fwd", "forward_pass");
    let d = f.enroll();
    let run = f.login("fwd", &[&format!("pw{}", code_now(&d))]);
    assert_eq!(run.result, PamResult::ServiceErr, "{run}");
    assert!(!run.prompted(), "{run}");
    assert!(run.log_text().contains("stash_code"), "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn use_stored_code_without_a_stash_line_fails_without_prompting_or_counting() {
    require_root("use_stored_code_without_a_stash_line");
    let f = Fixture::new();
    f.service("usc", "use_stored_code");
    let d = f.enroll();
    let run = f.login("usc", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert!(!run.prompted(), "{run}");
    assert_eq!(f.state().throttling_failure_count, 0);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn stash_code_feeds_pam_unix_use_first_pass_with_one_prompt() {
    require_root("forward_pass_feeds_pam_unix_use_first_pass");
    let user = TestUser::create("pamtotp-mod2").unwrap();
    let f = Fixture::new();
    f.services
        .add(
            "fwd-unix",
            &format!(
                "auth requisite {m} {a} stash_code\n\
                 auth requisite pam_unix.so use_first_pass\n\
                 auth required {m} {a} use_stored_code\n",
                m = f.module.display(),
                a = f.base_args()
            ),
        )
        .unwrap();
    let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    f.devices
        .write(&user.name, std::slice::from_ref(&d))
        .unwrap();
    let now = Timestamp::now().secs_floor();
    let run = Pamtester::new(&f.services, "fwd-unix", &user.name)
        .answers(&[&format!("{}{}", user.password, code_at(&d, now))])
        .run()
        .unwrap();
    assert_eq!(run.exit, Some(0), "{run}");
    assert_eq!(run.prompts(FORWARD_PROMPT), 1, "{run}");
    assert!(
        !run.stderr.contains("Password: "),
        "pam_unix did not prompt: {run}"
    );
    // Right code (the next step, unused), wrong password: pam_unix refuses.
    let run = Pamtester::new(&f.services, "fwd-unix", &user.name)
        .answers(&[&format!("not-the-password{}", code_at(&d, now + 30))])
        .run()
        .unwrap();
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    let saved = f.devices.read(&user.name).unwrap();
    assert_eq!(
        saved.devices[0].throttling_failure_count, 0,
        "the code was right"
    );
}

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn accepted_rejected_replayed_and_throttled_are_logged_without_the_key_or_the_code() {
    require_root("accepted_rejected_replayed_and_throttled_are_logged");
    let f = Fixture::new();
    f.service("totp", "debug");
    let d = f.enroll();
    let code = code_now(&d);
    let wrong = wrong_code(&d);
    let mut runs = vec![
        f.login("totp", &[&code]), // accepted
        f.login("totp", &[&code]), // replayed (count 1, blocked 1 s)
    ];
    // Wait out the 1 s block, then a wrong code (count 2, blocked 2 s),
    // then anything: throttled.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    runs.push(f.login("totp", &[&wrong]));
    runs.push(f.login("totp", &[&code]));
    let all: String = runs
        .iter()
        .map(|r| format!("{}\n{}\n", r.stdout, r.stderr))
        .collect();
    let log: String = runs.iter().map(|r| r.log_text() + "\n").collect();
    for want in [
        "accepted: user root, device phone",
        "rejected: user root, replayed code",
        "rejected: user root, wrong code",
        "throttled: user root",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // debug: which file the module used.
    let file = format!("device file {}", f.devices.file(USER).display());
    assert!(log.contains(&file), "missing {file:?} in:\n{log}");
    let key_hex = d.key.to_hex().to_string();
    let key_b32 = d.key.to_base32().to_string();
    for secret in [
        key_hex.as_str(),
        key_hex.to_uppercase().as_str(),
        key_b32.trim_end_matches('='),
        code.as_str(),
        wrong.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
        // pamtester echoes nothing; the only place a secret could be is the
        // module's output, which must not exist.
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
    // Priorities: LOG_AUTHPRIV (10 << 3) with a level.
    for r in &runs {
        for (prio, text) in r.log() {
            assert_eq!(prio & !7, 80, "not LOG_AUTHPRIV: {prio} {text}");
        }
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_module_writes_nothing_to_stdout_or_stderr_itself() {
    require_root("the_module_writes_nothing_to_stdout_or_stderr_itself");
    let f = Fixture::new();
    f.service("ok", "debug");
    f.service("bad", "nullokk");
    let d = f.enroll();
    let code = code_now(&d);
    let runs: Vec<Run> = [("ok", code.as_str()), ("ok", code.as_str()), ("bad", "1")]
        .iter()
        .map(|(svc, answer)| {
            Pamtester::new(&f.services, svc, USER)
                .answers(&[answer])
                .env("PAM_WRAPPER_DEBUGLEVEL", "0")
                .run()
                .unwrap()
        })
        .collect();
    for run in runs {
        // What is left once pamtester's own lines, the prompt and the
        // conversation's message about the replayed second code are gone
        // (pamtester prints PAM_TEXT_INFO; the module printed nothing).
        let rest: String = format!("{}{}", run.stdout, run.stderr)
            .replace(PROMPT, "")
            .replace(
                "That code was used already: each code works once. \
                 Wait for the next code and try again.",
                "",
            )
            .lines()
            .filter(|l| !l.starts_with("pamtester: ") && !l.trim().is_empty())
            .collect();
        assert_eq!(rest, "", "{run}");
    }
}

// ---------------------------------------------------------------------------
// The shared object itself
// ---------------------------------------------------------------------------

#[test]
fn the_module_needs_no_libpq_until_a_postgresql_store_is_used() {
    // Linking libpq would load it and its libraries (libssl, Kerberos,
    // LDAP, ...) into sshd and sudo at every login: 2.5 ms of load time
    // each, file store or not. It is loaded with dlopen on first use.
    let so = module().unwrap();
    let out = Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NEEDED"), "{text}");
    assert!(!text.contains("libpq"), "the module links libpq: {text}");
}

#[test]
fn the_module_links_no_setup_code_neither_base32_nor_otpauth_nor_qr() {
    // The dependency budget: what only setting up a device needs stays out
    // of the code loaded into sshd and sudo.
    let so = module().unwrap();
    let out = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(&so)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pam_sm_authenticate"),
        "nm saw no symbols: {text}"
    );
    for unwanted in [
        "data_encoding",
        "otpauth",
        "base32",
        "qrcode",
        "clap",
        "png::",
    ] {
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(unwanted)).collect();
        assert!(
            hits.is_empty(),
            "{unwanted} is linked into the module: {hits:?}"
        );
    }
}

#[test]
fn only_the_pam_sm_symbols_are_exported() {
    let so = module().unwrap();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ],
        "{text}"
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_panic_inside_the_module_fails_the_login_and_the_host_survives() {
    require_root("a_panic_inside_the_module_fails_the_login");
    let f = Fixture::new();
    let panicky = module_with_feature("test-panic").unwrap();
    f.services
        .add(
            "panic",
            &format!(
                "auth required {} {} test_panic\n",
                panicky.display(),
                f.base_args()
            ),
        )
        .unwrap();
    let d = f.enroll();
    let run = f.login("panic", &[&code_now(&d)]);
    // pamtester ran to its end and reported a plain failure: no abort (134),
    // no signal.
    assert_eq!(run.exit, Some(1), "{run}");
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert!(
        run.stderr.contains("deliberate panic"),
        "the panic did happen: {run}"
    );
    // Without the argument, the same build works.
    f.services
        .add(
            "calm",
            &format!("auth required {} {}\n", panicky.display(), f.base_args()),
        )
        .unwrap();
    let run = f.login("calm", &[&code_now(&d)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
}
