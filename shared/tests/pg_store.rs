//! The PostgreSQL store (docs/design.md §9) against a real PostgreSQL 15 started by
//! the tests (tests/pg/mod.rs): django-otp's vectors at the database's
//! clock, the race over two connection paths with its negative control,
//! state shared across paths, totp-enroll's changes, and the fault matrix.
//!
//! Skipped (reported, not passed) where PostgreSQL 15 is not installed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod pg;

use std::path::Path;
use std::time::{Duration, Instant};

use pg::Cluster;
use serde_json::Value;
use shared::backup::{BackupCodes, CodeFormat};
use shared::device::{Device, DeviceFile, Params};
use shared::login::{self, Prepared};
use shared::manage;
use shared::oath::{totp, Algorithm};
use shared::store::{Change, Store};
use shared::verify::{Login, Policy, Rejection};
use shared::{Error, Secret, Timestamp};

const KEY: &str = "3132333435363738393031323334353637383930";

fn skip() -> bool {
    if !pg::available() {
        println!(
            "SKIPPED: PostgreSQL is not installed ({})",
            pg::bin().display()
        );
        return true;
    }
    false
}

fn device(name: &str) -> Device {
    let mut d = Device::new(
        name,
        Secret::from_hex(KEY).unwrap(),
        &Params::default(),
        Timestamp::from_secs(1_700_000_000),
    );
    d.confirmed = true;
    d
}

fn put(store: &Store, devices: Vec<Device>) {
    store
        .update(|_, _| -> Result<_, Error> {
            #[allow(clippy::needless_update)]
            let f = DeviceFile {
                devices,
                ..DeviceFile::default()
            };
            Ok(Change::Save(f, ()))
        })
        .unwrap();
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

fn opt_time(v: &Value) -> Option<Timestamp> {
    v.as_f64().map(Timestamp::from_secs_f64)
}

#[test]
fn every_django_verify_scenario_is_reproduced_through_the_postgresql_store_at_the_database_clock() {
    if skip() {
        return;
    }
    let pg = Cluster::start(true);
    pg.init_pam_totp();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/django-otp.json"),
    )
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut events = 0;
    for s in v["verify_scenarios"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let policy = Policy {
            sync: s["settings"]["OTP_TOTP_SYNC"].as_bool().unwrap(),
            throttle_factor: s["settings"]["OTP_TOTP_THROTTLE_FACTOR"].as_u64().unwrap() as u32,
            ..Policy::default()
        };
        let i = &s["initial"];
        let user = format!("u-{name}");
        let store = pg.store(&pg.unix(), &user, 5000);
        let mut d = device("phone");
        d.key = Secret::from_hex(i["key_hex"].as_str().unwrap()).unwrap();
        d.digits = i["digits"].as_u64().unwrap() as u32;
        d.step = i["step"].as_u64().unwrap() as u32;
        d.t0 = i["t0"].as_i64().unwrap();
        d.tolerance = i["tolerance"].as_u64().unwrap() as u32;
        d.drift = i["drift"].as_i64().unwrap() as i16;
        d.last_t = i["last_t"].as_i64().unwrap();
        d.created_at = None;
        d.last_used_at = opt_time(&i["last_used_at"]);
        d.throttling_failure_count = i["throttling_failure_count"].as_u64().unwrap() as u32;
        d.throttling_failure_timestamp = opt_time(&i["throttling_failure_timestamp"]);
        put(&store, vec![d]);
        for e in s["events"].as_array().unwrap() {
            let now = Timestamp::from_secs_f64(e["time"].as_f64().unwrap());
            let x = &e["expected"];
            let at = format!("{name} at {}", e["time"]);
            pg.set_clock(now);
            // Phase 1, unlocked, at the database's clock.
            let allowed = match login::prepare(&store, &policy).unwrap() {
                Prepared::Ready { .. } => true,
                Prepared::AllThrottled { until, now: seen } => {
                    assert_eq!(seen, now, "{at}: the database's clock");
                    assert_eq!(Some(until), opt_time(&x["locked_until"]), "{at}");
                    false
                }
                Prepared::NoDevice => panic!("{at}: no device"),
            };
            assert_eq!(
                allowed,
                x["verify_is_allowed_before"].as_bool().unwrap(),
                "{at}"
            );
            // Phase 2, the transaction.
            let done = login::attempt(&store, e["token"].as_str().unwrap(), &policy).unwrap();
            assert_eq!(
                done.now, now,
                "{at}: the transaction ran at the database's clock"
            );
            let accepted = matches!(done.login, Login::Accepted { .. });
            assert_eq!(
                accepted,
                x["result"].as_bool().unwrap(),
                "{at}: {:?}",
                done.login
            );
            // The state as stored in the row.
            let stored = store.read().unwrap().devices.unwrap().devices.remove(0);
            assert_eq!(
                i64::from(stored.drift),
                x["drift"].as_i64().unwrap(),
                "{at} drift"
            );
            assert_eq!(stored.last_t, x["last_t"].as_i64().unwrap(), "{at} last_t");
            assert_eq!(
                u64::from(stored.throttling_failure_count),
                x["throttling_failure_count"].as_u64().unwrap(),
                "{at} count"
            );
            assert_eq!(
                stored.throttling_failure_timestamp,
                opt_time(&x["throttling_failure_timestamp"]),
                "{at} failure timestamp"
            );
            assert_eq!(
                stored.last_used_at,
                opt_time(&x["last_used_at"]),
                "{at} last_used_at"
            );
            events += 1;
        }
    }
    println!("{events} django-otp events replayed through PostgreSQL");
    assert!(events >= 30, "only {events} events");
}

