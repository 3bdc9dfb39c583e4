//! The device-file store under load, under attack and under SIGKILL (issue 2;
//! docs/design.md §6 "File safety" and "Concurrency and durability").
//!
//! Child processes are this very test binary run again with
//! `PAM_TOTP_STORE_TEST_CHILD=<role>` in the environment: the test
//! [`child_role_entry_point_does_nothing_in_a_normal_run`] then plays that
//! role and exits, so no extra build target is needed. Children talk back
//! through stdout lines that start with `@@`.
//!
//! These tests run as root (here and in CI): they chown files to other uids
//! and switch the file-system identity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{chown, symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pam_totp_tests::kit;
use posix::fcntl::{Flock, FlockArg};
use posix::stat::Mode;
use shared::device::{Device, DeviceFile, MAX_FILE_SIZE};
use shared::error::Error;
use shared::store::{self, Access, FileSpec, Store};
use shared::user::{ActAs, UserInfo};
use shared::verify::{Login, Policy, Rejection};
use shared::{PathTemplate, Timestamp};

/// Selects a child role; unset in a normal test run.
const CHILD_ENV: &str = "PAM_TOTP_STORE_TEST_CHILD";
/// The test that plays child roles (see the module docs).
const CHILD_TEST: &str = "child_role_entry_point_does_nothing_in_a_normal_run";
/// RFC 4226's test key.
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
/// The fixed instant every attempt is made at.
const NOW: i64 = 1_764_310_000;
/// The user named in file headers.
const USER: &str = "alice";
/// `nobody`/`nogroup` on Debian.
const NOBODY: u32 = 65534;
/// A lock wait long enough that no contender gives up on a loaded machine.
const PATIENT: Duration = Duration::from_secs(60);
/// How long a call on a refused file may take before we call it a hang.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- fixtures

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

/// The kit's device with the RFC key, whose `last_t` identifies a state.
fn device(name: &str, last_t: i64) -> Device {
    let mut d = kit::device(name, KEY_HEX).unwrap();
    d.last_t = last_t;
    d
}

/// One confirmed device, `phone`, whose `last_t` identifies the state.
fn state(last_t: i64) -> DeviceFile {
    DeviceFile {
        backup: None,
        devices: vec![device("phone", last_t)],
    }
}

fn valid_code() -> String {
    kit::code_at(&kit::device("phone", KEY_HEX).unwrap(), NOW)
}

fn wrong_code() -> String {
    kit::other_code(&valid_code()).to_owned()
}

/// The time step `valid_code` belongs to.
fn valid_step() -> i64 {
    NOW / 30
}

fn no_throttle() -> Policy {
    Policy {
        sync: true,
        throttle_factor: 0,
        ..Policy::default()
    }
}

