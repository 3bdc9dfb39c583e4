//! The PostgreSQL store (docs/design.md §9): many hosts, one truth.
//!
//! One attempt is one transaction on one connection, made for it and
//! closed after it (sshd runs each login in a fresh child; nothing can
//! survive between logins anyway):
//!
//! 1. `BEGIN; SET LOCAL lock_timeout, statement_timeout,
//!    idle_in_transaction_session_timeout` (the time left), so that a login
//!    killed half-way never keeps a row locked;
//! 2. the user's device rows `FOR UPDATE`, in `id` order, and then the
//!    database's clock (`clock_timestamp()`, read after the locks are held),
//!    in one statement;
//! 3. the change (the same `shared` rules as for files), then one statement
//!    that writes the changed rows (`INSERT`/`DELETE` only for the changes
//!    totp-enroll makes);
//! 4. `COMMIT`. The change's value is returned only once the commit did.
//!
//! At most four round trips, all under one client-side deadline
//! (`deadline_ms`, connecting included), enforced by the `pq` crate with
//! `poll(2)`. Parameterised SQL only, unnamed statements: PgBouncer in
//! transaction pooling works. Every failure is an [`Error::Database`],
//! which the module turns into `PAM_AUTHINFO_UNAVAIL`.
//!
//! All SQL of the store is in this file ([`Sql`]), so that a later step can
//! swap the attempt for one call of a database function.
//!
//! Backup codes: layout `pam-totp`, one row of `pam_totp_backup` per user,
//! hashed exactly as in a device file; layout `django-otp`, the user's
//! first confirmed `otp_static_staticdevice` and its tokens in clear
//! ([`CodeFormat::Plain`]). Either is read `FOR UPDATE` after the device
//! rows in the same statement, and written with the changed devices in one
//! statement (a used token's row deleted); a login stays at four round
//! trips.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

use pq::{Conn, ErrorKind};
use zeroize::Zeroizing;

use crate::backup::{self, BackupCodes, CodeFormat, HashParams};
use crate::config::{Layout, PgSettings};
use crate::device::{validate_key, validate_name, Device, DeviceFile};
use crate::error::{Error, Result};
use crate::limits;
use crate::oath::Algorithm;
use crate::secret::Secret;
use crate::store::{Change, Snapshot};
use crate::time::Timestamp;

/// The pam-totp layout's schema, run by `totp-enroll db init` (and shipped
/// for DBAs as a file).
pub const PAM_TOTP_SQL: &str = include_str!("pam-totp.sql");

/// How long `db init` may take.
const INIT_DEADLINE: Duration = Duration::from_secs(30);

/// The columns read, in this order, for either layout: a device's 15,
/// the clock, the backup set's codes.
const COLUMNS: usize = 17;
/// The clock's column (only in the last row).
const CLOCK: usize = 15;
/// The backup set's codes (only in its row; never NULL there).
const CODES: usize = 16;

/// The statements of one layout.
#[derive(Clone, Debug)]
struct Sql {
    /// `$1` = user name: the device rows, then a row with only the clock.
    read: String,
    /// The same, locking the device rows.
    lock: String,
    /// `$1..$15`: arrays of the new values, by id.
    update: String,
    /// `$1` = user name, `$2..$15` arrays of the new devices' values.
    insert: String,
    /// `$1` = array of ids.
    delete: String,
    /// `$1..$15` as `update`, `$16` = user name, `$17..` the backup set:
    /// its rows and the devices' in one statement (one round trip); the
    /// counts of devices, sets and deleted tokens written.
    write_backup: String,
    /// `$1` = user name: the backup set's row removed (`None`: the Django
    /// site owns its static devices).
    delete_backup: Option<String>,
    /// The table, for messages.
    table: &'static str,
}

const MICROS: &str = "1000000";

fn micros(col: &str) -> String {
    format!("(extract(epoch FROM {col}) * {MICROS})::bigint")
}

fn ts(col: &str) -> String {
    format!("(timestamptz 'epoch' + {col} * interval '1 microsecond')")
}

/// `"a"` or `"s"."t"`: the identifiers were checked by the settings parser
/// (letters, digits, `_`), the quotes only keep their case.
fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

