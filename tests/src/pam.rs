//! Driving the built `pam_totp.so` through real libpam.
//!
//! * [`module`] builds the module once per test process (`cargo build -p
//!   pam_totp`, into the target directory this test binary was built in, or
//!   `CARGO_TARGET_DIR`) and returns its absolute path;
//!   [`module_with_feature`] builds a variant (e.g. `test-panic`) into a
//!   separate target directory so that it never replaces the normal build.
//! * [`Services`] is a private PAM service directory for pam_wrapper
//!   (`PAM_WRAPPER_SERVICE_DIR`), so no test touches `/etc/pam.d`;
//!   [`Services::probe`] writes a stack in which every result of the module
//!   can be told apart, `PAM_IGNORE` included.
//! * [`Pamtester`] runs a real `pamtester` process under pam_wrapper,
//!   optionally at a chosen instant with libfaketime ([`FakeTime`]), and
//!   returns a [`Run`]: the PAM result, what the user saw, and the module's
//!   `pam_syslog` lines. [`pypamtest`] reads `PAM_AUTHTOK` back
//!   after the module ran (for `forward_pass`).
//! * [`DeviceDir`] is a central-mode directory of device files
//!   (`path=<dir>/%u.toml`), written and read back with `shared`'s own types.
//!
//! pam_wrapper is not safe in parallel (it picks `/tmp/pam.<c>` with a racy
//! check), and the tests of different test binaries run as separate
//! processes at the same time: every pam_wrapper run holds [`WrapperLock`],
//! a process-wide mutex plus an exclusive `flock` on a file in `/tmp`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use posix::fcntl::{Flock, FlockArg};
use shared::device::{Device, DeviceFile};
use shared::Timestamp;
use tempfile::TempDir;

/// Result type of the harness: failures say what broke.
pub type Result<T> = std::result::Result<T, String>;

/// pam_wrapper's preload library.
pub const PAM_WRAPPER: &str = "libpam_wrapper.so";
/// libfaketime's preload library (Debian's `libfaketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// pam_wrapper's test module that copies PAM items into the PAM environment.
pub const PAM_GET_ITEMS: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_get_items.so";
/// pam_wrapper's test module that sets PAM items from environment variables
/// (`PAM_AUTHTOK=…` in its environment becomes the item).
pub const PAM_SET_ITEMS: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so";
/// The interpreter that has `pypamtest` (Debian's `python3-pypamtest`).
const PYTHON: &str = "/usr/bin/python3";
/// What [`Services::probe`] prints (through `pam_echo`) when the module
/// returned `PAM_IGNORE`.
pub const IGNORED_MARKER: &str = "pam-totp-probe:module-ignored";
/// The module's default prompt.
pub const PROMPT: &str = "Verification code: ";
/// The module's prompt with `forward_pass`.
pub const FORWARD_PROMPT: &str = "Password & verification code: ";

// ---------------------------------------------------------------------------
// Building the module
// ---------------------------------------------------------------------------

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set, else the one
/// holding this test binary (`<target>/<profile>/deps/<exe>`).
pub fn target_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return Ok(if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        });
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("no target directory above {}", exe.display()))
}

/// The cargo profile this test binary was built with (`debug`, `release`).
fn profile() -> Result<String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.ancestors()
        .nth(2)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("no profile directory above {}", exe.display()))
}

fn cargo_build(target: &Path, feature: Option<&str>) -> Result<PathBuf> {
    let profile = profile()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "pam_totp"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace_root());
    if profile == "release" {
        cmd.arg("--release");
    }
    if let Some(f) = feature {
        cmd.args(["--features", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running cargo build -p pam_totp: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p pam_totp {feature:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let so = target.join(profile).join("libpam_totp.so");
    if so.is_file() {
        Ok(so)
    } else {
        Err(format!("{} missing after cargo build", so.display()))
    }
}

/// Absolute path of the freshly built module (`<target>/debug/libpam_totp.so`).
///
/// `cargo test` does not rebuild a cdylib that no test links, so the first
/// call in a process runs `cargo build -p pam_totp` (cheap when up to date).
/// `PAM_TOTP_MODULE=/abs/path/pam_totp.so` tests another build instead, e.g.
/// the one a package installed.
pub fn module() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("PAM_TOTP_MODULE") {
                let path = PathBuf::from(path);
                return if path.is_absolute() && path.is_file() {
                    Ok(path)
                } else {
                    Err(format!(
                        "PAM_TOTP_MODULE={}: not an absolute path to a file",
                        path.display()
                    ))
                };
            }
            cargo_build(&target_dir()?, None)
        })
        .clone()
}