fn round(pg: &Cluster, paths: &[String], attempt: &(dyn Fn(&str, &str) -> bool + Sync)) -> usize {
    pg::race_round(pg, "pam_totp_device", paths, &code_now(), attempt)
}

#[test]
fn sixteen_concurrent_logins_with_one_code_over_several_paths_accept_exactly_one_in_each_of_20_rounds(
) {
    if skip() {
        return;
    }
    let mut pg = Cluster::start(false);
    pg.init_pam_totp();
    put(&pg.store(&pg.unix(), "alice", 5000), vec![device("phone")]);
    let mut paths = vec![pg.unix(), pg.tcp()];
    if Cluster::has_pgbouncer() {
        paths.push(pg.bouncer());
    } else {
        println!("PgBouncer is not installed: two paths only");
    }
    let pg = &pg;
    let store_attempt = |conninfo: &str, code: &str| {
        let store = pg.store(conninfo, "alice", 5000);
        match login::attempt(&store, code, &Policy::default()) {
            Ok(a) => matches!(a.login, Login::Accepted { .. }),
            Err(e) => panic!("attempt failed: {e}"),
        }
    };
    let rounds: Vec<usize> = (0..20).map(|_| round(pg, &paths, &store_attempt)).collect();
    println!("race, FOR UPDATE (PostgreSQL store): successes per round {rounds:?}");
    assert!(rounds.iter().all(|n| *n == 1), "{rounds:?}");

    // Negative control: the same harness with a transaction that reads
    // without FOR UPDATE must be able to fail.
    let lock_free = |conninfo: &str, code: &str| lock_free_attempt(conninfo, code);
    let rounds: Vec<usize> = (0..20).map(|_| round(pg, &paths, &lock_free)).collect();
    println!("race, negative control without FOR UPDATE: successes per round {rounds:?}");
    assert!(rounds.iter().any(|n| *n > 1), "{rounds:?}");
}

/// The deliberately wrong transaction of the negative control: read
/// `last_t` without a row lock, check the code, write, commit.
fn lock_free_attempt(conninfo: &str, code: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = pq::Conn::connect(conninfo, deadline).unwrap();
    c.execute("BEGIN", deadline).unwrap();
    let rows = c
        .query(
            "SELECT id, last_t, (extract(epoch FROM clock_timestamp()))::bigint FROM pam_totp_device \
             WHERE username = $1 ORDER BY id",
            &[Some("alice")],
            deadline,
        )
        .unwrap();
    let id = rows.get(0, 0).unwrap().to_owned();
    let last_t: i64 = rows.get(0, 1).unwrap().parse().unwrap();
    let now: i64 = rows.get(0, 2).unwrap().parse().unwrap();
    let key = Secret::from_hex(KEY).unwrap();
    let t = now.div_euclid(30);
    let hit = (t - 1..=t + 1).find(|c| {
        *c > last_t
            && shared::oath::hotp(Algorithm::Sha1, key.expose(), *c as u64, 6).as_deref()
                == Some(code)
    });
    let Some(step) = hit else {
        c.execute("ROLLBACK", deadline).unwrap();
        return false;
    };
    c.query(
        "UPDATE pam_totp_device SET last_t = $2 WHERE id = $1",
        &[Some(id.as_str()), Some(step.to_string().as_str())],
        deadline,
    )
    .unwrap();
    c.execute("COMMIT", deadline).unwrap();
    true
}

