//! Issue 14, "the admin's and the user's day", through the real binary:
//! `check` and `set`, removing the last device, the messages around a
//! confirmation, bash completion, suggestions made for another user and a
//! missing home directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{bin, code_now, now_secs, Env, TestUser};

const RFC_KEY: &str = "3132333435363738393031323334353637383930";

/// The code a SHA1/6/30 app shows `secs` seconds from now.
fn code_in(secs: i64) -> String {
    let key = shared::Secret::from_hex(RFC_KEY).unwrap();
    shared::oath::totp(
        shared::Algorithm::Sha1,
        key.expose(),
        now_secs() + secs,
        0,
        30,
        6,
    )
    .unwrap()
}

/// Waits until at least 5 s are left in the current 30 s step, so that a
/// code computed now still has the same offset when the binary runs.
fn away_from_a_step_boundary() {
    while now_secs() % 30 > 25 {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A confirmed device `default` with the RFC 4226 key.
fn confirmed_device(env: &Env) {
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--key", RFC_KEY],
        "",
    )
    .expect(0);
    away_from_a_step_boundary();
    env.enroll(&["confirm", "default"], &format!("{}\n", code_now(RFC_KEY)))
        .expect(0);
}

#[test]
fn check_reports_a_phone_60_s_ahead_and_records_nothing() {
    let env = Env::new();
    confirmed_device(&env);
    let before = env.bytes();
    away_from_a_step_boundary();
    let out = env
        .enroll(&["check", "default"], &format!("{}\n", code_in(60)))
        .expect(1);
    eprintln!(
        "--- totp-enroll check default (a phone 60 s ahead):\n{}{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains(
            "Code matches step +2: the device's clock is about 60 s ahead (outside the tolerance ±1"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("totp-enroll set default --tolerance 2"));
    assert!(out.stdout.contains("Nothing was recorded"));
    assert_eq!(env.bytes(), before, "check writes nothing");

    away_from_a_step_boundary();
    let out = env
        .enroll(
            &["check", "default", "--json"],
            &format!("{}\n", code_in(-90)),
        )
        .expect(1);
    let r = &out.json()[0];
    assert_eq!(r["offset"], -3);
    assert_eq!(r["clock_offset_seconds"], -90);
    assert_eq!(r["would_be_accepted"], false);
    // A code nowhere near: matched nothing, still nothing counted.
    let out = env
        .enroll(&["check", "default"], &format!("{}\n", code_in(3600)))
        .expect(1);
    assert!(
        out.stdout.contains("matches no time step"),
        "{}",
        out.stdout
    );
    assert_eq!(env.bytes(), before, "check counts no failure");
}

#[test]
fn a_code_check_looked_at_is_not_used_up() {
    let env = Env::new();
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--key", RFC_KEY],
        "",
    )
    .expect(0);
    away_from_a_step_boundary();
    let code = code_now(RFC_KEY);
    let out = env
        .enroll(&["check", "default"], &format!("{code}\n"))
        .expect(1);
    assert!(
        out.stdout.contains("a login would accept it"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not confirmed"), "{}", out.stdout);
    let out = env
        .enroll(&["confirm", "default"], &format!("{code}\n"))
        .expect(0);
    // ... and the confirmation says the code is now used up.
    assert!(
        out.stdout
            .contains("Each code works once: wait for the next code before you log in."),
        "{}",
        out.stdout
    );
    let out = env
        .enroll(&["check", "default"], &format!("{code}\n"))
        .expect(1);
    assert!(out.stdout.contains("used already"), "{}", out.stdout);
}

#[test]
fn set_changes_tolerance_and_name_and_needs_one_of_them() {
    let env = Env::new();
    confirmed_device(&env);
    let out = env
        .enroll(
            &["set", "default", "--tolerance", "2", "--name", "phone"],
            "",
        )
        .expect(0);
    assert_eq!(
        out.stdout.trim_end(),
        format!(
            "Device `default` of {}: renamed to `phone`, tolerance ±2.",
            posix::unistd::User::from_uid(posix::unistd::getuid())
                .unwrap()
                .unwrap()
                .name
        )
    );
    let d = &env.devices().devices[0];
    assert_eq!(
        (d.name.as_str(), d.tolerance, d.confirmed),
        ("phone", 2, true)
    );
    let out = env.enroll(&["set", "phone"], "").expect(2);
    assert!(out.stderr.contains("--tolerance"), "{}", out.stderr);
    env.enroll(&["set", "phone", "--tolerance", "11"], "")
        .one_line_error(2, "tolerance must be 0 to 10");
}

#[test]
fn removing_the_last_confirmed_device_needs_yes_when_nobody_can_answer() {
    let env = Env::new();
    confirmed_device(&env);
    let before = env.bytes();
    let out = env.enroll(&["remove", "default"], "").expect(1);
    assert!(
        out.stderr.contains("last confirmed device"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(env.bytes(), before);
    env.enroll(&["remove", "default", "--yes"], "").expect(0);
    assert!(env.devices().devices.is_empty());
    // An unconfirmed device goes without a question.
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--name", "new"],
        "",
    )
    .expect(0);
    env.enroll(&["remove", "new"], "").expect(0);
}

#[test]
fn reset_says_what_it_cleared_in_words() {
    let env = Env::new();
    confirmed_device(&env);
    let out = env.enroll(&["reset", "default"], "").expect(0);
    assert!(
        out.stdout
            .contains(": no failures to clear, not throttled."),
        "{}",
        out.stdout
    );
}

#[test]
fn the_terminal_qr_code_comes_after_the_secret_and_the_url() {
    let env = Env::new();
    let out = env
        .enroll(&["add", "--no-confirm", "--qr", "utf8"], "")
        .expect(0);
    let url = out.stdout.find("otpauth://").unwrap();
    let qr = out.stdout.find('█').unwrap();
    assert!(url < qr, "{}", out.stdout);
    assert!(
        out.stdout.trim_end().ends_with(|c| " █▀▄".contains(c)),
        "the QR code is the last thing printed: {}",
        out.stdout
    );
}

/// Runs bash completion for the words `line` (the last one being
/// completed) with the script `totp-enroll completions bash` prints.
fn complete(env: &Env, line: &[&str]) -> Vec<String> {
    let script = env.path("completion.bash");
    let out = Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    fs::write(&script, &out.stdout).unwrap();
    let words: Vec<String> = std::iter::once(bin().to_owned())
        .chain(line.iter().map(|w| format!("'{w}'")))
        .collect();
    let cword = line.len();
    // The function `complete -F` names: `_totp__enroll`, or `_totp-enroll`
    // from older clap_complete releases (Debian 13's 4.5.40).
    let text = String::from_utf8_lossy(&out.stdout);
    let function = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("complete -F "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; \
         {function} '{}' '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        bin(),
        line[cword - 1],
        if cword >= 2 {
            line[cword - 2]
        } else {
            "totp-enroll"
        }
    );
    let out = Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommand_options_and_device_names() {
    let env = Env::new();
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--name", "phone"],
        "",
    )
    .expect(0);
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--name", "tablet"],
        "",
    )
    .expect(0);
    // clap #6421: options of a subcommand of a hyphenated command.
    assert_eq!(complete(&env, &["add", "--dig"]), ["--digits"]);
    assert_eq!(complete(&env, &["remove", "--y"]), ["--yes"]);
    let config = env.config.to_str().unwrap();
    let path = env.devices.to_str().unwrap();
    let names = complete(&env, &["--config", config, "--path", path, "remove", ""]);
    assert_eq!(names, ["phone", "tablet"]);
    let names = complete(&env, &["--config", config, "--path", path, "check", "t"]);
    assert_eq!(names, ["tablet"]);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn suggestions_made_while_acting_for_another_user_name_that_user() {
    let user = TestUser::new("hint");
    let env = Env::new();
    let out = env
        .enroll_nopath(
            &["add", "--user", &user.name, "--no-confirm", "--qr", "none"],
            "",
        )
        .expect(0);
    assert!(
        out.stdout
            .contains(&format!("totp-enroll --user {} confirm default", user.name)),
        "{}",
        out.stdout
    );
    let out = env
        .enroll_nopath(&["show", "nope", "--user", &user.name], "")
        .expect(1);
    assert!(
        out.stderr.contains(&format!(
            "`totp-enroll --user {} list` shows the names",
            user.name
        )),
        "{}",
        out.stderr
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_missing_home_directory_is_named_and_central_mode_suggested() {
    let user = TestUser::new("home");
    let env = Env::new();
    let moved = user.home.with_extension("moved");
    fs::rename(&user.home, &moved).unwrap();
    let out = env.enroll_nopath(&["list", "--user", &user.name], "");
    fs::rename(&moved, &user.home).unwrap();
    let out = out.expect(1);
    eprintln!("--- list for a user without a home:\n{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "home directory {} does not exist",
            user.home.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("central mode"), "{}", out.stderr);
}
