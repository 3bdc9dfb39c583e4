//! `totp-enroll` through the real binary, in temporary directories: every
//! command and flag, exit codes, one-line errors, files left byte-identical
//! on failure, QR codes that decode, and the django-otp URL vectors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::{code_now, now_secs, parse_devices, zbarimg, Env};
use pam_totp_tests::kit::django_vectors as vectors;
use pam_totp_tests::kit::other_code;
use shared::verify::{check, Policy, Verdict};
use shared::Timestamp;

/// The user running the tests (the account the devices are for).
fn me() -> String {
    posix::unistd::User::from_uid(posix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name
}

const RFC_KEY: &str = "3132333435363738393031323334353637383930";

/// `add --no-confirm` of an unconfirmed device with the RFC 4226 key.
fn add_rfc_device(env: &Env) {
    env.enroll(
        &["add", "--no-confirm", "--qr", "none", "--key", RFC_KEY],
        "",
    )
    .expect(0);
}

// ------------------------------------------------------------------ add

#[test]
fn add_with_no_confirm_saves_an_unconfirmed_device_and_prints_secret_url_and_qr() {
    let env = Env::new();
    let out = env
        .enroll(
            &["add", "--no-confirm", "--key", RFC_KEY, "--issuer", ""],
            "",
        )
        .expect(0);
    assert!(
        out.stdout
            .contains("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(
        &format!("otpauth://totp/{}?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30\n", me())
    ), "{}", out.stdout);
    assert!(
        out.stdout.contains('▀') || out.stdout.contains('▄'),
        "a terminal QR code"
    );
    assert!(out.stdout.contains("totp-enroll confirm default"));
    let file = env.devices();
    assert_eq!(file.devices.len(), 1);
    let d = &file.devices[0];
    assert_eq!(d.name, "default");
    assert!(!d.confirmed);
    assert_eq!(&*d.key.to_hex(), RFC_KEY);
    assert_eq!(
        (d.digits, d.step, d.t0, d.tolerance, d.last_t),
        (6, 30, 0, 1, -1)
    );
    assert_eq!(common::mode_owner(&env.devices).0, 0o600);
}

#[test]
fn add_is_the_default_command() {
    let env = Env::new();
    env.enroll(&["--no-confirm", "--name", "phone", "--qr", "none"], "")
        .expect(0);
    assert_eq!(env.devices().devices[0].name, "phone");
}

#[test]
fn add_confirms_the_device_with_the_code_the_app_shows() {
    let env = Env::new();
    let out = env.enroll(
        &["add", "--key", RFC_KEY, "--qr", "none"],
        &format!("{}\n", code_now(RFC_KEY)),
    );
    let out = out.expect(0);
    assert!(out.stdout.contains("is confirmed"), "{}", out.stdout);
    let d = &env.devices().devices[0];
    assert!(d.confirmed);
    assert!(
        d.last_t > 0,
        "the accepted step is recorded (replay protection)"
    );
    assert!(d.last_used_at.is_some());
}

#[test]
fn a_wrong_confirmation_code_exits_1_and_leaves_the_device_unconfirmed() {
    let env = Env::new();
    let right = code_now(RFC_KEY);
    let wrong = other_code(&right);
    let out = env.enroll(
        &["add", "--key", RFC_KEY, "--qr", "none"],
        &format!("{wrong}\n"),
    );
    let out = out.expect(1);
    assert!(
        out.stderr
            .lines()
            .last()
            .unwrap()
            .contains("stays unconfirmed"),
        "{}",
        out.stderr
    );
    let d = &env.devices().devices[0];
    assert!(!d.confirmed);
    assert_eq!(
        d.throttling_failure_count, 1,
        "a wrong code counts as at login"
    );
}

#[test]
fn a_wrong_code_then_the_right_one_confirms_after_the_throttle_delay() {
    let env = Env::new();
    let right = code_now(RFC_KEY);
    let wrong = other_code(&right);
    let out = env.enroll(
        &["add", "--key", RFC_KEY, "--qr", "none"],
        &format!("{wrong}\n{right}\n"),
    );
    out.expect(0);
    let d = &env.devices().devices[0];
    assert!(d.confirmed);
    assert_eq!(d.throttling_failure_count, 0, "success resets the failures");
}

#[test]
fn add_without_input_exits_1_and_keeps_the_device_unconfirmed() {
    let env = Env::new();
    env.enroll(&["add", "--qr", "none"], "")
        .one_line_error(1, "no code entered");
    assert!(!env.devices().devices[0].confirmed);
}

#[test]
fn add_json_prints_every_design_field_and_never_prompts() {
    let env = Env::new();
    let out = env
        .enroll(
            &[
                "add",
                "--json",
                "--no-confirm",
                "--key",
                RFC_KEY,
                "--issuer",
                "Example Co",
                "--name",
                "phone",
            ],
            "",
        )
        .expect(0);
    let records = out.json();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    // In this order on the line (serde_json's map here sorts, so look at the text).
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_by_key(|k| out.stdout.find(&format!("\"{k}\":")).unwrap());
    assert_eq!(
        keys,
        [
            "user",
            "device_name",
            "config_url",
            "secret_base32",
            "key_hex",
            "algorithm",
            "digits",
            "step",
            "t0",
            "tolerance",
            "confirmed"
        ]
    );
    assert_eq!(r["user"], me().as_str());
    assert_eq!(r["device_name"], "phone");
    assert_eq!(
        r["config_url"],
        format!("otpauth://totp/Example%20Co%3A{}?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&issuer=Example%20Co", me()).as_str()
    );
    assert_eq!(r["secret_base32"], "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(r["key_hex"], RFC_KEY);
    assert_eq!(r["confirmed"], false);
    assert!(out.stderr.is_empty(), "no prompt: {}", out.stderr);
}

#[test]
fn add_json_without_no_confirm_is_a_usage_error_and_writes_nothing() {
    let env = Env::new();
    env.enroll(&["add", "--json"], "123456\n")
        .one_line_error(2, "--no-confirm");
    assert!(!env.devices.exists());
}

#[test]
fn parameter_flags_are_stored_in_the_device() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--digits",
            "8",
            "--step",
            "60",
            "--t0",
            "-30",
            "--tolerance",
            "3",
            "--algorithm",
            "sha256",
        ],
        "",
    )
    .expect(0);
    let d = &env.devices().devices[0];
    assert_eq!((d.digits, d.step, d.t0, d.tolerance), (8, 60, -30, 3));
    assert_eq!(d.algorithm, shared::Algorithm::Sha256);
}