/// Writes `bytes` to a new file with mode 0600 (whatever the umask).
fn write_private(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// A private temporary directory holding (maybe) `devices.toml`, accessed
/// as the caller (root), like central mode.
struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn empty() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("pam-totp-store-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("devices.toml");
        Fixture { dir, path }
    }

    fn with_text(text: &str) -> Fixture {
        let fx = Fixture::empty();
        write_private(&fx.path, text.as_bytes());
        fx
    }

    fn with_state(file: &DeviceFile) -> Fixture {
        Fixture::with_text(&file.to_toml(USER))
    }

    fn spec(&self) -> FileSpec {
        spec_for(&self.path)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Names in the directory, sorted (to see that no temp file is left).
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn spec_for(path: &Path) -> FileSpec {
    FileSpec {
        path: path.to_owned(),
        owner: 0,
        access: Access::AsCaller,
        home: None,
    }
}

/// One word per outcome, the same for threads and child processes.
/// One login attempt through `shared::login` on the file `spec`, at `now`.
fn attempt(
    spec: &FileSpec,
    user: &str,
    code: &str,
    now: Timestamp,
    policy: &Policy,
    wait: Duration,
) -> Result<Login, Error> {
    let store = Store::file(spec.clone(), user).with_wait(wait).at(now);
    shared::login::attempt(&store, code, policy).map(|a| a.login)
}

fn describe(result: &Result<Login, Error>) -> String {
    match result {
        Ok(Login::Accepted { .. }) => "accepted".into(),
        Ok(Login::BackupCode { .. }) => "accepted-backup".into(),
        Ok(Login::Rejected { reason, .. }) => match reason {
            Rejection::Wrong => "rejected-wrong".into(),
            Rejection::Replayed => "rejected-replayed".into(),
            Rejection::Malformed => "rejected-malformed".into(),
        },
        Ok(Login::AllThrottled { .. }) => "throttled".into(),
        Ok(Login::NoDevice) => "no-device".into(),
        Err(e) => format!("error {e}"),
    }
}

/// A small deterministic generator, seeded from the clock and printed, so a
/// failing run can be replayed by setting `STORE_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("STORE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("STORE_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

// ---------------------------------------------------------- child processes

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// Tells the parent `msg`: stdout is a child's channel back.
#[allow(clippy::print_stdout)]
fn report(msg: &str) {
    println!("@@{msg}");
}

/// Runs a child role: the body of the entry-point test when
/// `PAM_TOTP_STORE_TEST_CHILD` is set.
fn child_main(role: &str) {
    let spec = spec_for(Path::new(&env("STORE_PATH")));
    match role {
        // Wait for the start gate, make one login attempt, report it.
        "attempt" => {
            let gate = File::open(env("STORE_START")).unwrap();
            report("ready");
            let _go = Flock::lock(gate, FlockArg::LockShared)
                .map_err(|(_, e)| e)
                .unwrap();
            let policy = Policy {
                sync: true,
                throttle_factor: env("STORE_FACTOR").parse().unwrap(),
                ..Policy::default()
            };
            let result = attempt(&spec, USER, &env("STORE_CODE"), now(), &policy, PATIENT);
            report(&describe(&result));
        }
        // Wait for the start gate, then read-modify-write `last_t` + 1,
        // STORE_COUNT times.
        "increment" => {
            let gate = File::open(env("STORE_START")).unwrap();
            report("ready");
            let _go = Flock::lock(gate, FlockArg::LockShared)
                .map_err(|(_, e)| e)
                .unwrap();
            let count: u32 = env("STORE_COUNT").parse().unwrap();
            for _ in 0..count {
                let mut locked = store::lock(&spec, PATIENT).unwrap();
                let mut file = locked.devices().unwrap().clone();
                file.devices[0].last_t += 1;
                locked.save(&file, USER).unwrap();
            }
            report("done");
        }
        // Save state after state (last_t + 1 each time) until killed,
        // reporting each one once `save` has returned.
        "writer" => loop {
            let mut locked = store::lock(&spec, PATIENT).unwrap();
            let mut file = locked.devices().unwrap().clone();
            file.devices[0].last_t += 1;
            locked.save(&file, USER).unwrap();
            drop(locked);
            report(&format!("saved {}", file.devices[0].last_t));
        },
        // Hold the lock until killed.
        "hold" => {
            let _locked = store::lock(&spec, PATIENT).unwrap();
            report("locked");
            thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn child_role_entry_point_does_nothing_in_a_normal_run() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child_main(&role);
        std::process::exit(0);
    }
}

/// A running child; killed (and reaped) on drop so that a failing test
/// leaves no process behind.
struct Spawned {
    child: std::process::Child,
    messages: mpsc::Receiver<String>,
}

impl Spawned {
    fn new(role: &str, vars: &[(&str, OsString)]) -> Spawned {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            CHILD_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("@@") {
                    if tx.send(line[i + 2..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        Spawned { child, messages }
    }

    /// The next `@@` message.
    fn next(&self, timeout: Duration) -> String {
        self.messages
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("child {} said nothing: {e}", self.child.id()))
    }

    /// Waits for a clean exit.
    fn finish(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "child {} {status}", self.child.id());
                return;
            }
            assert!(Instant::now() < deadline, "child {} hangs", self.child.id());
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, reap, and return every message sent before death.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Ends when the reader thread sees end of file.
        self.messages.iter().collect()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A start gate: children block on a shared flock of `path` until the
/// parent drops its exclusive lock, so they all start at the same instant.
struct Gate {
    path: PathBuf,
    lock: Flock<File>,
}

impl Gate {
    fn new(dir: &Path) -> Gate {
        let path = dir.join("start-gate");
        let file = File::create(&path).unwrap();
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .unwrap();
        Gate { path, lock }
    }

    fn open(self) {
        drop(self.lock);
    }
}

/// `threads` threads (released by a barrier) and `procs` processes
/// (released by a gate) submit `code` at the same instant; returns every
/// outcome.
fn race(fx: &Fixture, code: &str, policy: Policy, threads: usize, procs: usize) -> Vec<String> {
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = Gate::new(gate_dir.path());
    let mut children: Vec<Spawned> = (0..procs)
        .map(|_| {
            Spawned::new(
                "attempt",
                &[
                    ("STORE_PATH", fx.path.clone().into()),
                    ("STORE_START", gate.path.clone().into()),
                    ("STORE_CODE", code.into()),
                    ("STORE_FACTOR", policy.throttle_factor.to_string().into()),
                ],
            )
        })
        .collect();
    for c in &children {
        assert_eq!(c.next(PATIENT), "ready");
    }
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, spec, code) = (barrier.clone(), fx.spec(), code.to_owned());
            thread::spawn(move || {
                barrier.wait();
                describe(&attempt(&spec, USER, &code, now(), &policy, PATIENT))
            })
        })
        .collect();
    barrier.wait();
    gate.open();
    let mut outcomes: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for c in &mut children {
        outcomes.push(c.next(PATIENT));
        c.finish(PATIENT);
    }
    outcomes
}

fn count(outcomes: &[String], what: &str) -> usize {
    outcomes.iter().filter(|o| *o == what).count()
}

// -------------------------------------------------- concurrency, durability

#[test]
fn of_32_threads_and_8_processes_sending_the_same_valid_code_at_once_exactly_one_is_accepted_in_each_of_20_rounds(
) {
    let code = valid_code();
    for round in 0..20 {
        let fx = Fixture::with_state(&state(-1));
        let outcomes = race(&fx, &code, Policy::default(), 32, 8);
        assert_eq!(outcomes.len(), 40);
        let accepted = count(&outcomes, "accepted");
        let replayed = count(&outcomes, "rejected-replayed");
        let throttled = count(&outcomes, "throttled");
        assert_eq!(accepted, 1, "round {round}: {outcomes:?}");
        assert_eq!(
            accepted + replayed + throttled,
            40,
            "round {round}: {outcomes:?}"
        );
        let file = store::read(&fx.spec()).unwrap().unwrap();
        let d = &file.devices[0];
        assert_eq!(d.last_t, valid_step(), "round {round}");
        assert_eq!(d.last_used_at, Some(now()), "round {round}");
        // Every replay after the success was recorded, none lost.
        assert_eq!(
            d.throttling_failure_count as usize, replayed,
            "round {round}: {outcomes:?}"
        );
        assert_eq!(
            fx.listing(),
            [".devices.toml.spare", "devices.toml"],
            "round {round}"
        );
    }
}

#[test]
fn n_concurrent_wrong_codes_with_throttle_factor_0_leave_a_failure_count_of_exactly_n() {
    let fx = Fixture::with_state(&state(-1));
    let outcomes = race(&fx, &wrong_code(), no_throttle(), 32, 8);
    assert_eq!(count(&outcomes, "rejected-wrong"), 40, "{outcomes:?}");
    let file = store::read(&fx.spec()).unwrap().unwrap();
    let d = &file.devices[0];
    assert_eq!(d.throttling_failure_count, 40);
    assert_eq!(d.throttling_failure_timestamp, Some(now()));
    assert_eq!(d.last_t, -1);
}

#[test]
fn eight_processes_doing_25_locked_increments_each_lose_no_update() {
    let fx = Fixture::with_state(&state(0));
    let gate = Gate::new(fx.dir());
    let mut children: Vec<Spawned> = (0..8)
        .map(|_| {
            Spawned::new(
                "increment",
                &[
                    ("STORE_PATH", fx.path.clone().into()),
                    ("STORE_START", gate.path.clone().into()),
                    ("STORE_COUNT", "25".into()),
                ],
            )
        })
        .collect();
    for c in &children {
        assert_eq!(c.next(PATIENT), "ready");
    }
    gate.open();
    for c in &mut children {
        assert_eq!(c.next(PATIENT), "done");
        c.finish(PATIENT);
    }
    let file = store::read(&fx.spec()).unwrap().unwrap();
    assert_eq!(file, state(200));
}

#[test]
fn a_writer_killed_at_200_random_moments_always_leaves_the_old_or_the_new_state() {
    let fx = Fixture::with_state(&state(0));
    let mut rng = Rng::from_env_or_clock();
    let mut last_reported: i64 = 0;
    let (mut saw_new_unreported, mut saw_spare_ahead) = (0, 0);
    let started = Instant::now();
    for round in 0..200 {
        let child = Spawned::new("writer", &[("STORE_PATH", fx.path.clone().into())]);
        // Let it get going, then strike somewhere within the next few saves.
        let first = child.next(PATIENT);
        thread::sleep(Duration::from_micros(rng.below(3000)));
        let mut messages = vec![first];
        messages.extend(child.kill());
        for m in &messages {
            let k: i64 = m.strip_prefix("saved ").unwrap().parse().unwrap();
            assert_eq!(k, last_reported + 1, "round {round}: saves out of order");
            last_reported = k;
        }
        // The spare holds the next state, the file not yet: the kill came
        // between writing the spare and exchanging it.
        let spare = fs::read(fx.dir().join(".devices.toml.spare")).unwrap_or_default();
        let old = store::stored_text(&state(last_reported), USER).to_string();
        let new = store::stored_text(&state(last_reported + 1), USER).to_string();
        let bytes = fs::read(&fx.path).unwrap();
        if spare == new.as_bytes() && bytes == old.as_bytes() {
            saw_spare_ahead += 1;
        }
        // The file is whole: either the last state reported as saved, or
        // the one being written when the signal came (saved, not reported).
        if bytes == new.as_bytes() {
            saw_new_unreported += 1;
            last_reported += 1;
        } else {
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                old,
                "round {round}: neither old nor new state"
            );
        }
        assert_eq!(
            store::read(&fx.spec()).unwrap().unwrap(),
            state(last_reported)
        );
    }
    eprintln!(
        "200 kills in {:?}: {last_reported} saves, {saw_spare_ahead} kills after the spare \
         was written but before the exchange, {saw_new_unreported} after the exchange but \
         before the report",
        started.elapsed()
    );
    // Some kills must have hit a save in progress, or this proved little.
    assert!(
        saw_spare_ahead + saw_new_unreported > 0,
        "no kill landed inside a save"
    );
    // The next writer goes on with the file and its spare, nothing else.
    let mut locked = store::lock(&fx.spec(), PATIENT).unwrap();
    locked.save(&state(last_reported + 1), USER).unwrap();
    drop(locked);
    assert_eq!(fx.listing(), [".devices.toml.spare", "devices.toml"]);
}

#[test]
fn a_lock_held_by_another_process_makes_lock_report_busy_after_the_wait() {
    let fx = Fixture::with_state(&state(5));
    let before = fs::read(&fx.path).unwrap();
    let child = Spawned::new("hold", &[("STORE_PATH", fx.path.clone().into())]);
    assert_eq!(child.next(PATIENT), "locked");

    let wait = Duration::from_millis(300);
    let t = Instant::now();
    let err = store::lock(&fx.spec(), wait).unwrap_err();
    let waited = t.elapsed();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: busy: another login or totp-enroll holds the lock; try again",
            fx.path.display()
        )
    );
    assert!(waited >= wait, "gave up after {waited:?}");
    assert!(waited < wait + Duration::from_secs(2), "waited {waited:?}");

    let err = attempt(
        &fx.spec(),
        USER,
        &valid_code(),
        now(),
        &Policy::default(),
        Duration::from_millis(50),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert_eq!(fs::read(&fx.path).unwrap(), before);

    // The lock dies with its process.
    let _ = child.kill();
    let t = Instant::now();
    let locked = store::lock(&fx.spec(), Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(locked.devices(), Some(&state(5)));
}

/// The in-process companion of the 8 x 25 increments: whether the waiter
/// locks the replaced inode (and must notice) or opens the new one is up to
/// timing; either way it must see the holder's last save.
#[test]
fn a_waiter_gets_the_last_state_its_holder_saved_across_two_replacements() {
    let fx = Fixture::with_state(&state(0));
    let mut holder = store::lock(&fx.spec(), PATIENT).unwrap();
    let spec = fx.spec();
    let waiter = thread::spawn(move || {
        let locked = store::lock(&spec, PATIENT).unwrap();
        locked.devices().unwrap().devices[0].last_t
    });
    // Let the waiter open the current inode and start waiting on it.
    thread::sleep(Duration::from_millis(100));
    holder.save(&state(1), USER).unwrap();
    holder.save(&state(2), USER).unwrap();
    thread::sleep(Duration::from_millis(50));
    drop(holder);
    assert_eq!(waiter.join().unwrap(), 2);
}

#[test]
fn of_16_threads_creating_a_missing_file_at_once_one_wins_and_keeps_the_lock_on_it() {
    for round in 0..10 {
        let fx = Fixture::empty();
        let threads = 16;
        let ready = Arc::new(Barrier::new(threads));
        let saved = Arc::new(Barrier::new(threads + 1));
        let release = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (ready, saved, release) = (ready.clone(), saved.clone(), release.clone());
                let spec = fx.spec();
                thread::spawn(move || {
                    let mut locked = store::lock(&spec, PATIENT).unwrap();
                    assert!(locked.devices().is_none());
                    ready.wait();
                    let result = locked.save(&state(i as i64), USER);
                    saved.wait();
                    release.wait();
                    result.map_err(|e| e.to_string())
                })
            })
            .collect();
        saved.wait();
        // Whoever won still holds the lock on the file everyone sees now.
        let busy = store::lock(&fx.spec(), Duration::from_millis(50));
        let listing = fx.listing();
        let text = fs::read_to_string(&fx.path).unwrap();
        release.wait();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            matches!(busy, Err(Error::Busy { .. })),
            "round {round}: the winner's lock is not on the visible file"
        );
        let winners: Vec<usize> = (0..threads).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(
            text,
            *store::stored_text(&state(winners[0] as i64), USER),
            "round {round}"
        );
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(r.contains("busy"), "round {round}: {r}");
        }
        assert_eq!(
            listing,
            [".devices.toml.spare", "devices.toml"],
            "round {round}"
        );
    }
}

