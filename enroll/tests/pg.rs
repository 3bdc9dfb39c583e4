//! totp-enroll over the PostgreSQL store: `db init` (root, idempotent,
//! refused for the django-otp layout) and the device commands working the
//! same as on files, against a real PostgreSQL 15 started by the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../../shared/tests/pg/mod.rs"]
mod pg;

use common::Env;

fn settings(conninfo: &str, layout: &str) -> String {
    format!("[store]\nbackend = \"postgresql\"\nconninfo = \"{conninfo}\"\nlayout = \"{layout}\"\n")
}

#[test]
fn db_init_creates_the_tables_once_and_the_device_commands_use_them() {
    if !pg::available() {
        eprintln!("skipped: PostgreSQL 15 is not installed");
        return;
    }
    let cluster = pg::Cluster::start(false);
    let env = Env::with_config(&settings(&cluster.unix(), "pam-totp"));
    if !common::is_root() {
        env.enroll_nopath(&["db", "init"], "")
            .one_line_error(1, "only root");
        eprintln!("skipped the rest: needs root (trusted settings file, db init)");
        return;
    }
    env.enroll_nopath(&["db", "init"], "").expect(0);
    let again = env.enroll_nopath(&["db", "init", "--json"], "").expect(0);
    assert_eq!(again.json()[0]["ready"], true);
    let added = env
        .enroll_nopath(
            &[
                "add",
                "--no-confirm",
                "--qr",
                "none",
                "--json",
                "--name",
                "phone",
            ],
            "",
        )
        .expect(0);
    let key = added.json()[0]["key_hex"].as_str().unwrap().to_owned();
    let stored =
        cluster.value("SELECT key FROM pam_totp_device WHERE username = 'root' AND name = 'phone'");
    assert_eq!(stored.as_deref(), Some(key.as_str()));
    let listed = env.enroll_nopath(&["list", "--json"], "").expect(0);
    assert!(listed.stdout.contains("\"phone\""), "{}", listed.stdout);
    env.enroll_nopath(
        &["add", "--no-confirm", "--qr", "none", "--name", "phone"],
        "",
    )
    .one_line_error(1, "exists already");
    env.enroll_nopath(&["remove", "phone"], "").expect(0);
    assert_eq!(
        cluster.value("SELECT count(*) FROM pam_totp_device"),
        Some("0".into())
    );
}

#[test]
fn db_init_refuses_the_django_otp_layout_and_a_file_store() {
    if !common::is_root() {
        eprintln!("skipped: needs root (trusted settings file, db init)");
        return;
    }
    let env = Env::with_config(&settings("host=/nonexistent", "django-otp"));
    env.enroll_nopath(&["db", "init"], "")
        .one_line_error(1, "migrations");
    let env = Env::with_config("");
    env.enroll_nopath(&["db", "init"], "")
        .one_line_error(2, "backend = \"postgresql\"");
}

#[test]
fn backup_codes_issued_on_the_postgresql_store_are_stored_hashed_and_each_logs_in_once() {
    if !pg::available() {
        eprintln!("skipped: PostgreSQL 15 is not installed");
        return;
    }
    let cluster = pg::Cluster::start(false);
    let env = Env::with_config(&settings(&cluster.unix(), "pam-totp"));
    if !common::is_root() {
        eprintln!("skipped: needs root (trusted settings file, db init)");
        return;
    }
    env.enroll_nopath(&["db", "init"], "").expect(0);
    env.enroll_nopath(
        &["add", "--no-confirm", "--qr", "none", "--name", "phone"],
        "",
    )
    .expect(0);
    // Confirmed as `totp-enroll add` does after a code (not the subject here).
    cluster.sql("UPDATE pam_totp_device SET confirmed = true");
    let out = env
        .enroll_nopath(&["backup-codes", "--count", "3", "--yes", "--json"], "")
        .expect(0);
    let codes: Vec<String> = out.json()[0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 3);
    assert_eq!(
        cluster.value("SELECT cardinality(codes) FROM pam_totp_backup WHERE username = 'root'"),
        Some("3".into())
    );
    let row = format!("{:?}", cluster.sql("SELECT * FROM pam_totp_backup")).to_lowercase();
    for c in &codes {
        assert!(
            !row.contains(&c.replace('-', "")),
            "a code in clear in the row"
        );
    }
    // A login on the same store: once, then refused.
    let store = cluster.store(&cluster.unix(), "root", 3000);
    let policy = shared::verify::Policy::default();
    let first = shared::login::attempt(&store, &codes[1], &policy).unwrap();
    assert!(
        matches!(
            first.login,
            shared::verify::Login::BackupCode { remaining: 2 }
        ),
        "{:?}",
        first.login
    );
    let again = shared::login::attempt(&store, &codes[1], &policy).unwrap();
    assert!(
        matches!(again.login, shared::verify::Login::Rejected { .. }),
        "{:?}",
        again.login
    );
    let listed = env.enroll_nopath(&["list", "--json"], "").expect(0);
    assert!(listed.stdout.contains('2'), "{}", listed.stdout);
}
