//! Issue 14, "the admin's and the user's day", through real libpam:
//! two `pam_totp.so` lines in one transaction ask once; a replayed code is
//! told; a phone whose clock is off is diagnosed in the log; every refusal
//! line carries the service and `PAM_RHOST`, which the shipped fail2ban
//! filter matches; the `pam_access` recipe skips the code from a trusted
//! network only; and the pam-auth-update profile plus the sudo example line
//! ask once through a real sudo.
//!
//! Run as root, one at a time across the machine (see HELPERS/TESTING):
//! `cargo test -p pam-totp-tests --test day -- --test-threads=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_at, code_now, device, module, pam_wrapper_lock, random_key_hex, wrong_code, DeviceDir,
    FakeTime, PamResult, Pamtester, Run, Services, PAM_SET_ITEMS, PROMPT,
};
use pam_totp_tests::sys::{
    example, module_path, pam_stack, sudo_as, Device as SysDevice, PamService, SudoersRule,
    TestUser,
};
use shared::device::Device;

/// The user of the central-mode tests.
const USER: &str = "root";

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

    /// `pam_totp.so` with the test's device directory and empty settings.
    fn line(&self, control: &str, args: &str) -> String {
        format!(
            "auth {control} {} {} config={} {args}\n",
            self.module.display(),
            self.devices.path_arg(),
            self.devices.settings().unwrap().display()
        )
    }

    fn enroll(&self) -> Device {
        let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
        self.devices.write(USER, std::slice::from_ref(&d)).unwrap();
        d
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_second_pam_totp_line_after_an_accepted_code_succeeds_without_asking() {
    require_root("a_second_pam_totp_line_after_an_accepted_code");
    let f = Fixture::new();
    // As pam-auth-update's profile (nullok) plus a per-service line would
    // stack them.
    let stack = format!(
        "{}{}auth required pam_permit.so\n",
        f.line("required", "nullok"),
        f.line("required", "")
    );
    f.services.add("twice", &stack).unwrap();
    let d = f.enroll();
    let code = code_now(&d);
    let run = Pamtester::new(&f.services, "twice", USER)
        .answers(&[&code, &code])
        .run()
        .unwrap();
    eprintln!("--- two pam_totp.so lines, one code:\n{run}");
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "asked once: {run}");
    assert!(
        run.log_text()
            .contains("a code was accepted earlier in this PAM transaction"),
        "{run}"
    );
    // A new transaction asks again (the data lives with the handle), and
    // the same code is then a replay.
    let again = Pamtester::new(&f.services, "twice", USER)
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(again.prompts(PROMPT), 1, "{again}");
    assert_eq!(again.result, PamResult::AuthErr, "{again}");
}

