//! Red-team findings, second round (branch `redteam2`), through real libpam
//! (pam_wrapper, pypamtest) and a real PostgreSQL (shared/tests/pg/mod.rs).
//! See docs/redteam2/NOTES.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../shared/tests/pg/mod.rs"]
mod pg;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_now, device, module, pypamtest, random_key_hex, Services, PAM_GET_ITEMS,
};
use shared::device::DeviceFile;
use shared::store::Change;
use shared::Error;

const USER: &str = "root";

/// Finding R2-3: `stash_code` cuts the answer at the code length of the
/// user's first confirmed device, which it reads with
/// `Store::for_user(&cfg.template, ..)` (pam_totp/src/auth.rs, `stash`):
/// always the device *file*, whatever `[store]` says. With the PostgreSQL
/// store the file is not there, so the cut is at 6 digits: a user with an
/// 8-digit device has two digits of the code appended to the password
/// handed to the password module (which refuses it), and the code line
/// gets the last 6 digits only. Every login of such a user fails
/// (closed, but a lock-out); and a stale device file at the template path
/// (left from before the move to PostgreSQL) decides the cut instead of
/// the database. It also reads the file system for a stranger's name
/// before the first factor, which `stash` promises not to do.
#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn finding_r2_3_stash_code_cuts_an_8_digit_code_of_the_postgresql_store_at_6() {
    require_root("finding_r2_3_stash_code_cuts_an_8_digit_code_of_the_postgresql_store_at_6");
    assert!(pg::available());
    let cluster = pg::Cluster::start(false);
    cluster.init_pam_totp();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("pg.toml");
    fs::write(
        &cfg,
        format!(
            // The site's code length, which stash_code cuts at (it reads no
            // store before the first factor; the fix of R2-3).
            "[enroll]\ndigits = 8\n[store]\nbackend = \"postgresql\"\nconninfo = \"{}\"\ndeadline_ms = 2000\n",
            cluster.unix()
        ),
    )
    .unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let so = module().unwrap();
    let services = Services::new().unwrap();
    services
        .add(
            "stash-pg",
            &format!(
                "auth requisite {m} config={c} stash_code\n\
                 auth required {m} config={c} use_stored_code\n\
                 auth required {PAM_GET_ITEMS}\n",
                m = so.display(),
                c = cfg.display()
            ),
        )
        .unwrap();
    let mut d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    d.digits = 8;
    cluster
        .store(&cluster.unix(), USER, 3000)
        .update(|_, _| -> Result<_, Error> {
            Ok(Change::Save(
                DeviceFile {
                    devices: vec![d.clone()],
                    ..DeviceFile::default()
                },
                (),
            ))
        })
        .unwrap();
    let password = "a password";
    let code = code_now(&d);
    assert_eq!(code.len(), 8);
    let r = pypamtest(
        &services,
        "stash-pg",
        USER,
        &[&format!("{password}{code}")],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        r.authtok.as_deref(),
        Some(password),
        "the password module was handed part of the code: {r:?}"
    );
    assert_eq!(r.code, 0, "{r:?}");
}