#[test]
fn new_keys_are_random_and_as_long_as_their_hash() {
    let env = Env::new();
    for (name, alg, len) in [
        ("a", "SHA1", 20),
        ("b", "SHA256", 32),
        ("c", "SHA512", 64),
        ("d", "SHA1", 20),
    ] {
        env.enroll(
            &[
                "add",
                "--no-confirm",
                "--qr",
                "none",
                "--name",
                name,
                "--algorithm",
                alg,
            ],
            "",
        )
        .expect(0);
        let f = env.devices();
        assert_eq!(f.find(name).unwrap().key.len(), len, "{alg}");
    }
    let f = env.devices();
    assert_ne!(f.find("a").unwrap().key, f.find("d").unwrap().key);
}

#[test]
fn secret_flag_takes_base32_as_apps_show_it() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--secret",
            "gezd gnbv GY3T-QOJQ GEZDGNBVGY3TQOJQ",
        ],
        "",
    )
    .expect(0);
    assert_eq!(&*env.devices().devices[0].key.to_hex(), RFC_KEY);
}

#[test]
fn key_and_secret_given_as_dash_are_read_from_stdin_not_the_command_line() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--name",
            "hex",
            "--key",
            "-",
        ],
        &format!("{RFC_KEY}\n"),
    )
    .expect(0);
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--name",
            "b32",
            "--secret",
            "-",
        ],
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
    )
    .expect(0);
    let f = env.devices();
    assert_eq!(&*f.find("hex").unwrap().key.to_hex(), RFC_KEY);
    assert_eq!(&*f.find("b32").unwrap().key.to_hex(), RFC_KEY);
    // Nothing on stdin: a usage error, and nothing is written.
    let before = env.bytes();
    env.enroll(&["add", "--no-confirm", "--name", "none", "--key", "-"], "")
        .expect(2);
    assert_eq!(env.bytes(), before);
}

#[test]
fn a_short_key_is_accepted_with_a_warning() {
    let env = Env::new();
    let out = env
        .enroll(
            &[
                "add",
                "--no-confirm",
                "--qr",
                "none",
                "--key",
                "deadbeefcafebabe0102",
            ],
            "",
        )
        .expect(0);
    assert!(
        out.stderr.contains("warning: the key is only 10 bytes"),
        "{}",
        out.stderr
    );
    // With an error, the error is the only line.
    env.enroll(
        &["add", "--no-confirm", "--key", "deadbeefcafebabe0102"],
        "",
    )
    .one_line_error(1, "exists already");
}