/// An application that keeps one PAM handle and authenticates again (a
/// screen locker does) must be asked again: an acceptance counts only for
/// the rest of the pass it was made in, not for the next
/// `pam_authenticate` on the handle.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_second_authentication_on_the_same_handle_asks_for_a_code_again() {
    require_root("a_second_authentication_on_the_same_handle_asks_again");
    let f = Fixture::new();
    let stack = format!(
        "{}{}",
        f.line("[success=ok default=ignore]", "nullok throttle_factor=0"),
        f.line("required", "throttle_factor=0")
    );
    f.services.add("relock", &stack).unwrap();
    let d = f.enroll();
    let wrong = wrong_code(&d);
    // pamtester runs both operations on one handle.
    let run = Pamtester::new(&f.services, "relock", USER)
        .operation("authenticate")
        .extra_operation("authenticate")
        .answers(&[&code_now(&d), &wrong, &wrong])
        .run()
        .unwrap();
    eprintln!("--- two pam_authenticate calls on one handle:\n{run}");
    assert_eq!(
        run.stdout.matches("successfully authenticated").count()
            + run.stderr.matches("successfully authenticated").count(),
        1,
        "only the first call succeeds: {run}"
    );
    assert_eq!(run.prompts(PROMPT), 3, "asked once, then twice: {run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_second_line_reading_another_device_file_still_asks() {
    require_root("a_second_line_reading_another_device_file_still_asks");
    let f = Fixture::new();
    let other = DeviceDir::new().unwrap();
    let d = f.enroll();
    other.write(USER, std::slice::from_ref(&d)).unwrap();
    let stack = format!(
        "{}auth required {} {} config={}\n",
        f.line("required", ""),
        f.module.display(),
        other.path_arg(),
        other.settings().unwrap().display()
    );
    f.services.add("two-files", &stack).unwrap();
    let run = Pamtester::new(&f.services, "two-files", USER)
        .answers(&[&code_now(&d), &wrong_code(&d)])
        .run()
        .unwrap();
    assert_eq!(run.prompts(PROMPT), 2, "{run}");
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_replayed_code_is_told_to_the_user_but_not_under_pam_silent() {
    require_root("a_replayed_code_is_told_to_the_user");
    let f = Fixture::new();
    let told = "That code was used already: each code works once.";
    f.services
        .add("plain", &f.line("required", "throttle_factor=0"))
        .unwrap();
    let d = f.enroll();
    let code = code_now(&d);
    let first = Pamtester::new(&f.services, "plain", USER)
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(first.result, PamResult::Success, "{first}");
    let replay = Pamtester::new(&f.services, "plain", USER)
        .answers(&[&code])
        .run()
        .unwrap();
    eprintln!("--- the same code again:\n{replay}");
    assert_eq!(replay.result, PamResult::AuthErr, "{replay}");
    assert!(replay.stdout.contains(told), "PAM_TEXT_INFO: {replay}");
    let silent = Pamtester::new(&f.services, "plain", USER)
        .operation("authenticate(PAM_SILENT)")
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(silent.result, PamResult::AuthErr, "{silent}");
    assert!(!silent.stdout.contains(told), "{silent}");
    // (The one-line forward_pass, which checked the code before the
    // password and so had to keep quiet, is gone: every shipped stack
    // checks the code after the first factor.)
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_phone_60_s_ahead_is_refused_and_the_log_says_its_clock_is_60_s_ahead() {
    require_root("a_phone_60_s_ahead_is_refused_and_diagnosed");
    let f = Fixture::new();
    f.services
        .add("skew", &f.line("required", "throttle_factor=0"))
        .unwrap();
    let d = f.enroll();
    let now = 1_800_000_000.0;
    let ahead = code_at(&d, 1_800_000_000 + 60);
    let run = Pamtester::new(&f.services, "skew", USER)
        .at(FakeTime::at(now))
        .answers(&[&ahead])
        .run()
        .unwrap();
    let log = run.log_text();
    eprintln!("--- a phone 60 s ahead, the module's log:\n{log}");
    assert_eq!(run.result, PamResult::AuthErr, "never accepted: {run}");
    assert!(
        log.contains(
            "clock skew? user root, device phone: code matches step +2: \
             the device's clock is about 60 s ahead"
        ),
        "{run}"
    );
    assert_eq!(f.devices.read(USER).unwrap().devices[0].last_t, -1);
}

/// `pam_set_items.so` (pam_wrapper) sets `PAM_RHOST` from the environment,
/// as sshd sets it from the client's address.
fn with_rhost(f: &Fixture, name: &str, lines: &str) {
    f.services
        .add(name, &format!("auth required {PAM_SET_ITEMS}\n{lines}"))
        .unwrap();
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn every_refusal_line_ends_in_the_service_and_the_remote_host() {
    require_root("every_refusal_line_ends_in_the_service_and_the_remote_host");
    let f = Fixture::new();
    with_rhost(&f, "rh", &f.line("required", "throttle_factor=3600"));
    let d = f.enroll();
    let login = |user: &str, answer: &str| -> Run {
        Pamtester::new(&f.services, "rh", user)
            .env("PAM_RHOST", "192.0.2.7")
            .answers(&[answer])
            .run()
            .unwrap()
    };
    let runs = [
        login(USER, &wrong_code(&d)),
        login(USER, &wrong_code(&d)), // throttled now
        login("no-such-user-pam-totp", "123456"),
        login("nobody", "123456"), // not enrolled, without nullok
    ];
    let tail = "; service=rh rhost=192.0.2.7";
    for (run, start) in runs.iter().zip([
        "rejected: user root, wrong code",
        "throttled: user root",
        "unknown user",
        "user nobody has no confirmed device",
    ]) {
        let line = run
            .log()
            .into_iter()
            .map(|(_, t)| t)
            .find(|t| t.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}: {run}"));
        assert!(line.ends_with(tail), "{line}");
    }
}

/// The README's pam_access recipe (packaging/examples/pam.d-sshd-trusted-
/// network and access-totp.conf), with the access file at a test path.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_pam_access_recipe_skips_the_code_from_the_trusted_network_only() {
    require_root("the_pam_access_recipe_skips_the_code_from_the_trusted_network");
    let f = Fixture::new();
    let access = f.devices.dir().join("access-totp.conf");
    fs::write(&access, example("access-totp.conf").unwrap()).unwrap();
    let stack = trusted_network_stack(&f, &access);
    with_rhost(&f, "sshd-trusted", &stack);
    let d = f.enroll();
    let from = |rhost: &str, answers: &[&str]| {
        Pamtester::new(&f.services, "sshd-trusted", USER)
            .env("PAM_RHOST", rhost)
            .answers(answers)
            .run()
            .unwrap()
    };
    // The example trusts 192.168.1.0/24.
    let trusted = from("192.168.1.20", &[]);
    eprintln!("--- from 192.168.1.20 (trusted):\n{trusted}");
    assert_eq!(trusted.result, PamResult::Success, "{trusted}");
    assert!(!trusted.prompted(), "no code asked: {trusted}");
    let elsewhere = from("127.0.0.1", &[&wrong_code(&d)]);
    eprintln!("--- from 127.0.0.1 (elsewhere), a wrong code:\n{elsewhere}");
    assert_eq!(elsewhere.prompts(PROMPT), 1, "{elsewhere}");
    assert_eq!(elsewhere.result, PamResult::AuthErr, "{elsewhere}");
    let right = from("127.0.0.1", &[&code_now(&d)]);
    assert_eq!(right.prompts(PROMPT), 1, "{right}");
    assert_eq!(right.result, PamResult::Success, "{right}");
}

/// The example's auth lines after `@include common-auth` (the first factor
/// is not what this test is about: pam_permit stands in for it), with the
/// module under test and the access file at `access`.
fn trusted_network_stack(f: &Fixture, access: &Path) -> String {
    let text = example("pam.d-sshd-trusted-network").unwrap();
    let text = text.replace("/etc/security/access-totp.conf", &access.to_string_lossy());
    let stack = pam_stack(&text, &f.module, &[]).unwrap();
    let mut out = String::from("auth required pam_permit.so\n");
    for line in stack.lines() {
        let l = line.trim_start();
        if l.starts_with("auth") {
            out.push_str(line);
            if line.contains(&*f.module.to_string_lossy()) {
                out.push_str(&format!(
                    " throttle_factor=0 {} config={}",
                    f.devices.path_arg(),
                    f.devices.settings().unwrap().display()
                ));
            }
            out.push('\n');
        }
    }
    assert!(out.contains("pam_access.so"), "{out}");
    out
}

/// The fail2ban filter (packaging/fail2ban/) against lines the module
/// really wrote through libpam's `pam_syslog` (captured by
/// packaging/fail2ban/test-filter.sh in a private mount namespace).
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_fail2ban_filter_matches_every_refusal_line_the_module_wrote_and_nothing_else() {
    require_root("the_fail2ban_filter_matches_every_refusal_line");
    let script = pam_totp_tests::pam::workspace_root().join("packaging/fail2ban/test-filter.sh");
    let _lock = pam_wrapper_lock().unwrap();
    let out = Command::new(&script)
        .arg(module().unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("test-filter: PASS"), "{stdout}");
}

/// Debian's common-auth as pam-auth-update writes it with the shipped
/// profile enabled (its "Auth:" lines in the Additional block), followed
/// by the sudo example's own line: one prompt, success.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn the_pam_auth_update_profile_and_the_sudo_line_together_ask_once_through_sudo() {
    require_root("the_pam_auth_update_profile_and_the_sudo_line_together");
    let module = module_path().unwrap();
    let common = fs::read_to_string("/etc/pam.d/common-auth").unwrap();
    let profile = fs::read_to_string(
        pam_totp_tests::pam::workspace_root().join("packaging/pam-configs/totp"),
    )
    .unwrap();
    let additional = profile_auth_lines(&profile, &module);
    let marker = "# and here are more per-package modules (the \"Additional\" block)";
    assert!(common.contains(marker), "stock Debian common-auth expected");
    let common = common.replace(marker, &format!("{marker}\n{additional}"));
    let sudo = pam_stack(&example("pam.d-sudo").unwrap(), &module, &[]).unwrap();
    let stack: String = sudo
        .lines()
        .map(|l| {
            if l.trim() == "@include common-auth" {
                common.clone()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    eprintln!("--- the sudo stack:\n{stack}");
    let user = TestUser::create("totpe2e-day-twice").unwrap();
    let d = SysDevice::random("phone").unwrap();
    user.write_devices(std::slice::from_ref(&d)).unwrap();
    let service = "sudo-totp-test-twice";
    let _svc = PamService::install(service, &stack).unwrap();
    let _rule = SudoersRule::install(
        "totpe2e-twice",
        &format!(
            "# pam-totp e2e test, removed when the test ends\n\
             Defaults:{u} pam_service={service}\n\
             Defaults:{u} passwd_tries=1, timestamp_timeout=0, !lecture\n\
             {u} ALL=(root) ALL\n",
            u = user.name
        ),
    )
    .unwrap();
    let code = d.code_now().unwrap();
    let run = sudo_as(
        &user,
        &[&user.password, &code, &code],
        &["/usr/bin/id", "-un"],
    )
    .unwrap();
    eprintln!(
        "--- sudo with the profile and the sudo line; what the user saw:\n{}\nexit {:?}, stdout {}",
        run.stderr, run.exit, run.stdout
    );
    assert!(run.succeeded() && run.stdout.trim() == "root", "{run:?}");
    assert_eq!(
        run.stderr.matches("Verification code").count(),
        1,
        "{}",
        run.stderr
    );
}

/// The profile's `Auth:` block as pam-auth-update writes it, with the
/// module under test.
fn profile_auth_lines(profile: &str, module: &Path) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in profile.lines() {
        if line.starts_with("Auth:") {
            inside = true;
            continue;
        }
        if inside && line.starts_with(char::is_whitespace) {
            let line = line
                .trim()
                .replace("pam_totp.so", &module.to_string_lossy());
            out.push_str(&format!(
                "auth\t{}\n",
                line.split_whitespace().collect::<Vec<_>>().join("\t")
            ));
        } else if inside {
            break;
        }
    }
    assert!(out.contains("pam_totp"), "{profile}");
    out
}