impl Sql {
    fn new(layout: &Layout) -> Sql {
        let (from, who, algorithm, table) = match layout {
            Layout::PamTotp => (
                "pam_totp_device d".to_owned(),
                "d.username".to_owned(),
                "d.algorithm",
                "pam_totp_device",
            ),
            Layout::DjangoOtp {
                user_table,
                username_column,
            } => (
                format!(
                    "otp_totp_totpdevice d JOIN {} u ON u.id = d.user_id",
                    quote_ident(user_table)
                ),
                format!("u.{}", quote_ident(username_column)),
                "'SHA1'::text",
                "otp_totp_totpdevice",
            ),
        };
        let cols = format!(
            "d.id, d.name, d.confirmed, d.key, {algorithm}, d.digits, d.step, d.t0, \
             d.tolerance, d.drift, d.last_t, {}, {}, d.throttling_failure_count, {}",
            micros("d.created_at"),
            micros("d.last_used_at"),
            micros("d.throttling_failure_timestamp"),
        );
        let nulls = vec!["NULL"; CLOCK].join(", ");
        // The backup set's row: its id (0: keyed by name), format, confirmed,
        // salt, params in the device columns 0 to 4, its state in 11 to 14,
        // the codes (hex hashes, comma-separated, in order) in the last.
        let typed_nulls = "NULL::smallint, NULL::smallint, NULL::bigint, NULL::smallint, \
             NULL::smallint, NULL::bigint";
        let (backup, backup_lock) = match layout {
            Layout::PamTotp => (
                format!(
                    "SELECT 0, b.format::text, b.confirmed, encode(b.salt, 'hex'), \
                 b.params::text, {typed_nulls}, {}, {}, \
                 b.throttling_failure_count, {}, NULL::bigint, \
                 coalesce((SELECT string_agg(encode(c.h, 'hex'), ',' ORDER BY c.n) \
                 FROM unnest(b.codes) WITH ORDINALITY AS c(h, n)), '') \
                 FROM pam_totp_backup b WHERE b.username = $1 AND b.hash = 'argon2id'",
                    micros("b.created_at"),
                    micros("b.last_used_at"),
                    micros("b.throttling_failure_timestamp"),
                ),
                " FOR UPDATE OF b",
            ),
            // The first confirmed StaticDevice (by id); its tokens (in
            // clear, as Django keeps them) as `id:hex of the token`.
            Layout::DjangoOtp {
                user_table,
                username_column,
            } => (
                format!(
                    "SELECT s.id::bigint, 'plain'::text, s.confirmed, ''::text, ''::text, \
                 {typed_nulls}, {}, {}, s.throttling_failure_count, {}, NULL::bigint, \
                 coalesce((SELECT string_agg(t.id::text || ':' || \
                 encode(convert_to(t.token, 'UTF8'), 'hex'), ',' ORDER BY t.id) \
                 FROM otp_static_statictoken t WHERE t.device_id = s.id), '') \
                 FROM otp_static_staticdevice s JOIN {} u ON u.id = s.user_id \
                 WHERE u.{} = $1 AND s.confirmed ORDER BY s.id LIMIT 1",
                    micros("s.created_at"),
                    micros("s.last_used_at"),
                    micros("s.throttling_failure_timestamp"),
                    quote_ident(user_table),
                    quote_ident(username_column),
                ),
                " FOR UPDATE OF s",
            ),
        };
        // The order of the locks is fixed: device rows (by id), then the
        // backup set's row. The clock row comes last: Append runs its
        // branches in order (a FOR UPDATE query is never parallel), so the
        // clock is read once every lock is held.
        let select = |lock: &str, backup_lock: &str| {
            let backup = format!(" UNION ALL SELECT * FROM ({backup}{backup_lock}) AS backup");
            format!(
                "SELECT * FROM (SELECT {cols}, NULL::bigint, NULL::text FROM {from} \
                 WHERE {who} = $1 ORDER BY d.id{lock}) AS devices{backup} \
                 UNION ALL SELECT {nulls}, {}, NULL",
                micros("clock_timestamp()")
            )
        };
        let with_algorithm = matches!(layout, Layout::PamTotp);
        let set_algorithm = if with_algorithm {
            ", algorithm = v.algorithm"
        } else {
            ""
        };
        let update = format!(
            "UPDATE {table} AS d SET name = v.name, confirmed = v.confirmed, key = v.key, \
             digits = v.digits, step = v.step, t0 = v.t0, tolerance = v.tolerance, \
             drift = v.drift, last_t = v.last_t, created_at = {}, last_used_at = {}, \
             throttling_failure_count = v.count, throttling_failure_timestamp = {}{set_algorithm} \
             FROM unnest($1::bigint[], $2::text[], $3::boolean[], $4::text[], $5::text[], \
             $6::smallint[], $7::integer[], $8::bigint[], $9::smallint[], $10::smallint[], \
             $11::bigint[], $12::bigint[], $13::bigint[], $14::integer[], $15::bigint[]) \
             AS v(id, name, confirmed, key, algorithm, digits, step, t0, tolerance, drift, \
             last_t, created, last_used, count, failed) WHERE d.id = v.id",
            ts("v.created"),
            ts("v.last_used"),
            ts("v.failed"),
        );
        let values = format!(
            "v.name, v.confirmed, v.key, v.digits, v.step, v.t0, v.tolerance, v.drift, \
             v.last_t, {}, {}, v.count, {}",
            ts("v.created"),
            ts("v.last_used"),
            ts("v.failed")
        );
        let unnest = "unnest($2::text[], $3::boolean[], $4::text[], $5::text[], $6::smallint[], \
             $7::integer[], $8::bigint[], $9::smallint[], $10::smallint[], $11::bigint[], \
             $12::bigint[], $13::bigint[], $14::integer[], $15::bigint[]) WITH ORDINALITY \
             AS v(name, confirmed, key, algorithm, digits, step, t0, tolerance, drift, last_t, \
             created, last_used, count, failed, n)";
        let target = "name, confirmed, key, digits, step, t0, tolerance, drift, last_t, \
             created_at, last_used_at, throttling_failure_count, throttling_failure_timestamp";
        let insert = match layout {
            Layout::PamTotp => format!(
                "INSERT INTO pam_totp_device (username, {target}, algorithm) \
                 SELECT $1, {values}, v.algorithm FROM {unnest} ORDER BY v.n"
            ),
            Layout::DjangoOtp {
                user_table,
                username_column,
            } => format!(
                "INSERT INTO otp_totp_totpdevice (user_id, {target}) \
                 SELECT u.id, {values} FROM {} u, {unnest} WHERE u.{} = $1 ORDER BY v.n",
                quote_ident(user_table),
                quote_ident(username_column)
            ),
        };
        let (write_backup, delete_backup) = match layout {
            Layout::PamTotp => (
                format!(
                    "WITH dev AS ({update} RETURNING 1), bk AS (INSERT INTO pam_totp_backup \
                     (username, hash, params, salt, format, codes, confirmed, created_at, \
                     last_used_at, throttling_failure_count, throttling_failure_timestamp) \
                     SELECT $16, 'argon2id', $17, decode($18, 'hex'), $19, \
                     ARRAY(SELECT decode(c.h, 'hex') FROM unnest($20::text[]) \
                     WITH ORDINALITY AS c(h, n) ORDER BY c.n), $21::boolean, {}, {}, \
                     $24::integer, {} \
                     ON CONFLICT (username) DO UPDATE SET hash = EXCLUDED.hash, \
                     params = EXCLUDED.params, salt = EXCLUDED.salt, format = EXCLUDED.format, \
                     codes = EXCLUDED.codes, confirmed = EXCLUDED.confirmed, \
                     created_at = EXCLUDED.created_at, last_used_at = EXCLUDED.last_used_at, \
                     throttling_failure_count = EXCLUDED.throttling_failure_count, \
                     throttling_failure_timestamp = EXCLUDED.throttling_failure_timestamp \
                     RETURNING 1) \
                     SELECT (SELECT count(*) FROM dev), (SELECT count(*) FROM bk), 0",
                    ts("$22::bigint"),
                    ts("$23::bigint"),
                    ts("$25::bigint"),
                ),
                Some("DELETE FROM pam_totp_backup WHERE username = $1".to_owned()),
            ),
            // `$17` the StaticDevice's id, `$18` the ids of the used tokens
            // (deleted, as django-otp does), `$19..$22` its state.
            Layout::DjangoOtp {
                user_table,
                username_column,
            } => (
                format!(
                    "WITH dev AS ({update} RETURNING 1), \
                     tok AS (DELETE FROM otp_static_statictoken \
                     WHERE device_id = $17::bigint AND id = ANY($18::bigint[]) RETURNING 1), \
                     st AS (UPDATE otp_static_staticdevice AS s SET confirmed = $19::boolean, \
                     last_used_at = {}, throttling_failure_count = $21::integer, \
                     throttling_failure_timestamp = {} FROM {} u \
                     WHERE s.id = $17::bigint AND u.id = s.user_id AND u.{} = $16 RETURNING 1) \
                     SELECT (SELECT count(*) FROM dev), (SELECT count(*) FROM st), \
                     (SELECT count(*) FROM tok)",
                    ts("$20::bigint"),
                    ts("$22::bigint"),
                    quote_ident(user_table),
                    quote_ident(username_column),
                ),
                None,
            ),
        };
        Sql {
            read: select("", ""),
            lock: select(" FOR UPDATE OF d", backup_lock),
            update,
            insert,
            delete: format!("DELETE FROM {table} WHERE id = ANY($1::bigint[])"),
            write_backup,
            delete_backup,
            table,
        }
    }
}