// ------------------------------------------------------------ refusals

/// What must not change about a refused path: kind, mode, owner, inode,
/// link target and (for a regular file) every byte.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    mode: u32,
    uid: u32,
    ino: u64,
    target: Option<PathBuf>,
    bytes: Option<Vec<u8>>,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(path).unwrap();
    Snapshot {
        mode: meta.mode(),
        uid: meta.uid(),
        ino: meta.ino(),
        target: fs::read_link(path).ok(),
        bytes: meta.is_file().then(|| fs::read(path).unwrap()),
    }
}

/// Runs `f` on another thread and fails the test if it has not returned
/// within [`HANG`] (a FIFO opened without O_NONBLOCK would block forever).
fn no_hang<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} hangs"))
}

/// `store::read`, `store::lock` and `login::attempt` all refuse `spec` with
/// an error that contains `names` and `problem`, and leave `watched` (and
/// the directory listing) exactly as they were. Returns the three errors.
fn refused_everywhere(
    fx: &Fixture,
    spec: &FileSpec,
    watched: &Path,
    names: &Path,
    problem: &str,
) -> Vec<Error> {
    let mut errors = Vec::new();
    for op in ["read", "lock", "attempt"] {
        let before = snapshot(watched);
        let listing = fx.listing();
        let spec = spec.clone();
        let result: Result<(), Error> = no_hang(op, move || match op {
            "read" => store::read(&spec).map(|_| ()),
            "lock" => store::lock(&spec, Duration::from_secs(1)).map(|_| ()),
            _ => attempt(
                &spec,
                USER,
                &valid_code(),
                now(),
                &Policy::default(),
                Duration::from_secs(1),
            )
            .map(|_| ()),
        });
        let err = result.err().unwrap_or_else(|| panic!("{op} accepted it"));
        let text = err.to_string();
        assert!(
            text.contains(&names.display().to_string()),
            "{op}: `{text}` does not name {}",
            names.display()
        );
        assert!(
            text.contains(problem),
            "{op}: `{text}` does not say `{problem}`"
        );
        assert!(!text.contains('\n'), "{op}: `{text}` is not one line");
        assert_eq!(
            snapshot(watched),
            before,
            "{op} changed {}",
            watched.display()
        );
        assert_eq!(fx.listing(), listing, "{op} left something behind");
        errors.push(err);
    }
    errors
}

