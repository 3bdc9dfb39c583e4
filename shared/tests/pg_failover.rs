//! Failover (docs/design.md §9): a primary and a standby made with
//! pg_basebackup, the store reaching them through one multi-host conninfo
//! (`host=A,B port=a,b target_session_attrs=read-write`).
//!
//! - Synchronous standby: a code accepted on the primary is refused on the
//!   promoted standby, and logins go on through the same conninfo. With the
//!   standby's WAL receiver stopped, a commit cannot be acknowledged: the
//!   login fails closed within the deadline (never accepted).
//! - Asynchronous standby: the same stopped WAL receiver lets the primary
//!   accept a code the standby never got; after the promotion that code is
//!   accepted a second time. That is the window an asynchronous standby
//!   leaves, shown here so that the README's advice rests on a run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod pg;

use std::time::{Duration, Instant};

use pg::Cluster;
use shared::config::{Layout, PgSettings};
use shared::device::{Device, DeviceFile, Params};
use shared::login;
use shared::oath::{totp, Algorithm};
use shared::store::{Change, PgStore, Store};
use shared::verify::Policy;
use shared::{Error, Secret, Timestamp};

const KEY: &str = "3132333435363738393031323334353637383930";

fn code_at_step(offset: i64) -> String {
    totp(
        Algorithm::Sha1,
        Secret::from_hex(KEY).unwrap().expose(),
        Timestamp::now().secs_floor() + 30 * offset,
        0,
        30,
        6,
    )
    .unwrap()
}

fn both(primary: &Cluster, standby: &Cluster) -> String {
    format!(
        "host={},{} port={},{} user=postgres dbname=postgres target_session_attrs=read-write",
        primary.dir.path().display(),
        standby.dir.path().display(),
        primary.port,
        standby.port
    )
}

fn store(conninfo: &str, deadline_ms: u32) -> Store {
    store_of(conninfo, deadline_ms, "alice")
}

fn store_of(conninfo: &str, deadline_ms: u32, user: &str) -> Store {
    Store::Postgres(PgStore::new(
        &PgSettings {
            conninfo: conninfo.to_owned(),
            layout: Layout::PamTotp,
            deadline_ms,
        },
        user,
    ))
}

fn show(step: &str, r: &Result<login::Attempt, Error>) -> String {
    let text = match r {
        Ok(a) => format!("{:?}", a.login),
        Err(e) => format!("error: {e}"),
    };
    println!("  {step}: {text}");
    text
}

fn setup(sync: bool) -> (Cluster, Cluster, String) {
    let primary = Cluster::start_with(false, true);
    primary.init_pam_totp();
    let mut d = Device::new(
        "phone",
        Secret::from_hex(KEY).unwrap(),
        &Params::default(),
        Timestamp::now(),
    );
    d.confirmed = true;
    for user in ["alice", "bob"] {
        store_of(&primary.unix(), 3000, user)
            .update(|_, _| -> Result<_, Error> {
                #[allow(clippy::needless_update)]
                let f = DeviceFile {
                    devices: vec![d.clone()],
                    ..DeviceFile::default()
                };
                Ok(Change::Save(f, ()))
            })
            .unwrap();
    }
    let standby = primary.start_standby("standby1");
    if sync {
        primary.set("synchronous_standby_names", "standby1");
        let until = Instant::now() + Duration::from_secs(10);
        while primary
            .value("SELECT sync_state FROM pg_stat_replication")
            .as_deref()
            != Some("sync")
        {
            assert!(
                Instant::now() < until,
                "the standby never became synchronous"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let conninfo = both(&primary, &standby);
    (primary, standby, conninfo)
}

/// Cuts the standby off its primary (no WAL receiver); returns how to
/// reconnect it.
fn disconnect(standby: &Cluster) -> String {
    let conninfo = standby.value("SHOW primary_conninfo").unwrap();
    standby.set("primary_conninfo", "");
    let until = Instant::now() + Duration::from_secs(10);
    while standby
        .value("SELECT count(*) FROM pg_stat_wal_receiver")
        .as_deref()
        != Some("0")
    {
        assert!(Instant::now() < until, "the WAL receiver did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    conninfo
}

fn wait_sync(primary: &Cluster) {
    let until = Instant::now() + Duration::from_secs(10);
    while primary
        .value("SELECT sync_state FROM pg_stat_replication")
        .as_deref()
        != Some("sync")
    {
        assert!(
            Instant::now() < until,
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn promote(standby: &Cluster) {
    assert_eq!(
        standby.value("SELECT pg_promote(true, 30)"),
        Some("t".into())
    );
}

#[test]
fn with_a_synchronous_standby_a_used_code_stays_used_after_failover() {
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    println!("synchronous standby:");
    let (mut primary, standby, conninfo) = setup(true);
    let policy = Policy::default();
    let code = code_at_step(0);
    let r = login::attempt(&store(&conninfo, 3000), &code, &policy);
    assert!(show("code accepted on the primary", &r).starts_with("Accepted"));

    // A commit the standby cannot acknowledge is never reported accepted
    // (bob's login: at worst his good code is burned).
    let saved = disconnect(&standby);
    let t = Instant::now();
    let r = login::attempt(&store_of(&conninfo, 1000, "bob"), &code, &policy);
    let took = t.elapsed();
    show(
        &format!("standby cut off, bob's login ({} ms)", took.as_millis()),
        &r,
    );
    assert!(matches!(r, Err(Error::Database(_))), "{r:?}");
    assert!(took <= Duration::from_millis(1200));
    standby.set("primary_conninfo", &saved);
    wait_sync(&primary);
    primary.crash();
    println!("  standby reconnected; primary crashed (SIGQUIT); standby promoted");
    promote(&standby);

    let r = login::attempt(&store(&conninfo, 3000), &code, &policy);
    let text = show("the same code on the new primary (same conninfo)", &r);
    assert!(text.contains("Replayed"), "{text}");
    // Logins go on: wait out the 1 s throttle the replay set, then a code
    // of a later step.
    std::thread::sleep(Duration::from_millis(1100));
    let r = login::attempt(&store(&conninfo, 3000), &code_at_step(1), &policy);
    let text = show("the next step's code on the new primary", &r);
    assert!(text.starts_with("Accepted"), "{text}");
}

#[test]
fn with_an_asynchronous_standby_a_failover_can_bring_a_used_code_back() {
    if !pg::available() {
        println!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    println!("asynchronous standby:");
    let (mut primary, standby, conninfo) = setup(false);
    let policy = Policy::default();
    disconnect(&standby);
    let code = code_at_step(0);
    let r = login::attempt(&store(&conninfo, 3000), &code, &policy);
    assert!(show(
        "standby lagging (cut off); code accepted on the primary",
        &r
    )
    .starts_with("Accepted"));
    primary.crash();
    println!("  primary crashed (SIGQUIT) before the standby got the commit; standby promoted");
    promote(&standby);
    let r = login::attempt(&store(&conninfo, 3000), &code, &policy);
    let text = show("the same code on the new primary", &r);
    assert!(
        text.starts_with("Accepted"),
        "expected the documented window (the code accepted twice): {text}"
    );
    println!("  => an asynchronous standby leaves a replay window; use a synchronous one");
}