#[test]
fn bad_keys_and_parameters_are_usage_errors_and_write_nothing() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--key", "deadbeef"], "10 to 64 bytes"),
        (&["--key", "xyz1"], "--key"),
        (&["--secret", "not base32!"], "--secret"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["add", "--no-confirm"];
        all.extend_from_slice(args);
        env.enroll(&all, "").one_line_error(2, needle);
        assert!(!env.devices.exists(), "{args:?} wrote the device file");
    }
    // clap's own errors keep clap's whole text (issue 14): usage line and
    // all.
    let clap_cases: &[(&[&str], &str)] = &[
        (
            &["--key", RFC_KEY, "--secret", "GEZDGNBV"],
            "cannot be used with",
        ),
        (&["--algorithm", "MD5"], "MD5"),
        (&["--qr", "sixel"], "sixel"),
        // Ranges and names are checked by clap with shared's rules.
        (&["--digits", "7"], "--digits"),
        (&["--step", "0"], "1 to 3600"),
        (&["--tolerance", "11"], "0 to 10"),
        (&["--name", ""], "must not be empty"),
    ];
    for (args, needle) in clap_cases {
        let mut all = vec!["add", "--no-confirm"];
        all.extend_from_slice(args);
        let out = env.enroll(&all, "").expect(2);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("try '--help'"), "{}", out.stderr);
        assert!(!env.devices.exists(), "{args:?} wrote the device file");
    }
}

#[test]
fn a_usage_error_keeps_the_missing_argument_s_name_and_clap_s_tip() {
    let env = Env::new();
    let out = env.enroll(&["confirm"], "").expect(2);
    assert!(out.stderr.contains("<NAME>"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Usage: totp-enroll confirm"),
        "{}",
        out.stderr
    );
    let out = env.enroll(&["list", "--jsno"], "").expect(2);
    assert!(
        out.stderr
            .contains("tip: a similar argument exists: '--json'"),
        "{}",
        out.stderr
    );
}

#[test]
fn adding_an_existing_name_is_refused_and_the_file_stays_byte_identical() {
    let env = Env::new();
    env.enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    let before = env.bytes();
    let svg = env.path("q.svg");
    env.enroll(
        &["add", "--no-confirm", "--qr-svg", svg.to_str().unwrap()],
        "",
    )
    .one_line_error(1, "exists already");
    assert_eq!(env.bytes(), before);
    assert!(!svg.exists(), "no QR image for a device that was not made");
    let leftovers: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ------------------------------------------------------------------ URLs, issuer

#[test]
fn config_urls_equal_every_django_otp_vector_byte_for_byte() {
    let v = vectors();
    let cases = v["config_urls"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let env = Env::new();
    for (i, c) in cases.iter().enumerate() {
        let name = format!("v{i}");
        let digits = c["digits"].to_string();
        let step = c["step"].to_string();
        // django-otp: a null issuer means none; here none is the empty string.
        let issuer = c["OTP_TOTP_ISSUER"].as_str().unwrap_or("");
        let mut args = vec![
            "add",
            "--json",
            "--no-confirm",
            "--name",
            &name,
            "--key",
            c["key_hex"].as_str().unwrap(),
            "--account",
            c["username"].as_str().unwrap(),
            "--issuer",
            issuer,
            "--digits",
            &digits,
            "--step",
            &step,
        ];
        if let Some(image) = c["OTP_TOTP_IMAGE"].as_str() {
            args.extend(["--image", image]);
        }
        let out = env.enroll(&args, "").expect(0);
        assert_eq!(out.json()[0]["config_url"], c["config_url"], "vector {i}");
        // `show` gives the same URL again.
        let show: Vec<&str> = {
            // The URL flags of `add`, without the key and parameters.
            let mut out = Vec::new();
            let mut skip = false;
            for a in ["show", name.as_str(), "--json", "--qr", "none"]
                .into_iter()
                .chain(args[5..].iter().copied())
            {
                if skip {
                    skip = false;
                    continue;
                }
                if ["--key", "--digits", "--step"].contains(&a) {
                    skip = true;
                    continue;
                }
                out.push(a);
            }
            out
        };
        let out = env.enroll(&show, "").expect(0);
        assert_eq!(
            out.json()[0]["config_url"],
            c["config_url"],
            "show, vector {i}"
        );
    }
}

#[test]
fn issuer_comes_from_the_flag_then_the_settings_then_the_host_name() {
    let host = posix::unistd::gethostname().unwrap().into_string().unwrap();
    let counter = std::cell::Cell::new(0);
    let url = |env: &Env, extra: &[&str]| -> String {
        let mut args = vec!["add", "--json", "--no-confirm", "--key", RFC_KEY, "--name"];
        counter.set(counter.get() + 1);
        let name = format!("n{}", counter.get());
        args.push(&name);
        args.extend_from_slice(extra);
        let out = env.enroll(&args, "").expect(0);
        out.json()[0]["config_url"].as_str().unwrap().to_owned()
    };
    let plain = Env::new();
    assert!(
        url(&plain, &[]).ends_with(&format!("&issuer={host}")),
        "host name by default"
    );
    let configured = Env::with_config("issuer = \"Corp\"\nimage = \"https://x.example/l.png\"\n");
    let u = url(&configured, &[]);
    assert!(
        u.starts_with(&format!("otpauth://totp/Corp%3A{}?", me())),
        "{u}"
    );
    assert!(
        u.ends_with("&issuer=Corp&image=https://x.example/l.png"),
        "{u}"
    );
    let u = url(
        &configured,
        &["--issuer", "Flag", "--image", "https://y.example/i.png"],
    );
    assert!(
        u.ends_with("&issuer=Flag&image=https://y.example/i.png"),
        "{u}"
    );
    let u = url(&configured, &["--issuer", "", "--image", ""]);
    assert_eq!(
        u,
        format!("otpauth://totp/{}?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30", me())
    );
    let none = Env::with_config("issuer = \"\"\n");
    assert!(
        !url(&none, &[]).contains("issuer"),
        "an empty issuer in the settings means none"
    );
}

#[test]
fn enroll_defaults_come_from_the_settings_and_flags_override_them() {
    let env = Env::with_config(
        "[enroll]\ndigits = 8\nstep = 60\ntolerance = 2\nalgorithm = \"SHA512\"\n",
    );
    env.enroll(&["add", "--no-confirm", "--qr", "none", "--name", "a"], "")
        .expect(0);
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--name",
            "b",
            "--digits",
            "6",
            "--algorithm",
            "SHA1",
        ],
        "",
    )
    .expect(0);
    let f = env.devices();
    let a = f.find("a").unwrap();
    assert_eq!((a.digits, a.step, a.tolerance, a.key.len()), (8, 60, 2, 64));
    let b = f.find("b").unwrap();
    assert_eq!((b.digits, b.step, b.tolerance, b.key.len()), (6, 60, 2, 20));
}

#[test]
fn settings_errors_exit_2_naming_the_file_and_key() {
    let env = Env::with_config("[enroll]\ndigits = 7\n");
    env.enroll(&["list"], "").one_line_error(2, "enroll.digits");
    let env = Env::new();
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["list", "--config"]).arg(env.path("missing.toml"));
    common::run(cmd, "").one_line_error(2, "does not exist");
}