fn assert_insecure(errors: &[Error]) {
    for e in errors {
        assert!(matches!(e, Error::Insecure { .. }), "{e:?}");
    }
}

/// A uid that no account has.
fn unused_uid() -> u32 {
    (54321..)
        .find(|&uid| UserInfo::by_uid(uid).unwrap().is_none())
        .unwrap()
}

#[test]
fn a_symbolic_link_is_refused_and_its_target_left_alone() {
    let fx = Fixture::empty();
    let target = fx.dir().join("elsewhere.toml");
    write_private(&target, state(0).to_toml(USER).as_bytes());
    symlink(&target, &fx.path).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        "refused: is a symbolic link",
    );
    assert_insecure(&errors);
    assert_eq!(
        fs::read(&target).unwrap(),
        state(0).to_toml(USER).as_bytes()
    );
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let fx = Fixture::empty();
    posix::stat::mkfifo(&fx.path, Mode::from_bits_truncate(0o600)).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        "refused: is a FIFO, not a regular file",
    );
    assert_insecure(&errors);
}

#[test]
fn a_directory_is_refused() {
    let fx = Fixture::empty();
    fs::create_dir(&fx.path).unwrap();
    fs::set_permissions(&fx.path, fs::Permissions::from_mode(0o700)).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        "refused: is a directory, not a regular file",
    );
    assert_insecure(&errors);
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    let fx = Fixture::with_state(&state(0));
    let stranger = unused_uid();
    chown(&fx.path, Some(stranger), Some(stranger)).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        &format!("refused: owned by uid {stranger}, not by the user or root"),
    );
    assert_insecure(&errors);
    // The same file is fine when that uid is the user it belongs to.
    let spec = FileSpec {
        owner: stranger,
        ..fx.spec()
    };
    assert_eq!(store::read(&spec).unwrap(), Some(state(0)));
}

