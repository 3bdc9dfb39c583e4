//! Backup codes (docs/design.md §3, §4, §8): django-otp's `StaticDevice`,
//! made safe to store.
//!
//! A set holds one argon2id hash per unused code, all made with one salt and
//! one set of cost parameters kept beside them, so that an attempt costs
//! exactly one hash whatever the number of codes, and the hash is compared
//! in constant time against every stored one. A code is 10 characters of
//! Crockford base32 (50 random bits), shown as `xxxxx-xxxxx`; input is
//! case-insensitive, `-` and spaces are ignored, `I`/`L` read as `1` and
//! `O` as `0`. A set imported from google-authenticator keeps that file's
//! 8-digit scratch codes (format [`CodeFormat::Digits8`]), hashed the same
//! way.
//!
//! Verification here is pure like [`crate::verify`]: [`check`] gives the
//! verdict, [`apply`] the new state (a matching code removed, the throttle
//! reset or counted as django-otp does). An input whose shape cannot be a
//! code of the set (a 6- or 8-digit TOTP code against a base32 set) never
//! computes a hash, and still counts as the set's failure.

use std::fmt;
use std::str::FromStr;

use argon2::{Algorithm, Argon2, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::secret::fill_random;
use crate::time::Timestamp;
use crate::tomlfile::Fields;
use crate::verify::{Policy, Rejection};

/// Crockford's base32 alphabet: no I, L, O, U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a new code.
pub const CODE_LEN: usize = 10;
/// Codes in a new set unless asked otherwise.
pub const DEFAULT_COUNT: usize = 10;
/// Most codes one set may hold.
pub const MAX_CODES: usize = 100;
/// Length of a stored hash, in bytes.
pub const HASH_LEN: usize = 32;
/// Length of a new set's salt, in bytes.
pub const SALT_LEN: usize = 16;
/// Digits of a google-authenticator scratch code.
pub const SCRATCH_LEN: usize = 8;

/// Cost parameters of argon2id, as stored with a set: `m=KiB,t=passes,p=lanes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

/// What a new set uses (the example in docs/design.md §3): about 0.6 ms per hash on
/// this project's machines (`make bench`). Short on purpose: the codes
/// carry 50 random bits and are throttled, so the hash guards a stolen
/// file, and a short hash is rarely caught by the scheduler mid-way, which
/// keeps the p99 of a login low on a busy host; see docs/design.md §8.
pub const DEFAULT_PARAMS: HashParams = HashParams {
    m_kib: 1024,
    t: 2,
    p: 1,
};

/// Bounds on stored parameters: a device file may be its user's own, and a
/// login must not be made to burn a second or a gigabyte.
const MAX_M_KIB: u32 = 64 * 1024;
const MAX_T: u32 = 16;
const MAX_P: u32 = 4;

impl fmt::Display for HashParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={},t={},p={}", self.m_kib, self.t, self.p)
    }
}

impl FromStr for HashParams {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not of the form \"m=KIB,t=PASSES,p=LANES\"");
        let mut out = [None; 3];
        for part in s.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or_else(bad)?;
            let slot = match k {
                "m" => 0,
                "t" => 1,
                "p" => 2,
                _ => return Err(bad()),
            };
            if out[slot].is_some() {
                return Err(bad());
            }
            out[slot] = Some(v.parse::<u32>().map_err(|_| bad())?);
        }
        let [Some(m_kib), Some(t), Some(p)] = out else {
            return Err(bad());
        };
        if !(1..=MAX_P).contains(&p) || !(1..=MAX_T).contains(&t) {
            return Err(format!("`{s}`: t must be 1 to {MAX_T} and p 1 to {MAX_P}"));
        }
        if m_kib < 8 * p || m_kib > MAX_M_KIB {
            return Err(format!("`{s}`: m must be {} to {MAX_M_KIB} KiB", 8 * p));
        }
        Ok(HashParams { m_kib, t, p })
    }
}

