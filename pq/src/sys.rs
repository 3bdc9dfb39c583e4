//! libpq's C interface, declared by hand from `libpq-fe.h` (PostgreSQL 15):
//! only the functions and constants this crate calls. Nothing here calls
//! anything; every call, with its `SAFETY` reason, is in `lib.rs`.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void};

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

// PGTransactionStatusType
pub const PQTRANS_IDLE: c_int = 0;

/// `PG_DIAG_SQLSTATE`.
pub const PG_DIAG_SQLSTATE: c_int = b'C' as c_int;
/// `PG_DIAG_SEVERITY`.
pub const PG_DIAG_SEVERITY: c_int = b'S' as c_int;
/// `PG_DIAG_MESSAGE_PRIMARY`.
pub const PG_DIAG_MESSAGE_PRIMARY: c_int = b'M' as c_int;

#[link(name = "pq")]
extern "C" {
    pub fn PQconnectStartParams(
        keywords: *const *const c_char,
        values: *const *const c_char,
        expand_dbname: c_int,
    ) -> *mut PGconn;
    pub fn PQconnectPoll(conn: *mut PGconn) -> c_int;
    pub fn PQstatus(conn: *const PGconn) -> c_int;
    pub fn PQtransactionStatus(conn: *const PGconn) -> c_int;
    pub fn PQsocket(conn: *const PGconn) -> c_int;
    pub fn PQerrorMessage(conn: *const PGconn) -> *const c_char;
    pub fn PQfinish(conn: *mut PGconn);
    pub fn PQsetnonblocking(conn: *mut PGconn, arg: c_int) -> c_int;
    pub fn PQflush(conn: *mut PGconn) -> c_int;
    pub fn PQsetNoticeProcessor(
        conn: *mut PGconn,
        proc_: Option<NoticeProcessor>,
        arg: *mut c_void,
    ) -> Option<NoticeProcessor>;
    pub fn PQsendQuery(conn: *mut PGconn, command: *const c_char) -> c_int;
    pub fn PQsendQueryParams(
        conn: *mut PGconn,
        command: *const c_char,
        n_params: c_int,
        param_types: *const Oid,
        param_values: *const *const c_char,
        param_lengths: *const c_int,
        param_formats: *const c_int,
        result_format: c_int,
    ) -> c_int;
    pub fn PQconsumeInput(conn: *mut PGconn) -> c_int;
    pub fn PQisBusy(conn: *mut PGconn) -> c_int;
    pub fn PQgetResult(conn: *mut PGconn) -> *mut PGresult;
    pub fn PQresultStatus(res: *const PGresult) -> c_int;
    pub fn PQresultErrorMessage(res: *const PGresult) -> *const c_char;
    pub fn PQresultErrorField(res: *const PGresult, fieldcode: c_int) -> *const c_char;
    pub fn PQntuples(res: *const PGresult) -> c_int;
    pub fn PQnfields(res: *const PGresult) -> c_int;
    pub fn PQgetvalue(res: *const PGresult, row: c_int, col: c_int) -> *const c_char;
    pub fn PQgetlength(res: *const PGresult, row: c_int, col: c_int) -> c_int;
    pub fn PQgetisnull(res: *const PGresult, row: c_int, col: c_int) -> c_int;
    pub fn PQcmdTuples(res: *mut PGresult) -> *const c_char;
    pub fn PQclear(res: *mut PGresult);
}
