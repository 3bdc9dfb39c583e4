//! The `django-otp` layout against a real Django site: Django and
//! django-otp 1.7.5 from PyPI in a venv the test creates (cached under
//! target/django-venv), migrated into a PostgreSQL 15 the test starts. The
//! module's store and Django's own `verify_token` share one row: a code
//! accepted by one is refused by the other, in both directions, and a
//! failure through pam-totp throttles Django's device.
//!
//! Skipped (reported) when PostgreSQL 15 is missing or the venv cannot be
//! made (no network for pip).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

use pg::Cluster;
use serde_json::Value;
use shared::config::{Layout, PgSettings};
use shared::device::{Device, Params};
use shared::login::{self, Prepared};
use shared::manage;
use shared::oath::{totp, Algorithm};
use shared::store::{PgStore, Store};
use shared::verify::{Login, Policy, Rejection};
use shared::{Secret, Timestamp};

const KEY: &str = "3132333435363738393031323334353637383930";

fn venv() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let venv = target.join("django-venv");
    let python = venv.join("bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args(["-c", "import django, django_otp, psycopg"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Some(python);
    }
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                "Django>=4.2,<5.3",
                "django-otp==1.7.5",
                "psycopg[binary]",
            ])
            .status()
            .is_ok_and(|s| s.success());
    (made && ready(&python)).then_some(python)
}

const SITE: &str = r#"
import json, os, sys
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="test",
    USE_TZ=True,
    OTP_STATIC_THROTTLE_FACTOR=30,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django_otp",
                    "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres",
                           "USER": "postgres", "HOST": os.environ["PGDIR"], "PORT": os.environ["PGPORT"]}},
)
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.plugins.otp_static.models import StaticDevice
cmd = sys.argv[1]
if cmd.startswith("static"):
    if cmd == "static":
        s = StaticDevice.objects.create(user=User.objects.get(username="alice"), name="backup")
        for t in sys.argv[2:]:
            s.token_set.create(token=t)
        print(json.dumps({"ok": True}))
        sys.exit(0)
    s = StaticDevice.objects.get(user__username="alice")
    if cmd == "static_verify":
        print(json.dumps({"ok": bool(s.verify_token(sys.argv[2]))}))
    elif cmd == "static_tokens":
        print(json.dumps({"ok": True, "tokens": sorted(t.token for t in s.token_set.all())}))
    elif cmd == "static_allowed":
        allowed, _ = s.verify_is_allowed()
        print(json.dumps({"ok": bool(allowed), "count": s.throttling_failure_count}))
elif cmd == "migrate":
    call_command("migrate", verbosity=0)
    u = User.objects.create(username="alice")
    TOTPDevice.objects.create(user=u, name="phone", key=sys.argv[2], confirmed=True)
    print(json.dumps({"ok": True}))
else:
    d = TOTPDevice.objects.get(user__username="alice")
    if cmd == "verify":
        ok = d.verify_token(sys.argv[2])
        print(json.dumps({"ok": bool(ok)}))
    elif cmd == "allowed":
        allowed, _ = d.verify_is_allowed()
        print(json.dumps({"ok": bool(allowed), "count": d.throttling_failure_count, "last_t": d.last_t}))
"#;