/// The shape of the codes of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeFormat {
    /// 10 characters of Crockford base32 (`totp-enroll backup-codes`).
    Crockford10,
    /// 8 decimal digits (google-authenticator's scratch codes, imported).
    Digits8,
    /// A Django site's static tokens in clear (the PostgreSQL store's
    /// `django-otp` layout only; never read from or written to a device
    /// file): an exact match, as django-otp's `StaticDevice`. Each stored
    /// entry is [`plain_entry`] of a token, compared in constant time.
    Plain,
}

impl CodeFormat {
    /// The name in the device file.
    pub fn name(self) -> &'static str {
        match self {
            CodeFormat::Crockford10 => "crockford-10",
            CodeFormat::Digits8 => "digits-8",
            CodeFormat::Plain => "plain",
        }
    }
}

impl FromStr for CodeFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "crockford-10" => Ok(CodeFormat::Crockford10),
            "digits-8" => Ok(CodeFormat::Digits8),
            _ => Err(format!(
                "unknown code format `{s}`; use \"crockford-10\" or \"digits-8\""
            )),
        }
    }
}

/// The canonical form of `input` for a set of `format`, or `None` when it
/// cannot be one of its codes (then no hash is computed). Base32: letters
/// upper-cased, `-` and white space dropped, `I`/`L` → `1`, `O` → `0`,
/// then exactly 10 symbols. Digits: `-` and white space dropped, then
/// exactly 8 digits.
pub fn normalize(input: &str, format: CodeFormat) -> Option<Zeroizing<Vec<u8>>> {
    let want = match format {
        CodeFormat::Crockford10 => CODE_LEN,
        CodeFormat::Digits8 => SCRATCH_LEN,
        CodeFormat::Plain => {
            let mut out = Zeroizing::new(Vec::with_capacity(PLAIN_MAX));
            if input.is_empty() || input.len() > PLAIN_MAX {
                return None;
            }
            out.extend_from_slice(input.as_bytes());
            return Some(out);
        }
    };
    // Never grown: a Vec that grows frees a copy unwiped.
    let mut out = Zeroizing::new(Vec::with_capacity(want));
    for c in input.bytes() {
        if c == b'-' || c.is_ascii_whitespace() {
            continue;
        }
        if out.len() == want {
            return None;
        }
        let symbol = match (format, c.to_ascii_uppercase()) {
            (_, d @ b'0'..=b'9') => d,
            (CodeFormat::Digits8, _) => return None,
            (_, b'I' | b'L') => b'1',
            (_, b'O') => b'0',
            (_, b'U') => return None,
            (_, u @ b'A'..=b'Z') => u,
            _ => return None,
        };
        out.push(symbol);
    }
    (out.len() == want).then_some(out)
}

/// Longest token of [`CodeFormat::Plain`], in bytes (Django's are at most
/// 16 characters).
pub const PLAIN_MAX: usize = HASH_LEN - 1;

/// The stored entry of a clear token ([`CodeFormat::Plain`]): its length,
/// then its bytes, then zeros; `None` if it is empty or longer than
/// [`PLAIN_MAX`].
pub fn plain_entry(token: &[u8]) -> Option<[u8; HASH_LEN]> {
    if token.is_empty() || token.len() > PLAIN_MAX {
        return None;
    }
    let mut out = [0u8; HASH_LEN];
    out[0] = token.len() as u8;
    out[1..=token.len()].copy_from_slice(token);
    Some(out)
}

/// How a code is shown: `xxxxx-xxxxx` (base32, lower case) or the digits.
/// Built in one allocation of its final size, so no copy is freed unwiped.
pub fn display(code: &[u8]) -> String {
    let mut s = String::with_capacity(code.len() + 1);
    for (i, &b) in code.iter().enumerate() {
        if code.len() == CODE_LEN && i == CODE_LEN / 2 {
            s.push('-');
        }
        s.push(char::from(b.to_ascii_lowercase()));
    }
    s
}