// ------------------------------------------------------------------ QR codes

#[test]
#[cfg(feature = "png")]
fn png_and_svg_qr_codes_decode_to_exactly_the_url() {
    let env = Env::new();
    let png = env.path("code.png");
    let svg = env.path("code.svg");
    let out = env
        .enroll(
            &[
                "add",
                "--json",
                "--no-confirm",
                "--issuer",
                "Ünïcødé Corp",
                "--image",
                "https://example.com/i.png?x=1",
                "--qr-png",
                png.to_str().unwrap(),
                "--qr-svg",
                svg.to_str().unwrap(),
            ],
            "",
        )
        .expect(0);
    let url = out.json()[0]["config_url"].as_str().unwrap().to_owned();
    assert_eq!(zbarimg(&png), url);
    assert_eq!(zbarimg(&svg), url);
    assert_eq!(common::mode_owner(&png).0, 0o600, "images hold the secret");
    assert_eq!(common::mode_owner(&svg).0, 0o600);
    // `show` writes them again, for the same URL.
    let png2 = env.path("again.png");
    let out = env
        .enroll(
            &[
                "show",
                "default",
                "--json",
                "--issuer",
                "Ünïcødé Corp",
                "--image",
                "https://example.com/i.png?x=1",
                "--qr-png",
                png2.to_str().unwrap(),
            ],
            "",
        )
        .expect(0);
    assert_eq!(out.json()[0]["config_url"], url.as_str());
    assert_eq!(zbarimg(&png2), url);
}

#[test]
#[cfg(not(feature = "png"))]
fn without_the_png_feature_svg_qr_codes_still_decode_to_exactly_the_url() {
    let env = Env::new();
    let svg = env.path("code.svg");
    let out = env
        .enroll(
            &[
                "add",
                "--json",
                "--no-confirm",
                "--qr-svg",
                svg.to_str().unwrap(),
            ],
            "",
        )
        .expect(0);
    let url = out.json()[0]["config_url"].as_str().unwrap().to_owned();
    assert_eq!(zbarimg(&svg), url);
    assert_eq!(common::mode_owner(&svg).0, 0o600, "images hold the secret");
}

