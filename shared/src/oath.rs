//! HOTP (RFC 4226) and TOTP (RFC 6238) with SHA1, SHA256 and SHA512.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};

/// The HMAC hash of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA1, django-otp's only algorithm and every app's default.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in files and URLs: `SHA1`, `SHA256`, `SHA512`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Key length of a freshly generated key: the hash's output size.
    pub fn new_key_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            // The value is not echoed: it may be a key pasted into the
            // wrong field (issue 11, finding 7).
            _ => Err("unknown algorithm; use SHA1, SHA256 or SHA512".to_owned()),
        }
    }
}

fn mac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    // HMAC takes keys of any length, so this does not fail; if it ever did,
    // there is no value, never a made-up one.
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac.finalize().into_bytes().to_vec())
}

/// The raw HMAC of `msg` under `key`; `None` only if the MAC cannot be
/// computed.
pub fn hmac(algorithm: Algorithm, key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    match algorithm {
        Algorithm::Sha1 => mac_bytes::<Hmac<sha1::Sha1>>(key, msg),
        Algorithm::Sha256 => mac_bytes::<Hmac<sha2::Sha256>>(key, msg),
        Algorithm::Sha512 => mac_bytes::<Hmac<sha2::Sha512>>(key, msg),
    }
}

/// RFC 4226 HOTP value: HMAC over the 8-byte big-endian counter, dynamic
/// truncation, `mod 10^digits`. `digits` is 6 or 8 in practice (1..=9 work).
/// `None` when no value can be computed: an error never becomes a code
/// (such as 0, "000000") that someone could type.
pub fn hotp_value(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> Option<u32> {
    let mac = hmac(algorithm, key, &counter.to_be_bytes())?;
    let offset = usize::from(mac.last()? & 0x0f);
    let w = mac.get(offset..offset + 4)?;
    let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]) & 0x7fff_ffff;
    Some(word % 10u32.pow(digits.min(9)))
}

/// The HOTP code as the user sees it: zero-padded to `digits`.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> Option<String> {
    hotp_value(algorithm, key, counter, digits)
        .map(|v| format!("{v:0width$}", width = digits as usize))
}

/// django-otp's time step: `floor((floor(now) - t0) / step) + drift`, with
/// floor division towards minus infinity. `now` in whole seconds.
pub fn time_step(now_secs: i64, t0: i64, step: u32, drift: i64) -> i64 {
    (now_secs.saturating_sub(t0))
        .div_euclid(i64::from(step.max(1)))
        .saturating_add(drift)
}

/// The TOTP code at `now_secs` (RFC 6238), or `None` before `t0` (a negative
/// counter, which django-otp cannot compute either).
pub fn totp(
    algorithm: Algorithm,
    key: &[u8],
    now_secs: i64,
    t0: i64,
    step: u32,
    digits: u32,
) -> Option<String> {
    let t = time_step(now_secs, t0, step, 0);
    u64::try_from(t)
        .ok()
        .and_then(|c| hotp(algorithm, key, c, digits))
}