#[test]
fn a_file_with_group_or_other_permission_bits_is_refused() {
    for mode in [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o660, 0o644] {
        let fx = Fixture::with_state(&state(0));
        fs::set_permissions(&fx.path, fs::Permissions::from_mode(mode)).unwrap();
        let errors = refused_everywhere(
            &fx,
            &fx.spec(),
            &fx.path,
            &fx.path,
            &format!("refused: mode {mode:04o} lets group or others in; run chmod 600"),
        );
        assert_insecure(&errors);
    }
}

#[test]
fn a_file_with_a_second_hard_link_is_refused() {
    let fx = Fixture::with_state(&state(0));
    fs::hard_link(&fx.path, fx.dir().join("other-name")).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        "refused: has more than one hard link",
    );
    assert_insecure(&errors);
}

/// A valid device file padded with a comment to exactly `len` bytes.
fn padded(len: usize) -> String {
    let mut text = state(0).to_toml(USER);
    text.push('#');
    while text.len() < len - 1 {
        text.push('x');
    }
    text.push('\n');
    assert_eq!(text.len(), len);
    text
}

#[test]
fn a_file_over_64_kib_is_refused_and_one_of_exactly_64_kib_is_not() {
    let limit = MAX_FILE_SIZE as usize;
    let fx = Fixture::with_text(&padded(limit + 1));
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        &fx.path,
        "refused: larger than 65536 bytes",
    );
    assert_insecure(&errors);

    let fx = Fixture::with_text(&padded(limit));
    assert_eq!(store::read(&fx.spec()).unwrap(), Some(state(0)));
}

