//! A thin, safe wrapper over libpq's asynchronous API, for a PAM module.
//!
//! What it does: connect (`PQconnectStartParams` + `PQconnectPoll`) and run
//! statements (`PQsendQuery`, `PQsendQueryParams` with unnamed statements,
//! so PgBouncer's transaction pooling works) while waiting with `poll(2)` on
//! `PQsocket`, against one client-side deadline that covers everything,
//! connecting included. A stalled server (stopped postmaster, stopped
//! backend) cannot hold a login past it: the project measured a blocking
//! `PQexec` waiting more than 8 s with every server-side timeout set.
//!
//! What it does not: start a thread, keep global state, print anything
//! (libpq's notice processor, which writes to stderr, is replaced by one
//! that drops notices), or parse the connection string: it goes to libpq as
//! it is, so several hosts, `target_session_attrs`, `sslmode`, `passfile`
//! and service files work as admins know them. A [`Conn`] is closed
//! (`PQfinish`) when dropped, on every path.
//!
//! The environment of the calling process does not count: under sudo it is
//! the user's, and libpq would take `PGHOSTADDR`, `PGSERVICEFILE`,
//! `PGOPTIONS`, `HOME/.pg_service.conf` and more from it (see `CleanEnv`).
//!
//! One limit libpq imposes: a host *name* is resolved with a blocking
//! `getaddrinfo` inside `PQconnectPoll`; the deadline bounds everything
//! else. Name hosts in `/etc/hosts`, or use `hostaddr`, where that matters.
//!
//! This crate and `pam_totp/src/{sys,ffi}.rs` are the only places of the
//! project with `unsafe` code; each block says why it is sound.

mod sys;

use std::ffi::{c_char, c_int, c_void, CStr, CString, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use zeroize::Zeroizing;

/// What went wrong, coarsely: every kind means "this attempt failed".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be made (refused, authentication, TLS, no
    /// read-write host, bad connection string).
    Connect,
    /// The deadline passed.
    Timeout,
    /// The server reported an error for a statement.
    Server,
    /// The connection broke, or libpq failed otherwise.
    Client,
    /// A caller's value cannot be passed to libpq (an inner NUL byte).
    Usage,
}

/// A failed connection or statement: its kind, the server's SQLSTATE when
/// there is one, and libpq's or the server's message on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What failed.
    pub kind: ErrorKind,
    /// The server's SQLSTATE, for [`ErrorKind::Server`].
    pub sqlstate: Option<String>,
    /// The message, on one line.
    pub message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            sqlstate: None,
            message: one_line(&message.into()),
        }
    }

    fn timeout() -> Error {
        Error::new(ErrorKind::Timeout, "no answer within the deadline")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A libpq or server message without its DETAIL, CONTEXT, HINT, QUERY and
/// LINE parts, which can quote rows and statements (parameters included).
fn primary_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            !["DETAIL:", "CONTEXT:", "HINT:", "QUERY:", "LINE ", "^"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Copies a C string libpq owns; `None` for a null pointer.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that stays valid for
/// the duration of the call.
unsafe fn c_text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, valid for the call (the caller's
    // contract).
    let s = unsafe { CStr::from_ptr(p) };
    Some(s.to_string_lossy().into_owned())
}

/// The result of one statement: its rows (text format) and, for commands,
/// how many rows they touched. Values are wiped when dropped (they can be
/// device keys).
pub struct Rows {
    fields: usize,
    values: Vec<Option<Zeroizing<String>>>,
    affected: u64,
}

impl fmt::Debug for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("rows", &self.len())
            .field("fields", &self.fields)
            .field("affected", &self.affected)
            .finish_non_exhaustive()
    }
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.fields).unwrap_or(0)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of columns.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// The value at `row`, `col`: `None` for SQL NULL or out of range.
    pub fn get(&self, row: usize, col: usize) -> Option<&str> {
        if col >= self.fields {
            return None;
        }
        self.values
            .get(row.checked_mul(self.fields)?.checked_add(col)?)
            .and_then(|v| v.as_deref().map(String::as_str))
    }

    /// Rows touched by an `INSERT`, `UPDATE` or `DELETE` (`PQcmdTuples`).
    pub fn affected(&self) -> u64 {
        self.affected
    }
}