#[test]
fn state_is_shared_across_paths_replays_are_refused_and_failures_throttle_the_other_path() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let host_a = pg.store(&pg.unix(), "bob", 3000);
    let host_b = pg.store(&pg.tcp(), "bob", 3000);
    put(&host_a, vec![device("phone")]);
    let policy = Policy::default();
    let code = code_now();
    let a = login::attempt(&host_a, &code, &policy).unwrap();
    assert!(matches!(a.login, Login::Accepted { .. }), "{:?}", a.login);
    let b = login::attempt(&host_b, &code, &policy).unwrap();
    assert!(
        matches!(
            b.login,
            Login::Rejected {
                reason: Rejection::Replayed,
                ..
            }
        ),
        "host B must refuse host A's code: {:?}",
        b.login
    );
    // That failure on B (count 1, factor 1 s) throttles A.
    match login::prepare(&host_a, &policy).unwrap() {
        Prepared::AllThrottled { until, now } => assert!(until > now),
        other => panic!("host A is not throttled after B's failure: {other:?}"),
    }
    let row = pg.sql("SELECT throttling_failure_count FROM pam_totp_device WHERE username = 'bob'");
    assert_eq!(row[0][0].as_deref(), Some("1"));
}

#[test]
fn a_tls_connection_with_verify_full_works_and_a_wrong_ca_is_refused() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let tls = pg.tls();
    let store = pg.store(&tls, "grace", 3000);
    put(&store, vec![device("phone")]);
    let a = login::attempt(&store, &code_now(), &Policy::default()).unwrap();
    assert!(matches!(a.login, Login::Accepted { .. }), "{:?}", a.login);
    // The server's backend leaves pg_stat_activity a moment after the
    // client hangs up (it exits on its own time): wait up to 5 s for it.
    let open_tls = || {
        pg.value(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut ssl = open_tls();
    while ssl.as_deref() != Some("0") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        ssl = open_tls();
    }
    assert_eq!(ssl.as_deref(), Some("0"), "no TLS session is left open");
    // (verify-full cannot fall back to plain TCP: that login was TLS.)
    // Trusting another certificate than the CA that signed the server's:
    // refused, never a login.
    let wrong = tls.replace("ca.crt", "server.crt");
    let store = pg.store(&wrong, "grace", 3000);
    let err = login::attempt(&store, &code_now(), &Policy::default()).unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
}

#[test]
fn totp_enroll_changes_work_over_the_postgresql_store_and_keep_the_device_order() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let store = pg.store(&pg.tcp(), "carol", 3000);
    assert!(store.read().unwrap().devices.is_none());
    let mut first = device("phone");
    first.confirmed = false;
    manage::add(&store, &first).unwrap();
    manage::add(&store, &device("tablet")).unwrap();
    manage::add(&store, &device("laptop")).unwrap();
    let err = manage::add(&store, &device("tablet")).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    // Confirm with a code at the database's clock.
    let c = manage::confirm(&store, "phone", &code_now(), &Policy::default()).unwrap();
    assert!(matches!(c, manage::Confirmation::Confirmed(_)), "{c:?}");
    manage::remove(&store, "tablet").unwrap();
    let (_, before) = manage::reset(&store, "laptop").unwrap();
    assert_eq!(before, 0);
    let names: Vec<String> = store
        .read()
        .unwrap()
        .devices
        .unwrap()
        .devices
        .iter()
        .map(|d| format!("{}:{}", d.name, d.confirmed))
        .collect();
    assert_eq!(names, ["phone:true", "laptop:true"]);
    // A rename (the same row, a new name) keeps the order.
    store
        .update(|f, _| -> Result<_, Error> {
            let mut f = f.unwrap().clone();
            f.devices[0].name = "phone2".into();
            Ok(Change::Save(f, ()))
        })
        .unwrap();
    let ids = pg.sql("SELECT id, name FROM pam_totp_device WHERE username = 'carol' ORDER BY id");
    let names: Vec<_> = ids.iter().map(|r| r[1].clone().unwrap()).collect();
    assert_eq!(names, ["phone2", "laptop"]);
    // db init again is harmless.
    pg.init_pam_totp();
}