/// The PostgreSQL store of one user.
#[derive(Debug)]
pub struct PgStore {
    settings: PgSettings,
    sql: Sql,
    user: String,
    /// A fixed clock instead of the database's (tests); `None`: the
    /// database's `clock_timestamp()`.
    clock: Option<Timestamp>,
    /// Round trips of the last read or update, connecting not counted.
    round_trips: Cell<u32>,
}

/// One row as read: its id and the device.
type Row = (i64, Device);

/// The backup set as read: its row id (django-otp: the StaticDevice's;
/// pam-totp: 0), the set, and (django-otp) each code's token id.
#[derive(Clone, Debug)]
struct BackupRow {
    id: i64,
    set: BackupCodes,
    tokens: Vec<i64>,
}

impl PgStore {
    /// The store of `user` with these settings.
    pub fn new(settings: &PgSettings, user: &str) -> PgStore {
        PgStore {
            sql: Sql::new(&settings.layout),
            settings: settings.clone(),
            user: user.to_owned(),
            clock: None,
            round_trips: Cell::new(0),
        }
    }

    /// The same store with its clock frozen at `now`.
    pub fn at(self, now: Timestamp) -> PgStore {
        PgStore {
            clock: Some(now),
            ..self
        }
    }

    /// The same store with another deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> PgStore {
        self.settings.deadline_ms = u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// Whose devices these are.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The settings.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// Whether totp-enroll may make and remove backup-code sets here: not
    /// with the django-otp layout, whose static tokens the site makes.
    pub fn makes_backup_codes(&self) -> bool {
        matches!(self.settings.layout, Layout::PamTotp)
    }

    /// Round trips to the server in the last [`PgStore::read`] or
    /// [`PgStore::update`] (statements sent; the connection handshake is
    /// not counted).
    pub fn round_trips(&self) -> u32 {
        self.round_trips.get()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(u64::from(self.settings.deadline_ms))
    }