/// The module built with a cargo feature (e.g. `test-panic`), in its own
/// target directory `<target>/pam-totp-<feature>` so that it never replaces
/// the normal build that other tests load at the same time.
pub fn module_with_feature(feature: &'static str) -> Result<PathBuf> {
    static BUILT: Mutex<Vec<(&'static str, Result<PathBuf>)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = built.iter().find(|(f, _)| *f == feature) {
        return r.clone();
    }
    let target = target_dir()?.join(format!("pam-totp-{feature}"));
    let r = cargo_build(&target, Some(feature));
    built.push((feature, r.clone()));
    r
}

// ---------------------------------------------------------------------------
// Serialising pam_wrapper
// ---------------------------------------------------------------------------

/// Held while a pam_wrapper process runs: a process-wide mutex (tests of one
/// binary are threads) and an exclusive `flock` on
/// `/tmp/pam-totp-tests.pam_wrapper.lock` (test binaries are processes).
#[derive(Debug)]
pub struct WrapperLock {
    _file: Flock<File>,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the [`WrapperLock`], waiting as long as it takes.
pub fn pam_wrapper_lock() -> Result<WrapperLock> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let path = "/tmp/pam-totp-tests.pam_wrapper.lock";
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {path}: {e}"))?;
    let file = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {path}: {e}"))?;
    Ok(WrapperLock {
        _file: file,
        _guard: guard,
    })
}

// ---------------------------------------------------------------------------
// Service files
// ---------------------------------------------------------------------------

/// A private PAM service directory for pam_wrapper, removed when dropped.
/// It always holds an `other` service that denies (libpam wants one).
#[derive(Debug)]
pub struct Services {
    dir: TempDir,
}

impl Services {
    /// An empty service directory (plus `other`).
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pam-totp-services.")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let s = Services { dir };
        s.add(
            "other",
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )?;
        Ok(s)
    }

    /// The directory (`PAM_WRAPPER_SERVICE_DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the service file `name` with `text`.
    pub fn add(&self, name: &str, text: &str) -> Result<()> {
        let path = self.dir.path().join(name);
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// A stack in which every result of the module is visible:
    /// success ends the stack (`PAM_SUCCESS`); `PAM_IGNORE` goes on to
    /// `pam_echo`, which prints [`IGNORED_MARKER`], then `pam_permit`; any
    /// other code ends the stack with that code.
    pub fn probe(&self, name: &str, module: &Path, args: &str) -> Result<()> {
        self.add(
            name,
            &format!(
                "auth [success=done ignore=ignore default=die] {} {args}\n\
                 auth optional pam_echo.so {IGNORED_MARKER}\n\
                 auth required pam_permit.so\n",
                module.display()
            ),
        )
    }
}

// ---------------------------------------------------------------------------
// Running pamtester
// ---------------------------------------------------------------------------

/// An instant for libfaketime: the clock is frozen there for the whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeTime(Timestamp);

impl FakeTime {
    /// At unix time `secs` (fractions allowed, e.g. `1700000001.5`).
    pub fn at(secs: f64) -> Self {
        FakeTime(Timestamp::from_secs_f64(secs))
    }

    /// libfaketime's absolute (frozen) form, `YYYY-MM-DD hh:mm:ss[.ffffff]`,
    /// read in UTC (the run sets `TZ=UTC`).
    pub fn faketime_value(&self) -> String {
        let secs = self.0.secs_floor();
        let micros = self.0.as_micros().rem_euclid(1_000_000);
        let whole = Timestamp::from_secs(secs).to_string(); // 2023-11-14T22:13:21Z
        let base = whole.trim_end_matches('Z').replacen('T', " ", 1);
        if micros == 0 {
            base
        } else {
            format!("{base}.{micros:06}")
        }
    }
}

