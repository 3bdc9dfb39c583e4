//! Red-team findings through real libpam (branch `redteam`): one regression
//! test per finding, named after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use std::os::unix::fs::PermissionsExt;

use pam_totp_tests::pam::{
    code_now, device, module, random_key_hex, wrong_code, DeviceDir, PamResult, Pamtester,
    Services, FORWARD_PROMPT, PROMPT,
};

/// Finding R2: with the one-line `forward_pass` the code was checked before
/// the password, so a stranger who knows no password throttled an enrolled
/// user with one wrong answer (a known gap, docs/design.md §6). But then the stranger's next attempt is not even
/// prompted: "Too many failed verification codes; try again in N seconds."
/// and `PAM_MAXTRIES`, while a user without a device (or no such user) is
/// prompted and refused as usual. Two attempts tell a stranger who is
/// enrolled, the disclosure the module hides elsewhere (the replay notice
/// is suppressed under `forward_pass` for this very reason). `pam_deny`
/// stands in for `pam_unix` refusing the stranger's password. The shipped
/// stack is now `stash_code`, the password module, `use_stored_code`
/// (issue 11, finding 2): this test runs it, twice more than enough to
/// throttle, and also checks that nothing was counted.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_r2_with_forward_pass_a_stranger_learns_who_is_enrolled_from_the_throttle() {
    require_root("finding_r2_with_forward_pass_a_stranger_learns_who_is_enrolled");
    let services = Services::new().unwrap();
    let devices = DeviceDir::new().unwrap();
    let module = module().unwrap();
    services
        .add(
            "fwd",
            &format!(
                "auth requisite {m} {p} config={c} stash_code\n\
                 auth requisite pam_deny.so\n\
                 auth required {m} {p} config={c} use_stored_code\n",
                m = module.display(),
                p = devices.path_arg(),
                c = devices.settings().unwrap().display()
            ),
        )
        .unwrap();
    let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    devices.write("root", std::slice::from_ref(&d)).unwrap();
    let stranger = |user: &str| {
        Pamtester::new(&services, "fwd", user)
            .answers(&[&format!("guessed-password{}", wrong_code(&d))])
            .run()
            .unwrap()
    };
    // Not enrolled ("nobody" has no file here): prompted, refused.
    let unenrolled = stranger("nobody");
    assert_eq!(unenrolled.prompts(FORWARD_PROMPT), 1, "{unenrolled}");
    assert_eq!(unenrolled.result, PamResult::AuthErr, "{unenrolled}");
    // Enrolled: two attempts in a row by someone without the password.
    let first = stranger("root");
    assert_eq!(first.prompts(FORWARD_PROMPT), 1, "{first}");
    let second = stranger("root");
    let all = format!("{}{}", second.stdout, second.stderr);
    assert!(
        !all.contains("Too many failed verification codes"),
        "a stranger was told the user is enrolled (and throttled): {second}"
    );
    assert_eq!(
        second.prompts(FORWARD_PROMPT),
        1,
        "an enrolled user's login looks different to a stranger: {second}"
    );
    assert_eq!(second.result, unenrolled.result, "{second}");
    let state = devices.read("root").unwrap();
    assert_eq!(
        state.devices[0].throttling_failure_count, 0,
        "a stranger's answers counted against the user"
    );
}

/// Finding R3: an acceptance is cleared for a new pass on the same handle
/// only if the line that made it runs again (or the application calls
/// `pam_setcred`). When the accepting line is skipped in the next pass (a
/// jump over it that depends on something else: a `[success=1
/// default=ignore]` module before it, here `pam_exec` standing in for
/// pam_access, pam_succeed_if, a fingerprint module...), the later line
/// finds the old record, younger than 60 s, and succeeds without asking:
/// the second `pam_authenticate` on the handle (a screen locker that does
/// not call `pam_setcred`, or a retry after the first pass failed further
/// down) is let in with no code at all.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_r3_a_second_pass_that_skips_the_accepting_line_is_let_in_without_a_code() {
    require_root("finding_r3_a_second_pass_that_skips_the_accepting_line");
    let services = Services::new().unwrap();
    let devices = DeviceDir::new().unwrap();
    let module = module().unwrap();
    // Fails the first time it runs (the first line is used), succeeds
    // afterwards (the first line is jumped over).
    let flag = devices.dir().join("second-pass");
    let script = devices.dir().join("skip-after-first.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {0} ]; then exit 0; fi\ntouch {0}\nexit 1\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let line = |args: &str| {
        format!(
            "auth required {} {} config={} {args}\n",
            module.display(),
            devices.path_arg(),
            devices.settings().unwrap().display()
        )
    };
    let stack = format!(
        "auth [success=1 default=ignore] pam_exec.so quiet {}\n{}{}",
        script.display(),
        line("nullok"),
        line("")
    );
    services.add("skip", &stack).unwrap();
    let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    devices.write("root", std::slice::from_ref(&d)).unwrap();
    let wrong = wrong_code(&d);
    let run = Pamtester::new(&services, "skip", "root")
        .operation("authenticate")
        .extra_operation("authenticate")
        .answers(&[&code_now(&d), &wrong, &wrong])
        .run()
        .unwrap();
    let successes = run.stdout.matches("successfully authenticated").count()
        + run.stderr.matches("successfully authenticated").count();
    assert_eq!(
        successes,
        1,
        "the second pass succeeded without a code (prompts: {}): {run}",
        run.prompts(PROMPT)
    );
}