#[cfg(any(test, feature = "hash-count"))]
thread_local! {
    static HASHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many argon2 hashes this thread has computed (only built for tests,
/// with the `hash-count` feature).
#[cfg(any(test, feature = "hash-count"))]
pub fn hash_count() -> u64 {
    HASHES.with(std::cell::Cell::get)
}

/// argon2id of a canonical code under `salt` and `params`. `None` only if
/// the parameters are refused by the library (they were checked on parse).
pub fn hash(code: &[u8], salt: &[u8], params: HashParams) -> Option<[u8; HASH_LEN]> {
    #[cfg(any(test, feature = "hash-count"))]
    HASHES.with(|h| h.set(h.get() + 1));
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(HASH_LEN)).ok()?;
    let mut out = [0u8; HASH_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(code, salt, &mut out)
        .ok()?;
    Some(out)
}

/// A user's set of backup codes and its verification state (django-otp's
/// `StaticDevice` and its `StaticToken`s, each code kept as a hash; a
/// Django site's clear tokens for [`CodeFormat::Plain`]). `Debug` shows how
/// many codes there are, never them.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCodes {
    /// argon2id cost parameters, the same for every code of the set.
    pub params: HashParams,
    /// The set's one salt.
    pub salt: Vec<u8>,
    /// The shape of the codes.
    pub format: CodeFormat,
    /// One hash per unused code.
    pub codes: Vec<[u8; HASH_LEN]>,
    /// Only a confirmed set is tried at login.
    pub confirmed: bool,
    /// When the set was made.
    pub created_at: Option<Timestamp>,
    /// When a code of it was last accepted.
    pub last_used_at: Option<Timestamp>,
    /// Consecutive failures.
    pub throttling_failure_count: u32,
    /// Time of the last failure.
    pub throttling_failure_timestamp: Option<Timestamp>,
}

impl Drop for BackupCodes {
    /// The codes are hashes, or for a Django site's set its tokens in
    /// clear (red-team finding R2-4): wiped either way, every copy.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.codes.zeroize();
    }
}

impl fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupCodes")
            .field("params", &self.params)
            .field("format", &self.format)
            .field("codes", &self.codes.len())
            .field("confirmed", &self.confirmed)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("throttling_failure_count", &self.throttling_failure_count)
            .field(
                "throttling_failure_timestamp",
                &self.throttling_failure_timestamp,
            )
            .finish_non_exhaustive()
    }
}

/// A new set and its codes in clear, to be shown once.
#[derive(Debug)]
pub struct NewSet {
    /// What is stored.
    pub set: BackupCodes,
    /// The codes as shown to the user (`xxxxx-xxxxx`), in order.
    pub codes: Vec<Zeroizing<String>>,
}

/// What [`fill_random`] failed with when the OS had no random bytes.
pub type RandomError = String;

impl BackupCodes {
    /// An empty confirmed set with a fresh salt and the default parameters.
    fn empty(format: CodeFormat, now: Timestamp) -> std::result::Result<Self, RandomError> {
        let mut salt = vec![0u8; SALT_LEN];
        fill_random(&mut salt)?;
        Ok(BackupCodes {
            params: DEFAULT_PARAMS,
            salt,
            format,
            codes: Vec::new(),
            confirmed: true,
            created_at: Some(now),
            last_used_at: None,
            throttling_failure_count: 0,
            throttling_failure_timestamp: None,
        })
    }

    /// `count` new random codes (1 to [`MAX_CODES`]), hashed; the clear
    /// codes are returned once for showing.
    pub fn generate(count: usize, now: Timestamp) -> std::result::Result<NewSet, RandomError> {
        if !(1..=MAX_CODES).contains(&count) {
            return Err(format!("a set holds 1 to {MAX_CODES} codes, not {count}"));
        }
        let mut set = Self::empty(CodeFormat::Crockford10, now)?;
        let mut shown = Vec::with_capacity(count);
        while set.codes.len() < count {
            let mut raw = Zeroizing::new([0u8; CODE_LEN]);
            fill_random(&mut raw[..])?;
            let mut code = Zeroizing::new([0u8; CODE_LEN]);
            for (c, r) in code.iter_mut().zip(raw.iter()) {
                // 256 is a multiple of 32: uniform.
                *c = ALPHABET[usize::from(r & 0x1f)];
            }
            let h = set.hash_of(&code[..])?;
            // 50 bits: a repeat is all but impossible, but never store one.
            if set.codes.contains(&h) {
                continue;
            }
            set.codes.push(h);
            shown.push(Zeroizing::new(display(&code[..])));
        }
        Ok(NewSet { set, codes: shown })
    }