/// What libpam's `pam_authenticate` returned, as pamtester reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PamResult {
    /// `PAM_SUCCESS` from the module (the probe stack ended there).
    Success,
    /// `PAM_IGNORE` from the module (the probe stack's marker was printed).
    Ignored,
    /// `PAM_AUTH_ERR`.
    AuthErr,
    /// `PAM_MAXTRIES`.
    MaxTries,
    /// `PAM_AUTHINFO_UNAVAIL`.
    AuthInfoUnavail,
    /// `PAM_USER_UNKNOWN`.
    UserUnknown,
    /// `PAM_SERVICE_ERR`.
    ServiceErr,
    /// `PAM_CONV_ERR`.
    ConvErr,
    /// `PAM_PERM_DENIED`.
    PermDenied,
    /// `PAM_ABORT`.
    Abort,
    /// `PAM_SYSTEM_ERR`.
    SystemErr,
    /// The process died or printed something else (with the text).
    Other(String),
}

/// libpam 1.5's `pam_strerror` texts, as pamtester prints them.
const STRERROR: &[(&str, PamResult)] = &[
    ("Authentication failure", PamResult::AuthErr),
    (
        "Have exhausted maximum number of retries for service",
        PamResult::MaxTries,
    ),
    (
        "Authentication service cannot retrieve authentication info",
        PamResult::AuthInfoUnavail,
    ),
    (
        "User not known to the underlying authentication module",
        PamResult::UserUnknown,
    ),
    ("Error in service module", PamResult::ServiceErr),
    ("Conversation error", PamResult::ConvErr),
    ("Permission denied", PamResult::PermDenied),
    ("Critical error - immediate abort", PamResult::Abort),
    ("System error", PamResult::SystemErr),
];

/// One finished pamtester run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The PAM result.
    pub result: PamResult,
    /// Exit status (`None`: killed by a signal).
    pub exit: Option<i32>,
    /// pamtester's stdout (`PAM_TEXT_INFO` messages).
    pub stdout: String,
    /// pamtester's stderr: prompts, `PAM_ERROR_MSG`, pamtester's verdict and
    /// pam_wrapper's debug lines.
    pub stderr: String,
}

impl Run {
    fn from_output(out: &Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let exit = out.status.code();
        let result = if exit == Some(0)
            && (stdout.contains("successfully") || stderr.contains("successfully"))
        {
            if stdout.contains(IGNORED_MARKER) {
                PamResult::Ignored
            } else {
                PamResult::Success
            }
        } else {
            STRERROR
                .iter()
                .find(|(text, _)| {
                    stderr
                        .lines()
                        .any(|l| l.trim_start().ends_with(&format!("pamtester: {text}")))
                })
                .map_or_else(
                    || PamResult::Other(format!("exit {exit:?}: {stderr}")),
                    |(_, r)| r.clone(),
                )
        };
        Run {
            result,
            exit,
            stdout,
            stderr,
        }
    }

    /// How many times `prompt` was shown.
    pub fn prompts(&self, prompt: &str) -> usize {
        self.stderr.matches(prompt).count()
    }

    /// True when the module asked for a code (default prompt).
    pub fn prompted(&self) -> bool {
        self.prompts(PROMPT) > 0 || self.prompts(FORWARD_PROMPT) > 0
    }

    /// The module's `pam_syslog` lines (pam_wrapper prints them at debug
    /// level 3 as `SYSLOG(<priority>): <text>`), as `(priority, text)`.
    pub fn log(&self) -> Vec<(u32, String)> {
        self.stderr
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("SYSLOG(")? + 7..];
                let (prio, text) = rest.split_once("): ")?;
                Some((prio.parse().ok()?, text.to_owned()))
            })
            .collect()
    }

    /// The log lines' texts joined, for `contains` checks.
    pub fn log_text(&self) -> String {
        self.log()
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (exit {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.result, self.exit, self.stdout, self.stderr
        )
    }
}