#[test]
fn a_key_never_reaches_an_error_message_even_when_the_server_quotes_the_failing_row() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let store = pg.store(&pg.unix(), "frank", 3000);
    // Tolerance 11: the table's CHECK refuses the row, and PostgreSQL's
    // DETAIL line ("Failing row contains (...)") quotes it, key included.
    let hex = "ab".repeat(20);
    let mut d = device("wide");
    d.key = Secret::from_hex(&hex).unwrap();
    d.tolerance = 11;
    let err = manage::add(&store, &d).unwrap_err().to_string();
    assert!(err.contains("check constraint"), "{err}");
    assert!(!err.contains(&hex), "the key is in the error: {err}");
}

#[test]
fn the_database_clock_is_read_once_the_rows_are_locked() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    put(&pg.store(&pg.unix(), "erin", 3000), vec![device("phone")]);
    let holder = hold_rows(&pg);
    let (now, released) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let store = pg.store(&pg.unix(), "erin", 3000);
            login::attempt(&store, "000000", &Policy::default())
                .unwrap()
                .now
        });
        std::thread::sleep(Duration::from_millis(400));
        let released = Timestamp::now();
        drop(holder);
        (h.join().unwrap(), released)
    });
    assert!(
        now >= released,
        "the clock ({now}) was read before the lock was granted ({released})"
    );
}

#[test]
fn a_login_costs_at_most_four_round_trips() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let settings = pg.settings(&pg.unix(), 3000);
    let store = shared::store::PgStore::new(&settings, "dave");
    let wrapped = Store::Postgres(shared::store::PgStore::new(&settings, "dave"));
    put(&wrapped, vec![device("phone"), device("spare")]);
    for code in ["000000", &code_now()] {
        let attempt = store.update(|f, now| -> Result<_, Error> {
            let (login, next) =
                shared::verify::verify_login(f.unwrap(), code, now, &Policy::default());
            Ok(Change::Save(next, login))
        });
        attempt.unwrap();
        println!("round trips for one attempt: {}", store.round_trips());
        assert!(store.round_trips() <= 4, "{}", store.round_trips());
    }
}

/// Codes known to the test (Crockford base32), as a set stored for `user`.
const BACKUP: [&str; 3] = ["0123456789", "abcdefghjk", "mnpqrstvwx"];

fn put_backup(store: &Store) {
    store
        .update(|f, _| -> Result<_, Error> {
            let mut f = f.cloned().unwrap_or_default();
            f.backup = Some(
                BackupCodes::from_codes(&BACKUP, CodeFormat::Crockford10, Timestamp::from_secs(1))
                    .unwrap(),
            );
            Ok(Change::Save(f, ()))
        })
        .unwrap();
}

#[test]
fn a_backup_code_logs_in_once_through_the_postgresql_store_and_is_refused_the_second_time() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let store = pg.store(&pg.unix(), "frank", 3000);
    put(&store, vec![device("phone")]);
    put_backup(&store);
    // Stored hashed: no code in clear anywhere in the row.
    let row = pg.sql("SELECT * FROM pam_totp_backup WHERE username = 'frank'");
    let text = format!("{row:?}").to_ascii_uppercase();
    assert!(BACKUP
        .iter()
        .all(|c| !text.contains(&c.to_ascii_uppercase())));
    assert_eq!(
        pg.value("SELECT cardinality(codes) FROM pam_totp_backup WHERE username = 'frank'"),
        Some("3".into())
    );
    let first = login::attempt(&store, "abcde-fghjk", &Policy::default()).unwrap();
    assert!(
        matches!(first.login, Login::BackupCode { remaining: 2 }),
        "{:?}",
        first.login
    );
    assert_eq!(
        pg.value("SELECT cardinality(codes) FROM pam_totp_backup WHERE username = 'frank'"),
        Some("2".into())
    );
    let again = login::attempt(&store, "abcde-fghjk", &Policy::default()).unwrap();
    assert!(
        matches!(again.login, Login::Rejected { .. }),
        "{:?}",
        again.login
    );
    // The refusal counted on the set (and on the device), in the database.
    assert_eq!(
        pg.value("SELECT throttling_failure_count FROM pam_totp_backup WHERE username = 'frank'"),
        Some("1".into())
    );
    // A snapshot sees the same set; removing it deletes the row.
    let snap = store.read().unwrap().devices.unwrap();
    assert_eq!(snap.backup.as_ref().unwrap().remaining(), 2);
    store
        .update(|f, _| -> Result<_, Error> {
            let mut f = f.unwrap().clone();
            f.backup = None;
            Ok(Change::Save(f, ()))
        })
        .unwrap();
    assert_eq!(
        pg.value("SELECT count(*) FROM pam_totp_backup"),
        Some("0".into())
    );
}

