//! Fault injection (issue 11, "Keep it that way"): every system call the
//! store makes during a login, made to fail in turn, through the real
//! module (pam_wrapper + pamtester under `strace --inject`).
//!
//! A first traced run of a right code lists the calls on the device
//! directory (`openat`, `flock`, `pwrite64`, `fsync`, `renameat2`, …, each
//! with its number among the calls of that name). Then for each such call
//! and each fault (ENOSPC, EDQUOT, EIO, EROFS, EFBIG, EINTR, SIGKILL at the
//! call) a wrong code and a right code are each tried once from the same
//! state, and the test checks:
//!
//! 1. a login is only accepted with its success on disk;
//! 2. the file is always a whole state: the old one, the old one with the
//!    failure counted, or the success;
//! 3. no fault lets a wrong code go uncounted while the same fault lets a
//!    right code in (the fault cannot tell them apart);
//! 4. a wrong code is never accepted.
//!
//! The table of results is written to `target/faults.md`, and to
//! `docs/faults.md` with `PAM_TOTP_WRITE_FAULTS=1` (how that file is made).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pam_totp_tests::kit::require_root;
use pam_totp_tests::pam::{
    code_now, device, module, random_key_hex, target_dir, workspace_root, wrong_code, DeviceDir,
    PamResult, Pamtester, Run, Services,
};
use shared::device::{Device, DeviceFile};
use shared::store::{self, Access, FileSpec};
use shared::Timestamp;

const USER: &str = "root";
/// The system calls watched and failed.
const SYSCALLS: &[&str] = &[
    "openat",
    "flock",
    "write",
    "pwrite64",
    "ftruncate",
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "unlinkat",
];
/// What each call is made to do instead: an error, or SIGKILL on entry.
/// (EINVAL is what `renameat2(RENAME_EXCHANGE)` gives on a file system
/// without it, e.g. NFS: the store then renames the spare over the file.)
const FAULTS: &[&str] = &[
    "ENOSPC", "EDQUOT", "EIO", "EROFS", "EFBIG", "EINTR", "EINVAL", "KILL",
];

struct Fixture {
    services: Services,
    devices: DeviceDir,
    start: Device,
}

impl Fixture {
    fn new() -> Fixture {
        let services = Services::new().unwrap();
        let devices = DeviceDir::new().unwrap();
        services
            .probe(
                "totp",
                &module().unwrap(),
                &format!(
                    "{} config={} throttle_factor=0",
                    devices.path_arg(),
                    devices.settings().unwrap().display()
                ),
            )
            .unwrap();
        let mut start = device("phone", &random_key_hex(20).unwrap()).unwrap();
        let now = Timestamp::now();
        start.last_t = now.secs_floor() / 30 - 10;
        start.last_used_at = Some(Timestamp::from_secs(now.secs_floor() - 300));
        start.throttling_failure_count = 2;
        start.throttling_failure_timestamp = Some(Timestamp::from_secs(now.secs_floor() - 200));
        Fixture {
            services,
            devices,
            start,
        }
    }

    fn spec(&self) -> FileSpec {
        FileSpec {
            path: self.devices.file(USER),
            owner: 0,
            access: Access::AsCaller,
            home: None,
        }
    }

    /// The starting state, written as enrolment writes it (file and
    /// spare), or as a version without spares wrote it (file only).
    fn reset(&self, scenario: Scenario) {
        let file = self.devices.file(USER);
        let _ = fs::remove_file(&file);
        let _ = fs::remove_file(self.devices.dir().join(format!(".{USER}.toml.spare")));
        if scenario == Scenario::NoSpareYet {
            self.devices
                .write(USER, std::slice::from_ref(&self.start))
                .unwrap();
            return;
        }
        let mut locked = store::lock(&self.spec(), Duration::from_secs(5)).unwrap();
        locked
            .save(
                &DeviceFile {
                    devices: vec![self.start.clone()],
                    ..DeviceFile::default()
                },
                USER,
            )
            .unwrap();
    }

    fn login(&self, code: &str, wrapper: &[&str]) -> Run {
        Pamtester::new(&self.services, "totp", USER)
            .answers(&[code])
            .wrapped(wrapper)
            .run()
            .unwrap()
    }