#[test]
#[cfg(not(feature = "png"))]
fn without_the_png_feature_qr_png_is_refused_before_anything_is_written() {
    let env = Env::new();
    let png = env.path("code.png");
    let svg = env.path("code.svg");
    let (png_arg, svg_arg) = (png.to_str().unwrap(), svg.to_str().unwrap());
    let out = env
        .enroll(
            &[
                "add",
                "--no-confirm",
                "--qr-png",
                png_arg,
                "--qr-svg",
                svg_arg,
            ],
            "",
        )
        .one_line_error(2, "built without PNG support (cargo feature `png`)");
    assert!(out.stderr.contains("--qr-svg FILE"), "{}", out.stderr);
    assert!(!env.devices.exists(), "no device made");
    assert!(!png.exists() && !svg.exists(), "no image written");
    // `show` refuses it the same way, and leaves the device file alone.
    env.enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    let before = env.bytes();
    env.enroll(&["show", "default", "--qr-png", png_arg], "")
        .one_line_error(2, "built without PNG support");
    assert_eq!(env.bytes(), before);
    assert!(!png.exists());
}

/// The URL line of the human output.
fn url_of(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("otpauth://"))
        .unwrap()
        .to_owned()
}

#[test]
fn the_utf8_terminal_qr_rendered_to_pixels_decodes_to_the_url() {
    let env = Env::new();
    let out = env
        .enroll(&["add", "--no-confirm", "--qr", "utf8"], "")
        .expect(0);
    let url = url_of(&out.stdout);
    let block: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.chars().count() > 20 && l.chars().all(|c| " █▀▄".contains(c)))
        .collect();
    assert!(!block.is_empty(), "no QR block in:\n{}", out.stdout);
    let width = block[0].chars().count();
    assert!(block.iter().all(|l| l.chars().count() == width));
    // Quiet zone on a terminal: 2 light modules = 1 blank text line above
    // and below, 2 blank columns left and right (the terminal adds its own
    // margin; images keep 4).
    assert!(block[0].trim().is_empty() && !block[1].trim().is_empty());
    assert!(block[block.len() - 1].trim().is_empty());
    assert!(block
        .iter()
        .all(|l| l.starts_with("  ") && l.ends_with("  ")));
    assert!(!block[1].starts_with("   "), "only 2 columns of quiet zone");
    let mut modules: Vec<Vec<bool>> = Vec::new();
    for line in &block {
        let (top, bottom): (Vec<bool>, Vec<bool>) = line
            .chars()
            .map(|c| match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            })
            .unzip();
        modules.push(top);
        modules.push(bottom);
    }
    let image = env.path("terminal.pgm");
    common::write_pgm(&image, &modules, 6);
    assert_eq!(zbarimg(&image), url);
}

#[test]
fn the_ansi_terminal_qr_uses_background_colours_and_decodes() {
    let env = Env::new();
    let out = env
        .enroll(&["add", "--no-confirm", "--qr", "ansi"], "")
        .expect(0);
    let url = url_of(&out.stdout);
    let mut modules: Vec<Vec<bool>> = Vec::new();
    for line in out.stdout.lines().filter(|l| l.contains("\x1b[")) {
        let mut row = Vec::new();
        let mut dark = false;
        let mut rest = line;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("\x1b[40m") {
                dark = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("\x1b[107m") {
                dark = false;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("\x1b[0m") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("  ") {
                row.push(dark);
                rest = r;
            } else {
                panic!("unexpected text in the ANSI QR code: {rest:?}");
            }
        }
        modules.push(row);
    }
    assert!(modules.len() > 20);
    let image = env.path("ansi.pgm");
    common::write_pgm(&image, &modules, 4);
    assert_eq!(zbarimg(&image), url);
}

#[test]
fn qr_none_prints_no_qr_code() {
    let env = Env::new();
    let out = env
        .enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    assert!(!out.stdout.contains('▀') && !out.stdout.contains("\x1b["));
    assert!(out.stdout.contains("otpauth://"));
}

// ------------------------------------------------------------------ confirm

#[test]
fn confirm_marks_a_device_confirmed_with_a_current_code() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--key",
            RFC_KEY,
            "--name",
            "p",
        ],
        "",
    )
    .expect(0);
    let out = env
        .enroll(&["confirm", "p"], &format!("{}\n", code_now(RFC_KEY)))
        .expect(0);
    assert!(out.stdout.contains("`p` is confirmed"));
    assert!(env.devices().devices[0].confirmed);
    // Confirming again changes nothing and says so.
    let before = env.bytes();
    env.enroll(&["confirm", "p"], "").expect(0);
    assert_eq!(env.bytes(), before);
}