#[test]
fn concurrent_logins_with_one_backup_code_accept_exactly_one() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    put(&pg.store(&pg.unix(), "grace", 5000), vec![device("phone")]);
    let paths = [pg.unix(), pg.tcp()];
    let pg = &pg;
    let mut rounds = Vec::new();
    for code in BACKUP {
        put_backup(&pg.store(&pg.unix(), "grace", 5000));
        pg.sql("UPDATE pam_totp_backup SET throttling_failure_count = 0, throttling_failure_timestamp = NULL");
        let attempt = |conninfo: &str, code: &str| {
            let store = pg.store(conninfo, "grace", 5000);
            match login::attempt(&store, code, &Policy::default()) {
                Ok(a) => matches!(a.login, Login::BackupCode { .. }),
                Err(e) => panic!("attempt failed: {e}"),
            }
        };
        rounds.push(pg::race_round(
            pg,
            "pam_totp_device",
            &paths,
            code,
            &attempt,
        ));
    }
    println!("race, one backup code, 16 logins: successes per round {rounds:?}");
    assert!(rounds.iter().all(|n| *n == 1), "{rounds:?}");
}

#[test]
fn a_login_with_backup_codes_costs_at_most_four_round_trips() {
    if skip() {
        return;
    }
    let pg = Cluster::start(false);
    pg.init_pam_totp();
    let settings = pg.settings(&pg.unix(), 3000);
    let store = shared::store::PgStore::new(&settings, "heidi");
    let wrapped = Store::Postgres(shared::store::PgStore::new(&settings, "heidi"));
    put(&wrapped, vec![device("phone"), device("spare")]);
    put_backup(&wrapped);
    // A wrong code (every device and the set fail), a TOTP code, a backup code.
    for code in ["000000", &code_now(), BACKUP[0]] {
        let login = store
            .update(|f, now| -> Result<_, Error> {
                let (login, next) =
                    shared::verify::verify_login(f.unwrap(), code, now, &Policy::default());
                Ok(Change::Save(next, login))
            })
            .unwrap();
        println!(
            "round trips for one attempt ({login:?}): {}",
            store.round_trips()
        );
        assert!(store.round_trips() <= 4, "{}", store.round_trips());
        for table in ["pam_totp_device", "pam_totp_backup"] {
            pg.sql(&format!(
                "UPDATE {table} SET throttling_failure_count = 0, \
                 throttling_failure_timestamp = NULL"
            ));
        }
    }
    assert_eq!(
        pg.value("SELECT cardinality(codes) FROM pam_totp_backup WHERE username = 'heidi'"),
        Some("2".into())
    );
}

/// The rows of the table, as text, to compare before and after a fault.
fn rows(pg: &Cluster) -> Vec<Vec<Option<String>>> {
    pg.sql("SELECT * FROM pam_totp_device ORDER BY id")
}

/// Runs `attempt` with a valid code at deadline 1000 ms in a thread while
/// `during` acts on the server; checks the error, the time and the rows.
fn fault(
    pg: &Cluster,
    name: &str,
    conninfo: &str,
    setup: &dyn Fn(&Cluster),
    during: &dyn Fn(&Cluster),
    after: &dyn Fn(&Cluster),
) -> Duration {
    let before = rows(pg);
    setup(pg);
    let deadline_ms = 1000;
    let code = code_now();
    let (result, elapsed) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let store = pg.store(conninfo, "erin", deadline_ms);
            let t = Instant::now();
            let r = login::attempt(&store, &code, &Policy::default());
            (r, t.elapsed())
        });
        during(pg);
        h.join().unwrap()
    });
    after(pg);
    println!(
        "| {name} | {} ms | {:?} |",
        elapsed.as_millis(),
        result.as_ref().map(|a| &a.login).map_err(|e| e.to_string())
    );
    match result {
        Err(Error::Database(_)) => {}
        other => panic!("{name}: expected a store error, got {other:?}"),
    }
    assert!(
        elapsed <= Duration::from_millis(u64::from(deadline_ms) + 200),
        "{name}: {elapsed:?}"
    );
    assert_eq!(rows(pg), before, "{name}: rows changed");
    elapsed
}

