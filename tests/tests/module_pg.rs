//! pam_totp.so over the PostgreSQL store, through real libpam (pam_wrapper,
//! pamtester, pypamtest), against a real PostgreSQL 15 started by the test
//! (shared/tests/pg/mod.rs): two PAM services stand for two hosts, one
//! reaching the server over its unix socket, the other over TCP + SCRAM
//! (passfile). A code accepted on one is refused on the other; a stalled or
//! stopped server ends in PAM_AUTHINFO_UNAVAIL within deadline_ms + 0.2 s,
//! logged with the user; the host process keeps no thread or descriptor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../shared/tests/pg/mod.rs"]
mod pg;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_now, device, module, pam_wrapper_lock, random_key_hex, wrong_code, PamResult, Pamtester,
    Services, PAM_WRAPPER,
};
use shared::device::DeviceFile;
use shared::store::Change;
use shared::Error;

const USER: &str = "root";
const DEADLINE_MS: u64 = 1000;

/// A root-owned 0644 settings file naming the PostgreSQL store.
fn settings(dir: &tempfile::TempDir, name: &str, conninfo: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(
        &path,
        format!(
            "[store]\nbackend = \"postgresql\"\nconninfo = \"{conninfo}\"\ndeadline_ms = {DEADLINE_MS}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// Threads and descriptors of a host process before `pam_start` and after
/// `pam_end` (pypamtest runs both inside `run_pamtest`).
fn host_counts(services: &Services, service: &str, code: &str) -> (String, String) {
    const SCRIPT: &str = r#"
import os, sys, pypamtest
def counts():
    return "%d threads, %d fds" % (len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")))
before = counts()
try:
    pypamtest.run_pamtest(sys.argv[1], sys.argv[2], [pypamtest.TestCase(pypamtest.PAMTEST_AUTHENTICATE)], [sys.argv[3]])
    result = "ok"
except pypamtest.PamTestError as e:
    result = str(e)
print(before)
print(counts())
print(result)
"#;
    let _lock = pam_wrapper_lock().unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT, USER, service, code])
        .env("LD_PRELOAD", PAM_WRAPPER)
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[2], "ok", "the login through pypamtest failed");
    (lines[0].to_owned(), lines[1].to_owned())
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn two_hosts_share_one_state_through_the_module_and_a_dead_server_fails_closed_in_time() {
    require_root("two_hosts_share_one_state_through_the_module");
    assert!(pg::available());
    let mut cluster = pg::Cluster::start(false);
    cluster.init_pam_totp();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let services = Services::new().unwrap();
    let so = module().unwrap();
    for (service, conninfo) in [("host-a", cluster.unix()), ("host-b", cluster.tcp())] {
        let cfg = settings(&dir, &format!("{service}.toml"), &conninfo);
        services
            .probe(service, &so, &format!("config={}", cfg.display()))
            .unwrap();
    }
    let d = device("phone", &random_key_hex(20).unwrap()).unwrap();
    let store = cluster.store(&cluster.unix(), USER, 3000);
    store
        .update(|_, _| -> Result<_, Error> {
            #[allow(clippy::needless_update)]
            let file = DeviceFile {
                devices: vec![d.clone()],
                ..DeviceFile::default()
            };
            Ok(Change::Save(file, ()))
        })
        .unwrap();

    let code = code_now(&d);
    let a = Pamtester::new(&services, "host-a", USER)
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(a.result, PamResult::Success, "{a}");
    assert!(
        a.log_text().contains("accepted: user root, device phone"),
        "{a}"
    );
    let b = Pamtester::new(&services, "host-b", USER)
        .answers(&[&code])
        .run()
        .unwrap();
    assert_eq!(
        b.result,
        PamResult::AuthErr,
        "host B replayed host A's code: {b}"
    );
    assert!(b.log_text().contains("replayed"), "{b}");
    assert_eq!(
        cluster.value("SELECT throttling_failure_count FROM pam_totp_device"),
        Some("1".into())
    );
    // Wait out the 1 s throttle that B's failure set, then a wrong code.
    std::thread::sleep(Duration::from_millis(1100));
    let w = Pamtester::new(&services, "host-b", USER)
        .answers(&[&wrong_code(&d)])
        .run()
        .unwrap();
    assert_eq!(w.result, PamResult::AuthErr, "{w}");

    // Inside the host process: no thread, no descriptor left after pam_end.
    cluster.sql("UPDATE pam_totp_device SET throttling_failure_count = 0, throttling_failure_timestamp = NULL, last_t = -1");
    let (before, after) = host_counts(&services, "host-b", &code_now(&d));
    println!("host process before pam_start: {before}; after pam_end: {after}");
    assert_eq!(before, after);

    // A stalled server: PAM_AUTHINFO_UNAVAIL within deadline_ms + 0.2 s,
    // logged with the user; nothing changed.
    let rows = cluster.sql("SELECT * FROM pam_totp_device");
    cluster.signal(cluster.pid, "-STOP");
    let t = Instant::now();
    let s = Pamtester::new(&services, "host-a", USER)
        .item("rhost=203.0.113.9")
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    let stalled = t.elapsed();
    cluster.signal(cluster.pid, "-CONT");
    println!(
        "postmaster SIGSTOPped: {:?} after {} ms",
        s.result,
        stalled.as_millis()
    );
    assert_eq!(s.result, PamResult::AuthInfoUnavail, "{s}");
    assert!(
        stalled <= Duration::from_millis(DEADLINE_MS + 200),
        "{stalled:?}"
    );
    assert!(s.log_text().contains("user root"), "{s}");
    assert!(s.log_text().contains("rhost 203.0.113.9"), "{s}");
    println!("log: {}", s.log_text());
    assert_eq!(cluster.sql("SELECT * FROM pam_totp_device"), rows);

    cluster.stop();
    let t = Instant::now();
    let s = Pamtester::new(&services, "host-b", USER)
        .answers(&[&code_now(&d)])
        .run()
        .unwrap();
    let stopped = t.elapsed();
    println!(
        "server stopped: {:?} after {} ms",
        s.result,
        stopped.as_millis()
    );
    assert_eq!(s.result, PamResult::AuthInfoUnavail, "{s}");
    assert!(
        stopped <= Duration::from_millis(DEADLINE_MS + 200),
        "{stopped:?}"
    );
}