    /// A set holding google-authenticator's 8-digit scratch codes, hashed.
    /// Codes that are not 8 digits are refused; repeats are kept once.
    pub fn from_scratch_codes(
        codes: &[&str],
        now: Timestamp,
    ) -> std::result::Result<Self, RandomError> {
        Self::from_codes(codes, CodeFormat::Digits8, now)
    }

    /// A set holding the given codes (of `format`), hashed with a fresh
    /// salt: an import, or a test's known codes. A code not of the format
    /// is refused; repeats are kept once.
    pub fn from_codes(
        codes: &[&str],
        format: CodeFormat,
        now: Timestamp,
    ) -> std::result::Result<Self, RandomError> {
        if codes.len() > MAX_CODES {
            return Err(format!("at most {MAX_CODES} codes"));
        }
        let mut set = Self::empty(format, now)?;
        for (i, c) in codes.iter().enumerate() {
            let canonical = normalize(c, format)
                .ok_or_else(|| format!("code {} is not of the format {}", i + 1, format.name()))?;
            let h = set.hash_of(&canonical)?;
            if !set.codes.contains(&h) {
                set.codes.push(h);
            }
        }
        Ok(set)
    }

    /// The stored hash `code` would have in this set (`None`: not of the
    /// set's format). For checking which codes remain.
    pub fn hash_for(&self, code: &str) -> Option<[u8; HASH_LEN]> {
        let canonical = normalize(code, self.format)?;
        self.digest(&canonical)
    }

    /// What a canonical code is stored as in this set: its argon2id hash,
    /// or for [`CodeFormat::Plain`] its [`plain_entry`].
    fn digest(&self, code: &[u8]) -> Option<[u8; HASH_LEN]> {
        match self.format {
            CodeFormat::Plain => plain_entry(code),
            CodeFormat::Crockford10 | CodeFormat::Digits8 => hash(code, &self.salt, self.params),
        }
    }

    fn hash_of(&self, code: &[u8]) -> std::result::Result<[u8; HASH_LEN], RandomError> {
        self.digest(code)
            .ok_or_else(|| format!("argon2 refused the parameters {}", self.params))
    }

    /// How many unused codes remain.
    pub fn remaining(&self) -> usize {
        self.codes.len()
    }
}

/// The outcome of one attempt on a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored code number `index` matched.
    Accepted {
        /// Its position in [`BackupCodes::codes`].
        index: usize,
    },
    /// Blocked until `until`; nothing was hashed or changed.
    Throttled {
        /// When the next attempt is allowed.
        until: Timestamp,
    },
    /// Refused (`Malformed`: not the set's shape, never hashed; `Wrong`:
    /// no stored code, including one used before); the failure counts.
    Rejected(Rejection),
}

/// When the set is blocked at `now` (`OTP_STATIC_THROTTLE_FACTOR`).
pub fn throttled_until(set: &BackupCodes, now: Timestamp, policy: &Policy) -> Option<Timestamp> {
    let delay = policy.static_delay_secs(set.throttling_failure_count);
    if delay == 0 {
        return None;
    }
    let until = set.throttling_failure_timestamp?.plus_secs(delay);
    (now < until).then_some(until)
}

/// Checks `input` against the set at `now`: at most one hash, compared in
/// constant time with every stored hash. Pure: the change is [`apply`].
pub fn check(set: &BackupCodes, input: &str, now: Timestamp, policy: &Policy) -> Verdict {
    if let Some(until) = throttled_until(set, now, policy) {
        return Verdict::Throttled { until };
    }
    let Some(code) = normalize(input, set.format) else {
        return Verdict::Rejected(Rejection::Malformed);
    };
    let Some(h) = set.digest(&code) else {
        return Verdict::Rejected(Rejection::Wrong);
    };
    // Every stored hash is compared; no early exit.
    let mut found: Option<usize> = None;
    for (i, stored) in set.codes.iter().enumerate() {
        if bool::from(stored.ct_eq(&h)) && found.is_none() {
            found = Some(i);
        }
    }
    match found {
        Some(index) => Verdict::Accepted { index },
        None => Verdict::Rejected(Rejection::Wrong),
    }
}