/// A notice processor that drops notices: libpq's default prints them on
/// stderr, and a PAM module writes nothing there.
unsafe extern "C" fn ignore_notice(_arg: *mut c_void, _message: *const c_char) {}

/// Serialises [`CleanEnv`] between threads of one process (the tests;
/// sshd and sudo call the module from one thread).
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The process environment without what the calling user could have put
/// there for libpq, for the duration of a connect; restored when dropped.
///
/// libpq fills every parameter the connection string leaves out from a
/// `PG*` variable (`PGHOSTADDR` even redirects a named host,
/// `PGSERVICEFILE` brings whole definitions) and finds `.pgpass`,
/// `.pg_service.conf` and `~/.postgresql/root.crt` under `$HOME`. Under
/// sudo or su the module runs in a setuid process whose environment is the
/// user's: only the admin's connection string and the effective user's
/// own files may count. So every `PG*` variable is hidden, and `HOME` too
/// when it is not the effective user's home (libpq then asks the password
/// database). When there is nothing to hide, nothing is touched.
struct CleanEnv {
    saved: Vec<(OsString, OsString)>,
    _lock: Option<MutexGuard<'static, ()>>,
}

impl CleanEnv {
    fn new() -> CleanEnv {
        let lock = ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hide: Vec<OsString> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.as_bytes().starts_with(b"PG"))
            .collect();
        if let Some(home) = std::env::var_os("HOME") {
            let own = posix::unistd::User::from_uid(posix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir.into_os_string());
            if own.as_ref() != Some(&home) {
                hide.push(OsString::from("HOME"));
            }
        }
        if hide.is_empty() {
            return CleanEnv {
                saved: Vec::new(),
                _lock: None,
            };
        }
        let mut saved = Vec::with_capacity(hide.len());
        for k in hide {
            if let Some(v) = std::env::var_os(&k) {
                std::env::remove_var(&k);
                saved.push((k, v));
            }
        }
        CleanEnv {
            saved,
            _lock: Some(lock),
        }
    }
}

impl Drop for CleanEnv {
    fn drop(&mut self) {
        for (k, v) in self.saved.drain(..) {
            std::env::set_var(k, v);
        }
    }
}

/// One connection to PostgreSQL. Closed when dropped.
pub struct Conn {
    raw: NonNull<sys::PGconn>,
    /// A statement was abandoned half-way (deadline, broken socket): the
    /// protocol state is unknown, so the connection takes no more work.
    broken: bool,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: `raw` came from PQconnectStartParams, is non-null, and is
        // finished exactly once, here. The socket is non-blocking once
        // connected, so the Terminate message cannot block on a stalled
        // server; before that libpq has nothing to send.
        unsafe { sys::PQfinish(self.raw.as_ptr()) }
    }
}

/// Waits until `fd` is ready for `events` or the deadline passes.
/// Readiness includes errors and hang-ups: libpq finds out what they mean.
fn wait(fd: c_int, events: i16, deadline: Instant) -> Result<()> {
    if fd < 0 {
        return Err(Error::new(
            ErrorKind::Client,
            "the connection has no socket",
        ));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::timeout());
        }
        // Round up so that a wait never ends just before the deadline.
        let ms = c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX);
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1; poll does not keep the pointer.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::new(ErrorKind::Client, format!("poll: {e}")));
            }
        }
    }
}

