//! Key material and submitted answers: zeroized on drop, never printed.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A device key. `Debug` prints `Secret(..)`; the bytes are wiped on drop;
/// `==` takes time that depends only on the lengths.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// `len` bytes from the kernel's CSPRNG: a new key.
    pub fn random(len: usize) -> Result<Self, String> {
        let mut buf = Zeroizing::new(vec![0u8; len]);
        fill_random(&mut buf)?;
        Ok(Secret(buf))
    }

    /// Parses lowercase or uppercase hex, as django-otp stores keys.
    /// Returns `None` for odd length or a non-hex character.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() % 2 != 0 {
            return None;
        }
        let mut out = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
        for pair in hex.as_bytes().chunks_exact(2) {
            let hi = hex_value(pair[0])?;
            let lo = hex_value(pair[1])?;
            out.push(hi << 4 | lo);
        }
        Some(Secret(out))
    }

    /// Parses RFC 4648 base32 as authenticator apps show it: case-insensitive,
    /// spaces and dashes ignored, padding optional.
    pub fn from_base32(text: &str) -> Option<Self> {
        // Room for the text and its padding up front: a String that grows
        // frees a copy of the secret unwiped.
        let mut clean = Zeroizing::new(String::with_capacity(text.len() + 8));
        for c in text.chars().filter(|c| !matches!(c, ' ' | '-' | '=')) {
            clean.push(c.to_ascii_uppercase());
        }
        let pad = (8 - clean.len() % 8) % 8;
        clean.extend(std::iter::repeat_n('=', pad));
        data_encoding::BASE32
            .decode(clean.as_bytes())
            .ok()
            .map(Secret::new)
    }

    /// Lowercase hex, as written to the device file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = Zeroizing::new(String::with_capacity(self.0.len() * 2));
        for b in self.0.iter() {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        s
    }

    /// RFC 4648 base32 with padding, as django-otp puts it in the URL.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32.encode(&self.0))
    }

    /// The raw bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of key bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty key (never valid in a device).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// What a person typed at the prompt, as the bytes they typed (a password
/// handed on by `forward_pass` need not be UTF-8: issue 11, finding 4).
/// Wiped on drop; `Debug` redacts it.
#[derive(Clone, Default)]
pub struct Answer(Zeroizing<Vec<u8>>);

/// What [`Answer::expose`] gives for bytes that are not UTF-8: text that is
/// no code and no secret of any device.
const NOT_TEXT: &str = "\u{FFFD}";

impl Answer {
    /// Wraps a submitted answer given as text.
    pub fn new(text: String) -> Self {
        Answer(Zeroizing::new(text.into_bytes()))
    }

    /// Wraps a submitted answer given as bytes, as libpam hands it over.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Answer(Zeroizing::new(bytes))
    }

    /// The text as typed; an answer that is not UTF-8 reads as U+FFFD,
    /// which is no code (only a code needs to be text).
    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or(NOT_TEXT)
    }

    /// The bytes as typed.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty answer.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Splits a `forward_pass` answer into (password, code): the trailing
    /// `code_len` bytes are the code (a code is ASCII), the rest is the
    /// password, byte for byte. `None` when the answer is shorter.
    pub fn split_forward_pass(&self, code_len: usize) -> Option<(Answer, Answer)> {
        let cut = self.0.len().checked_sub(code_len)?;
        Some((
            Answer::from_bytes(self.0[..cut].to_vec()),
            Answer::from_bytes(self.0[cut..].to_vec()),
        ))
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Answer(..)")
    }
}

/// The canonical form of a submitted code for a device with `digits` digits:
/// surrounding white space trimmed, inner spaces dropped, then exactly
/// `digits` ASCII digits. Anything else is `None` (a failed attempt).
pub fn normalize_code(input: &str, digits: u32) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = input.trim();
    // Bound the work on hostile input: a code never needs more than this.
    if trimmed.len() > 64 {
        return None;
    }
    let want = digits as usize;
    // Never grown: a Vec that grows frees a copy of the digits unwiped.
    let mut out = Zeroizing::new(Vec::with_capacity(want));
    for b in trimmed.bytes() {
        match b {
            b' ' => {}
            b'0'..=b'9' if out.len() < want => out.push(b),
            _ => return None,
        }
    }
    (out.len() == digits as usize).then_some(out)
}

/// The shortest run of hex or base32 characters [`mask_key_like`] hides.
pub const MASK_MIN_RUN: usize = 16;
/// What [`mask_key_like`] puts in place of a hidden run.
pub const MASK: &str = "[masked]";