#[test]
fn a_parent_directory_writable_by_others_is_refused_unless_sticky() {
    let fx = Fixture::with_state(&state(0));
    fs::set_permissions(fx.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        fx.dir(),
        "refused: directory is writable by others and not sticky",
    );
    assert_insecure(&errors);
    let text = errors[0].to_string();
    assert!(
        text.starts_with(&format!("{}: ", fx.dir().display())),
        "{text}"
    );

    // With the sticky bit (like /tmp), others cannot replace our file.
    fs::set_permissions(fx.dir(), fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(store::read(&fx.spec()).unwrap(), Some(state(0)));
}

#[test]
fn a_parent_directory_owned_by_another_user_is_refused() {
    let fx = Fixture::with_state(&state(0));
    let stranger = unused_uid();
    chown(fx.dir(), Some(stranger), Some(stranger)).unwrap();
    let errors = refused_everywhere(
        &fx,
        &fx.spec(),
        &fx.path,
        fx.dir(),
        &format!("refused: directory is owned by uid {stranger}, not by the user or root"),
    );
    assert_insecure(&errors);
}

#[test]
fn a_missing_file_is_no_device_and_a_missing_directory_is_named() {
    let fx = Fixture::empty();
    assert_eq!(store::read(&fx.spec()).unwrap(), None);
    let result = attempt(
        &fx.spec(),
        USER,
        &valid_code(),
        now(),
        &Policy::default(),
        PATIENT,
    );
    assert_eq!(describe(&result), "no-device");
    assert_eq!(fx.listing(), Vec::<String>::new());

    let gone = fx.dir().join("nowhere/devices.toml");
    assert_eq!(store::read(&spec_for(&gone)).unwrap(), None);
    let err = store::lock(&spec_for(&gone), PATIENT).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}: cannot open directory: ",
            fx.dir().join("nowhere").display()
        )),
        "{err}"
    );
}

/// A device file whose line 7 is `line7` (lines 1-6 fixed, valid).
fn with_line7(line7: &str) -> String {
    format!(
        "version = 1\n\
         \n\
         [[device]]\n\
         name = \"phone\"\n\
         key = \"{KEY_HEX}\"\n\
         confirmed = true\n\
         {line7}\n"
    )
}

/// `read`, `lock` and `attempt` give exactly `{path}:{line}: key `{key}`:
/// {problem}` and leave the file as it was.
fn invalid_everywhere(text: &str, line: usize, key: &str, problem: &str) {
    let fx = Fixture::with_text(text);
    let expected = format!("{}:{line}: key `{key}`: {problem}", fx.path.display());
    let errors = refused_everywhere(&fx, &fx.spec(), &fx.path, &fx.path, problem);
    for e in &errors {
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        assert_eq!(e.to_string(), expected);
    }
}