impl Conn {
    /// Connects with `conninfo` (a libpq connection string or URI, passed
    /// as it is) before `deadline`. Adds `client_encoding=UTF8` and a
    /// fallback `application_name` of `pam_totp`.
    pub fn connect(conninfo: &str, deadline: Instant) -> Result<Conn> {
        // libpq itself is loaded on the first connection (see `sys`).
        sys::load().map_err(|e| Error::new(ErrorKind::Client, e))?;
        // libpq reads the environment when it starts and while it polls
        // (TLS files under $HOME): hidden for the whole connect.
        let _env = CleanEnv::new();
        let conninfo = CString::new(conninfo).map_err(|_| {
            Error::new(
                ErrorKind::Usage,
                "the connection string contains a NUL byte",
            )
        })?;
        let keywords: [*const c_char; 4] = [
            c"dbname".as_ptr(),
            c"client_encoding".as_ptr(),
            c"fallback_application_name".as_ptr(),
            ptr::null(),
        ];
        let values: [*const c_char; 4] = [
            conninfo.as_ptr(),
            c"UTF8".as_ptr(),
            c"pam_totp".as_ptr(),
            ptr::null(),
        ];
        // SAFETY: both arrays are NULL-terminated and hold NUL-terminated
        // strings that outlive the call (libpq copies them).
        let raw = unsafe { sys::PQconnectStartParams(keywords.as_ptr(), values.as_ptr(), 1) };
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::Client, "libpq is out of memory"))?;
        let conn = Conn { raw, broken: false };
        // SAFETY: a live connection; the processor is a plain function that
        // ignores its arguments, so the null `arg` is never read.
        unsafe {
            sys::PQsetNoticeProcessor(conn.raw.as_ptr(), Some(ignore_notice), ptr::null_mut())
        };
        if conn.status() == sys::CONNECTION_BAD {
            return Err(conn.error(ErrorKind::Connect));
        }
        // libpq's protocol: behave as if PQconnectPoll had said "writing".
        let mut state = sys::PGRES_POLLING_WRITING;
        loop {
            match state {
                sys::PGRES_POLLING_OK => break,
                sys::PGRES_POLLING_READING => wait(conn.socket(), libc::POLLIN, deadline)?,
                sys::PGRES_POLLING_WRITING => wait(conn.socket(), libc::POLLOUT, deadline)?,
                _ => return Err(conn.error(ErrorKind::Connect)),
            }
            // SAFETY: a live connection in the connecting state.
            state = unsafe { sys::PQconnectPoll(conn.raw.as_ptr()) };
        }
        // SAFETY: a live, connected connection.
        if unsafe { sys::PQsetnonblocking(conn.raw.as_ptr(), 1) } != 0 {
            return Err(conn.error(ErrorKind::Client));
        }
        Ok(conn)
    }

    fn status(&self) -> c_int {
        // SAFETY: a live connection.
        unsafe { sys::PQstatus(self.raw.as_ptr()) }
    }

    fn socket(&self) -> c_int {
        // SAFETY: a live connection.
        unsafe { sys::PQsocket(self.raw.as_ptr()) }
    }

    /// libpq's last error message for this connection.
    fn error(&self, kind: ErrorKind) -> Error {
        // SAFETY: a live connection; the message is owned by it and copied
        // before any other call.
        let msg = unsafe { c_text(sys::PQerrorMessage(self.raw.as_ptr())) };
        Error::new(kind, primary_lines(&msg.unwrap_or_default()))
    }

    /// Runs `sql` with the simple query protocol: no parameters, any number
    /// of statements (one round trip). For fixed text only, such as
    /// `BEGIN; SET LOCAL ...` with values this program computed. Returns
    /// the result of each statement.
    pub fn execute(&mut self, sql: &str, deadline: Instant) -> Result<Vec<Rows>> {
        let sql = CString::new(sql)
            .map_err(|_| Error::new(ErrorKind::Usage, "a statement contains a NUL byte"))?;
        self.ready()?;
        // SAFETY: a live connection and a NUL-terminated statement that
        // libpq copies into its output buffer before returning.
        let sent = unsafe { sys::PQsendQuery(self.raw.as_ptr(), sql.as_ptr()) };
        self.finish(sent, deadline)
    }

    /// Runs one statement with parameters (extended protocol, unnamed
    /// statement, text format; `None` is SQL NULL) in one round trip.
    pub fn query(&mut self, sql: &str, params: &[Option<&str>], deadline: Instant) -> Result<Rows> {
        let sql = CString::new(sql)
            .map_err(|_| Error::new(ErrorKind::Usage, "a statement contains a NUL byte"))?;
        let owned: Vec<Option<Zeroizing<Vec<u8>>>> = params
            .iter()
            .map(|p| {
                p.map(|s| {
                    CString::new(s)
                        .map(|c| Zeroizing::new(c.into_bytes_with_nul()))
                        .map_err(|_| {
                            Error::new(ErrorKind::Usage, "a parameter contains a NUL byte")
                        })
                })
                .transpose()
            })
            .collect::<Result<_>>()?;
        let pointers: Vec<*const c_char> = owned
            .iter()
            .map(|p| p.as_ref().map_or(ptr::null(), |b| b.as_ptr().cast()))
            .collect();
        let n = c_int::try_from(pointers.len())
            .map_err(|_| Error::new(ErrorKind::Usage, "too many parameters"))?;
        self.ready()?;
        // SAFETY: a live connection; `sql` and every non-null parameter are
        // NUL-terminated and outlive the call (libpq copies them into its
        // output buffer); `pointers` has `n` entries; null types, lengths
        // and formats mean "infer, text, text".
        let sent = unsafe {
            sys::PQsendQueryParams(
                self.raw.as_ptr(),
                sql.as_ptr(),
                n,
                ptr::null(),
                pointers.as_ptr(),
                ptr::null(),
                ptr::null(),
                0,
            )
        };
        let mut results = self.finish(sent, deadline)?;
        results
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::Client, "no result for a statement"))
    }

    fn ready(&self) -> Result<()> {
        if self.broken || self.status() != sys::CONNECTION_OK {
            return Err(Error::new(
                ErrorKind::Client,
                "the connection is no longer usable",
            ));
        }
        Ok(())
    }

    /// After a send: flushes, then collects every result until libpq has
    /// none left, within the deadline. The first error is returned (after
    /// the rest was drained, so the connection stays usable for a
    /// `ROLLBACK`); a deadline or a broken connection marks it broken.
    fn finish(&mut self, sent: c_int, deadline: Instant) -> Result<Vec<Rows>> {
        if sent != 1 {
            self.broken = true;
            return Err(self.error(ErrorKind::Client));
        }
        let out = self.flush_and_collect(deadline);
        if matches!(&out, Err(e) if e.kind != ErrorKind::Server) {
            self.broken = true;
        }
        out
    }

    fn flush_and_collect(&mut self, deadline: Instant) -> Result<Vec<Rows>> {
        loop {
            // SAFETY: a live connection.
            match unsafe { sys::PQflush(self.raw.as_ptr()) } {
                0 => break,
                1 => {
                    wait(self.socket(), libc::POLLIN | libc::POLLOUT, deadline)?;
                    self.consume()?;
                }
                _ => return Err(self.error(ErrorKind::Client)),
            }
        }
        let mut results = Vec::new();
        let mut first_error = None;
        loop {
            // SAFETY: a live connection.
            while unsafe { sys::PQisBusy(self.raw.as_ptr()) } == 1 {
                wait(self.socket(), libc::POLLIN, deadline)?;
                self.consume()?;
            }
            // SAFETY: a live connection that is not busy: this does not block.
            let res = unsafe { sys::PQgetResult(self.raw.as_ptr()) };
            let Some(res) = NonNull::new(res) else { break };
            let res = Result_(res);
            match res.rows() {
                Ok(rows) => results.push(rows),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    fn consume(&self) -> Result<()> {
        // SAFETY: a live connection.
        if unsafe { sys::PQconsumeInput(self.raw.as_ptr()) } != 1 {
            return Err(self.error(ErrorKind::Client));
        }
        Ok(())
    }
}

/// A `PGresult`, cleared when dropped.
struct Result_(NonNull<sys::PGresult>);

impl Drop for Result_ {
    fn drop(&mut self) {
        // SAFETY: a result from PQgetResult, cleared exactly once, here.
        unsafe { sys::PQclear(self.0.as_ptr()) }
    }
}

impl Result_ {
    fn ptr(&self) -> *const sys::PGresult {
        self.0.as_ptr()
    }

    /// Copies the rows out, or the server's error.
    fn rows(&self) -> Result<Rows> {
        // SAFETY: a live result.
        let status = unsafe { sys::PQresultStatus(self.ptr()) };
        match status {
            sys::PGRES_TUPLES_OK | sys::PGRES_COMMAND_OK | sys::PGRES_EMPTY_QUERY => {}
            _ => {
                // Only the severity and the primary message: the DETAIL and
                // CONTEXT lines can quote a row ("Failing row contains
                // (...)"), parameters included, and this message ends up in
                // logs. SAFETY: a live result; the strings are owned by it
                // and copied at once.
                let (severity, primary, code) = unsafe {
                    (
                        c_text(sys::PQresultErrorField(self.ptr(), sys::PG_DIAG_SEVERITY)),
                        c_text(sys::PQresultErrorField(
                            self.ptr(),
                            sys::PG_DIAG_MESSAGE_PRIMARY,
                        )),
                        c_text(sys::PQresultErrorField(self.ptr(), sys::PG_DIAG_SQLSTATE)),
                    )
                };
                let msg = match (severity, primary) {
                    (Some(s), Some(m)) => format!("{s}: {m}"),
                    (None, Some(m)) => m,
                    // No fields: an error libpq made itself (connection
                    // lost).
                    _ => {
                        // SAFETY: a live result; the message is owned by it
                        // and copied at once.
                        let text = unsafe { c_text(sys::PQresultErrorMessage(self.ptr())) };
                        primary_lines(&text.unwrap_or_default())
                    }
                };
                let mut e = Error::new(ErrorKind::Server, msg);
                e.sqlstate = code;
                return Err(e);
            }
        }
        // SAFETY: a live result.
        let (n, fields) = unsafe { (sys::PQntuples(self.ptr()), sys::PQnfields(self.ptr())) };
        let (n, fields) = (n.max(0), fields.max(0));
        let mut values = Vec::with_capacity(usize::try_from(n * fields).unwrap_or(0));
        for row in 0..n {
            for col in 0..fields {
                values.push(self.value(row, col)?);
            }
        }
        // SAFETY: a live result; PQcmdTuples returns a string the result
        // owns ("" when not applicable), copied at once. It takes a mutable
        // pointer for historical reasons and does not write.
        let affected = unsafe { c_text(sys::PQcmdTuples(self.0.as_ptr())) }
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Rows {
            fields: usize::try_from(fields).unwrap_or(0),
            values,
            affected,
        })
    }

    fn value(&self, row: c_int, col: c_int) -> Result<Option<Zeroizing<String>>> {
        // SAFETY: a live result; row and column are in range (the caller
        // loops over PQntuples x PQnfields).
        if unsafe { sys::PQgetisnull(self.ptr(), row, col) } == 1 {
            return Ok(None);
        }
        // SAFETY: as above; the value is PQgetlength bytes (text format,
        // NUL-terminated) owned by the result, copied before it is cleared.
        let bytes = unsafe {
            let p = sys::PQgetvalue(self.ptr(), row, col);
            let len = usize::try_from(sys::PQgetlength(self.ptr(), row, col)).unwrap_or(0);
            if p.is_null() {
                return Ok(None);
            }
            Zeroizing::new(std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec())
        };
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(Some(Zeroizing::new(s.to_owned()))),
            Err(_) => Err(Error::new(
                ErrorKind::Client,
                "the server sent a value that is not UTF-8",
            )),
        }
    }
}