#[test]
fn confirm_refuses_a_code_that_was_used_already() {
    let env = Env::new();
    add_rfc_device(&env);
    // The app's current code was already accepted (last_t = now's step):
    // confirming with it is a replay, as at login.
    let mut f = env.devices();
    f.devices[0].last_t = now_secs() / 30 + 1;
    fs::write(&env.devices, f.to_toml(&me())).unwrap();
    let out = env.enroll(
        &["confirm", "default", "--json"],
        &format!("{}\n", code_now(RFC_KEY)),
    );
    out.one_line_error(1, "used already");
    assert!(!env.devices().devices[0].confirmed);
}

#[test]
fn confirm_json_reads_the_code_from_stdin_without_a_prompt() {
    let env = Env::new();
    add_rfc_device(&env);
    let out = env
        .enroll(
            &["confirm", "default", "--json"],
            &format!("{}\n", code_now(RFC_KEY)),
        )
        .expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let r = &out.json()[0];
    assert_eq!(r["confirmed"], true);
    assert_eq!(r["device_name"], "default");
    assert!(r["last_t"].as_i64().unwrap() > 0);
    assert!(
        r.get("key_hex").is_none() && r.get("secret_base32").is_none(),
        "{r}"
    );
}

#[test]
fn confirm_of_an_unknown_device_or_file_is_refused() {
    let env = Env::new();
    env.enroll(&["confirm", "x"], "123456\n")
        .one_line_error(1, "has no devices");
    env.enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    let before = env.bytes();
    env.enroll(&["confirm", "x"], "123456\n")
        .one_line_error(1, "no device named `x`");
    assert_eq!(env.bytes(), before);
}

#[test]
fn a_confirmation_is_checked_with_the_devices_own_algorithm_and_digits() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--key",
            RFC_KEY,
            "--algorithm",
            "SHA512",
            "--digits",
            "8",
        ],
        "",
    )
    .expect(0);
    let key = shared::Secret::from_hex(RFC_KEY).unwrap();
    let code = shared::oath::totp(
        shared::Algorithm::Sha512,
        key.expose(),
        now_secs(),
        0,
        30,
        8,
    )
    .unwrap();
    env.enroll(&["confirm", "default"], &format!("{code}\n"))
        .expect(0);
    assert!(env.devices().devices[0].confirmed);
}

// ------------------------------------------------------------------ list, show

#[test]
fn list_shows_every_device_and_never_prints_keys() {
    let env = Env::new();
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--key",
            RFC_KEY,
            "--name",
            "phone",
        ],
        "",
    )
    .expect(0);
    env.enroll(
        &[
            "add",
            "--no-confirm",
            "--qr",
            "none",
            "--name",
            "tablet",
            "--digits",
            "8",
        ],
        "",
    )
    .expect(0);
    let out = env.enroll(&["list"], "").expect(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("CONFIRMED")
            && lines[0].contains("DRIFT")
    );
    assert!(
        lines[1].starts_with("phone") && lines[1].contains("6/30s") && lines[1].contains("never")
    );
    assert!(lines[2].starts_with("tablet") && lines[2].contains("8/30s"));
    assert!(!out.stdout.contains(RFC_KEY) && !out.stdout.contains("GEZDGNBV"));
    let out = env.enroll(&["list", "--json"], "").expect(0);
    let records = out.json();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["device_name"], "phone");
    assert!(records[0].get("key_hex").is_none() && records[0].get("secret_base32").is_none());
    assert_eq!(records[0]["last_t"], -1);
    assert_eq!(records[1]["digits"], 8);
}

#[test]
fn list_without_a_device_file_says_so_and_succeeds() {
    let env = Env::new();
    let out = env.enroll(&["list"], "").expect(0);
    assert!(out.stdout.contains("has no devices"));
    assert!(env
        .enroll(&["list", "--json"], "")
        .expect(0)
        .stdout
        .is_empty());
}

#[test]
fn show_prints_the_setup_information_and_the_drift_state() {
    let env = Env::new();
    env.enroll(
        &["add", "--key", RFC_KEY, "--qr", "none"],
        &format!("{}\n", code_now(RFC_KEY)),
    )
    .expect(0);
    let out = env
        .enroll(&["show", "default", "--issuer", ""], "")
        .expect(0);
    let url_start = format!("otpauth://totp/{}?secret=GEZD", me());
    for needle in [
        "confirmed:     yes",
        "current step:",
        "last_t:",
        "drift +0",
        "last used:",
        "s ago",
        "GEZD GNBV",
        &url_start,
        "▀",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} in:\n{}",
            out.stdout
        );
    }
    let r = &env
        .enroll(&["show", "default", "--json", "--qr", "none"], "")
        .expect(0)
        .json()[0];
    let clock_t = now_secs() / 30;
    assert!((r["clock_t"].as_i64().unwrap() - clock_t).abs() <= 1);
    assert_eq!(r["current_t"], r["clock_t"]);
    assert!(r["last_t"].as_i64().unwrap() >= clock_t - 2);
    assert_eq!(r["drift"], 0);
    assert!(r["seconds_since_last_use"].as_i64().unwrap() < 60);
    assert_eq!(r["key_hex"], RFC_KEY);
    assert_eq!(r["throttled_until"], serde_json::Value::Null);
}