#[test]
fn an_unknown_key_is_refused_with_file_line_and_key() {
    invalid_everywhere(
        &with_line7("colour = \"blue\""),
        7,
        "device[1].colour",
        "unknown key (misspelt, or from a newer version?)",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_file_line_and_key() {
    invalid_everywhere(
        &with_line7("step = \"30\""),
        7,
        "device[1].step",
        "expected an integer, found string",
    );
}

#[test]
fn an_out_of_range_value_is_refused_with_file_line_and_key() {
    invalid_everywhere(
        &with_line7("step = 0"),
        7,
        "device[1].step",
        "0 is out of range; allowed: 1 to 3600",
    );
}

#[test]
fn a_duplicate_device_name_is_refused_with_file_line_and_key() {
    let text = with_line7(&format!(
        "\n[[device]]\nname = \"phone\"\nkey = \"{KEY_HEX}\"\nconfirmed = true"
    ));
    invalid_everywhere(
        &text,
        9,
        "device[2].name",
        "duplicate device name; names must be unique",
    );
}

#[test]
fn an_unsupported_version_is_refused_with_file_line_and_key() {
    let text = with_line7("").replace("version = 1", "\nversion = 2");
    invalid_everywhere(
        &text,
        2,
        "version",
        "unsupported version 2; this build reads version 1",
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let mut bytes = state(0).to_toml(USER).into_bytes();
    bytes.extend_from_slice(b"# \xff\xfe\n");
    let fx = Fixture::empty();
    write_private(&fx.path, &bytes);
    let errors = refused_everywhere(&fx, &fx.spec(), &fx.path, &fx.path, "not UTF-8 text");
    assert!(
        matches!(errors[0], Error::Invalid { .. }),
        "{:?}",
        errors[0]
    );
}

// -------------------------------------------------- file-system identity

/// A root-owned 0600 file in a directory anyone may enter.
fn root_only_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("root-only");
    write_private(&path, b"secret\n");
    (dir, path)
}

fn can_open(path: &Path) -> bool {
    match File::open(path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => false,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

#[test]
fn acting_as_nobody_drops_root_file_powers_and_dropping_the_guard_restores_them() {
    let (_dir, path) = root_only_file();
    assert!(can_open(&path), "root should open a 0600 root file");
    {
        let _as = ActAs::user(NOBODY, NOBODY).unwrap();
        assert!(!can_open(&path), "uid {NOBODY} opened a root-only file");
        // Nor may it create files where only root may write.
        let err = File::create(path.with_file_name("new")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    }
    assert!(can_open(&path), "root's powers did not come back");
}

#[test]
fn acting_as_a_user_changes_only_the_calling_thread() {
    let (_dir, path) = root_only_file();
    // Started before the switch (a thread started after it inherits it).
    let (ask, asked) = mpsc::channel::<()>();
    let other_path = path.clone();
    let other = thread::spawn(move || {
        asked.recv().unwrap();
        can_open(&other_path)
    });
    let acting = ActAs::user(NOBODY, NOBODY).unwrap();
    assert!(!can_open(&path));
    ask.send(()).unwrap();
    assert!(
        other.join().unwrap(),
        "another thread lost root's powers too"
    );
    drop(acting);
    assert!(can_open(&path));
}

/// A home directory owned by `nobody`, inside a directory anyone may enter.
fn nobody_home() -> (tempfile::TempDir, UserInfo) {
    let base = tempfile::tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.path().join("home");
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let user = UserInfo {
        name: "nobody".into(),
        uid: NOBODY,
        gid: NOBODY,
        home,
    };
    (base, user)
}

#[test]
fn a_file_saved_in_a_users_home_is_owned_by_that_user_with_mode_0600() {
    let (_base, user) = nobody_home();
    let spec = FileSpec::for_user(&PathTemplate::default(), &user).unwrap();
    assert_eq!(
        spec.access,
        Access::AsUser {
            uid: NOBODY,
            gid: NOBODY
        }
    );
    assert_eq!(spec.path, user.home.join(".config/pam_totp/devices.toml"));
    store::ensure_dir(&spec).unwrap();
    let mut locked = store::lock(&spec, PATIENT).unwrap();
    assert!(locked.devices().is_none());
    locked.save(&state(3), &user.name).unwrap();
    drop(locked);

    for dir in [
        user.home.join(".config"),
        user.home.join(".config/pam_totp"),
    ] {
        let meta = fs::metadata(&dir).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOBODY),
            "{}",
            dir.display()
        );
        assert_eq!(meta.mode() & 0o7777, 0o700, "{}", dir.display());
    }
    let meta = fs::metadata(&spec.path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(store::read(&spec).unwrap(), Some(state(3)));

    // A second save (replace, not create) keeps owner and mode.
    let mut locked = store::lock(&spec, PATIENT).unwrap();
    locked.save(&state(4), &user.name).unwrap();
    drop(locked);
    let meta = fs::metadata(&spec.path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(store::read(&spec).unwrap(), Some(state(4)));
}

#[test]
fn a_lock_on_a_users_file_acts_as_the_user_until_it_is_dropped() {
    let (_base, user) = nobody_home();
    let spec = FileSpec::for_user(&PathTemplate::default(), &user).unwrap();
    store::ensure_dir(&spec).unwrap();
    let (_dir, root_file) = root_only_file();
    let locked = store::lock(&spec, PATIENT).unwrap();
    assert!(
        !can_open(&root_file),
        "root powers while holding a user's lock"
    );
    drop(locked);
    assert!(can_open(&root_file), "root's powers did not come back");
}

#[test]
fn a_users_file_that_only_root_can_read_fails_closed() {
    let (_base, user) = nobody_home();
    let spec = FileSpec::for_user(&PathTemplate::default(), &user).unwrap();
    store::ensure_dir(&spec).unwrap();
    // Root-owned is an allowed owner, but the user cannot open it: an error,
    // never "no device".
    write_private(&spec.path, state(0).to_toml(USER).as_bytes());
    let err = store::read(&spec).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot open: ", spec.path.display())),
        "{err}"
    );
    let err = attempt(
        &spec,
        &user.name,
        &valid_code(),
        now(),
        &Policy::default(),
        PATIENT,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[test]
fn a_refused_file_in_a_users_home_is_refused_the_same_way() {
    let (_base, user) = nobody_home();
    let spec = FileSpec::for_user(&PathTemplate::default(), &user).unwrap();
    store::ensure_dir(&spec).unwrap();
    let target = spec.path.with_file_name("real.toml");
    write_private(&target, state(0).to_toml(USER).as_bytes());
    chown(&target, Some(NOBODY), Some(NOBODY)).unwrap();
    symlink(&target, &spec.path).unwrap();
    let err = store::read(&spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: refused: is a symbolic link", spec.path.display())
    );
}

#[test]
fn accounts_whose_home_is_the_root_directory_get_no_shared_per_user_file() {
    let daemon = UserInfo {
        name: "daemon".into(),
        uid: 1,
        gid: 1,
        home: PathBuf::from("/"),
    };
    let err = FileSpec::for_user(&PathTemplate::default(), &daemon).unwrap_err();
    assert!(
        err.to_string()
            .contains("user daemon has no home directory of its own"),
        "{err}"
    );
    // Central mode does not depend on the home, so it still works for them.
    let central = PathTemplate::parse("/var/lib/pam_totp/%u.toml").unwrap();
    let spec = FileSpec::for_user(&central, &daemon).unwrap();
    assert_eq!(spec.path, PathBuf::from("/var/lib/pam_totp/daemon.toml"));
    assert_eq!(spec.access, Access::AsCaller);
}

#[test]
fn a_temp_file_left_by_a_writer_that_died_is_replaced_not_fatal() {
    let fx = Fixture::with_state(&state(-1));
    // What a writer killed between create and rename leaves behind.
    write_private(&fx.dir().join(".devices.toml.tmp"), b"half a file");
    let mut locked = store::lock(&fx.spec(), Duration::from_secs(1)).unwrap();
    locked.save(&state(7), USER).unwrap();
    drop(locked);
    let back = store::read(&fx.spec()).unwrap().unwrap();
    assert_eq!(back.devices[0].last_t, 7);
    // The stale temp file (it may hold old keys) is gone; the spare stays.
    assert_eq!(fx.listing(), [".devices.toml.spare", "devices.toml"]);
}

// ---------------------------------------------------------------- one read per login

#[test]
fn a_transaction_after_an_unlocked_read_sees_a_change_made_in_place_in_between() {
    let fx = Fixture::with_text(&state(10).to_toml(USER));
    let store = Store::file(fx.spec(), USER).at(now());
    let before = store.read().unwrap().devices.unwrap();
    assert_eq!(before.devices[0].last_t, 10);
    // Same inode, same size (the number keeps its width), new content.
    let text = state(10)
        .to_toml(USER)
        .replace("last_t = 10", "last_t = 17");
    assert_eq!(text.len(), state(10).to_toml(USER).len());
    OpenOptions::new()
        .write(true)
        .open(&fx.path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let seen: i64 = store
        .update(|file, _| -> Result<_, Error> {
            Ok(store::Change::Keep(file.unwrap().devices[0].last_t))
        })
        .unwrap();
    assert_eq!(seen, 17, "the transaction used the stale unlocked read");
}

#[test]
fn a_transaction_after_an_unlocked_read_of_an_unchanged_file_sees_the_same_devices() {
    let fx = Fixture::with_text(&state(41).to_toml(USER));
    let store = Store::file(fx.spec(), USER).at(now());
    let read = store.read().unwrap().devices.unwrap();
    let seen = store
        .update(|file, _| -> Result<_, Error> { Ok(store::Change::Keep(file.cloned())) })
        .unwrap();
    assert_eq!(seen, Some(read));
}
