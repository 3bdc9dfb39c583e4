//! `totp-enroll import-google-authenticator` on hand-written files and on a
//! file written by the real `google-authenticator` tool (Debian
//! libpam-google-authenticator), checked against `oathtool`'s codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::process::Command;

use common::{now_secs, Env};
use shared::verify::{check, verify_login, Login, Policy, Rejection, Verdict};
use shared::Timestamp;

fn oathtool(secret_b32: &str, at: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", &format!("--now=@{at}"), secret_b32])
        .output()
        .expect("oathtool (Debian oathtool) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_file_from_the_real_google_authenticator_yields_a_device_that_accepts_oathtool_codes() {
    let env = Env::new();
    let ga = env.path("google_authenticator");
    let status = Command::new("google-authenticator")
        .args([
            "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3", "-Q", "NONE", "-q", "-s",
        ])
        .arg(&ga)
        .status()
        .expect("google-authenticator (Debian libpam-google-authenticator) must be installed");
    assert!(status.success());
    let text = fs::read_to_string(&ga).unwrap();
    let secret = text.lines().next().unwrap().trim().to_owned();

    let out = env
        .enroll(
            &[
                "import-google-authenticator",
                ga.to_str().unwrap(),
                "--json",
            ],
            "",
        )
        .expect(0);
    let r = &out.json()[0];
    assert_eq!(r["device_name"], "google-authenticator");
    assert_eq!(r["secret_base32"], secret.trim_end_matches('='));
    assert_eq!(r["confirmed"], true);
    assert_eq!(r["tolerance"], 1, "WINDOW_SIZE 3 is tolerance 1");
    assert_eq!(r["backup_codes_imported"], 5);

    // The file's scratch codes are the backup set now, hashed; each logs
    // in once (issue 12).
    let scratch: Vec<String> = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    assert_eq!(scratch.len(), 5);
    let stored = String::from_utf8(env.bytes()).unwrap();
    let mut file = env.devices();
    assert_eq!(file.backup.as_ref().unwrap().remaining(), 5);
    let mut t = Timestamp::from_secs(now_secs());
    for (i, code) in scratch.iter().enumerate() {
        assert!(!stored.contains(code.as_str()), "scratch code in clear");
        let (login, next) = verify_login(&file, code, t, &Policy::default());
        assert_eq!(login, Login::BackupCode { remaining: 4 - i });
        file = next;
        t = t.plus_secs(100);
        let (login, next) = verify_login(&file, code, t, &Policy::default());
        assert!(matches!(login, Login::Rejected { .. }), "{login:?}");
        file = next;
        t = t.plus_secs(100);
    }

    let device = env.devices().devices.remove(0);
    assert!(device.confirmed);
    let policy = Policy::default();
    let now = now_secs();
    let at = |secs: i64| Timestamp::from_secs(secs);
    // The current code and the previous step's (tolerance 1) are accepted.
    assert!(matches!(
        check(&device, &oathtool(&secret, now), at(now), &policy),
        Verdict::Accepted { .. }
    ));
    assert!(matches!(
        check(&device, &oathtool(&secret, now - 30), at(now), &policy),
        Verdict::Accepted { offset: -1, .. }
    ));
    // Three steps away is outside the window google-authenticator had too.
    let old = oathtool(&secret, now - 90);
    if old != oathtool(&secret, now)
        && old != oathtool(&secret, now - 30)
        && old != oathtool(&secret, now + 30)
    {
        assert_eq!(
            check(&device, &old, at(now), &policy),
            Verdict::Rejected(Rejection::Wrong)
        );
    }
}

#[test]
fn step_window_and_used_codes_are_carried_over() {
    let env = Env::new();
    let ga = env.path("ga");
    let now = now_secs();
    let used = now / 60;
    fs::write(
        &ga,
        format!(
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" RATE_LIMIT 3 30 {now}\n\" STEP_SIZE 60\n\
             \" WINDOW_SIZE 7\n\" DISALLOW_REUSE {} {used} {}\n\" TOTP_AUTH\n12345678\n",
            used - 2,
            used - 1
        ),
    )
    .unwrap();
    let out = env
        .enroll(
            &[
                "import-google-authenticator",
                ga.to_str().unwrap(),
                "--name",
                "phone",
            ],
            "",
        )
        .expect(0);
    assert!(out.stdout.contains("as device `phone`"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("1 scratch codes became your backup codes"),
        "{}",
        out.stderr
    );
    assert_eq!(env.devices().backup.unwrap().remaining(), 1);
    assert!(out.stderr.contains("RATE_LIMIT"));
    let d = env.devices().devices.remove(0);
    assert_eq!((d.step, d.tolerance, d.last_t, d.digits), (60, 3, used, 6));
    assert_eq!(&*d.key.to_hex(), "3132333435363738393031323334353637383930");
    // The code google-authenticator accepted last is a replay here too.
    let key = shared::Secret::from_hex("3132333435363738393031323334353637383930").unwrap();
    let code = shared::oath::hotp(shared::Algorithm::Sha1, key.expose(), used as u64, 6).unwrap();
    assert_eq!(
        check(&d, &code, Timestamp::from_secs(now), &Policy::default()),
        Verdict::Rejected(Rejection::Replayed)
    );
}

#[test]
fn a_counter_based_file_is_refused_with_a_clear_message() {
    let env = Env::new();
    let ga = env.path("ga");
    fs::write(
        &ga,
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" HOTP_COUNTER 4\n\" WINDOW_SIZE 3\n",
    )
    .unwrap();
    let out = env.enroll(&["import-google-authenticator", ga.to_str().unwrap()], "");
    let out = out.one_line_error(1, "counter-based (HOTP)");
    assert!(out.stderr.contains("google-authenticator -t"));
    assert!(!env.devices.exists());
}

#[test]
fn an_unreadable_or_malformed_file_is_refused_and_nothing_is_written() {
    let env = Env::new();
    env.enroll(
        &[
            "import-google-authenticator",
            env.path("missing").to_str().unwrap(),
        ],
        "",
    )
    .one_line_error(1, "no such file");
    let ga = env.path("ga");
    fs::write(&ga, "GEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\nnonsense\n").unwrap();
    env.enroll(&["import-google-authenticator", ga.to_str().unwrap()], "")
        .one_line_error(1, "line 3");
    let link = env.path("link");
    std::os::unix::fs::symlink(&ga, &link).unwrap();
    env.enroll(&["import-google-authenticator", link.to_str().unwrap()], "")
        .one_line_error(1, "is a symbolic link");
    assert!(!env.devices.exists());
}

#[test]
fn importing_twice_under_one_name_is_refused() {
    let env = Env::new();
    let ga = env.path("ga");
    fs::write(&ga, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n").unwrap();
    env.enroll(&["import-google-authenticator", ga.to_str().unwrap()], "")
        .expect(0);
    let before = env.bytes();
    env.enroll(&["import-google-authenticator", ga.to_str().unwrap()], "")
        .one_line_error(1, "exists already");
    assert_eq!(env.bytes(), before);
}