/// The backend serving our attempt (waiting for a lock).
fn waiting_backend(pg: &Cluster) -> u32 {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(pid) = pg.value(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pam_totp' \
             AND wait_event_type = 'Lock' LIMIT 1",
        ) {
            return pid.parse().unwrap();
        }
        assert!(Instant::now() < until, "no waiting backend");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A session that holds erin's rows FOR UPDATE until dropped.
fn hold_rows(pg: &Cluster) -> pq::Conn {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = pq::Conn::connect(&pg.unix(), deadline).unwrap();
    c.execute(
        "BEGIN; SELECT * FROM pam_totp_device WHERE username = 'erin' FOR UPDATE",
        deadline,
    )
    .unwrap();
    c
}

#[test]
fn every_fault_ends_in_a_store_error_within_the_deadline_with_the_rows_unchanged() {
    if skip() {
        return;
    }
    let mut pg = Cluster::start(false);
    pg.init_pam_totp();
    put(&pg.store(&pg.unix(), "erin", 3000), vec![device("phone")]);
    println!("| fault | time to error (deadline 1000 ms) | result |");
    println!("|---|---|---|");

    for (path, conninfo) in [("unix", pg.unix()), ("TCP+SCRAM", pg.tcp())] {
        fault(
            &pg,
            &format!("postmaster SIGSTOPped ({path})"),
            &conninfo,
            &|pg| pg.signal(pg.pid, "-STOP"),
            &|_| {},
            &|pg| pg.signal(pg.pid, "-CONT"),
        );
    }

    let holder = std::sync::Mutex::new(None);
    let take = |pg: &Cluster| *holder.lock().unwrap() = Some(hold_rows(pg));
    let release = || drop(holder.lock().unwrap().take());
    let stopped = std::sync::Mutex::new(0u32);
    fault(
        &pg,
        "backend SIGSTOPped mid-transaction",
        &pg.unix(),
        &take,
        &|pg| {
            let pid = waiting_backend(pg);
            pg.signal(pid, "-STOP");
            *stopped.lock().unwrap() = pid;
            release(); // the lock is free, but our backend is stopped
        },
        &|pg| {
            pg.signal(*stopped.lock().unwrap(), "-CONT");
            std::thread::sleep(Duration::from_millis(100));
        },
    );

    for (path, conninfo) in [("unix", pg.unix()), ("TCP+SCRAM", pg.tcp())] {
        fault(
            &pg,
            &format!("row held FOR UPDATE by another session ({path})"),
            &conninfo,
            &take,
            &|_| {},
            &|_| release(),
        );
    }

    fault(
        &pg,
        "connection killed before COMMIT",
        &pg.unix(),
        &take,
        &|pg| {
            let pid = waiting_backend(pg);
            pg.sql(&format!("SELECT pg_terminate_backend({pid})"));
            release();
        },
        &|_| {},
    );

    let snapshot = rows(&pg);
    let bouncer = Cluster::has_pgbouncer().then(|| pg.bouncer());
    pg.stop_server();
    if let Some(conninfo) = bouncer {
        let store = pg.store(&conninfo, "erin", 1000);
        let t = Instant::now();
        let r = login::attempt(&store, &code_now(), &Policy::default());
        let elapsed = t.elapsed();
        println!(
            "| PgBouncer with the server down | {} ms | {:?} |",
            elapsed.as_millis(),
            r.as_ref().map(|a| &a.login).map_err(|e| e.to_string())
        );
        assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
        assert!(elapsed <= Duration::from_millis(1200));
    }
    for (path, conninfo) in [("unix", pg.unix()), ("TCP+SCRAM", pg.tcp())] {
        let store = pg.store(&conninfo, "erin", 1000);
        let t = Instant::now();
        let r = login::attempt(&store, &code_now(), &Policy::default());
        let elapsed = t.elapsed();
        println!(
            "| server stopped ({path}) | {} ms | {:?} |",
            elapsed.as_millis(),
            r.as_ref().map(|a| &a.login).map_err(|e| e.to_string())
        );
        assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
        assert!(elapsed <= Duration::from_millis(1200));
    }
    assert!(!snapshot.is_empty());
}