fn django(python: &Path, pg: &Cluster, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(SITE)
        .args(args)
        .env("PGDIR", pg.dir.path())
        .env("PGPORT", pg.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "django {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn code_now() -> String {
    totp(
        Algorithm::Sha1,
        Secret::from_hex(KEY).unwrap().expose(),
        Timestamp::now().secs_floor(),
        0,
        30,
        6,
    )
    .unwrap()
}

fn reset(pg: &Cluster) {
    pg.sql(
        "UPDATE otp_totp_totpdevice SET last_t = -1, drift = 0, throttling_failure_count = 0, \
         throttling_failure_timestamp = NULL",
    );
}

#[test]
fn the_web_site_and_the_module_share_replay_and_throttle_state_in_djangos_own_table() {
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let Some(python) = venv() else {
        println!("SKIPPED: cannot make a venv with Django and django-otp (pip offline?)");
        return;
    };
    let mut pg = Cluster::start(false);
    assert_eq!(django(&python, &pg, &["migrate", KEY])["ok"], true);
    pg.sql(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON otp_totp_totpdevice TO pamtotp; \
            GRANT SELECT, UPDATE ON otp_static_staticdevice TO pamtotp; \
            GRANT SELECT, DELETE ON otp_static_statictoken TO pamtotp; \
            GRANT SELECT ON auth_user TO pamtotp; \
            GRANT USAGE ON SEQUENCE otp_totp_totpdevice_id_seq TO pamtotp",
    );
    let mut paths = vec![pg.unix(), pg.tcp()];
    if Cluster::has_pgbouncer() {
        paths.push(pg.bouncer());
    }
    let pg = &pg;
    let settings = PgSettings {
        conninfo: pg.unix(),
        layout: Layout::DjangoOtp {
            user_table: "auth_user".into(),
            username_column: "username".into(),
        },
        deadline_ms: 3000,
    };
    let store = Store::Postgres(PgStore::new(&settings, "alice"));
    let policy = Policy::default();
    // A first confirmed device makes no backup set here (the site makes
    // static tokens): nothing made, nothing refused, nothing shown.
    assert!(manage::first_backup_codes(&store).unwrap().is_none());

    // PAM first: Django refuses the same code.
    let code = code_now();
    let a = login::attempt(&store, &code, &policy).unwrap();
    assert!(matches!(a.login, Login::Accepted { .. }), "{:?}", a.login);
    assert_eq!(django(&python, pg, &["verify", &code])["ok"], false);

    // Django first: pam-totp refuses the same code as a replay.
    reset(pg);
    let code = code_now();
    assert_eq!(django(&python, pg, &["verify", &code])["ok"], true);
    let b = login::attempt(&store, &code, &policy).unwrap();
    assert!(
        matches!(
            b.login,
            Login::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ),
        "{:?}",
        b.login
    );

    // A failure through pam-totp throttles Django's device, and Django's
    // failures throttle pam-totp.
    reset(pg);
    let w = login::attempt(&store, "000000", &policy).unwrap();
    assert!(matches!(w.login, Login::Rejected { .. }), "{:?}", w.login);
    let state = django(&python, pg, &["allowed"]);
    assert_eq!(state["ok"], false, "{state}");
    assert_eq!(state["count"], 1);
    reset(pg);
    assert_eq!(django(&python, pg, &["verify", "000000"])["ok"], false);
    assert!(matches!(
        login::prepare(&store, &policy).unwrap(),
        Prepared::AllThrottled { .. }
    ));
    // The race in Django's table: 16 logins with one code over the paths,
    // 20 rounds.
    let race = |conninfo: &str, code: &str| {
        let s = PgSettings {
            conninfo: conninfo.to_owned(),
            ..settings.clone()
        };
        let store = Store::Postgres(PgStore::new(&s, "alice"));
        matches!(
            login::attempt(&store, code, &policy).unwrap().login,
            Login::Accepted { .. }
        )
    };
    let rounds: Vec<usize> = (0..20)
        .map(|_| pg::race_round(pg, "otp_totp_totpdevice", &paths, &code_now(), &race))
        .collect();
    println!(
        "race, django-otp layout over {} paths: successes per round {rounds:?}",
        paths.len()
    );
    assert!(rounds.iter().all(|n| *n == 1), "{rounds:?}");

    // A name Django does not know has no devices, and gets none.
    let nobody = Store::Postgres(PgStore::new(&settings, "mallory"));
    assert_eq!(
        login::prepare(&nobody, &policy).unwrap(),
        Prepared::NoDevice
    );
    let mut d = Device::new(
        "tablet",
        Secret::from_hex(KEY).unwrap(),
        &Params::default(),
        Timestamp::now(),
    );
    let err = manage::add(&nobody, &d).unwrap_err();
    assert!(err.to_string().contains("no such user"), "{err}");
    // totp-enroll's add writes a row Django reads as alice's; SHA256 is
    // refused (django-otp's TOTP devices are SHA1).
    manage::add(&store, &d).unwrap();
    assert_eq!(
        pg.value(
            "SELECT count(*) FROM otp_totp_totpdevice d JOIN auth_user u ON u.id = d.user_id \
             WHERE u.username = 'alice'"
        ),
        Some("2".into())
    );
    d.name = "sha256".into();
    d.algorithm = Algorithm::Sha256;
    let err = manage::add(&store, &d).unwrap_err();
    assert!(err.to_string().contains("SHA1 only"), "{err}");
}

/// The static tokens of the Django site's test user.
const TOKENS: [&str; 3] = ["abcd2345", "efgh6789", "ijkl0mnp"];

fn reset_static(pg: &Cluster) {
    reset(pg);
    pg.sql(
        "UPDATE otp_static_staticdevice SET throttling_failure_count = 0, \
         throttling_failure_timestamp = NULL",
    );
}

#[test]
fn a_static_token_used_through_the_module_is_gone_for_django_and_failures_throttle_djangos_static_device(
) {
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let Some(python) = venv() else {
        println!("SKIPPED: cannot make a venv with Django and django-otp (pip offline?)");
        return;
    };
    let pg = Cluster::start(false);
    assert_eq!(django(&python, &pg, &["migrate", KEY])["ok"], true);
    let mut args = vec!["static"];
    args.extend(TOKENS);
    assert_eq!(django(&python, &pg, &args)["ok"], true);
    pg.sql(
        "GRANT SELECT, UPDATE ON otp_totp_totpdevice, otp_static_staticdevice TO pamtotp; \
         GRANT SELECT, DELETE ON otp_static_statictoken TO pamtotp; \
         GRANT SELECT ON auth_user TO pamtotp",
    );
    let settings = PgSettings {
        conninfo: pg.unix(),
        layout: Layout::DjangoOtp {
            user_table: "auth_user".into(),
            username_column: "username".into(),
        },
        deadline_ms: 3000,
    };
    let store = Store::Postgres(PgStore::new(&settings, "alice"));
    // The site's OTP_STATIC_THROTTLE_FACTOR.
    let policy = Policy {
        static_throttle_factor: 30,
        ..Policy::default()
    };

    // Through the module: accepted once, in at most four round trips, and
    // gone for Django.
    let direct = PgStore::new(&settings, "alice");
    let login = direct
        .update(|f, now| -> Result<_, shared::Error> {
            let (login, next) = shared::verify::verify_login(f.unwrap(), TOKENS[1], now, &policy);
            Ok(shared::store::Change::Save(next, login))
        })
        .unwrap();
    println!(
        "round trips for a static-token login (django-otp layout): {}",
        direct.round_trips()
    );
    assert!(
        matches!(login, Login::BackupCode { remaining: 2 }),
        "{login:?}"
    );
    assert!(direct.round_trips() <= 4, "{}", direct.round_trips());
    let left = django(&python, &pg, &["static_tokens"]);
    assert_eq!(left["tokens"], serde_json::json!([TOKENS[0], TOKENS[2]]));
    assert_eq!(
        django(&python, &pg, &["static_verify", TOKENS[1]])["ok"],
        false
    );
    reset_static(&pg);
    let again = login::attempt(&store, TOKENS[1], &policy).unwrap();
    assert!(
        matches!(again.login, Login::Rejected { .. }),
        "{:?}",
        again.login
    );

    // An exact match, as Django's: another case is refused.
    reset_static(&pg);
    let upper = TOKENS[0].to_uppercase();
    let a = login::attempt(&store, &upper, &policy).unwrap();
    assert!(matches!(a.login, Login::Rejected { .. }), "{:?}", a.login);

    // Used by Django first: refused through the module.
    reset_static(&pg);
    assert_eq!(
        django(&python, &pg, &["static_verify", TOKENS[0]])["ok"],
        true
    );
    let b = login::attempt(&store, TOKENS[0], &policy).unwrap();
    assert!(matches!(b.login, Login::Rejected { .. }), "{:?}", b.login);

    // A failure through the module throttles Django's static device.
    reset_static(&pg);
    let w = login::attempt(&store, "wrong-token", &policy).unwrap();
    assert!(matches!(w.login, Login::Rejected { .. }), "{:?}", w.login);
    let state = django(&python, &pg, &["static_allowed"]);
    assert_eq!(state["ok"], false, "{state}");
    assert_eq!(state["count"], 1);
    // And the remaining token still works for Django once allowed again.
    reset_static(&pg);
    assert_eq!(
        django(&python, &pg, &["static_verify", TOKENS[2]])["ok"],
        true
    );

    // totp-enroll cannot make or remove the site's static tokens.
    let err = store
        .update(|f, _| -> Result<_, shared::Error> {
            let mut f = f.unwrap().clone();
            f.backup = None;
            Ok(shared::store::Change::Save(f, ()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("Django site"), "{err}");
}