/// The set after `verdict` at `now`: an accepted code is removed and the
/// throttle reset; a refusal is counted; a throttled attempt changes nothing.
pub fn apply(set: &BackupCodes, verdict: &Verdict, now: Timestamp) -> BackupCodes {
    let mut next = set.clone();
    match *verdict {
        Verdict::Accepted { index } => {
            if index < next.codes.len() {
                next.codes.remove(index);
            }
            next.throttling_failure_count = 0;
            next.throttling_failure_timestamp = None;
            next.last_used_at = Some(now);
        }
        Verdict::Rejected(_) => {
            next.throttling_failure_count = set.throttling_failure_count.saturating_add(1);
            next.throttling_failure_timestamp = Some(now);
        }
        Verdict::Throttled { .. } => {}
    }
    next
}

/// [`check`] then [`apply`].
pub fn verify(
    set: &BackupCodes,
    input: &str,
    now: Timestamp,
    policy: &Policy,
) -> (Verdict, BackupCodes) {
    let verdict = check(set, input, now, policy);
    let next = apply(set, &verdict, now);
    (verdict, next)
}

/// Reads a `[backup_codes]` table; errors name the file, line and key.
pub(crate) fn parse_table(f: &mut Fields<'_>) -> Result<BackupCodes> {
    match f.string("hash")? {
        Some(("argon2id", _)) => {}
        Some((other, span)) => {
            return Err(f.error_at(
                "hash",
                Some(span),
                format!("unknown hash `{other}`; this build knows \"argon2id\""),
            ))
        }
        None => return Err(f.missing("hash")),
    }
    let (text, span) = f.string("params")?.ok_or_else(|| f.missing("params"))?;
    let params: HashParams = text
        .parse()
        .map_err(|p: String| f.error_at("params", Some(span), p))?;
    let (text, span) = f.string("salt")?.ok_or_else(|| f.missing("salt"))?;
    let salt = from_hex(text)
        .filter(|s| (8..=64).contains(&s.len()))
        .ok_or_else(|| f.error_at("salt", Some(span), "must be 8 to 64 bytes of hex"))?;
    let format = match f.string("format")? {
        None => CodeFormat::Crockford10,
        Some((text, span)) => text
            .parse()
            .map_err(|p: String| f.error_at("format", Some(span), p))?,
    };
    let list = f.strings("codes")?.ok_or_else(|| f.missing("codes"))?;
    if list.len() > MAX_CODES {
        let span = list[MAX_CODES].1.clone();
        return Err(f.error_at(
            "codes",
            Some(span),
            format!("too many codes; at most {MAX_CODES}"),
        ));
    }
    let mut codes = Vec::with_capacity(list.len());
    for (text, span) in list {
        let h: [u8; HASH_LEN] =
            from_hex(text)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    f.error_at(
                        "codes",
                        Some(span),
                        format!("each code is a hash of {HASH_LEN} bytes in hex"),
                    )
                })?;
        codes.push(h);
    }
    Ok(BackupCodes {
        params,
        salt,
        format,
        codes,
        confirmed: f.boolean("confirmed")?.unwrap_or(true),
        created_at: f.timestamp("created_at")?,
        last_used_at: f.timestamp("last_used_at")?,
        throttling_failure_count: f
            .int_incl("throttling_failure_count", 0, i64::from(u32::MAX))?
            .unwrap_or(0) as u32,
        throttling_failure_timestamp: f.timestamp("throttling_failure_timestamp")?,
    })
}