#[test]
fn show_of_an_unknown_device_is_refused() {
    let env = Env::new();
    env.enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    env.enroll(&["show", "nope"], "")
        .one_line_error(1, "no device named `nope`");
}

// ------------------------------------------------------------------ remove, reset

#[test]
fn remove_deletes_only_the_named_device() {
    let env = Env::new();
    for n in ["a", "b", "c"] {
        env.enroll(&["add", "--no-confirm", "--qr", "none", "--name", n], "")
            .expect(0);
    }
    let out = env.enroll(&["remove", "b"], "").expect(0);
    assert!(out.stdout.contains("Removed device `b`"));
    let names: Vec<String> = env.devices().devices.into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["a", "c"]);
    let r = &env.enroll(&["remove", "a", "--json"], "").expect(0).json()[0];
    assert_eq!(r["removed"], true);
    let before = env.bytes();
    env.enroll(&["remove", "b"], "")
        .one_line_error(1, "no device named `b`");
    assert_eq!(env.bytes(), before);
}

#[test]
fn reset_clears_the_throttle_so_the_device_accepts_codes_again() {
    let env = Env::new();
    add_rfc_device(&env);
    let mut f = env.devices();
    f.devices[0].confirmed = true;
    f.devices[0].throttling_failure_count = 12;
    f.devices[0].throttling_failure_timestamp = Some(Timestamp::now());
    fs::write(&env.devices, f.to_toml(&me())).unwrap();
    let before = &env.devices().devices[0];
    let policy = Policy::default();
    assert!(matches!(
        check(before, &code_now(RFC_KEY), Timestamp::now(), &policy),
        Verdict::Throttled { .. }
    ));
    let listed = env.enroll(&["list"], "").expect(0);
    assert!(
        listed.stdout.contains("throttled until"),
        "{}",
        listed.stdout
    );
    let out = env.enroll(&["reset", "default"], "").expect(0);
    assert!(out.stdout.contains("12 failures cleared"));
    let after = &env.devices().devices[0];
    assert_eq!(after.throttling_failure_count, 0);
    assert_eq!(after.throttling_failure_timestamp, None);
    assert!(matches!(
        check(after, &code_now(RFC_KEY), Timestamp::now(), &policy),
        Verdict::Accepted { .. }
    ));
    let r = &env
        .enroll(&["reset", "default", "--json"], "")
        .expect(0)
        .json()[0];
    assert_eq!(r["throttling_failure_count"], 0);
    env.enroll(&["reset", "nope"], "")
        .one_line_error(1, "no device named");
}

// ------------------------------------------------------------------ errors

#[test]
fn every_failed_command_leaves_the_existing_file_byte_identical() {
    let env = Env::new();
    add_rfc_device(&env);
    let before = env.bytes();
    let absent = env.path("absent");
    let ga_hotp = env.path("ga-hotp");
    fs::write(&ga_hotp, "GEZDGNBVGY3TQOJQ\n\" HOTP_COUNTER 1\n").unwrap();
    let failing: &[(&[&str], i32)] = &[
        (&["add", "--no-confirm"], 1),
        (&["add", "--no-confirm", "--name", "x", "--digits", "9"], 2),
        (&["add", "--json", "--name", "x"], 2),
        (&["add", "--no-confirm", "--name", "x", "--key", "00"], 2),
        (&["add", "--no-confirm", "--user", "no-such-user-here"], 2),
        (&["confirm", "missing"], 1),
        (&["show", "missing"], 1),
        (&["remove", "missing"], 1),
        (&["reset", "missing"], 1),
        (
            &["import-google-authenticator", ga_hotp.to_str().unwrap()],
            1,
        ),
        (
            &["import-google-authenticator", absent.to_str().unwrap()],
            1,
        ),
        (&["--name", "x", "list"], 2),
    ];
    for (args, code) in failing {
        let out = env.enroll(args, "");
        assert_eq!(out.code, *code, "{args:?}: {}", out.stderr);
        // Our own errors are one line; clap's keep clap's whole text.
        let clap = out.stderr.contains("try '--help'");
        assert!(
            clap || out.stderr.lines().count() == 1,
            "{args:?}: one line: {:?}",
            out.stderr
        );
        assert_eq!(env.bytes(), before, "{args:?} changed the file");
    }
}

