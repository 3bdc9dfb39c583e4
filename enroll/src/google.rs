//! Reading a `~/.google_authenticator` file (libpam-google-authenticator):
//! first line the base32 secret, then `" OPTION args` lines, then 8-digit
//! scratch codes.

use shared::device::Params;
use shared::secret::Secret;

/// What google-authenticator's WINDOW_SIZE is when the file does not say.
pub const DEFAULT_WINDOW: u32 = 3;
/// pam-totp's largest tolerance (docs/design.md §3).
pub const MAX_TOLERANCE: u32 = 10;

/// Whether an option name may be quoted back: short, `[A-Za-z0-9_.-]`,
/// and not shaped like a key.
fn is_plain_option(name: &str) -> bool {
    name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && shared::secret::mask_key_like(name) == name
}

/// The parts of a google-authenticator file that map onto a device.
#[derive(Debug)]
pub struct GaFile {
    /// The shared secret.
    pub secret: Secret,
    /// `STEP_SIZE`, default 30.
    pub step: u32,
    /// `WINDOW_SIZE`, default 3.
    pub window: u32,
    /// The latest step in `DISALLOW_REUSE`, if any.
    pub last_t: Option<i64>,
    /// Whether `DISALLOW_REUSE` was set.
    pub disallow_reuse: bool,
    /// Number of scratch codes.
    pub scratch_codes: usize,
    /// The scratch codes (8 digits each), for the backup-code set.
    pub scratch: Vec<zeroize::Zeroizing<String>>,
    /// Things the import leaves out or changes, for the user to read.
    pub notes: Vec<String>,
}

impl GaFile {
    /// Parses the file; the error names the line and says what is wrong.
    pub fn parse(text: &str) -> Result<GaFile, String> {
        let mut lines = text.lines();
        let first = lines
            .next()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or("the file is empty; it should start with the base32 secret")?;
        let secret = Secret::from_base32(first)
            .filter(|s| !s.is_empty())
            .ok_or("line 1: the secret is not valid base32")?;
        let mut step = 30;
        let mut window = DEFAULT_WINDOW;
        let mut last_t: Option<i64> = None;
        let mut disallow_reuse = false;
        let mut totp = false;
        let mut hotp = false;
        let mut scratch_codes = 0;
        let mut scratch = Vec::new();
        let mut notes = Vec::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(opt) = line.strip_prefix('"') {
                let mut words = opt.split_whitespace();
                let key = words.next().unwrap_or("");
                let args: Vec<&str> = words.collect();
                let num = |what: &str| -> Result<i64, String> {
                    args.first()
                        .and_then(|a| a.parse::<i64>().ok())
                        .ok_or(format!("line {n}: {what} needs a number"))
                };
                match key {
                    "TOTP_AUTH" => totp = true,
                    "HOTP_COUNTER" => hotp = true,
                    "STEP_SIZE" => {
                        let s = num("STEP_SIZE")?;
                        step = u32::try_from(s)
                            .ok()
                            .filter(|s| shared::limits::STEP.contains(&i64::from(*s)))
                            .ok_or(format!("line {n}: STEP_SIZE {s} is not 1 to 3600 seconds"))?;
                    }
                    "WINDOW_SIZE" => {
                        let w = num("WINDOW_SIZE")?;
                        window = u32::try_from(w)
                            .ok()
                            .filter(|w| (1..=1000).contains(w))
                            .ok_or(format!("line {n}: WINDOW_SIZE {w} is out of range"))?;
                    }
                    "DISALLOW_REUSE" => {
                        disallow_reuse = true;
                        for a in &args {
                            let t: i64 = a.parse().map_err(|_| {
                                format!("line {n}: a DISALLOW_REUSE entry is not a number")
                            })?;
                            if t >= 0 {
                                last_t = Some(last_t.map_or(t, |l| l.max(t)));
                            }
                        }
                    }
                    "RATE_LIMIT" => notes.push(
                        "RATE_LIMIT is not imported: pam-totp throttles with exponential back-off instead"
                            .to_owned(),
                    ),
                    // Quoted only when it cannot be the secret pasted on the
                    // wrong line (issue 11, finding 7; found by fuzzing).
                    other if is_plain_option(other) => {
                        notes.push(format!("option `{other}` (line {n}) is ignored"))
                    }
                    _ => notes.push(format!("an unknown option (line {n}) is ignored")),
                }
                continue;
            }
            if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
                scratch_codes += 1;
                scratch.push(zeroize::Zeroizing::new(line.to_owned()));
                continue;
            }
            return Err(format!(
                "line {n}: neither an option (\" NAME ...) nor an 8-digit scratch code"
            ));
        }
        if hotp || !totp {
            return Err(
                "it holds a counter-based (HOTP) secret; pam-totp accepts only time-based codes: \
                 make a TOTP secret with `google-authenticator -t` or `totp-enroll add`"
                    .to_owned(),
            );
        }
        Ok(GaFile {
            secret,
            step,
            window,
            last_t,
            disallow_reuse,
            scratch_codes,
            scratch,
            notes,
        })
    }

    /// google-authenticator accepts the codes of `window` consecutive steps
    /// centred on now; pam-totp's tolerance is the reach on each side:
    /// (window - 1) / 2, at most 10. An even window loses its extra step on
    /// the late side (fail closed).
    pub fn tolerance(&self) -> u32 {
        ((self.window.max(1) - 1) / 2).min(MAX_TOLERANCE)
    }

    /// The device parameters: SHA1, 6 digits, t0 = 0, as google-authenticator
    /// always uses.
    pub fn params(&self) -> Params {
        Params {
            step: self.step,
            tolerance: self.tolerance(),
            ..Params::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_totp_file_maps_every_option() {
        let f = GaFile::parse(
            "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 1700000000\n\" STEP_SIZE 60\n\
             \" WINDOW_SIZE 17\n\" DISALLOW_REUSE 28333333 28333335 28333334\n\" TOTP_AUTH\n\
             12345678\n87654321\n",
        )
        .unwrap();
        assert_eq!(f.secret.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
        assert_eq!((f.step, f.window, f.tolerance()), (60, 17, 8));
        assert_eq!(f.last_t, Some(28333335));
        assert!(f.disallow_reuse);
        assert_eq!(f.scratch_codes, 2);
        assert_eq!(f.notes.len(), 1);
    }

    #[test]
    fn the_default_window_is_tolerance_one_and_big_windows_are_capped() {
        let f = GaFile::parse("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n").unwrap();
        assert_eq!((f.step, f.tolerance(), f.last_t), (30, 1, None));
        let f = GaFile::parse("JBSWY3DPEHPK3PXP\n\" WINDOW_SIZE 4\n\" TOTP_AUTH\n").unwrap();
        assert_eq!(f.tolerance(), 1);
        let f = GaFile::parse("JBSWY3DPEHPK3PXP\n\" WINDOW_SIZE 99\n\" TOTP_AUTH\n").unwrap();
        assert_eq!(f.tolerance(), 10);
    }

    #[test]
    fn hotp_files_and_garbage_are_refused() {
        let e = GaFile::parse("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 1\n").unwrap_err();
        assert!(e.contains("HOTP"), "{e}");
        assert!(GaFile::parse("JBSWY3DPEHPK3PXP\n")
            .unwrap_err()
            .contains("HOTP"));
        assert!(GaFile::parse("").is_err());
        assert!(GaFile::parse("not base32!\n\" TOTP_AUTH\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(GaFile::parse("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\nhello\n")
            .unwrap_err()
            .contains("line 3"));
    }
}