impl BackupCodes {
    /// Writes the `[backup_codes]` table.
    pub(crate) fn write_toml(&self, s: &mut impl std::fmt::Write) {
        let _ = writeln!(s, "\n[backup_codes]");
        let _ = writeln!(s, "hash = \"argon2id\"");
        let _ = writeln!(s, "params = \"{}\"", self.params);
        let _ = writeln!(s, "salt = \"{}\"", to_hex(&self.salt));
        let _ = writeln!(s, "format = \"{}\"", self.format.name());
        let _ = write!(s, "codes = [");
        for (i, h) in self.codes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}\n    \"{}\"", to_hex(h));
        }
        let end = if self.codes.is_empty() { "" } else { ",\n" };
        let _ = writeln!(s, "{end}]");
        crate::device::write_state(
            s,
            self.confirmed,
            self.created_at,
            self.last_used_at,
            self.throttling_failure_count,
            self.throttling_failure_timestamp,
        );
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

pub(crate) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    crate::secret::Secret::from_hex(hex).map(|s| s.expose().to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn input_is_case_insensitive_ignores_dashes_and_maps_look_alikes() {
        let want = b"0123AB1110".to_vec();
        for input in ["0123A-B1110", "0123ab1110", " o123a b1il0 ", "O123AB-LLI0"] {
            assert_eq!(
                normalize(input, CodeFormat::Crockford10).as_deref(),
                Some(&want),
                "{input}"
            );
        }
        assert!(normalize("0123AB111", CodeFormat::Crockford10).is_none());
        assert!(normalize("0123AB11100", CodeFormat::Crockford10).is_none());
        assert!(normalize("0123AB111U", CodeFormat::Crockford10).is_none());
        assert!(normalize("123456", CodeFormat::Crockford10).is_none());
        assert!(normalize("12345678", CodeFormat::Crockford10).is_none());
        assert!(normalize("1234-5678", CodeFormat::Digits8).is_some());
        assert!(normalize("1234567a", CodeFormat::Digits8).is_none());
    }

    #[test]
    fn new_codes_are_ten_crockford_symbols_shown_with_a_dash() {
        let new = BackupCodes::generate(3, Timestamp::from_secs(0)).unwrap();
        assert_eq!(new.codes.len(), 3);
        assert_eq!(new.set.remaining(), 3);
        for c in &new.codes {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            let canonical = normalize(c, CodeFormat::Crockford10).unwrap();
            assert!(canonical.iter().all(|b| ALPHABET.contains(b)));
        }
    }

    #[test]
    fn clear_tokens_match_exactly_and_are_never_a_device_file_format() {
        let set = BackupCodes {
            params: DEFAULT_PARAMS,
            salt: Vec::new(),
            format: CodeFormat::Plain,
            codes: vec![
                plain_entry(b"abcd2345").unwrap(),
                plain_entry(b"x").unwrap(),
            ],
            confirmed: true,
            created_at: None,
            last_used_at: None,
            throttling_failure_count: 0,
            throttling_failure_timestamp: None,
        };
        let now = Timestamp::from_secs(10);
        let p = Policy::default();
        assert_eq!(check(&set, "x", now, &p), Verdict::Accepted { index: 1 });
        assert_eq!(
            check(&set, "abcd2345", now, &p),
            Verdict::Accepted { index: 0 }
        );
        for wrong in ["ABCD2345", "abcd-2345", "abcd2345 ", "abcd234", ""] {
            assert!(
                matches!(check(&set, wrong, now, &p), Verdict::Rejected(_)),
                "{wrong}"
            );
        }
        assert_eq!(hash_count(), 0, "clear tokens are never hashed");
        assert!(!format!("{set:?}").contains("97"), "Debug shows no code");
        assert!("plain".parse::<CodeFormat>().is_err());
        assert!(plain_entry(&[b'a'; PLAIN_MAX + 1]).is_none());
    }

    #[test]
    fn params_round_trip_and_are_bounded() {
        let p: HashParams = "m=1024,t=2,p=1".parse().unwrap();
        assert_eq!(p, DEFAULT_PARAMS);
        assert_eq!(p.to_string(), "m=1024,t=2,p=1");
        assert!("m=1048576,t=2,p=1".parse::<HashParams>().is_err());
        assert!("m=2048,t=0,p=1".parse::<HashParams>().is_err());
        assert!("m=2048,t=2".parse::<HashParams>().is_err());
        assert!("m=2048,t=2,p=1,x=3".parse::<HashParams>().is_err());
    }
}