    fn fail(&self, what: &str, e: pq::Error) -> Error {
        let why = match e.kind {
            ErrorKind::Timeout => format!(
                "no answer within deadline_ms = {} ({what})",
                self.settings.deadline_ms
            ),
            _ => format!("{what}: {e}"),
        };
        Error::Database(format!("PostgreSQL store, user {}: {why}", self.user))
    }

    fn connect(&self, deadline: Instant) -> Result<Session<'_>> {
        self.round_trips.set(0);
        let conn = Conn::connect(&self.settings.conninfo, deadline)
            .map_err(|e| self.fail("cannot connect", e))?;
        Ok(Session {
            store: self,
            conn,
            deadline,
        })
    }

    /// See [`super::Store::read`]: the rows without locks, and the
    /// database's clock.
    pub fn read(&self) -> Result<Snapshot> {
        let mut s = self.connect(self.deadline())?;
        s.begin("READ ONLY")?;
        let (rows, backup, now) = s.devices(&self.sql.read)?;
        s.commit()?;
        Ok(Snapshot {
            devices: to_file(
                rows.into_iter().map(|(_, d)| d).collect(),
                backup.map(|b| b.set),
            ),
            now: self.clock.unwrap_or(now),
        })
    }

    /// See [`super::Store::update`]: one transaction, committed before the
    /// change's value is returned.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(Option<&DeviceFile>, Timestamp) -> std::result::Result<Change<T>, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        let mut s = self.connect(self.deadline())?;
        s.begin("READ WRITE")?;
        let (rows, backup, now) = s.devices(&self.sql.lock)?;
        let current = to_file(
            rows.iter().map(|(_, d)| d.clone()).collect(),
            backup.as_ref().map(|b| b.set.clone()),
        );
        let now = self.clock.unwrap_or(now);
        // An error from the change: roll back (best effort; closing the
        // connection would too, but PgBouncer then drops its server
        // connection).
        let decided = match change(current.as_ref(), now) {
            Ok(decided) => decided,
            Err(e) => {
                s.rollback();
                return Err(e);
            }
        };
        match decided {
            Change::Keep(value) => {
                s.commit()?;
                Ok(value)
            }
            Change::Save(next, value) => {
                s.write(&rows, backup.as_ref(), &next)?;
                s.commit()?;
                Ok(value)
            }
        }
    }

    /// Creates or upgrades the pam-totp tables ([`PAM_TOTP_SQL`]) in one
    /// transaction. Refused for the django-otp layout, whose tables
    /// Django's migrations own.
    pub fn init_schema(&self) -> Result<()> {
        if !matches!(self.settings.layout, Layout::PamTotp) {
            return Err(Error::Refused(
                "db init only creates the pam-totp layout's tables; with layout = \
                 \"django-otp\" the tables belong to the Django site (run its migrations)"
                    .into(),
            ));
        }
        let deadline = Instant::now() + INIT_DEADLINE;
        let mut s = self.connect(deadline)?;
        let sql = format!("BEGIN;\n{PAM_TOTP_SQL}\nCOMMIT;");
        s.conn
            .execute(&sql, deadline)
            .map_err(|e| self.fail("cannot create the tables", e))?;
        Ok(())
    }
}

impl fmt::Display for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the PostgreSQL table {}", self.sql.table)
    }
}

/// The devices and the backup set as a [`DeviceFile`]; `None` when there
/// is neither (as a missing device file).
fn to_file(devices: Vec<Device>, backup: Option<BackupCodes>) -> Option<DeviceFile> {
    if devices.is_empty() && backup.is_none() {
        return None;
    }
    Some(DeviceFile { devices, backup })
}

/// One open connection of one attempt.
struct Session<'a> {
    store: &'a PgStore,
    conn: Conn,
    deadline: Instant,
}

