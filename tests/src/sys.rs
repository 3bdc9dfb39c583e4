//! System fixtures for the real-client tests (`tests/ssh.rs`, `tests/sudo.rs`):
//! test users, a private `sshd`, PAM service files, sudoers rules, and the
//! clients that log in through them.
//!
//! Everything that changes the machine is a guard whose `Drop` undoes it, so
//! `/etc` is left as found on every exit path, a failing assertion included:
//!
//! * [`TestUser`] (the kit's account fixture): `useradd -m` … `userdel -r`;
//! * [`PamService`]: `/etc/pam.d/<name>`, removed on drop;
//! * [`SudoersRule`]: `/etc/sudoers.d/<name>`, checked with `visudo -c`
//!   before it is installed, removed on drop;
//! * [`Sshd`]: an `sshd` on 127.0.0.1 with its own config, host key and PAM
//!   service in a temporary directory, killed (by its pid) on drop.
//!
//! The machine's own `/etc/pam.d/sshd`, `/etc/pam.d/sudo` and
//! `/etc/ssh/sshd_config` are never touched: `sshd` names its PAM service after
//! its program name, so it runs through a link named `sshd-totp-test-<case>`,
//! and sudo is pointed at its own service with `Defaults:<user> pam_service=`.
//!
//! The PAM stacks and `sshd_config` lines come from `packaging/examples/`,
//! the same files the README's "Protect SSH" and "Protect sudo" sections show.
//!
//! These tests need root: see [`crate::kit`] for how they are reported as
//! ignored when the tests are built without it.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Result type of the fixtures: they fail with a message that says what broke.
pub type Result<T> = std::result::Result<T, String>;

/// The interpreter that has `pexpect` (Debian's `python3-pexpect`); not
/// whatever `python3` comes first in `PATH`.
const PYTHON: &str = "/usr/bin/python3";

use crate::kit::write_file;
pub use crate::kit::{random_hex, run, TestUser};
pub use crate::pam::workspace_root;

/// Absolute path of the module under test: the build [`crate::pam::module`]
/// makes once per process (or `PAM_TOTP_MODULE`, e.g. a packaged module).
pub fn module_path() -> Result<PathBuf> {
    crate::pam::module()
}

// ---------------------------------------------------------------------------
// Configuration shared with the README: packaging/examples/
// ---------------------------------------------------------------------------

