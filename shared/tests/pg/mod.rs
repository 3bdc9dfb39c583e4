//! A throw-away PostgreSQL 15 cluster for the PostgreSQL store's tests:
//! `initdb` in a temp dir, a private unix socket directory and port, a
//! TCP listener on 127.0.0.1 with SCRAM for a second connection path, and
//! (optionally) libfaketime preloaded into the server so that a test sets
//! the database's clock per event. Stopped by `Drop` on every exit path
//! (fast shutdown, then SIGKILL of the postmaster if it lingers).
//!
//! As root the server runs as the `postgres` user (initdb refuses root).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::config::{Layout, PgSettings};
use shared::store::{PgStore, Store};
use shared::Timestamp;

/// The server's programs: `$PAM_TOTP_PG_BIN`, else the newest
/// `/usr/lib/postgresql/N/bin` that has `initdb` (15 on Debian 12, which
/// .ci/apt-packages installs; 17 on Debian 13).
pub fn bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PAM_TOTP_PG_BIN") {
            return PathBuf::from(dir);
        }
        let newest = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|v| Path::new(&format!("/usr/lib/postgresql/{v}/bin/initdb")).exists())
            .max()
            .unwrap_or(15);
        PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
    })
    .clone()
}
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
pub const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The password of the TCP + SCRAM role.
const PASSWORD: &str = "s3cret-for-tests";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    bouncer: Option<(Child, u16)>,
    pub port: u16,
    pub pid: u32,
    clock: PathBuf,
}

fn is_root() -> bool {
    posix::unistd::geteuid().is_root()
}

/// Whether the tests can run here at all.
/// PostgreSQL is there (`.ci/apt-packages` installs it). A missing server
/// fails the test that needs it: a test that did not run must never pass.
pub fn available() -> bool {
    assert!(
        bin().join("initdb").exists(),
        "{}/initdb is missing: install postgresql-15 (.ci/install-deps)",
        bin().display()
    );
    true
}