impl Session<'_> {
    fn left_ms(&self) -> u128 {
        self.deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1)
    }

    fn count(&self) {
        let rt = &self.store.round_trips;
        rt.set(rt.get().saturating_add(1));
    }

    /// `BEGIN` and the server-side timeouts, one round trip: a lock wait
    /// ends on the server after four fifths of the time left, a statement
    /// after nine tenths (so that its clean error, with the locks released,
    /// comes before the client's deadline); an idle transaction whose
    /// client went away ends at the deadline. The values are numbers computed here: no input
    /// reaches this text.
    fn begin(&mut self, mode: &str) -> Result<()> {
        let idle = self.left_ms();
        let ms = (idle - idle / 10).max(1);
        let lock = (idle - idle / 5).max(1);
        let sql = format!(
            "BEGIN {mode}; SET LOCAL lock_timeout = {lock}; SET LOCAL statement_timeout = {ms}; \
             SET LOCAL idle_in_transaction_session_timeout = {idle}"
        );
        self.count();
        self.conn
            .execute(&sql, self.deadline)
            .map_err(|e| self.store.fail("cannot begin a transaction", e))?;
        Ok(())
    }

    fn rollback(&mut self) {
        self.count();
        let _ = self.conn.execute("ROLLBACK", self.deadline);
    }

    fn commit(&mut self) -> Result<()> {
        self.count();
        self.conn
            .execute("COMMIT", self.deadline)
            .map_err(|e| self.store.fail("cannot commit", e))?;
        Ok(())
    }

    /// The device rows in id order, the backup set and the database's clock.
    fn devices(&mut self, sql: &str) -> Result<(Vec<Row>, Option<BackupRow>, Timestamp)> {
        self.count();
        let user = self.store.user.as_str();
        let rows = self
            .conn
            .query(sql, &[Some(user)], self.deadline)
            .map_err(|e| self.store.fail("cannot read the devices", e))?;
        if rows.fields() != COLUMNS {
            return Err(self.bad(format!("{} columns, not {COLUMNS}", rows.fields())));
        }
        // The clock row must be the last one: only then was it read after
        // every device row was locked.
        let last = rows.len().checked_sub(1);
        let mut devices = Vec::new();
        let mut backup = None;
        let mut now = None;
        for r in 0..rows.len() {
            match (rows.get(r, 0), rows.get(r, CODES)) {
                (None, _) if Some(r) == last => {
                    now = rows.get(r, CLOCK).and_then(|v| v.parse().ok());
                }
                (None, _) => return Err(self.bad("the clock row is not the last".into())),
                (Some(_), Some(codes)) if backup.is_none() => {
                    backup = Some(self.backup_row(&rows, r, codes)?);
                }
                (Some(_), Some(_)) => return Err(self.bad("two backup sets".into())),
                (Some(_), None) => devices.push(self.row(&rows, r)?),
            }
        }
        let now = now.ok_or_else(|| self.bad("no clock row".into()))?;
        if devices.len() > crate::device::MAX_DEVICES {
            return Err(self.bad(format!(
                "{} devices; at most {}",
                devices.len(),
                crate::device::MAX_DEVICES
            )));
        }
        devices.sort_by_key(|(id, _)| *id);
        Ok((devices, backup, Timestamp::from_micros(now)))
    }

    /// The backup set's row → a set, checked with the device file's rules.
    fn backup_row(&self, rows: &pq::Rows, r: usize, codes: &str) -> Result<BackupRow> {
        let bad = |key: &str, problem: &str| {
            Error::Database(format!(
                "PostgreSQL store, user {}: backup codes: column `{key}`: {problem}",
                self.store.user
            ))
        };
        let text = |c: usize, key: &str| rows.get(r, c).ok_or_else(|| bad(key, "is NULL"));
        let time = |c: usize, key: &str| -> Result<Option<Timestamp>> {
            rows.get(r, c)
                .map(|v| {
                    v.parse()
                        .map(Timestamp::from_micros)
                        .map_err(|_| bad(key, "not a timestamp"))
                })
                .transpose()
        };
        let id: i64 = text(0, "id")?
            .parse()
            .map_err(|_| bad("id", "not an integer"))?;
        let django = matches!(self.store.settings.layout, Layout::DjangoOtp { .. });
        let format: CodeFormat = if django {
            CodeFormat::Plain
        } else {
            text(1, "format")?
                .parse()
                .map_err(|p: String| bad("format", &p))?
        };
        let confirmed = match text(2, "confirmed")? {
            "t" => true,
            "f" => false,
            _ => return Err(bad("confirmed", "not a boolean")),
        };
        let (salt, params) = if django {
            (Vec::new(), backup::DEFAULT_PARAMS)
        } else {
            let salt = backup::from_hex(text(3, "salt")?)
                .filter(|s| (8..=64).contains(&s.len()))
                .ok_or_else(|| bad("salt", "must be 8 to 64 bytes"))?;
            let params: HashParams = text(4, "params")?
                .parse()
                .map_err(|p: String| bad("params", &p))?;
            (salt, params)
        };
        let mut hashes = Vec::new();
        let mut tokens = Vec::new();
        for h in codes.split(',').filter(|h| !h.is_empty()) {
            if django {
                // `id:hex`. A token that cannot be a code here (empty, or
                // longer than PLAIN_MAX bytes) is left out: never accepted
                // through PAM, never deleted.
                let (token_id, hex) = h
                    .split_once(':')
                    .ok_or_else(|| bad("token", "unexpected form"))?;
                let token_id: i64 = token_id
                    .parse()
                    .map_err(|_| bad("token", "id not an integer"))?;
                let clear = Zeroizing::new(
                    backup::from_hex(hex).ok_or_else(|| bad("token", "unexpected form"))?,
                );
                if let Some(entry) = backup::plain_entry(&clear) {
                    hashes.push(entry);
                    tokens.push(token_id);
                }
                continue;
            }
            let h: [u8; backup::HASH_LEN] = backup::from_hex(h)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad("codes", "each code is a hash of 32 bytes"))?;
            hashes.push(h);
        }
        if hashes.len() > backup::MAX_CODES {
            return Err(bad("codes", "too many codes"));
        }
        let count: u32 = text(13, "throttling_failure_count")?
            .parse()
            .map_err(|_| bad("throttling_failure_count", "out of range"))?;
        let set = BackupCodes {
            params,
            salt,
            format,
            codes: hashes,
            confirmed,
            created_at: time(11, "created_at")?,
            last_used_at: time(12, "last_used_at")?,
            throttling_failure_count: count,
            throttling_failure_timestamp: time(14, "throttling_failure_timestamp")?,
        };
        Ok(BackupRow { id, set, tokens })
    }

    /// The parameters `$16..` of the statement writing `set` (read as
    /// `read`), and the number of tokens it deletes.
    fn backup_params(
        &self,
        read: Option<&BackupRow>,
        set: &BackupCodes,
    ) -> Result<(Vec<Zeroizing<String>>, usize)> {
        let t = |t: Option<Timestamp>| {
            Zeroizing::new(t.map(|t| t.as_micros().to_string()).unwrap_or_default())
        };
        let user = Zeroizing::new(self.store.user.clone());
        if matches!(self.store.settings.layout, Layout::PamTotp) {
            if set.format == CodeFormat::Plain {
                return Err(self.bad("a set of clear tokens for the pam-totp layout".into()));
            }
            return Ok((
                vec![
                    user,
                    Zeroizing::new(set.params.to_string()),
                    Zeroizing::new(backup::to_hex(&set.salt)),
                    Zeroizing::new(set.format.name().to_owned()),
                    Zeroizing::new(array(set.codes.iter().map(|h| Some(backup::to_hex(h))))),
                    Zeroizing::new(if set.confirmed { "t" } else { "f" }.to_owned()),
                    t(set.created_at),
                    t(set.last_used_at),
                    Zeroizing::new(set.throttling_failure_count.to_string()),
                    t(set.throttling_failure_timestamp),
                ],
                0,
            ));
        }
        // django-otp: only the state changes and used tokens go; the set
        // itself is the Django site's to make.
        let refused = || {
            Error::Refused(
                "with layout = \"django-otp\" backup codes (static tokens) are made by the \
                 Django site"
                    .into(),
            )
        };
        let read = read.ok_or_else(refused)?;
        if set.format != CodeFormat::Plain || set.salt != read.set.salt {
            return Err(refused());
        }
        let mut kept = 0;
        let mut used = Vec::new();
        for (code, token) in read.set.codes.iter().zip(&read.tokens) {
            if set.codes.get(kept) == Some(code) {
                kept += 1;
            } else {
                used.push(Some(token.to_string()));
            }
        }
        if kept != set.codes.len() {
            return Err(refused());
        }
        let n = used.len();
        Ok((
            vec![
                user,
                Zeroizing::new(read.id.to_string()),
                Zeroizing::new(array(used.into_iter())),
                Zeroizing::new(if set.confirmed { "t" } else { "f" }.to_owned()),
                t(set.last_used_at),
                Zeroizing::new(set.throttling_failure_count.to_string()),
                t(set.throttling_failure_timestamp),
            ],
            n,
        ))
    }

    fn bad(&self, what: String) -> Error {
        Error::Database(format!(
            "PostgreSQL store, user {}: unexpected answer from {}: {what}",
            self.store.user, self.store.sql.table
        ))
    }

    /// One row → a device, checked with the device file's rules.
    fn row(&self, rows: &pq::Rows, r: usize) -> Result<Row> {
        let id_text = rows.get(r, 0).unwrap_or_default();
        let bad = |key: &str, problem: String| {
            Error::Database(format!(
                "PostgreSQL store, user {}: {} row id {id_text}: column `{key}`: {problem}",
                self.store.user, self.store.sql.table
            ))
        };
        let text = |c: usize, key: &str| rows.get(r, c).ok_or_else(|| bad(key, "is NULL".into()));
        let int = |c: usize, key: &str, range: std::ops::RangeInclusive<i64>| -> Result<i64> {
            let v: i64 = text(c, key)?
                .parse()
                .map_err(|_| bad(key, "not an integer".into()))?;
            if !range.contains(&v) {
                return Err(bad(
                    key,
                    format!("{v} is out of range {}..={}", range.start(), range.end()),
                ));
            }
            Ok(v)
        };
        let time = |c: usize, key: &str| -> Result<Option<Timestamp>> {
            rows.get(r, c)
                .map(|v| {
                    v.parse()
                        .map(Timestamp::from_micros)
                        .map_err(|_| bad(key, "not a timestamp".into()))
                })
                .transpose()
        };
        let id = int(0, "id", 0..=i64::MAX)?;
        let name = text(1, "name")?;
        validate_name(name).map_err(|p| bad("name", p))?;
        let confirmed = match text(2, "confirmed")? {
            "t" => true,
            "f" => false,
            other => return Err(bad("confirmed", format!("`{other}` is not a boolean"))),
        };
        let key = Secret::from_hex(text(3, "key")?)
            .ok_or_else(|| bad("key", "not an even-length hex string".into()))?;
        validate_key(&key).map_err(|p| bad("key", p))?;
        let algorithm: Algorithm = text(4, "algorithm")?
            .parse()
            .map_err(|p: String| bad("algorithm", p))?;
        let digits = int(5, "digits", 6..=8)?;
        if !limits::is_digits(digits) {
            return Err(bad("digits", "must be 6 or 8".into()));
        }
        let device = Device {
            name: name.to_owned(),
            key,
            algorithm,
            digits: digits as u32,
            step: int(6, "step", limits::STEP)? as u32,
            t0: int(7, "t0", -(1 << 53)..=1 << 53)?,
            tolerance: int(8, "tolerance", limits::TOLERANCE)? as u32,
            drift: int(9, "drift", i64::from(i16::MIN)..=i64::from(i16::MAX))? as i16,
            last_t: int(10, "last_t", -1..=i64::MAX)?,
            confirmed,
            created_at: time(11, "created_at")?,
            last_used_at: time(12, "last_used_at")?,
            throttling_failure_count: int(13, "throttling_failure_count", 0..=i64::from(u32::MAX))?
                as u32,
            throttling_failure_timestamp: time(14, "throttling_failure_timestamp")?,
        };
        Ok((id, device))
    }

    /// Writes the difference between the rows as read and `next`: changed
    /// rows in one `UPDATE`; removed and added devices (totp-enroll only)
    /// in a `DELETE` and an `INSERT`.
    /// A changed backup set is written in the statement of the changed
    /// devices (one round trip); a removed one with a `DELETE`.
    fn write(
        &mut self,
        rows: &[Row],
        backup_read: Option<&BackupRow>,
        next: &DeviceFile,
    ) -> Result<()> {
        let plan = diff(rows, &next.devices);
        if !plan.ordered {
            // No change of ours reorders devices; one that did could not be
            // stored (the order is the rows' ids), so it is refused whole.
            return Err(self.bad("a change reorders the devices".into()));
        }
        let backup_changed = next.backup.as_ref() != backup_read.map(|b| &b.set);
        if let (Some(set), true) = (&next.backup, backup_changed) {
            let (extra, used) = self.backup_params(backup_read, set)?;
            let sql = self.store.sql.write_backup.clone();
            let result = self.apply(&sql, None, &plan.updates, &extra)?;
            let counts = (result.get(0, 0), result.get(0, 1), result.get(0, 2));
            let want = (plan.updates.len().to_string(), used.to_string());
            // A token deleted meanwhile (by the Django site, which locks
            // nothing) is not a success: the whole attempt fails.
            if counts != (Some(want.0.as_str()), Some("1"), Some(want.1.as_str())) {
                return Err(self.bad(format!(
                    "{counts:?} devices, backup sets and tokens written, not ({}, 1, {})",
                    want.0, want.1
                )));
            }
        } else if !plan.updates.is_empty() {
            let affected = self
                .apply(&self.store.sql.update.clone(), None, &plan.updates, &[])?
                .affected();
            if affected != plan.updates.len() as u64 {
                return Err(self.bad(format!(
                    "{affected} rows updated, not {}",
                    plan.updates.len()
                )));
            }
        }
        if !plan.deletes.is_empty() {
            self.count();
            let ids = array(plan.deletes.iter().map(|id| Some(id.to_string())));
            let sql = self.store.sql.delete.clone();
            self.conn
                .query(&sql, &[Some(ids.as_str())], self.deadline)
                .map_err(|e| self.store.fail("cannot delete a device", e))?;
        }
        if !plan.inserts.is_empty() {
            if matches!(self.store.settings.layout, Layout::DjangoOtp { .. }) {
                if let Some(d) = plan.inserts.iter().find(|d| d.algorithm != Algorithm::Sha1) {
                    return Err(Error::Refused(format!(
                        "device `{}`: django-otp's TOTP devices are SHA1 only, not {}",
                        d.name,
                        d.algorithm.name()
                    )));
                }
            }
            let devices: Vec<(Option<i64>, &Device)> =
                plan.inserts.iter().map(|d| (None, *d)).collect();
            let user = self.store.user.clone();
            let affected = self
                .apply(&self.store.sql.insert.clone(), Some(&user), &devices, &[])?
                .affected();
            if affected != devices.len() as u64 {
                return Err(Error::Refused(format!(
                    "cannot add a device for {user}: no such user in the Django site's user table"
                )));
            }
        }
        if next.backup.is_none() && backup_read.is_some() {
            let Some(sql) = self.store.sql.delete_backup.clone() else {
                return Err(Error::Refused(
                    "with layout = \"django-otp\" the static device is the Django site's to remove"
                        .into(),
                ));
            };
            self.count();
            let user = self.store.user.clone();
            self.conn
                .query(&sql, &[Some(user.as_str())], self.deadline)
                .map_err(|e| self.store.fail("cannot delete the backup codes", e))?;
        }
        Ok(())
    }

    /// Runs `sql` with the devices as arrays (`$1` the ids or the user),
    /// then `extra` (`$16`, ...; empty text is NULL).
    fn apply(
        &mut self,
        sql: &str,
        user: Option<&str>,
        devices: &[(Option<i64>, &Device)],
        extra: &[Zeroizing<String>],
    ) -> Result<pq::Rows> {
        let col = |f: &dyn Fn(&Device) -> Option<String>| -> Zeroizing<String> {
            Zeroizing::new(array(devices.iter().map(|(_, d)| f(d))))
        };
        let first = match user {
            Some(u) => Zeroizing::new(u.to_owned()),
            None => Zeroizing::new(array(
                devices.iter().map(|(id, _)| id.map(|i| i.to_string())),
            )),
        };
        let t = |t: Option<Timestamp>| t.map(|t| t.as_micros().to_string());
        let arrays = [
            first,
            col(&|d| Some(d.name.clone())),
            col(&|d| Some(if d.confirmed { "t" } else { "f" }.to_owned())),
            col(&|d| Some(d.key.to_hex().to_string())),
            col(&|d| Some(d.algorithm.name().to_owned())),
            col(&|d| Some(d.digits.to_string())),
            col(&|d| Some(d.step.to_string())),
            col(&|d| Some(d.t0.to_string())),
            col(&|d| Some(d.tolerance.to_string())),
            col(&|d| Some(d.drift.to_string())),
            col(&|d| Some(d.last_t.to_string())),
            col(&|d| t(d.created_at)),
            col(&|d| t(d.last_used_at)),
            col(&|d| Some(d.throttling_failure_count.to_string())),
            col(&|d| t(d.throttling_failure_timestamp)),
        ];
        let params: Vec<Option<&str>> = arrays
            .iter()
            .map(|a| Some(a.as_str()))
            .chain(
                extra
                    .iter()
                    .map(|e| Some(e.as_str()).filter(|e| !e.is_empty())),
            )
            .collect();
        self.count();
        let rows = self.conn.query(sql, &params, self.deadline).map_err(|e| {
            match e.sqlstate.as_deref() {
                Some("23505") => Error::Refused(format!(
                    "a device of {} with that name exists already (added meanwhile)",
                    self.store.user
                )),
                _ => self.store.fail("cannot write the devices", e),
            }
        })?;
        Ok(rows)
    }
}