    /// What the file holds now, compared with the starting state.
    fn state(&self) -> State {
        let path = self.devices.file(USER);
        let Ok(text) = fs::read_to_string(&path) else {
            return State::Other("missing".into());
        };
        let Ok(file) = DeviceFile::parse(&text, &path) else {
            return State::Other("unparsable (torn)".into());
        };
        let (s, d) = (&self.start, &file.devices[0]);
        if d == s {
            State::Old
        } else if d.throttling_failure_count == s.throttling_failure_count + 1
            && d.last_t == s.last_t
            && d.throttling_failure_timestamp > s.throttling_failure_timestamp
        {
            State::Counted
        } else if d.throttling_failure_count == 0
            && d.last_t > s.last_t
            && d.last_used_at > s.last_used_at
        {
            State::Success
        } else {
            State::Other(format!("{d:?}"))
        }
    }
}

/// Where a login starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// A file and its spare, as enrolment leaves them.
    Steady,
    /// A file without a spare (written before spares existed): the login
    /// makes the spare.
    NoSpareYet,
}

impl Scenario {
    fn title(self) -> &'static str {
        match self {
            Scenario::Steady => "A login on a file with its spare (every login after enrolment)",
            Scenario::NoSpareYet => {
                "The first login on a file written before spares existed (makes the spare)"
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// The starting state, untouched.
    Old,
    /// The starting state with one more failure.
    Counted,
    /// The right code's success.
    Success,
    /// Anything else: a violation.
    Other(String),
}

impl State {
    fn word(&self) -> &str {
        match self {
            State::Old => "old",
            State::Counted => "old + failure counted",
            State::Success => "success",
            State::Other(_) => "OTHER",
        }
    }
}

fn result_word(run: &Run) -> String {
    match (&run.result, run.exit) {
        (PamResult::Success, _) => "accepted".into(),
        (PamResult::AuthErr, _) => "refused (AUTH_ERR)".into(),
        (PamResult::AuthInfoUnavail, _) => "refused (AUTHINFO_UNAVAIL)".into(),
        (PamResult::Other(_), None) => "killed".into(),
        (r, _) => format!("refused ({r:?})"),
    }
}

/// One system call of the store's: its name, its number among the calls of
/// that name in the whole process (strace's `when=`), and the line.
#[derive(Clone, Debug)]
struct Call {
    name: String,
    nth: usize,
    what: String,
}

/// The store's calls in a run traced with `-P`: those naming the device
/// directory (as a path, or through `-y`'s `fd<path>`), numbered among the
/// traced calls of their name.
fn store_calls(log: &str, dir: &Path) -> Vec<Call> {
    let dir = dir.display().to_string();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut calls = Vec::new();
    for line in log.lines() {
        // "PID  name(args) = result"
        let body = line.split_once(' ').map_or(line, |(_, b)| b).trim_start();
        let Some((name, args)) = body.split_once('(') else {
            continue;
        };
        if !SYSCALLS.contains(&name) || line.contains("resumed>") {
            continue;
        }
        let n = match counts.iter_mut().find(|(c, _)| c == name) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counts.push((name.to_owned(), 1));
                1
            }
        };
        let head = args.split(", ").take(2).collect::<Vec<_>>().join(", ");
        let on_store = head.contains(&format!("<{dir}")) || head.contains(&format!("\"{dir}"));
        if on_store && !line.contains("settings.toml") {
            let what = args
                .replace(&format!("{dir}/"), "")
                .replace(&dir, "DIR")
                .chars()
                .take(70)
                .collect();
            calls.push(Call {
                name: name.to_owned(),
                nth: n,
                what,
            });
        }
    }
    calls
}

