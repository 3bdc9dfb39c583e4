//! Who may manage whose devices, and what root leaves behind in a user's
//! home: temporary accounts (`useradd -m`, removed with `userdel -r` by a
//! Drop guard), the real binary run as root and as those accounts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{mode_owner, parse_devices, Env, TestUser};

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_adding_for_a_user_creates_the_directory_0700_and_the_file_0600_owned_by_the_user() {
    let user = TestUser::new("own");
    let env = Env::new();
    let out = env
        .enroll_nopath(
            &[
                "add",
                "--user",
                &user.name,
                "--no-confirm",
                "--json",
                "--issuer",
                "",
            ],
            "",
        )
        .expect(0);
    let r = &out.json()[0];
    assert_eq!(r["user"], user.name.as_str());
    // The account name in the URL is the user's.
    assert!(
        r["config_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("otpauth://totp/{}?secret=", user.name)),
        "{r}"
    );
    let dir = user.home.join(".config/pam_totp");
    assert_eq!(mode_owner(&dir), (0o700, user.uid));
    assert_eq!(mode_owner(&user.home.join(".config")).1, user.uid);
    assert_eq!(mode_owner(&user.devices_path()), (0o600, user.uid));
    let f = parse_devices(&user.devices_path());
    assert_eq!(f.devices.len(), 1);
    // The user can read and extend it themself.
    let out = user
        .enroll(&["list", "--config", env.config.to_str().unwrap()], "")
        .expect(0);
    assert!(out.stdout.contains("default"), "{}", out.stdout);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_does_not_follow_a_users_symlink_out_of_their_home() {
    let user = TestUser::new("sym");
    let env = Env::new();
    let victim = env.path("victim");
    fs::write(&victim, "precious\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    // The user plants a link where root would write.
    let dir = user.home.join(".config/pam_totp");
    fs::create_dir_all(&dir).unwrap();
    for d in [user.home.join(".config"), dir.clone()] {
        std::os::unix::fs::chown(&d, Some(user.uid), Some(user.gid)).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::os::unix::fs::symlink(&victim, user.devices_path()).unwrap();
    env.enroll_nopath(
        &["add", "--user", &user.name, "--no-confirm", "--qr", "none"],
        "",
    )
    .one_line_error(1, "symbolic link");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_user_manages_their_own_devices_without_root() {
    let user = TestUser::new("self");
    let env = Env::new();
    let cfg = env.config.to_str().unwrap();
    let out = user
        .enroll(
            &[
                "add",
                "--config",
                cfg,
                "--no-confirm",
                "--qr",
                "none",
                "--name",
                "phone",
            ],
            "",
        )
        .expect(0);
    assert!(out.stdout.contains(&format!("for {}", user.name)));
    assert_eq!(mode_owner(&user.devices_path()), (0o600, user.uid));
    assert_eq!(
        mode_owner(&user.home.join(".config/pam_totp")),
        (0o700, user.uid)
    );
    // Naming themself with --user is fine.
    user.enroll(&["list", "--config", cfg, "--user", &user.name], "")
        .expect(0);
    user.enroll(&["remove", "phone", "--config", cfg], "")
        .expect(0);
    assert!(parse_devices(&user.devices_path()).devices.is_empty());
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn a_user_cannot_manage_another_users_devices() {
    let alice = TestUser::new("a");
    let bob = TestUser::new("b");
    let env = Env::new();
    let cfg = env.config.to_str().unwrap();
    env.enroll_nopath(
        &["add", "--user", &bob.name, "--no-confirm", "--qr", "none"],
        "",
    )
    .expect(0);
    let before = fs::read(bob.devices_path()).unwrap();
    for args in [
        vec!["list", "--user", &bob.name],
        vec!["add", "--user", &bob.name, "--no-confirm", "--name", "evil"],
        vec!["remove", "default", "--user", &bob.name],
        vec!["reset", "default", "--user", &bob.name],
        vec!["show", "default", "--user", &bob.name],
    ] {
        let mut args = args;
        args.extend(["--config", cfg]);
        alice
            .enroll(&args, "")
            .one_line_error(1, "only root may manage another user's devices");
    }
    // Nor through --path.
    let path = bob.devices_path();
    alice
        .enroll(
            &["list", "--config", cfg, "--path", path.to_str().unwrap()],
            "",
        )
        .expect(1);
    assert_eq!(fs::read(bob.devices_path()).unwrap(), before);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn batch_is_refused_for_non_root() {
    let user = TestUser::new("nb");
    let env = Env::new();
    user.enroll(
        &[
            "batch",
            "--users",
            &user.name,
            "--config",
            env.config.to_str().unwrap(),
        ],
        "",
    )
    .one_line_error(1, "run it as root");
    assert!(!user.devices_path().exists());
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn batch_creates_a_device_per_user_and_reports_unknown_users() {
    let u1 = TestUser::new("x");
    let u2 = TestUser::new("y");
    let env = Env::with_config("issuer = \"Corp\"\n");
    let users = format!("{},no-such-user-here,{}", u1.name, u2.name);
    let out = env.enroll_nopath(
        &[
            "batch",
            "--users",
            &users,
            "--digits",
            "8",
            "--image",
            "https://i.example/l.png",
        ],
        "",
    );
    let out = out.one_line_error(1, "1 of 3 users got no device");
    let records = out.json();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["user"], "no-such-user-here");
    assert!(records[1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown user"));
    for (r, u) in [(&records[0], &u1), (&records[2], &u2)] {
        assert_eq!(r["user"], u.name.as_str());
        assert_eq!(r["digits"], 8);
        assert_eq!(r["confirmed"], false);
        let url = r["config_url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("otpauth://totp/Corp%3A{}?secret=", u.name)),
            "{url}"
        );
        assert!(
            url.ends_with("&digits=8&period=30&issuer=Corp&image=https://i.example/l.png"),
            "{url}"
        );
        let d = parse_devices(&u.devices_path()).devices.remove(0);
        assert_eq!(r["key_hex"], d.key.to_hex().as_str());
        assert_eq!(mode_owner(&u.devices_path()), (0o600, u.uid));
    }
    // Again: each user already has the device; reported, not fatal, files kept.
    let before = fs::read(u1.devices_path()).unwrap();
    let out = env.enroll_nopath(
        &[
            "batch",
            "--users",
            &u1.name,
            "--confirmed",
            "--name",
            "second",
            "--issuer",
            "",
        ],
        "",
    );
    let url = out.expect(0).json()[0]["config_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(&format!("otpauth://totp/{}?", u1.name)) && !url.contains("issuer"),
        "{url}"
    );
    let out = env.enroll_nopath(
        &[
            "batch",
            "--users",
            &format!("{},{}", u1.name, u2.name),
            "--name",
            "second",
        ],
        "",
    );
    let out = out.one_line_error(1, "1 of 2 users");
    assert!(out.json()[0]["error"]
        .as_str()
        .unwrap()
        .contains("exists already"));
    assert_eq!(out.json()[1]["confirmed"], false);
    let f = parse_devices(&u1.devices_path());
    assert!(f.find("second").unwrap().confirmed, "--confirmed");
    assert_ne!(fs::read(u1.devices_path()).unwrap(), before);
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn batch_reads_user_names_from_stdin() {
    let u = TestUser::new("stdin");
    let env = Env::new();
    let out = env
        .enroll_nopath(
            &["batch", "--users-from", "-"],
            &format!("# users\n{}\n\n", u.name),
        )
        .expect(0);
    assert_eq!(out.json().len(), 1);
    assert!(u.devices_path().exists());
    env.enroll_nopath(&["batch", "--users-from", "-", "--path", "/tmp/x.toml"], "")
        .one_line_error(2, "--path");
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_imports_a_users_google_authenticator_file_as_that_user() {
    let user = TestUser::new("ga");
    let env = Env::new();
    let ga = user.home.join(".google_authenticator");
    let status = std::process::Command::new("google-authenticator")
        .args([
            "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "5", "-Q", "NONE", "-q", "-s",
        ])
        .arg(&ga)
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::chown(&ga, Some(user.uid), Some(user.gid)).unwrap();
    let out = env
        .enroll_nopath(&["import-google-authenticator", "--user", &user.name], "")
        .expect(0);
    assert!(
        out.stdout.contains("tolerance ±2 (WINDOW_SIZE 5)"),
        "{}",
        out.stdout
    );
    assert_eq!(mode_owner(&user.devices_path()), (0o600, user.uid));
    let d = parse_devices(&user.devices_path()).devices.remove(0);
    let secret = fs::read_to_string(&ga).unwrap();
    assert_eq!(
        d.key,
        shared::Secret::from_base32(secret.lines().next().unwrap()).unwrap()
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_with_a_path_inside_the_users_home_writes_as_the_user() {
    let user = TestUser::new("path");
    let env = Env::new();
    let path = user.home.join("totp/devices.toml");
    env.enroll_nopath(
        &[
            "add",
            "--user",
            &user.name,
            "--path",
            path.to_str().unwrap(),
            "--no-confirm",
            "--qr",
            "none",
        ],
        "",
    )
    .expect(0);
    assert_eq!(mode_owner(&user.home.join("totp")), (0o700, user.uid));
    assert_eq!(mode_owner(&path), (0o600, user.uid));
    // Root's own device file may not live in someone else's directory.
    let other = user.home.join("totp/root.toml");
    env.enroll_nopath(
        &["add", "--path", other.to_str().unwrap(), "--no-confirm"],
        "",
    )
    .one_line_error(1, "not by the user or root");
    assert!(!other.exists());
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_writes_a_qr_image_in_a_users_home_as_that_user() {
    let user = TestUser::new("qrh");
    let env = Env::new();
    let png = user.home.join("qr.png");
    let svg = user.home.join("qr.svg");
    let mut args = vec!["add", "--user", &user.name, "--no-confirm", "--qr", "none"];
    args.extend(["--qr-svg", svg.to_str().unwrap()]);
    // PNG too when built in (the default; the `png` feature).
    if cfg!(feature = "png") {
        args.extend(["--qr-png", png.to_str().unwrap()]);
    }
    env.enroll_nopath(&args, "").expect(0);
    // The user can read the image of their own secret; nobody else can.
    assert_eq!(mode_owner(&svg), (0o600, user.uid));
    if cfg!(feature = "png") {
        assert_eq!(mode_owner(&png), (0o600, user.uid));
    }
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_does_not_write_a_qr_image_through_a_users_symlinked_directory() {
    let user = TestUser::new("qrs");
    let env = Env::new();
    // The user points a directory of their home at one only root may write.
    let link = user.home.join("out");
    std::os::unix::fs::symlink(env.dir.path(), &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(user.uid), Some(user.gid)).unwrap();
    let svg = link.join("qr.svg");
    let out = env.enroll_nopath(
        &[
            "add",
            "--user",
            &user.name,
            "--no-confirm",
            "--qr",
            "none",
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let left: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("qr.svg"))
        .collect();
    assert!(
        left.is_empty(),
        "root wrote {left:?} into its own directory"
    );
    assert!(
        !user.devices_path().exists(),
        "nothing saved after the error"
    );
}

/// Root's `--user` path for backup codes (issue 12): the first confirmed
/// device brings a set, `backup-codes --user` replaces it, and the file
/// stays the user's own.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn root_makes_backup_codes_for_a_user_and_the_file_stays_theirs() {
    let user = TestUser::new("bkp");
    let env = Env::new();
    let key = "3132333435363738393031323334353637383930";
    env.enroll_nopath(
        &[
            "add",
            "--user",
            &user.name,
            "--key",
            key,
            "--no-confirm",
            "--json",
        ],
        "",
    )
    .expect(0);
    let out = env
        .enroll_nopath(
            &["confirm", "default", "--user", &user.name, "--json"],
            &format!("{}\n", common::code_now(key)),
        )
        .expect(0);
    let records = out.json();
    assert_eq!(records[1]["user"], user.name.as_str());
    assert_eq!(records[1]["count"], 10);
    let out = env
        .enroll_nopath(
            &[
                "backup-codes",
                "--user",
                &user.name,
                "--count",
                "3",
                "--json",
            ],
            "",
        )
        .expect(0);
    assert_eq!(out.json()[0]["count"], 3);
    assert_eq!(mode_owner(&user.devices_path()), (0o600, user.uid));
    assert_eq!(
        parse_devices(&user.devices_path())
            .backup
            .unwrap()
            .remaining(),
        3
    );
    let out = user
        .enroll(&["list", "--config", env.config.to_str().unwrap()], "")
        .expect(0);
    assert!(
        out.stdout.contains("Backup codes: 3 codes left"),
        "{}",
        out.stdout
    );
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_9_batch_users_from_opens_only_a_regular_file_and_never_echoes_a_line() {
    // Issue 11, finding 9: `--users-from` followed a symlink (to
    // /etc/shadow, whose lines it then printed as unknown users) and hung
    // on a FIFO.
    let u = TestUser::new("from");
    let env = Env::new();
    let secret_line = "root:$y$j9T$notarealhash:19000:0:99999:7:::";
    let listing = env.path("listing");
    fs::write(&listing, format!("{secret_line}\n{}\n", u.name)).unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink(&listing, &link).unwrap();
    let out = env.enroll_nopath(&["batch", "--users-from", link.to_str().unwrap()], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        !out.stdout.contains("root:") && !out.stderr.contains("root:"),
        "{out:?}"
    );
    assert!(!u.devices_path().exists(), "a symlinked list was followed");

    // A regular file: the valid name gets a device; the line that is no
    // user name is reported by number, never shown.
    let out = env.enroll_nopath(&["batch", "--users-from", listing.to_str().unwrap()], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !out.stdout.contains("root:") && !out.stderr.contains("root:"),
        "{out:?}"
    );
    assert!(out.stderr.contains(":1:"), "{out:?}");
    assert!(u.devices_path().exists());

    // A FIFO nobody writes to: refused at once, not waited on.
    let fifo = env.path("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = std::process::Command::new(common::bin())
        .args(["batch", "--users-from", fifo.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > std::time::Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.and_then(|s| s.code()), Some(2), "hung on a FIFO");
}