fn as_server(program: &str) -> Command {
    let path = if program.starts_with('/') {
        PathBuf::from(program)
    } else {
        bin().join(program)
    };
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// A temp dir for one server (its data, socket, logs), owned by the
/// server's user, with a clock file for libfaketime.
fn new_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("pam-totp-pg.")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let clock = dir.path().join("clock");
    fs::write(&clock, "+0\n").unwrap();
    fs::set_permissions(&clock, fs::Permissions::from_mode(0o644)).unwrap();
    if is_root() {
        let st = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    (dir, clock)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts a cluster; with `faketime`, the server's clock follows
    /// [`Cluster::set_clock`] (real time until the first call).
    pub fn start(faketime: bool) -> Cluster {
        Cluster::start_with(faketime, false)
    }

    /// [`Cluster::start`]; `durable`: keep PostgreSQL's fsync and
    /// synchronous commit (for measurements), else both off (tests).
    pub fn start_with(faketime: bool, durable: bool) -> Cluster {
        let (dir, clock) = new_dir();
        let data = dir.path().join("data");
        let out = as_server("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Our own pg_hba: trust on the private socket, SCRAM over TCP.
        let hba = "local all all trust\nlocal replication all trust\n\
                   host all postgres 127.0.0.1/32 trust\nhost all pamtotp 127.0.0.1/32 scram-sha-256\n";
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(data.join("pg_hba.conf"))
            .unwrap();
        f.write_all(hba.as_bytes()).unwrap();
        let c = Cluster::launch(dir, clock, faketime, durable, &[]);
        c.sql(&format!("CREATE ROLE pamtotp LOGIN PASSWORD '{PASSWORD}'"));
        c.write_passfile();
        c
    }

    /// A passfile for the TCP path, as an admin would write one.
    fn write_passfile(&self) {
        let port = self.port;
        let passfile = self.dir.path().join("pgpass");
        fs::write(
            &passfile,
            format!("127.0.0.1:{port}:postgres:pamtotp:{PASSWORD}\n"),
        )
        .unwrap();
        fs::set_permissions(&passfile, fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Starts a server on the data directory `dir/data`.
    fn launch(
        dir: tempfile::TempDir,
        clock: PathBuf,
        faketime: bool,
        durable: bool,
        extra: &[&str],
    ) -> Cluster {
        let data = dir.path().join("data");
        let port = free_port();
        // libfaketime goes into the server only (through env(1) after
        // setpriv): preloaded into setpriv it would make its shared memory
        // as root, which the server then cannot open.
        let mut cmd = if faketime {
            let mut c = as_server("/usr/bin/env");
            c.arg(format!("LD_PRELOAD={FAKETIME}"))
                .arg(format!("FAKETIME_TIMESTAMP_FILE={}", clock.display()))
                .arg("FAKETIME_NO_CACHE=1")
                .arg("FAKETIME_DONT_FAKE_MONOTONIC=1")
                .arg(bin().join("postgres"));
            c
        } else {
            as_server("postgres")
        };
        if !durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
        }
        cmd.args(extra);
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=80",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "log_min_messages=fatal",
                "-c",
                "password_encryption=scram-sha-256",
            ])
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("server.log")).unwrap());
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        let mut c = Cluster {
            dir,
            child: Some(child),
            bouncer: None,
            port,
            pid,
            clock,
        };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if pq::Conn::connect(&c.unix(), Instant::now() + Duration::from_secs(1)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < until,
                "postgres did not start: {}",
                c.log()
            );
            if let Some(st) = c.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("postgres exited with {st}: {}", c.log());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        c
    }

    /// A standby of this server (pg_basebackup -R), started with
    /// `cluster_name = name` (its application_name for
    /// synchronous_standby_names). Hot standby: it answers reads.
    pub fn start_standby(&self, name: &str) -> Cluster {
        let (dir, clock) = new_dir();
        let out = as_server("pg_basebackup")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-R",
                "-X",
                "stream",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-h",
            ])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster::launch(
            dir,
            clock,
            false,
            true,
            &["-c", &format!("cluster_name={name}")],
        );
        c.write_passfile();
        c
    }

    /// ALTER SYSTEM SET `name` = `value`, then reload.
    pub fn set(&self, name: &str, value: &str) {
        let value = value.replace('\'', "''");
        self.sql(&format!("ALTER SYSTEM SET {name} = '{value}'"));
        self.sql("SELECT pg_reload_conf()");
    }

    /// An immediate shutdown (SIGQUIT): as a crash, nothing more is sent.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid.to_string()])
                .status();
            let _ = Command::new("kill")
                .args(["-QUIT", &self.pid.to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The private unix socket, superuser, trust.
    pub fn unix(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// TCP to 127.0.0.1 as `pamtotp` with SCRAM-SHA-256, the password from
    /// a passfile.
    pub fn tcp(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=pamtotp dbname=postgres passfile={}",
            self.port,
            self.dir.path().join("pgpass").display()
        )
    }

    /// Turns TLS on (a throw-away CA and a server certificate for
    /// 127.0.0.1) and returns a TCP + SCRAM conninfo with
    /// `sslmode=verify-full` against that CA.
    pub fn tls(&self) -> String {
        let d = self.dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        fs::write(d.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
        fs::set_permissions(d.join("server.key"), fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let st = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(d.join("server.key"))
                .arg(d.join("server.crt"))
                .status()
                .unwrap();
            assert!(st.success());
        }
        self.set("ssl_cert_file", &d.join("server.crt").display().to_string());
        self.set("ssl_key_file", &d.join("server.key").display().to_string());
        self.set("ssl", "on");
        format!(
            "{} sslmode=verify-full sslrootcert={}",
            self.tcp(),
            d.join("ca.crt").display()
        )
    }

    /// Whether PgBouncer is installed.
    pub fn has_pgbouncer() -> bool {
        Path::new(PGBOUNCER).exists()
    }

    /// A local PgBouncer in front of the server (transaction pooling, the
    /// fail-fast settings of docs/design.md §9), started on first use; its conninfo.
    pub fn bouncer(&mut self) -> String {
        if self.bouncer.is_none() {
            let port = free_port();
            let d = self.dir.path();
            fs::write(d.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
            let ini = format!(
                "[databases]\npostgres = host={dir} port={pg} dbname=postgres\n\
                 [pgbouncer]\nlisten_addr =\nlisten_port = {port}\nunix_socket_dir = {dir}\n\
                 auth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = transaction\n\
                 max_client_conn = 200\ndefault_pool_size = 20\nquery_wait_timeout = 3\n\
                 server_connect_timeout = 2\nserver_login_retry = 1\n\
                 logfile = {dir}/pgbouncer.log\nignore_startup_parameters = extra_float_digits\n",
                dir = d.display(),
                pg = self.port,
            );
            fs::write(d.join("pgbouncer.ini"), ini).unwrap();
            for f in ["userlist.txt", "pgbouncer.ini"] {
                fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o644)).unwrap();
            }
            let child = as_server(PGBOUNCER)
                .arg(d.join("pgbouncer.ini"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(d.join("pgbouncer.err")).unwrap())
                .spawn()
                .unwrap();
            self.bouncer = Some((child, port));
            let conninfo = self.bouncer_conninfo();
            let until = Instant::now() + Duration::from_secs(10);
            while pq::Conn::connect(&conninfo, Instant::now() + Duration::from_secs(1)).is_err() {
                assert!(Instant::now() < until, "pgbouncer did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.bouncer_conninfo()
    }

    fn bouncer_conninfo(&self) -> String {
        let port = self.bouncer.as_ref().map_or(0, |b| b.1);
        format!(
            "host={} port={port} user=postgres dbname=postgres",
            self.dir.path().display()
        )
    }

    /// Runs admin SQL over the socket; the rows of the last statement.
    pub fn sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut conn = pq::Conn::connect(&self.unix(), deadline).unwrap();
        let results = conn
            .execute(sql, deadline)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let Some(rows) = results.last() else {
            return Vec::new();
        };
        (0..rows.len())
            .map(|r| {
                (0..rows.fields())
                    .map(|c| rows.get(r, c).map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// One value.
    pub fn value(&self, sql: &str) -> Option<String> {
        self.sql(sql)
            .first()
            .and_then(|r| r.first().cloned())
            .flatten()
    }

    /// Creates the pam-totp tables and lets the TCP role use them.
    pub fn init_pam_totp(&self) {
        PgStore::new(&self.settings(&self.unix(), 3000), "nobody")
            .init_schema()
            .unwrap();
        self.sql(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON pam_totp_device, pam_totp_backup TO pamtotp",
        );
    }

    pub fn settings(&self, conninfo: &str, deadline_ms: u32) -> PgSettings {
        PgSettings {
            conninfo: conninfo.to_owned(),
            layout: Layout::PamTotp,
            deadline_ms,
        }
    }

    /// The store of `user` over `conninfo`.
    pub fn store(&self, conninfo: &str, user: &str, deadline_ms: u32) -> Store {
        Store::Postgres(PgStore::new(&self.settings(conninfo, deadline_ms), user))
    }

    /// Freezes the server's clock at `t` (faketime clusters only).
    pub fn set_clock(&self, t: Timestamp) {
        let tmp = self.dir.path().join("clock.tmp");
        fs::write(&tmp, format!("{}\n", faketime_date(t))).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        fs::rename(&tmp, &self.clock).unwrap();
    }

    /// Lets the server's clock run again.
    pub fn real_clock(&self) {
        let tmp = self.dir.path().join("clock.tmp");
        fs::write(&tmp, "+0\n").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        fs::rename(&tmp, &self.clock).unwrap();
    }

    pub fn signal(&self, pid: u32, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// Fast shutdown; waits for the postmaster to exit.
    pub fn stop(&mut self) {
        self.stop_server();
        if let Some((mut b, _)) = self.bouncer.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &b.id().to_string()])
                .status();
            let _ = b.wait();
        }
    }

    /// Stops the server only (a PgBouncer in front stays up).
    pub fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.real_clock();
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
        let _ = Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > until => {
                    let _ = Command::new("kill")
                        .args(["-QUIT", &self.pid.to_string()])
                        .status();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: libfaketime's frozen form.
pub fn faketime_date(t: Timestamp) -> String {
    let micros = t.as_micros();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Threads and open descriptors of this process.
pub fn threads_and_fds() -> (usize, usize) {
    let count = |p: &str| fs::read_dir(p).unwrap().count();
    (count("/proc/self/task"), count("/proc/self/fd"))
}

/// One round of the race: the device rows of `table` reset, then 16
/// threads, in turn over `paths`, all try `code` at once. Returns the
/// successes.
pub fn race_round(
    pg: &Cluster,
    table: &str,
    paths: &[String],
    code: &str,
    attempt: &(dyn Fn(&str, &str) -> bool + Sync),
) -> usize {
    pg.sql(&format!(
        "UPDATE {table} SET last_t = -1, drift = 0, throttling_failure_count = 0, \
         throttling_failure_timestamp = NULL"
    ));
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let conninfo = paths[i % paths.len()].clone();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    attempt(&conninfo, code)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    })
}