/// The text of `packaging/examples/<name>`.
pub fn example(name: &str) -> Result<String> {
    let path = workspace_root().join("packaging/examples").join(name);
    fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// A PAM stack from an example file, for a test: every `pam_totp.so` becomes
/// the absolute path of the module under test (libpam looks a bare name up
/// in the system directory), and `extra_args` are appended to those lines
/// (test-specific bits such as `nullok` or `throttle_factor=`).
pub fn pam_stack(example_text: &str, module: &Path, extra_args: &[&str]) -> Result<String> {
    let module = module.to_str().ok_or("module path is not UTF-8")?;
    let mut out = String::new();
    let mut found = false;
    for line in example_text.lines() {
        let is_directive = !line.trim_start().starts_with('#');
        if is_directive && line.split_whitespace().any(|w| w == "pam_totp.so") {
            found = true;
            let mut words: Vec<&str> = line.split_whitespace().collect();
            for w in &mut words {
                if *w == "pam_totp.so" {
                    *w = module;
                }
            }
            words.extend_from_slice(extra_args);
            out.push_str(&words.join(" "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if found {
        Ok(out)
    } else {
        Err("the example PAM stack has no pam_totp.so line".into())
    }
}

/// The directive lines of an `sshd_config` example (comments and blanks
/// dropped).
pub fn sshd_config_lines(example_text: &str) -> Vec<String> {
    example_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Compatibility with call sites written before the kit
// ---------------------------------------------------------------------------

/// Older name for a [`crate::kit::random_device`], kept so that tests
/// written before the kit compile; new tests use the kit's
/// `shared::device::Device` directly.
#[derive(Debug, Clone)]
pub struct Device(pub shared::device::Device);

impl Device {
    /// [`crate::kit::random_device`].
    pub fn random(name: &str) -> Result<Self> {
        crate::kit::random_device(name).map(Device)
    }

    /// [`crate::kit::oathtool_code_now`].
    pub fn code_now(&self) -> Result<String> {
        crate::kit::oathtool_code_now(&self.0)
    }

    /// [`crate::kit::wrong_code`].
    pub fn wrong_code(&self) -> Result<String> {
        Ok(crate::kit::wrong_code(&self.0))
    }
}

impl std::borrow::Borrow<shared::device::Device> for Device {
    fn borrow(&self) -> &shared::device::Device {
        &self.0
    }
}

impl TestUser {
    /// Lets `key` log in: `~/.ssh/authorized_keys`, mode 0600.
    pub fn authorize_key(&self, key: &ClientKey) -> Result<()> {
        let dir = self.mkdir_owned(".ssh", 0o700)?;
        self.write_owned(&dir.join("authorized_keys"), &key.public, 0o600)
    }
}

// ---------------------------------------------------------------------------
// /etc guards
// ---------------------------------------------------------------------------

/// `/etc/pam.d/<name>`, removed when dropped.
#[derive(Debug)]
pub struct PamService {
    /// Service name.
    pub name: String,
    path: PathBuf,
}

impl PamService {
    /// Installs `stack` as the PAM service `name` (replacing a leftover of an
    /// interrupted run: every name used here starts with a test prefix).
    pub fn install(name: &str, stack: &str) -> Result<Self> {
        let path = Path::new("/etc/pam.d").join(name);
        let svc = PamService {
            name: name.to_owned(),
            path,
        };
        write_file(&svc.path, stack, 0o644)?;
        Ok(svc)
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}

/// A file in `/etc/sudoers.d`, removed when dropped. It is checked with
/// `visudo -cf` before it is put in place: a broken sudoers file would lock
/// every user out of sudo.
#[derive(Debug)]
pub struct SudoersRule {
    path: PathBuf,
}

impl SudoersRule {
    /// Installs `text` as `/etc/sudoers.d/<name>` (no dot in `name`: sudo
    /// skips such files).
    pub fn install(name: &str, text: &str) -> Result<Self> {
        if name.contains('.') || name.ends_with('~') {
            return Err(format!("sudo ignores /etc/sudoers.d/{name}"));
        }
        let staging = tempfile::Builder::new()
            .prefix("sudoers-")
            .tempfile()
            .map_err(|e| format!("temp file: {e}"))?;
        write_file(staging.path(), text, 0o440)?;
        run(Command::new("visudo").arg("-cqf").arg(staging.path()))?;
        let rule = SudoersRule {
            path: Path::new("/etc/sudoers.d").join(name),
        };
        write_file(&rule.path, text, 0o440)?;
        Ok(rule)
    }
}

impl Drop for SudoersRule {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            eprintln!("cleanup: removing {}: {e}", self.path.display());
        }
    }
}

// ---------------------------------------------------------------------------
// ssh keys and sshd
// ---------------------------------------------------------------------------

fn keygen(path: &Path) -> Result<String> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "pam-totp-e2e", "-f"])
        .arg(path))?;
    let pubpath = path.with_extension("pub");
    fs::read_to_string(&pubpath).map_err(|e| format!("reading {}: {e}", pubpath.display()))
}

/// A client key pair in a temporary directory.
#[derive(Debug)]
pub struct ClientKey {
    _dir: TempDir,
    /// Private key file.
    pub private: PathBuf,
    /// The `authorized_keys` line.
    pub public: String,
}

impl ClientKey {
    /// A new ed25519 key without a passphrase.
    pub fn generate() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pam-totp-e2e-key-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let private = dir.path().join("id_ed25519");
        let public = keygen(&private)?;
        Ok(ClientKey {
            _dir: dir,
            private,
            public,
        })
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// A private `sshd` on 127.0.0.1 for one test. It runs as
/// `<tmp>/sshd-totp-test-<case>`, a link to `/usr/sbin/sshd`, so its PAM
/// service is `/etc/pam.d/sshd-totp-test-<case>` (installed and removed
/// with it). Killed by pid when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    dir: TempDir,
    known_hosts: PathBuf,
    _service: PamService,
}

impl Sshd {
    /// Starts sshd with `config_lines` (the example's lines first: sshd keeps
    /// the first value it reads for a keyword) and the PAM stack `pam_stack`,
    /// allowing only `user` in.
    pub fn start(
        case: &str,
        pam_stack: &str,
        config_lines: &[String],
        user: &TestUser,
    ) -> Result<Self> {
        let service_name = format!("sshd-totp-test-{case}");
        let dir = tempfile::Builder::new()
            .prefix("pam-totp-e2e-sshd-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let service = PamService::install(&service_name, pam_stack)?;
        let hostkey = dir.path().join("ssh_host_ed25519_key");
        let host_pub = keygen(&hostkey)?;
        let program = dir.path().join(&service_name);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &program)
            .map_err(|e| format!("symlink {}: {e}", program.display()))?;
        // Privilege separation directory; Debian's sshd unit creates it.
        fs::create_dir_all("/run/sshd").map_err(|e| format!("mkdir /run/sshd: {e}"))?;

        let known_hosts = dir.path().join("known_hosts");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut config =
                String::from("# pam-totp e2e test; lines from packaging/examples first\n");
            for line in config_lines {
                config.push_str(line);
                config.push('\n');
            }
            let _ = write!(
                config,
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {hostkey}\n\
                 PidFile {pid}\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {user}\n\
                 MaxStartups 100\n\
                 LogLevel VERBOSE\n",
                hostkey = hostkey.display(),
                pid = dir.path().join("sshd.pid").display(),
                user = user.name,
            );
            let config_path = dir.path().join("sshd_config");
            write_file(&config_path, &config, 0o600)?;
            run(Command::new(&program).arg("-t").arg("-f").arg(&config_path))?;
            write_file(
                &known_hosts,
                &format!("[127.0.0.1]:{port} {host_pub}"),
                0o644,
            )?;
            let log_path = dir.path().join("sshd.log");
            let log =
                fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            let mut child = Command::new(&program)
                .args(["-D", "-e", "-f"])
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", program.display()))?;
            match wait_listening(&mut child, port) {
                Ok(()) => {
                    return Ok(Sshd {
                        child,
                        port,
                        dir,
                        known_hosts,
                        _service: service,
                    })
                }
                Err(e) => {
                    // Port taken in the meantime? Try another one.
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    last_err = format!("{e}; sshd log:\n{log}");
                }
            }
        }
        Err(last_err)
    }

    /// What sshd logged so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Logs in as `user` with the real `ssh` client and runs `command`,
    /// answering the keyboard-interactive prompts with `answers`.
    /// With `key`, public-key authentication is offered first.
    pub fn login(
        &self,
        user: &TestUser,
        key: Option<&ClientKey>,
        answers: &[&str],
        command: &str,
    ) -> Result<Session> {
        self.login_prompts(user, key, answers, command, 1)
    }

    /// [`Sshd::login`] with the client's `NumberOfPasswordPrompts` (its
    /// default is 3: how often it restarts keyboard-interactive).
    pub fn login_prompts(
        &self,
        user: &TestUser,
        key: Option<&ClientKey>,
        answers: &[&str],
        command: &str,
        prompts: u32,
    ) -> Result<Session> {
        self.login_methods(user, key, answers, command, prompts, "keyboard-interactive")
    }

    /// [`Sshd::login_prompts`] without a key, offering `methods`
    /// (`PreferredAuthentications`, e.g. "keyboard-interactive,password").
    pub fn login_methods(
        &self,
        user: &TestUser,
        key: Option<&ClientKey>,
        answers: &[&str],
        command: &str,
        prompts: u32,
        methods: &str,
    ) -> Result<Session> {
        let mut argv: Vec<String> = vec![
            "ssh".into(),
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            self.port.to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("NumberOfPasswordPrompts={prompts}"),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ];
        match key {
            Some(key) => {
                argv.extend([
                    "-i".into(),
                    key.private.display().to_string(),
                    "-o".into(),
                    "IdentitiesOnly=yes".into(),
                    "-o".into(),
                    "PreferredAuthentications=publickey,keyboard-interactive".into(),
                ]);
            }
            None => {
                argv.extend([
                    "-o".into(),
                    "PubkeyAuthentication=no".into(),
                    "-o".into(),
                    format!("PreferredAuthentications={methods}"),
                ]);
            }
        }
        argv.push(format!("{}@127.0.0.1", user.name));
        argv.push(command.into());
        converse(&argv, PROMPT_RE, answers)
    }
}

