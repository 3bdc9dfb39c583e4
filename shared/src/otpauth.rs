//! The `otpauth://` URL, byte for byte as django-otp's `config_url` builds it.

use crate::oath::Algorithm;
use crate::secret::Secret;

/// What the URL describes.
#[derive(Debug)]
pub struct UrlParams<'a> {
    /// The account name (the user).
    pub user: &'a str,
    /// The device key.
    pub key: &'a Secret,
    /// HMAC hash; django-otp always says SHA1.
    pub algorithm: Algorithm,
    /// 6 or 8.
    pub digits: u32,
    /// Seconds per step.
    pub step: u32,
    /// `OTP_TOTP_ISSUER`; `None` or empty = no issuer.
    pub issuer: Option<&'a str>,
    /// `OTP_TOTP_IMAGE`; `None` or empty = no image.
    pub image: Option<&'a str>,
}

/// django-otp's `TOTPDevice.config_url`:
/// `otpauth://totp/LABEL?secret=…&algorithm=…&digits=…&period=…[&issuer=…][&image=…]`
/// where LABEL is `quote("issuer:user")` (colons removed from the issuer),
/// the secret is padded base32 (`=` as `%3D`), the issuer `quote()`d and the
/// image `quote(safe=':/')`d.
pub fn config_url(p: &UrlParams<'_>) -> String {
    let mut label = p.user.to_owned();
    let mut query = format!(
        "secret={}&algorithm={}&digits={}&period={}",
        quote_plus(&p.key.to_base32()),
        p.algorithm.name(),
        p.digits,
        p.step
    );
    if let Some(issuer) = p.issuer.filter(|i| !i.is_empty()) {
        let issuer = issuer.replace(':', "");
        label = format!("{issuer}:{label}");
        query.push_str("&issuer=");
        query.push_str(&quote(&issuer, b"/"));
    }
    if let Some(image) = p.image.filter(|i| !i.is_empty()) {
        query.push_str("&image=");
        query.push_str(&quote(image, b":/"));
    }
    format!("otpauth://totp/{}?{query}", quote(&label, b"/"))
}

/// Python's `urllib.parse.quote(s, safe)`: UTF-8, percent-encoding all but
/// ASCII letters, digits, `_.-~` and the `safe` bytes.
fn quote(s: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Python's `quote_plus` with no safe bytes, as `urlencode` applies it.
fn quote_plus(s: &str) -> String {
    quote(s, b" ").replace(' ', "+")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn python_quote_keeps_only_unreserved_and_safe_bytes() {
        assert_eq!(quote("a b/c:d~é", b"/"), "a%20b/c%3Ad~%C3%A9");
        assert_eq!(
            quote("https://x.y/i.png?a=1", b":/"),
            "https://x.y/i.png%3Fa%3D1"
        );
    }

    #[test]
    fn sha256_devices_name_their_algorithm() {
        let key = Secret::from_hex("3132333435363738393031323334353637383930").unwrap();
        let url = config_url(&UrlParams {
            user: "alice",
            key: &key,
            algorithm: Algorithm::Sha256,
            digits: 6,
            step: 30,
            issuer: None,
            image: None,
        });
        assert!(url.contains("&algorithm=SHA256&"), "{url}");
    }
}