/// A pamtester run under pam_wrapper, built up then [`run`](Pamtester::run).
#[derive(Debug)]
pub struct Pamtester<'a> {
    services: &'a Services,
    service: String,
    user: String,
    operation: String,
    answers: Vec<String>,
    at: Option<FakeTime>,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
    extra: Vec<String>,
    items: Vec<String>,
}

impl<'a> Pamtester<'a> {
    /// `pamtester <service> <user> authenticate` with the services in `services`.
    pub fn new(services: &'a Services, service: &str, user: &str) -> Self {
        Pamtester {
            services,
            service: service.to_owned(),
            user: user.to_owned(),
            operation: "authenticate".to_owned(),
            answers: Vec::new(),
            at: None,
            env: Vec::new(),
            wrapper: Vec::new(),
            extra: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Runs pamtester under another command, e.g. `["prlimit", "--fsize=900"]`
    /// or `["strace", "--inject=…"]`: the command line becomes
    /// `wrapper… pamtester …`.
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// A PAM item set by pamtester before the operation (`-I rhost=HOST`).
    pub fn item(mut self, item: &str) -> Self {
        self.items.push(item.to_owned());
        self
    }

    /// Answers to the prompts, one line each, in order.
    pub fn answers(mut self, answers: &[&str]) -> Self {
        self.answers = answers.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Another pamtester operation, e.g. `authenticate(PAM_SILENT)`,
    /// `setcred`, `acct_mgmt`, `open_session`, `chauthtok`.
    pub fn operation(mut self, op: &str) -> Self {
        self.operation = op.to_owned();
        self
    }

    /// Runs at a frozen fake instant (libfaketime).
    pub fn at(mut self, t: FakeTime) -> Self {
        self.at = Some(t);
        self
    }

    /// A further operation on the same PAM handle, run after the first
    /// (pamtester runs its operations in order on one handle).
    pub fn extra_operation(mut self, op: &str) -> Self {
        self.extra.push(op.to_owned());
        self
    }

    /// An extra environment variable for the pamtester process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs pamtester (holding the [`WrapperLock`]) and waits for it.
    pub fn run(self) -> Result<Run> {
        let mut preload = PAM_WRAPPER.to_owned();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("pamtester");
                c
            }
            None => Command::new("pamtester"),
        };
        for item in &self.items {
            cmd.args(["-I", item]);
        }
        cmd.args([&self.service, &self.user, &self.operation])
            .args(&self.extra)
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", self.services.dir())
            .env("PAM_WRAPPER_DEBUGLEVEL", "3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = &self.at {
            preload.push(':');
            preload.push_str(LIBFAKETIME);
            cmd.env("FAKETIME", t.faketime_value())
                .env("TZ", "UTC")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        cmd.env("LD_PRELOAD", preload);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let _lock = pam_wrapper_lock()?;
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting pamtester: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            let mut input = String::new();
            for a in &self.answers {
                input.push_str(a);
                input.push('\n');
            }
            // pamtester may exit before reading everything; that is fine.
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for pamtester: {e}"))?;
        Ok(Run::from_output(&out))
    }
}

/// The outcome of [`pypamtest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthtokRun {
    /// The raw PAM code `pam_authenticate` returned.
    pub code: i32,
    /// `PAM_AUTHTOK` after the stack ran (`None`: not set).
    pub authtok: Option<String>,
    /// `PAM_ERROR_MSG` texts shown.
    pub errors: Vec<String>,
}

/// Runs `service` for `user` with pypamtest under pam_wrapper, answering
/// echo-off prompts with `echo_off` and echo-on prompts with `echo_on` (a
/// prompt of a kind with no answers left fails the conversation), then
/// reads `PAM_AUTHTOK` back: for that the service must end with
/// [`PAM_GET_ITEMS`], which copies items into the PAM environment. Answers
/// travel on stdin, environment variables `env` are added.
pub fn pypamtest(
    services: &Services,
    service: &str,
    user: &str,
    echo_off: &[&str],
    echo_on: &[&str],
    env: &[(&str, &str)],
) -> Result<AuthtokRun> {
    const SCRIPT: &str = r#"
import json, re, sys, pypamtest
req = json.load(sys.stdin)
auth = pypamtest.TestCase(pypamtest.PAMTEST_AUTHENTICATE)
envlist = pypamtest.TestCase(pypamtest.PAMTEST_GETENVLIST)
try:
    res = pypamtest.run_pamtest(req["user"], req["service"], [auth, envlist], req["echo_off"], req["echo_on"])
    print(json.dumps({"code": 0, "env": envlist.pam_env, "errors": list(res.errors)}))
except pypamtest.PamTestError as e:
    m = re.search(r"returned \[(\d+)\]", str(e))
    print(json.dumps({"code": int(m.group(1)) if m else -1, "env": {}, "errors": [str(e)]}))
"#;
    let request = serde_json::json!({
        "user": user, "service": service, "echo_off": echo_off, "echo_on": echo_on
    });
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", SCRIPT])
        .env("LD_PRELOAD", PAM_WRAPPER)
        .env("PAM_WRAPPER", "1")
        .env("PAM_WRAPPER_SERVICE_DIR", services.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let _lock = pam_wrapper_lock()?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting pypamtest: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| format!("writing to pypamtest: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for pypamtest: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "pypamtest output {text:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(AuthtokRun {
        code: v["code"].as_i64().map_or(-1, |c| c as i32),
        authtok: v["env"]["PAM_AUTHTOK"].as_str().map(str::to_owned),
        errors: v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------
// Device files
// ---------------------------------------------------------------------------

pub use crate::kit::{code_at, code_now, device, wrong_code};

/// A fresh random key, as hex, of `n` bytes ([`crate::kit::random_hex`]).
pub fn random_key_hex(n: usize) -> Result<String> {
    crate::kit::random_hex(n)
}

/// A central-mode directory (root-owned, 0700) of device files
/// `<dir>/<user>.toml`, removed when dropped.
#[derive(Debug)]
pub struct DeviceDir {
    dir: TempDir,
}

impl DeviceDir {
    /// A new, empty directory.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pam-totp-devices.")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod: {e}"))?;
        Ok(DeviceDir { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An empty settings file in this directory (root-owned, 0644: the
    /// defaults), for `config=` so that the machine's own settings do not
    /// leak into a test. Created on first use.
    pub fn settings(&self) -> Result<PathBuf> {
        let path = self.dir.path().join("settings.toml");
        if !path.exists() {
            fs::write(&path, "# defaults\n").map_err(|e| format!("{}: {e}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .map_err(|e| format!("chmod: {e}"))?;
        }
        Ok(path)
    }

    /// The module argument that points at this directory: `path=<dir>/%u.toml`.
    pub fn path_arg(&self) -> String {
        format!("path={}/%u.toml", self.dir.path().display())
    }

    /// The device file of `user`.
    pub fn file(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.toml"))
    }

    /// Writes `user`'s device file (mode 0600) with `devices`.
    pub fn write(&self, user: &str, devices: &[Device]) -> Result<()> {
        let file = DeviceFile {
            backup: None,
            devices: devices.to_vec(),
        };
        self.write_text(user, &file.to_toml(user), 0o600)
    }

    /// Writes `user`'s device file (mode 0600) with `file` (devices and
    /// backup codes).
    pub fn write_file(&self, user: &str, file: &DeviceFile) -> Result<()> {
        self.write_text(user, &file.to_toml(user), 0o600)
    }

    /// Writes `user`'s device file with arbitrary text and mode.
    pub fn write_text(&self, user: &str, text: &str, mode: u32) -> Result<()> {
        let path = self.file(user);
        fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))
    }

    /// The raw text of `user`'s device file.
    pub fn text(&self, user: &str) -> Result<String> {
        let path = self.file(user);
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    }

    /// `user`'s device file, parsed with `shared`.
    pub fn read(&self, user: &str) -> Result<DeviceFile> {
        let path = self.file(user);
        DeviceFile::parse(&self.text(user)?, &path).map_err(|e| e.to_string())
    }
}