#[test]
fn a_broken_device_file_is_reported_with_its_line_and_left_alone() {
    let env = Env::new();
    fs::write(
        &env.devices,
        "version = 1\n[[device]]\nname = \"x\"\nkey = \"zz\"\nconfirmed = true\n",
    )
    .unwrap();
    fs::set_permissions(
        &env.devices,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let before = env.bytes();
    env.enroll(&["add", "--no-confirm"], "")
        .one_line_error(1, ":4: key `device[1].key`");
    env.enroll(&["list"], "").one_line_error(1, "device[1].key");
    assert_eq!(env.bytes(), before);
}

#[test]
fn an_unsafe_device_file_is_refused() {
    let env = Env::new();
    env.enroll(&["add", "--no-confirm", "--qr", "none"], "")
        .expect(0);
    fs::set_permissions(
        &env.devices,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let before = env.bytes();
    env.enroll(&["add", "--no-confirm", "--name", "b"], "")
        .one_line_error(1, "chmod 600");
    assert_eq!(env.bytes(), before);
}

#[test]
fn an_unknown_user_is_a_usage_error() {
    let env = Env::new();
    env.enroll(&["list", "--user", "no-such-user-here"], "")
        .one_line_error(2, "unknown user");
}

// ------------------------------------------------------------------ help, completions

#[test]
fn every_command_has_help_with_examples() {
    for cmd in [
        vec!["--help"],
        vec!["add", "--help"],
        vec!["confirm", "--help"],
        vec!["list", "--help"],
        vec!["show", "--help"],
        vec!["remove", "--help"],
        vec!["reset", "--help"],
        vec!["import-google-authenticator", "--help"],
        vec!["batch", "--help"],
        vec!["completions", "--help"],
    ] {
        let out = common::run(
            {
                let mut c = std::process::Command::new(common::bin());
                c.args(&cmd);
                c
            },
            "",
        )
        .expect(0);
        assert!(out.stdout.contains("Examples:"), "{cmd:?}");
        assert!(out.stdout.contains("totp-enroll"), "{cmd:?}");
    }
}

#[test]
fn help_and_completions_offer_qr_png_exactly_when_built_with_the_png_feature() {
    let output = |args: &[&str]| {
        let mut c = std::process::Command::new(common::bin());
        c.args(args);
        common::run(c, "").expect(0).stdout
    };
    let offered = cfg!(feature = "png");
    for args in [
        &["add", "--help"][..],
        &["show", "--help"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
    ] {
        let out = output(args);
        assert_eq!(out.contains("qr-png"), offered, "{args:?}:\n{out}");
        assert!(out.contains("qr-svg"), "{args:?}");
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef totp-enroll"),
        ("fish", "complete -c totp-enroll"),
    ] {
        let out = common::run(
            {
                let mut c = std::process::Command::new(common::bin());
                c.args(["completions", shell]);
                c
            },
            "",
        )
        .expect(0);
        assert!(out.stdout.contains(needle), "{shell}");
        for sub in ["import-google-authenticator", "batch", "confirm"] {
            assert!(out.stdout.contains(sub), "{shell} completes {sub}");
        }
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("c.bash");
    let out = std::process::Command::new(common::bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    fs::write(&script, out.stdout).unwrap();
    assert!(std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap()
        .success());
}

#[test]
fn the_device_file_written_is_the_canonical_format_shared_reads() {
    let env = Env::new();
    add_rfc_device(&env);
    let text = fs::read_to_string(&env.devices).unwrap();
    assert!(text.starts_with(&format!("# pam-totp devices for {}.", me())));
    let parsed = parse_devices(&env.devices);
    // The canonical text, padded to the devices' fixed width (issue 11).
    assert_eq!(*shared::store::stored_text(&parsed, &me()), text);
}

#[test]
fn on_a_terminal_the_utf8_qr_is_drawn_black_on_white_unless_no_color() {
    // `script` gives the binary a pseudo-terminal as stdout.
    let env = Env::new();
    let cmd = format!(
        "{} add --no-confirm --qr utf8 --config {} --path {}",
        common::bin(),
        env.config.display(),
        env.devices.display()
    );
    let tty = |no_color: bool| -> String {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let _ = fs::remove_file(&env.devices);
        common::run(c, "").expect(0).stdout
    };
    let coloured = tty(false);
    assert!(coloured.contains("\x1b[30;107m"), "{coloured:?}");
    assert!(coloured.contains('▀'));
    let plain = tty(true);
    assert!(!plain.contains("\x1b["), "{plain:?}");
    assert!(plain.contains('▀'));
}

#[test]
fn a_reader_that_closes_the_pipe_early_is_not_an_error() {
    // `totp-enroll completions bash | head -1`: the write fails with EPIPE
    // once the reader is gone; everything the reader wanted was written.
    let mut child = std::process::Command::new(common::bin())
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