/// What to write.
#[derive(Debug, Default)]
struct Plan<'a> {
    updates: Vec<(Option<i64>, &'a Device)>,
    deletes: Vec<i64>,
    inserts: Vec<&'a Device>,
    /// The rows, read back in id order, keep the new order.
    ordered: bool,
}

/// Pairs the new devices with the rows read: by name, then a device whose
/// name is new with the unpaired row at the same position (a rename).
/// Unchanged rows are not written. `ordered` tells whether ids in the new
/// order still rise with every new device after them, i.e. whether the
/// rows, read back by id, come in the new file's order.
fn diff<'a>(rows: &[Row], next: &'a [Device]) -> Plan<'a> {
    let mut used = vec![false; rows.len()];
    let mut pairs: Vec<Option<usize>> = next
        .iter()
        .map(|d| {
            let i = rows
                .iter()
                .enumerate()
                .position(|(i, (_, r))| !used[i] && r.name == d.name)?;
            used[i] = true;
            Some(i)
        })
        .collect();
    for (j, pair) in pairs.iter_mut().enumerate() {
        if pair.is_none() && j < rows.len() && !used[j] {
            *pair = Some(j);
            used[j] = true;
        }
    }
    let mut plan = Plan {
        ordered: true,
        ..Plan::default()
    };
    let mut last_id = None;
    for (j, pair) in pairs.iter().enumerate() {
        match pair {
            Some(i) => {
                let id = rows[*i].0;
                if last_id.is_some_and(|l| l >= id) || !plan.inserts.is_empty() {
                    plan.ordered = false;
                }
                last_id = Some(id);
                if rows[*i].1 != next[j] {
                    plan.updates.push((Some(id), &next[j]));
                }
            }
            None => plan.inserts.push(&next[j]),
        }
    }
    plan.deletes = (0..rows.len())
        .filter(|i| !used[*i])
        .map(|i| rows[i].0)
        .collect();
    plan
}