#[test]
#[cfg_attr(not_root, ignore = "needs root")]
fn every_store_system_call_failing_leaves_a_whole_state_and_no_uncounted_failure() {
    require_root("every_store_system_call_failing_leaves_a_whole_state");
    let started = Instant::now();
    let f = Fixture::new();
    let wrong = wrong_code(&f.start);

    let mut table = String::new();
    let mut violations = Vec::new();
    let mut cells = 0;
    let mut store_calls_seen = 0;
    for scenario in [Scenario::Steady, Scenario::NoSpareYet] {
        // 1. Which calls the store makes for a right code (the longer path:
        //    the failure first, then the success).
        f.reset(scenario);
        let log_path = target_dir().unwrap().join("faults-trace.log");
        let log_arg = log_path.display().to_string();
        let trace = format!("trace={}", SYSCALLS.join(","));
        // `-P`: only the calls on these paths are traced, and counted for
        // `when=` (the other calls of the process, e.g. pam_wrapper's, vary
        // from run to run).
        let dir = f.devices.dir().display().to_string();
        let paths = [
            dir.clone(),
            format!("{dir}/{USER}.toml"),
            format!("{dir}/.{USER}.toml.spare"),
        ];
        let mut only: Vec<&str> = Vec::new();
        for p in &paths {
            only.extend(["-P", p.as_str()]);
        }
        let mut tracer = vec!["strace", "-f", "-y", "-e", &trace, "-o", &log_arg];
        tracer.extend(&only);
        let run = f.login(&code_now(&f.start), &tracer);
        assert_eq!(run.result, PamResult::Success, "{run}");
        let log = fs::read_to_string(&log_path).unwrap();
        let calls = store_calls(&log, f.devices.dir());
        assert!(
            calls.iter().any(|c| c.name == "renameat2"),
            "no exchange seen in the trace:\n{log}"
        );
        store_calls_seen += calls.len();

        // 2. Each call × each fault, for a wrong code and for a right code.
        let _ = writeln!(
            table,
            "\n## {}\n\n\
             | call (args) | fault | wrong code | file after | right code | file after |\n\
             |---|---|---|---|---|---|",
            scenario.title()
        );
        for call in &calls {
            for fault in FAULTS {
                let what = if *fault == "KILL" {
                    "signal=KILL".to_owned()
                } else {
                    format!("error={fault}")
                };
                let inject = format!("--inject={}:{what}:when={}", call.name, call.nth);
                let mut wrapper = vec!["strace", "-f", "-o", "/dev/null", inject.as_str()];
                wrapper.extend(&only);

                f.reset(scenario);
                let w = f.login(&wrong, &wrapper);
                let w_state = f.state();
                f.reset(scenario);
                // The code of this moment (the matrix takes longer than a step).
                let r = f.login(&code_now(&f.start), &wrapper);
                let r_state = f.state();
                cells += 1;

                let cell = format!("{scenario:?}: {} #{} {fault}", call.name, call.nth);
                let accepted = r.result == PamResult::Success;
                if accepted && r_state != State::Success {
                    violations.push(format!("{cell}: accepted without its state: {r_state:?}"));
                }
                for (who, s) in [("wrong", &w_state), ("right", &r_state)] {
                    if let State::Other(x) = s {
                        violations.push(format!("{cell}: {who} code left {x}"));
                    }
                }
                if w_state == State::Success || w.result == PamResult::Success {
                    violations.push(format!("{cell}: wrong code accepted"));
                }
                if w_state == State::Old && accepted {
                    violations.push(format!(
                        "{cell}: wrong code uncounted while a right code got in"
                    ));
                }
                let _ = writeln!(
                    table,
                    "| `{}` #{} `{}` | {fault} | {} | {} | {} | {} |",
                    call.name,
                    call.nth,
                    call.what.replace('|', "\\|"),
                    result_word(&w),
                    w_state.word(),
                    result_word(&r),
                    r_state.word(),
                );
            }
        }
    }
    let elapsed = started.elapsed();
    let doc = format!(
        "# Fault matrix\n\n\
         Generated by `tests/tests/faults.rs` \
         (`PAM_TOTP_WRITE_FAULTS=1 cargo test -p pam-totp-tests --test faults`): \
         each system call the device-file store makes during one login through the real \
         module (pam_wrapper + pamtester) is made to fail in turn with \
         `strace --inject=SYSCALL:error=ERRNO:when=N` (or `signal=KILL`: the process dies on \
         entry to the call). `#N` is the call's number among the process's calls of that \
         name on the device directory, its file and its spare (strace's `-P` and \
         `when=`). Each cell starts from the same state (two failures \
         counted, last used 300 s ago), once with a wrong code and once with a right code.\n\n\
         Checked for every row: a login is accepted only with its success on disk; the file \
         is always a whole state (old, old + failure counted, or success); a wrong code is \
         never accepted; and no fault leaves a wrong code uncounted (file \"old\") while the \
         same fault lets a right code in. The store counts the failure before it compares \
         the code (docs/design.md §10), so any fault up to that write refuses both codes \
         and any later fault finds the failure already counted.\n\n\
         {cells} cells, {store_calls_seen} store calls, in {:.1} s. `write`, `rename` and \
         `ftruncate` are watched too: a login makes none (a first file is created by \
         `totp-enroll`; a login writes in place with `pwrite64`).\n{table}",
        elapsed.as_secs_f64()
    );
    fs::write(target_dir().unwrap().join("faults.md"), &doc).unwrap();
    if std::env::var_os("PAM_TOTP_WRITE_FAULTS").is_some() {
        let out: PathBuf = workspace_root().join("docs/faults.md");
        fs::write(&out, &doc).unwrap();
    }
    assert!(
        violations.is_empty(),
        "{} violations:\n{}\n\n{doc}",
        violations.len(),
        violations.join("\n")
    );
}
