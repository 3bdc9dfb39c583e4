//! Red-team findings through real libpam (branch `redteam`): one regression
//! test per finding, named after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::pam::{
    device, module, random_key_hex, wrong_code, DeviceDir, PamResult, Pamtester, Services,
    FORWARD_PROMPT,
};

/// Finding R2: with `forward_pass` (the shipped `pam.d-sshd-forward-pass`)
/// the code is checked before the password, so a stranger who knows no
/// password throttles an enrolled user with one wrong answer (a known gap,
/// docs/design.md §6). But then the stranger's next attempt is not even
/// prompted: "Too many failed verification codes; try again in N seconds."
/// and `PAM_MAXTRIES`, while a user without a device (or no such user) is
/// prompted and refused as usual. Two attempts tell a stranger who is
/// enrolled, the disclosure the module hides elsewhere (the replay notice
/// is suppressed under `forward_pass` for this very reason). `pam_deny`
/// stands in for `pam_unix` refusing the stranger's password.
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
                "auth requisite {} {} config={} forward_pass\nauth required pam_deny.so\n",
                module.display(),
                devices.path_arg(),
                devices.settings().unwrap().display()
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
}
