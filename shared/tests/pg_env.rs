//! The PostgreSQL store ignores libpq's environment variables. Under sudo
//! or su the module runs in a setuid process whose environment the user
//! chose; libpq fills every connection parameter the conninfo leaves out
//! from `PG*` variables (`PGHOSTADDR` redirects even a named host,
//! `PGSERVICE`/`PGSERVICEFILE` bring in whole definitions, `PGOPTIONS` sets
//! server settings, `PGSSLMODE` turns TLS off). A user could point the
//! module at a server of their own, which answers with a device whose key
//! they know, or collect the store's password. Only the admin's conninfo
//! (and libpq's compiled defaults) may count.
//!
//! Alone in its test binary: it changes this process's environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod pg;

use pg::Cluster;
use shared::device::{Device, DeviceFile, Params};
use shared::login;
use shared::oath::{totp, Algorithm};
use shared::store::Change;
use shared::verify::{Login, Policy};
use shared::{Error, Secret, Timestamp};

const KEY: &str = "3132333435363738393031323334353637383930";

/// Both tests change the environment: one at a time.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn libpq_environment_variables_of_the_calling_user_are_ignored() {
    let _one = ENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let store = pg.store(&pg.unix(), "ivan", 3000);
    let mut d = Device::new(
        "phone",
        Secret::from_hex(KEY).unwrap(),
        &Params::default(),
        Timestamp::now(),
    );
    d.confirmed = true;
    store
        .update(|_, _| -> Result<_, Error> {
            #[allow(clippy::needless_update)]
            let f = DeviceFile {
                devices: vec![d],
                ..DeviceFile::default()
            };
            Ok(Change::Save(f, ()))
        })
        .unwrap();
    // What a user could export before running sudo: a host address that
    // overrides the admin's host, and server options.
    std::env::set_var("PGHOSTADDR", "127.0.0.2");
    std::env::set_var("PGOPTIONS", "-c default_transaction_read_only=on");
    std::env::set_var("PGSSLMODE", "disable");
    let code = totp(
        Algorithm::Sha1,
        Secret::from_hex(KEY).unwrap().expose(),
        Timestamp::now().secs_floor(),
        0,
        30,
        6,
    )
    .unwrap();
    let r = login::attempt(&store, &code, &Policy::default());
    for v in ["PGHOSTADDR", "PGOPTIONS", "PGSSLMODE"] {
        std::env::remove_var(v);
    }
    match r {
        Ok(a) => assert!(matches!(a.login, Login::Accepted { .. }), "{:?}", a.login),
        Err(e) => panic!("the user's environment steered the connection: {e}"),
    }
}

#[test]
fn a_tls_trust_anchor_under_the_callers_home_is_not_used() {
    let _one = ENV
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let tls = pg.tls();
    // The admin names no sslrootcert: libpq's default is
    // ~/.postgresql/root.crt of the effective user, not of whoever set HOME.
    let fake_home = pg.dir.path().join("fakehome");
    std::fs::create_dir_all(fake_home.join(".postgresql")).unwrap();
    std::fs::copy(
        pg.dir.path().join("ca.crt"),
        fake_home.join(".postgresql/root.crt"),
    )
    .unwrap();
    let conninfo = tls.split(" sslrootcert=").next().unwrap().to_owned();
    let own_root = posix::unistd::User::from_uid(posix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .dir
        .join(".postgresql/root.crt");
    if own_root.exists() {
        println!("SKIPPED: {} exists", own_root.display());
        return;
    }
    let home = std::env::var_os("HOME");
    std::env::set_var("HOME", &fake_home);
    let r = pq::Conn::connect(
        &conninfo,
        std::time::Instant::now() + std::time::Duration::from_secs(3),
    );
    match home {
        Some(h) => std::env::set_var("HOME", h),
        None => std::env::remove_var("HOME"),
    }
    let err = r.expect_err("the caller's $HOME/.postgresql/root.crt was trusted");
    assert!(err.to_string().contains("root certificate"), "{err}");
    assert!(std::env::var_os("HOME").is_some());
}