/// Waits until the child accepts connections on `port` (or has exited).
fn wait_listening(child: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "sshd exited with {status} before listening on {port}"
            ));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("sshd not listening on {port} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Our own child, by pid; SIGTERM makes sshd remove its pid file.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// The module's prompts: "Verification code: " and, with `forward_pass`,
/// "Password & verification code: " (docs/design.md §6); sshd shows them after
/// "(user@host) ".
pub const PROMPT_RE: &str = r"(?:[Pp]assword|[Vv]erification code): ";

/// What a client run looked like from the user's side.
#[derive(Debug, Clone)]
pub struct Session {
    /// Exit status of the client (`None` when killed).
    pub exit: Option<i32>,
    /// Everything the user saw on the terminal, answers excluded (prompts
    /// read them with echo off).
    pub transcript: String,
    /// How many prompts were shown.
    pub prompts: usize,
    /// A prompt came after the answers ran out (the client was then stopped).
    pub unanswered_prompt: bool,
}

impl Session {
    /// Exit status 0.
    pub fn succeeded(&self) -> bool {
        self.exit == Some(0)
    }
}

/// The terminal driver: runs argv on a pseudo-terminal with pexpect, answers
/// each prompt matching `prompt` with the next answer, records what was
/// shown. Input (answers) comes on stdin as JSON so no code or password
/// shows up in a process list.
const DRIVER: &str = r#"
import json, sys, pexpect
spec = json.load(sys.stdin)
answers = list(spec["answers"])
child = pexpect.spawn(spec["argv"][0], spec["argv"][1:], encoding="utf-8",
                      codec_errors="replace", timeout=spec["timeout"],
                      dimensions=(24, 200))
seen = []
prompts = 0
unanswered = False
timed_out = False
while True:
    k = child.expect([spec["prompt"], pexpect.EOF, pexpect.TIMEOUT])
    seen.append(child.before if isinstance(child.before, str) else "")
    if k == 0:
        seen.append(child.after)
        prompts += 1
        if answers:
            child.sendline(answers.pop(0))
        else:
            unanswered = True
            seen.append("\n[driver: prompt not answered, client stopped]\n")
            child.close(force=True)
            break
    elif k == 1:
        break
    else:
        timed_out = True
        seen.append("\n[driver: timeout]\n")
        child.close(force=True)
        break
if child.isalive():
    child.expect(pexpect.EOF)
child.close()
code = child.exitstatus if child.exitstatus is not None else -1
sys.stdout.write("%d %d %d %d\n" % (code, prompts, unanswered, timed_out))
sys.stdout.write("".join(seen).replace("\r\n", "\n"))
"#;

/// Runs `argv` on a terminal, answering prompts; see [`DRIVER`].
pub fn converse(argv: &[String], prompt: &str, answers: &[&str]) -> Result<Session> {
    let spec = format!(
        "{{\"argv\": {}, \"prompt\": {}, \"answers\": {}, \"timeout\": 30}}",
        json_array(argv.iter().map(String::as_str)),
        json_str(prompt),
        json_array(answers.iter().copied()),
    );
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(DRIVER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{PYTHON} (python3-pexpect): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(spec.as_bytes())
            .map_err(|e| format!("driver stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("driver: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "terminal driver failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_session(&text).ok_or_else(|| format!("cannot parse the driver's answer: {text}"))
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(json_str).collect();
    format!("[{}]", items.join(", "))
}

/// The driver's answer: a line `exit prompts unanswered timed_out`, then the
/// transcript.
fn parse_session(text: &str) -> Option<Session> {
    let (head, transcript) = text.split_once('\n')?;
    let nums: Vec<i64> = head
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    let [exit, prompts, unanswered, timed_out] = nums.as_slice() else {
        return None;
    };
    let mut transcript = transcript.to_owned();
    if *timed_out != 0 {
        transcript.push_str("[client timed out]\n");
    }
    Some(Session {
        exit: (*exit >= 0).then(|| i32::try_from(*exit).unwrap_or(-1)),
        transcript,
        prompts: usize::try_from(*prompts).unwrap_or(0),
        unanswered_prompt: *unanswered != 0,
    })
}

// ---------------------------------------------------------------------------
// sudo
// ---------------------------------------------------------------------------

/// What `sudo -S` printed and how it ended.
#[derive(Debug, Clone)]
pub struct SudoRun {
    /// Exit status (`None` when killed by a signal).
    pub exit: Option<i32>,
    /// Output of the command.
    pub stdout: String,
    /// sudo's prompts and messages (with `-S` the prompts go to stderr).
    pub stderr: String,
}

impl SudoRun {
    /// Exit status 0.
    pub fn succeeded(&self) -> bool {
        self.exit == Some(0)
    }
}

/// Runs `sudo -S -- command…` as `user` (through `runuser`, as root),
/// feeding `answers` one per line on stdin.
pub fn sudo_as(user: &TestUser, answers: &[&str], command: &[&str]) -> Result<SudoRun> {
    let mut child = Command::new("runuser")
        .args(["-u", &user.name, "--", "sudo", "-S", "--"])
        .args(command)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C")
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("runuser … sudo: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut input = String::new();
        for a in answers {
            input.push_str(a);
            input.push('\n');
        }
        // sudo may exit before reading everything (a refused attempt).
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("sudo: {e}"))?;
    Ok(SudoRun {
        exit: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
