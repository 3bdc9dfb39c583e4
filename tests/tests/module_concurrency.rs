//! docs/design.md §6 "Concurrency and durability": N simultaneous logins with the
//! same valid code, exactly one succeeds. Real pamtester processes, started
//! together against a service file in `/etc/pam.d` (no pam_wrapper, which
//! cannot run in parallel), racing for one device file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use pam_totp_tests::kit::*; // the test kit: accounts, devices, root guard
use pam_totp_tests::pam::{code_now, device, module, random_key_hex, DeviceDir};
use pam_totp_tests::sys::PamService;

const USER: &str = "root";
const LOGINS: usize = 16;
const ROUNDS: usize = 10;

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn sixteen_simultaneous_logins_with_one_valid_code_let_exactly_one_in() {
    require_root("sixteen_simultaneous_logins_with_one_valid_code");
    let devices = DeviceDir::new().unwrap();
    let name = format!("pam-totp-test-race-{}", std::process::id());
    let _service = PamService::install(
        &name,
        &format!(
            "auth required {} {} config={}\n\
             account required pam_permit.so\n",
            module().unwrap().display(),
            devices.path_arg(),
            devices.settings().unwrap().display()
        ),
    )
    .unwrap();

    for round in 0..ROUNDS {
        // A fresh device each round: no replay or throttle state carried over.
        let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
        devices.write(USER, std::slice::from_ref(&d)).unwrap();
        let code = code_now(&d);
        // Start every process first; they all block reading the code.
        let mut children: Vec<_> = (0..LOGINS)
            .map(|_| {
                Command::new("pamtester")
                    .args([&name, USER, "authenticate"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Then hand the same code to all of them, as fast as possible.
        let line = format!("{code}\n");
        for c in &mut children {
            let mut stdin = c.stdin.take().unwrap();
            stdin.write_all(line.as_bytes()).unwrap();
        }
        let outputs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let ok = outputs.iter().filter(|o| o.status.success()).count();
        let crashed: Vec<_> = outputs
            .iter()
            .filter(|o| o.status.code().is_none_or(|c| c > 1))
            .collect();
        assert!(crashed.is_empty(), "round {round}: {crashed:?}");
        assert_eq!(
            ok,
            1,
            "round {round}: {ok} of {LOGINS} logins with one code succeeded:\n{}",
            outputs
                .iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let saved = devices.read(USER).unwrap();
        assert!(saved.devices[0].last_t > 0, "round {round}");
    }
}
