//! `make bench` step for the PostgreSQL store (ignored in `cargo test`):
//! the cost of one login as the module makes it, in process, through
//! `shared` (phase 1 `prepare` on a connection of its own, then phase 2
//! `attempt`, one transaction on another), each login a different user
//! with a valid code, against a durable PostgreSQL 15 (fsync on) started
//! here: through a local PgBouncer (unix socket, transaction pooling), the
//! server's unix socket, and TCP + SCRAM-SHA-256; the central device-file
//! store in the same run for comparison. Prints a Markdown table and writes
//! it to target/bench/pg.md.
//!
//! `cargo test --release -p pam-totp-shared --test pg_bench -- --ignored --nocapture`
//! (PG_BENCH_LOGINS, default 500 per path).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod pg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pg::Cluster;
use shared::device::{Device, DeviceFile, Params};
use shared::login::{self, Prepared};
use shared::oath::{totp, Algorithm};
use shared::store::{Access, Change, FileSpec, PgStore, Store};
use shared::verify::{Login, Policy};
use shared::{Error, Secret, Timestamp};

const KEY: &str = "3132333435363738393031323334353637383930";

fn device() -> Device {
    let mut d = Device::new(
        "phone",
        Secret::from_hex(KEY).unwrap(),
        &Params::default(),
        Timestamp::now(),
    );
    d.confirmed = true;
    d
}

fn put(store: &Store) {
    store
        .update(|_, _| -> Result<_, Error> {
            #[allow(clippy::needless_update)]
            let f = DeviceFile {
                devices: vec![device()],
                ..DeviceFile::default()
            };
            Ok(Change::Save(f, ()))
        })
        .unwrap();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `n` logins (prepare + attempt with a valid code) of users
/// `u0..u{n-1}` through stores made by `store`. Returns (login, attempt)
/// times in ms, sorted, and the most round trips of an attempt.
fn run(n: usize, store: &dyn Fn(&str) -> Store) -> (Vec<f64>, Vec<f64>, u32) {
    let policy = Policy::default();
    let code = totp(
        Algorithm::Sha1,
        Secret::from_hex(KEY).unwrap().expose(),
        Timestamp::now().secs_floor(),
        0,
        30,
        6,
    )
    .unwrap();
    let (mut logins, mut attempts, mut trips) = (Vec::new(), Vec::new(), 0);
    for i in 0..n {
        let user = format!("u{i}");
        let s = store(&user);
        let t = Instant::now();
        assert!(matches!(
            login::prepare(&s, &policy).unwrap(),
            Prepared::Ready { .. }
        ));
        let t2 = Instant::now();
        let a = login::attempt(&s, &code, &policy).unwrap();
        let end = Instant::now();
        assert!(
            matches!(a.login, Login::Accepted { .. }),
            "{user}: {:?}",
            a.login
        );
        logins.push((end - t).as_secs_f64() * 1e3);
        attempts.push((end - t2).as_secs_f64() * 1e3);
        if let Store::Postgres(p) = &s {
            trips = trips.max(p.round_trips());
        }
    }
    logins.sort_by(f64::total_cmp);
    attempts.sort_by(f64::total_cmp);
    (logins, attempts, trips)
}

#[test]
#[ignore = "a measurement: make bench runs it"]
fn postgresql_store_login_latency() {
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let n: usize = std::env::var("PG_BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut pg = Cluster::start_with(false, true);
    pg.init_pam_totp();
    let mut paths: Vec<(&str, String)> = Vec::new();
    if Cluster::has_pgbouncer() {
        paths.push(("PgBouncer (unix socket, transaction pooling)", pg.bouncer()));
    }
    paths.push(("unix socket, direct", pg.unix()));
    paths.push(("TCP + SCRAM-SHA-256, direct", pg.tcp()));
    let files = tempfile::tempdir().unwrap();
    let file_store = |user: &str| {
        Store::file(
            FileSpec {
                path: files.path().join(format!("{user}.toml")),
                owner: 0,
                access: Access::AsCaller,
                home: None,
            },
            user,
        )
    };

    let mut table = String::new();
    writeln!(
        table,
        "| store, path | login p50 (ms) | login p99 (ms) | transaction p50 (ms) | transaction p99 (ms) | round trips per transaction |\n|---|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for (name, conninfo) in &paths {
        let settings = pg.settings(conninfo, 3000);
        let make = |user: &str| Store::Postgres(PgStore::new(&settings, user));
        for i in 0..n {
            put(&make(&format!("u{i}")));
        }
        let (logins, attempts, trips) = run(n, &make);
        writeln!(
            table,
            "| PostgreSQL, {name} | {:.2} | {:.2} | {:.2} | {:.2} | {trips} |",
            percentile(&logins, 0.5),
            percentile(&logins, 0.99),
            percentile(&attempts, 0.5),
            percentile(&attempts, 0.99)
        )
        .unwrap();
        pg.sql("DELETE FROM pam_totp_device");
    }
    for i in 0..n {
        put(&file_store(&format!("u{i}")));
    }
    let (logins, attempts, _) = run(n, &file_store);
    writeln!(
        table,
        "| device files (central, fsync) | {:.2} | {:.2} | {:.2} | {:.2} | – |",
        percentile(&logins, 0.5),
        percentile(&logins, 0.99),
        percentile(&attempts, 0.5),
        percentile(&attempts, 0.99)
    )
    .unwrap();
    let text = format!(
        "## PostgreSQL store: one login in process ({n} logins per path)\n\n\
         `shared/tests/pg_bench.rs`: phase 1 (`prepare`, its own connection) and phase 2 \
         (`attempt`: one transaction, connect to commit) through `shared`, as the module \
         makes them, each login a different user with a valid code; PostgreSQL 15 with \
         fsync on, on this machine. 'transaction' is phase 2 alone.\n\n{table}"
    );
    println!("{text}");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let out = target.join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("pg.md"), text).unwrap();
}