/// `text` with every run of at least [`MASK_MIN_RUN`] ASCII letters and
/// digits that is all hex (`0-9a-fA-F`) or all base32 (`A-Z2-7`, either
/// case), and not a number of up to 20 decimal digits, replaced by [`MASK`]: the last guard that keeps key material out
/// of a log line (issue 11, finding 7). Words that long are rare in log
/// text; a user or device name that long and shaped like a key is masked
/// too, which is the safe side.
pub fn mask_key_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let run = &rest[..end];
        let hex = run.bytes().all(|b| b.is_ascii_hexdigit());
        let base32 = run
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b));
        // Up to 20 decimal digits: a number (i64::MAX in a range), not a
        // key; a key is at least 20 hex digits, all decimal with odds
        // below one in 10^4, and most keys are longer.
        let decimal = run.len() <= 20 && run.bytes().all(|b| b.is_ascii_digit());
        if run.len() >= MASK_MIN_RUN && (hex || base32) && !decimal {
            out.push_str(MASK);
        } else {
            out.push_str(run);
        }
        rest = &rest[end..];
    }
    out
}

/// Fills `buf` from getrandom(2): no file descriptor needed, blocking only
/// until the kernel's pool is first seeded at boot. The error is one line.
pub fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    posix::random::getrandom(buf).map_err(|e| format!("cannot get random bytes from the OS: {e}"))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_compare_by_their_bytes() {
        let a = Secret::from_hex("3132333435").unwrap();
        assert_eq!(a, Secret::from_hex("3132333435").unwrap());
        assert_ne!(a, Secret::from_hex("3132333436").unwrap());
        assert_ne!(a, Secret::from_hex("313233343536").unwrap());
    }

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let s = Secret::from_hex("3132333435").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(format!("{:?}", Answer::new("123456".into())), "Answer(..)");
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        let s = Secret::from_hex("3A4f00").unwrap();
        assert_eq!(s.expose(), &[0x3a, 0x4f, 0x00]);
        assert_eq!(&*s.to_hex(), "3a4f00");
        assert!(Secret::from_hex("abc").is_none());
        assert!(Secret::from_hex("zz").is_none());
    }

    #[test]
    fn base32_accepts_what_apps_show() {
        let s = Secret::from_base32("gezd gnbv-gy3t qojq").unwrap();
        assert_eq!(s.expose(), b"1234567890");
        assert_eq!(&*s.to_base32(), "GEZDGNBVGY3TQOJQ");
        assert!(Secret::from_base32("1!").is_none());
    }

    #[test]
    fn codes_are_trimmed_and_inner_spaces_dropped() {
        assert_eq!(&*normalize_code(" 123 456\n", 6).unwrap(), b"123456");
        assert!(normalize_code("12345", 6).is_none());
        assert!(normalize_code("1234567", 6).is_none());
        assert!(normalize_code("12a456", 6).is_none());
        assert!(normalize_code("+12345", 6).is_none());
        assert!(normalize_code("１２３４５６", 6).is_none());
        assert!(normalize_code("123\t456", 6).is_none());
    }

    #[test]
    fn runs_shaped_like_hex_or_base32_keys_are_masked_and_words_are_not() {
        assert_eq!(
            mask_key_like("key 3132333435363738393031323334353637383930 in x"),
            "key [masked] in x"
        );
        assert_eq!(
            mask_key_like("GEZDGNBVGY3TQOJQ,gezdgnbvgy3tqojq."),
            "[masked],[masked]."
        );
        let plain = "/home/alice/.config/pam_totp/devices.toml:7: key `device[1].step`";
        assert_eq!(mask_key_like(plain), plain);
        assert_eq!(mask_key_like("0123456789abcde"), "0123456789abcde");
        assert_eq!(mask_key_like("9223372036854775807"), "9223372036854775807");
        assert_eq!(mask_key_like("é0123456789abcdef!"), "é[masked]!");
    }

    #[test]
    fn forward_pass_splits_the_trailing_code() {
        let a = Answer::new("pässword123456".into());
        let (p, c) = a.split_forward_pass(6).unwrap();
        assert_eq!(p.expose(), "pässword");
        assert_eq!(c.expose(), "123456");
        assert!(Answer::new("123".into()).split_forward_pass(6).is_none());
    }

    #[test]
    fn finding_4_a_latin_1_password_is_handed_on_byte_for_byte() {
        // Issue 11, finding 4: answers were read lossily as UTF-8, so a
        // Latin-1 password never worked and distinct passwords collided.
        let a = Answer::from_bytes(b"p\xe4ss\xff123456".to_vec());
        let (p, c) = a.split_forward_pass(6).unwrap();
        assert_eq!(p.expose_bytes(), b"p\xe4ss\xff");
        assert_eq!(c.expose(), "123456");
        let b = Answer::from_bytes(b"p\xe4ss\xfe123456".to_vec());
        assert_ne!(
            b.split_forward_pass(6).unwrap().0.expose_bytes(),
            p.expose_bytes()
        );
        assert!(normalize_code(Answer::from_bytes(b"12345\xff".to_vec()).expose(), 6).is_none());
    }
}
