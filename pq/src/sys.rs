//! libpq's C interface, declared by hand from `libpq-fe.h` (PostgreSQL 15):
//! only the functions and constants this crate calls.
//!
//! libpq is loaded at run time (`dlopen("libpq.so.5")`), on the first
//! connection, not linked: `pam_totp.so` is loaded into sshd and sudo for
//! every login, and linking libpq would load it and its own libraries
//! (libssl, libcrypto, Kerberos, LDAP, GnuTLS) into every one of them, file
//! store or not: 2.5 ms of the module's load time per login (measured with
//! `make bench`, "load+unload alone") and a larger attack surface. Once
//! loaded, it stays for the life of the process (never `dlclose`d: its
//! libraries register atexit handlers), and the table of its functions is
//! set once and only read after. Every wrapper below calls through that
//! table; before [`load`] succeeded it returns a failure value and calls
//! nothing.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// `PGconn`: only ever behind a pointer.
#[repr(C)]
pub struct PGconn {
    _private: [u8; 0],
}

/// `PGresult`: only ever behind a pointer.
#[repr(C)]
pub struct PGresult {
    _private: [u8; 0],
}

/// `Oid`.
pub type Oid = u32;

/// `PQnoticeProcessor`.
pub type NoticeProcessor = unsafe extern "C" fn(arg: *mut c_void, message: *const c_char);

// ConnStatusType
pub const CONNECTION_OK: c_int = 0;
pub const CONNECTION_BAD: c_int = 1;

// PostgresPollingStatusType
pub const PGRES_POLLING_FAILED: c_int = 0;
pub const PGRES_POLLING_READING: c_int = 1;
pub const PGRES_POLLING_WRITING: c_int = 2;
pub const PGRES_POLLING_OK: c_int = 3;

// ExecStatusType
pub const PGRES_EMPTY_QUERY: c_int = 0;
pub const PGRES_COMMAND_OK: c_int = 1;
pub const PGRES_TUPLES_OK: c_int = 2;

/// `PG_DIAG_SQLSTATE`.
pub const PG_DIAG_SQLSTATE: c_int = b'C' as c_int;
/// `PG_DIAG_SEVERITY`.
pub const PG_DIAG_SEVERITY: c_int = b'S' as c_int;
/// `PG_DIAG_MESSAGE_PRIMARY`.
pub const PG_DIAG_MESSAGE_PRIMARY: c_int = b'M' as c_int;

/// What `dlopen` is asked for: the soname of libpq 5 (every PostgreSQL
/// since 8.0).
const LIBPQ: &CStr = c"libpq.so.5";

/// The table of libpq's functions, filled once by [`load`].
static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

/// Loads libpq (once per process) and looks up every function this crate
/// calls. An error names what is missing; nothing is called then.
pub fn load() -> Result<(), String> {
    LIB.get_or_init(open)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn lib() -> Option<&'static Lib> {
    LIB.get().and_then(|l| l.as_ref().ok())
}

fn open() -> Result<Lib, String> {
    // SAFETY: a NUL-terminated soname; loading libpq runs its (and its
    // libraries') initialisers, which is what linking it would do too.
    let handle = unsafe { libc::dlopen(LIBPQ.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "cannot load {}: {}",
            LIBPQ.to_string_lossy(),
            dl_error()
        ));
    }
    Lib::resolve(handle)
}

/// `dlerror()`'s message, or a generic one.
fn dl_error() -> String {
    // SAFETY: dlerror takes no arguments; the string it returns is valid
    // until the next dl* call on this thread, and is copied at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: non-null, NUL-terminated (dlerror's contract), read before
    // any other dl* call.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

/// Declares the table, its resolution by name, and one wrapper per
/// function with the same name and signature as libpq's, which returns
/// `$fallback` when libpq is not loaded.
macro_rules! libpq {
    ($( fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $fallback:expr; )*) => {
        #[allow(non_snake_case)]
        struct Lib {
            $( $name: unsafe extern "C" fn($($ty),*) $(-> $ret)?, )*
        }

        impl Lib {
            fn resolve(handle: *mut c_void) -> Result<Lib, String> {
                Ok(Lib {
                    $( $name: {
                        let name = concat!(stringify!($name), "\0");
                        // SAFETY: a handle dlopen returned and a
                        // NUL-terminated symbol name.
                        let sym = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
                        if sym.is_null() {
                            return Err(format!(
                                "{} has no {}: {}",
                                LIBPQ.to_string_lossy(),
                                stringify!($name),
                                dl_error()
                            ));
                        }
                        // SAFETY: the symbol is libpq's function of that
                        // name, whose C signature (libpq-fe.h) is the one
                        // declared here.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) $(-> $ret)?>(sym)
                        }
                    }, )*
                })
            }
        }

        $(
            #[allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]
            pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                match lib() {
                    // SAFETY: the caller upholds libpq's contract for this
                    // function (see each call site in lib.rs).
                    Some(l) => unsafe { (l.$name)($($arg),*) },
                    None => $fallback,
                }
            }
        )*
    };
}

libpq! {
    fn PQconnectStartParams(
        keywords: *const *const c_char,
        values: *const *const c_char,
        expand_dbname: c_int,
    ) -> *mut PGconn = std::ptr::null_mut();
    fn PQconnectPoll(conn: *mut PGconn) -> c_int = PGRES_POLLING_FAILED;
    fn PQstatus(conn: *const PGconn) -> c_int = CONNECTION_BAD;
    fn PQsocket(conn: *const PGconn) -> c_int = -1;
    fn PQerrorMessage(conn: *const PGconn) -> *const c_char = std::ptr::null();
    fn PQfinish(conn: *mut PGconn) = ();
    fn PQsetnonblocking(conn: *mut PGconn, arg: c_int) -> c_int = -1;
    fn PQflush(conn: *mut PGconn) -> c_int = -1;
    fn PQsetNoticeProcessor(
        conn: *mut PGconn,
        proc_: Option<NoticeProcessor>,
        arg: *mut c_void,
    ) -> Option<NoticeProcessor> = None;
    fn PQsendQuery(conn: *mut PGconn, command: *const c_char) -> c_int = 0;
    fn PQsendQueryParams(
        conn: *mut PGconn,
        command: *const c_char,
        n_params: c_int,
        param_types: *const Oid,
        param_values: *const *const c_char,
        param_lengths: *const c_int,
        param_formats: *const c_int,
        result_format: c_int,
    ) -> c_int = 0;
    fn PQconsumeInput(conn: *mut PGconn) -> c_int = 0;
    fn PQisBusy(conn: *mut PGconn) -> c_int = 0;
    fn PQgetResult(conn: *mut PGconn) -> *mut PGresult = std::ptr::null_mut();
    fn PQresultStatus(res: *const PGresult) -> c_int = -1;
    fn PQresultErrorMessage(res: *const PGresult) -> *const c_char = std::ptr::null();
    fn PQresultErrorField(res: *const PGresult, fieldcode: c_int) -> *const c_char = std::ptr::null();
    fn PQntuples(res: *const PGresult) -> c_int = 0;
    fn PQnfields(res: *const PGresult) -> c_int = 0;
    fn PQgetvalue(res: *const PGresult, row: c_int, col: c_int) -> *const c_char = std::ptr::null();
    fn PQgetlength(res: *const PGresult, row: c_int, col: c_int) -> c_int = 0;
    fn PQgetisnull(res: *const PGresult, row: c_int, col: c_int) -> c_int = 1;
    fn PQcmdTuples(res: *mut PGresult) -> *const c_char = std::ptr::null();
    fn PQclear(res: *mut PGresult) = ();
}
