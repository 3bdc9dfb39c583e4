//! Issue 11 (hardening), the stacks the project ships, through real libpam
//! (pam_wrapper, pamtester, the real `pam_unix`): someone who has not
//! passed the first factor can neither tell enrolled from unenrolled users
//! nor make a failure count (finding 2), and on RPM systems a wrong
//! password stops before the code while a right one cannot end the stack
//! before it (finding 3), with Fedora's `system-auth` text verbatim
//! (`tests/data/fedora-system-auth`, as authselect's `local` profile
//! writes it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_at, device, module, random_key_hex, workspace_root, DeviceDir, PamResult, Pamtester, Run,
    Services, FORWARD_PROMPT, PROMPT,
};
use pam_totp_tests::sys::{example, pam_stack, TestUser};
use shared::device::Device;
use shared::Timestamp;

/// Fedora's `system-auth` and `postlogin`, verbatim.
fn fedora(name: &str) -> String {
    let path: PathBuf = workspace_root().join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap()
}

struct Stack {
    services: Services,
    devices: DeviceDir,
    user: TestUser,
    device: Device,
}

impl Stack {
    /// `example` installed as service `name` (only its `auth` lines, the
    /// ones `pam_authenticate` runs; the module path made absolute and
    /// pointed at a private device directory), beside Fedora's
    /// `system-auth`, `password-auth` and `postlogin`; a new user with a
    /// password and one confirmed device.
    fn new(example_name: &str, user: &str) -> Stack {
        let services = Services::new().unwrap();
        let devices = DeviceDir::new().unwrap();
        let path_arg = devices.path_arg();
        let config = format!("config={}", devices.settings().unwrap().display());
        let stack = pam_stack(
            &example(example_name).unwrap(),
            &module().unwrap(),
            &[&path_arg, &config],
        )
        .unwrap();
        // libpam looks `include`d files up in /etc/pam.d, which
        // pam_wrapper does not redirect: name them by absolute path.
        let dir = services.dir().display().to_string();
        let auth: String = stack
            .lines()
            .filter(|l| l.starts_with("auth"))
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                match words.as_slice() {
                    ["auth", control @ ("include" | "substack"), file] => {
                        format!("auth {control} {dir}/{file}\n")
                    }
                    _ => format!("{l}\n"),
                }
            })
            .collect();
        services.add("svc", &auth).unwrap();
        services
            .add("system-auth", &fedora("fedora-system-auth"))
            .unwrap();
        services
            .add("password-auth", &fedora("fedora-system-auth"))
            .unwrap();
        services
            .add("postlogin", &fedora("fedora-postlogin"))
            .unwrap();
        let user = TestUser::create(user).unwrap();
        let device = device("phone", &random_key_hex(20).unwrap()).unwrap();
        devices
            .write(&user.name, std::slice::from_ref(&device))
            .unwrap();
        Stack {
            services,
            devices,
            user,
            device,
        }
    }

    fn login(&self, answers: &[&str]) -> Run {
        Pamtester::new(&self.services, "svc", &self.user.name)
            .answers(answers)
            .run()
            .unwrap()
    }

    fn state(&self) -> Device {
        self.devices.read(&self.user.name).unwrap().devices[0].clone()
    }

    fn code(&self, offset_steps: i64) -> String {
        code_at(
            &self.device,
            Timestamp::now().secs_floor() + 30 * offset_steps,
        )
    }

    /// Puts the device in a long throttle (as a run of failures would).
    fn throttle(&self) -> Device {
        let mut d = self.device.clone();
        d.throttling_failure_count = 10;
        d.throttling_failure_timestamp = Some(Timestamp::now());
        self.devices
            .write(&self.user.name, std::slice::from_ref(&d))
            .unwrap();
        self.state()
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_2_through_the_shipped_forward_pass_stack_a_stranger_learns_nothing_and_counts_nothing() {
    require_root("finding_2_through_the_shipped_forward_pass_stack");
    let s = Stack::new("pam.d-sshd-forward-pass", "pamtotp-h2");
    // A wrong password with a wrong code: refused, not counted.
    let run = s.login(&[&format!("not-the-password{}", "000000")]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(
        s.state().throttling_failure_count,
        0,
        "a stranger's answer counted a failure: {run}"
    );
    // A throttled user looks like anyone else to a stranger: the same one
    // prompt, no wait message, and the throttle is not extended.
    let throttled = s.throttle();
    let run = s.login(&[&format!("not-the-password{}", s.code(0))]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(run.prompts(FORWARD_PROMPT), 1, "{run}");
    assert!(!run.stderr.contains("Too many"), "{run}");
    assert_eq!(s.state(), throttled, "{run}");
    // The real user: right password and right code.
    s.devices
        .write(&s.user.name, std::slice::from_ref(&s.device))
        .unwrap();
    let run = s.login(&[&format!("{}{}", s.user.password, s.code(0))]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(FORWARD_PROMPT), 1, "one prompt only: {run}");
    // Right password, wrong code: refused and counted (the first factor
    // passed).
    let run = s.login(&[&format!("{}{}", s.user.password, "000000")]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(s.state().throttling_failure_count, 1, "{run}");
}

/// The three properties of finding 3 for one shipped RPM stack.
fn rpm_stack_gates_the_code_behind_the_password(example_name: &str, user: &str) {
    let s = Stack::new(example_name, user);
    // Wrong password: no code prompt, nothing counted.
    let run = s.login(&["not-the-password", &s.code(0)]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
    assert_eq!(
        run.prompts(PROMPT),
        0,
        "asked for a code after a wrong password: {run}"
    );
    assert_eq!(s.state().throttling_failure_count, 0, "{run}");
    // Right password and right code: in.
    let run = s.login(&[&s.user.password, &s.code(0)]);
    assert_eq!(run.result, PamResult::Success, "{run}");
    assert_eq!(run.prompts(PROMPT), 1, "{run}");
    // Right password and no code: refused (the password alone never ends
    // the stack).
    let run = s.login(&[&s.user.password]);
    assert_ne!(run.result, PamResult::Success, "{run}");
    let run = s.login(&[&s.user.password, ""]);
    assert_eq!(run.result, PamResult::AuthErr, "{run}");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_3_the_fedora_sudo_stack_asks_for_the_code_only_after_a_right_password_and_always_then() {
    require_root("finding_3_the_fedora_sudo_stack");
    rpm_stack_gates_the_code_behind_the_password("pam.d-fedora-sudo", "pamtotp-h3s");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_3_the_fedora_sshd_stack_asks_for_the_code_only_after_a_right_password_and_always_then() {
    require_root("finding_3_the_fedora_sshd_stack");
    rpm_stack_gates_the_code_behind_the_password("pam.d-fedora-sshd", "pamtotp-h3d");
}