/// A PostgreSQL array literal of text values (`NULL` for `None`).
fn array(values: impl Iterator<Item = Option<String>>) -> String {
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            None => out.push_str("NULL"),
            Some(v) => {
                let v = Zeroizing::new(v);
                out.push('"');
                for c in v.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn array_literals_quote_every_value_and_spell_null() {
        let a = array([Some("a\"b".to_owned()), None, Some("c\\d,{}".to_owned())].into_iter());
        assert_eq!(a, r#"{"a\"b",NULL,"c\\d,{}"}"#);
        assert_eq!(array(std::iter::empty()), "{}");
    }

    fn dev(name: &str) -> Device {
        Device::new(
            name,
            Secret::from_hex("3132333435363738393031323334353637383930").unwrap(),
            &crate::device::Params::default(),
            Timestamp::from_secs(1),
        )
    }

    #[test]
    fn rows_are_paired_with_devices_by_name_and_a_rename_by_position() {
        let rows: Vec<Row> = vec![(10, dev("a")), (11, dev("b")), (12, dev("c"))];
        // Unchanged: nothing to write.
        let same: Vec<Device> = rows.iter().map(|r| r.1.clone()).collect();
        let p = diff(&rows, &same);
        assert!(p.updates.is_empty() && p.deletes.is_empty() && p.inserts.is_empty());
        // One changed, one removed, one added (at the end).
        let mut next = vec![dev("a"), dev("c"), dev("d")];
        next[1].last_t = 5;
        let p = diff(&rows, &next);
        assert!(p.ordered);
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].0, Some(12));
        assert_eq!(p.deletes, vec![11]);
        assert_eq!(p.inserts.len(), 1);
        assert_eq!(p.inserts[0].name, "d");
        // A rename keeps the row.
        let next = vec![dev("a"), dev("renamed"), dev("c")];
        let p = diff(&rows, &next);
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].0, Some(11));
        assert!(p.deletes.is_empty() && p.inserts.is_empty() && p.ordered);
        // A reordering cannot be stored.
        let next = vec![dev("b"), dev("a"), dev("c")];
        assert!(!diff(&rows, &next).ordered);
    }

    #[test]
    fn identifiers_are_quoted_part_by_part() {
        assert_eq!(quote_ident("auth_user"), "\"auth_user\"");
        assert_eq!(quote_ident("s.Users"), "\"s\".\"Users\"");
    }
}
