//! Two `pam_totp.so` lines, one code (docs/design.md §6): the record a line
//! keeps when it accepts a code, and the rule by which a later line of the
//! same PAM transaction takes it (once) instead of asking again.

use shared::store::Store;
use shared::Timestamp;

/// How long an acceptance carries a later line: the rest of one pass
/// through the stack takes milliseconds (modules between the two lines
/// may prompt); a new `pam_authenticate` on a kept handle (a screen
/// locker) that skips the accepting line is asked again once this passed.
pub const ACCEPTANCE_SECS: i64 = 10;

/// What a `pam_totp.so` line keeps when it accepts a code: which line it
/// was (its arguments), for whom, which device file, and when. A later
/// line of the same pass skips the prompt only for the same user and
/// device file (another `path=` or `config=` asks again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acceptance {
    line: String,
    user: String,
    store: String,
    at: Timestamp,
}

impl Acceptance {
    pub(crate) fn new(line: String, user: &str, store: &Store, at: Timestamp) -> Acceptance {
        Acceptance {
            line,
            user: user.to_owned(),
            store: store.to_string(),
            at,
        }
    }

    /// One line per field; a field's own line breaks become spaces.
    pub(crate) fn record(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "v1\n{}\n{}\n{}\n{}",
            clean(&self.line),
            clean(&self.user),
            clean(&self.store),
            self.at.as_micros()
        )
    }

    fn parse(record: &str) -> Option<Acceptance> {
        let mut f = record.split('\n');
        if f.next()? != "v1" {
            return None;
        }
        let (line, user, store) = (f.next()?, f.next()?, f.next()?);
        let at = Timestamp::from_micros(f.next()?.parse().ok()?);
        if f.next().is_some() {
            return None;
        }
        Some(Acceptance {
            line: line.to_owned(),
            user: user.to_owned(),
            store: store.to_owned(),
            at,
        })
    }
}

/// What an earlier acceptance means for this line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Earlier {
    /// Another line accepted a code for the same user and file, moments
    /// ago: this pass is authenticated; do not ask again.
    Accepted,
    /// This same line accepted before: a new pass on the same handle.
    NewPass,
    /// Nothing that counts: ask.
    None,
}

/// The rule for a second `pam_totp.so` line (docs/design.md §6).
pub(crate) fn earlier(record: Option<&str>, this: &Acceptance) -> Earlier {
    let Some(before) = record.and_then(Acceptance::parse) else {
        return Earlier::None;
    };
    if before.line == this.line {
        return Earlier::NewPass;
    }
    let age = this.at.micros_since(before.at);
    if before.user == this.user
        && before.store == this.store
        && (0..=ACCEPTANCE_SECS * 1_000_000).contains(&age)
    {
        Earlier::Accepted
    } else {
        Earlier::None
    }
}

/// A service line's arguments, as one string (which line this is).
pub(crate) fn args_line(raw: &[&[u8]]) -> String {
    raw.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acceptance(line: &str, user: &str, store: &str, secs: i64) -> Acceptance {
        Acceptance {
            line: line.into(),
            user: user.into(),
            store: store.into(),
            at: Timestamp::from_secs(secs),
        }
    }

    #[test]
    fn another_line_s_fresh_acceptance_for_the_same_user_and_file_is_taken() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        let this = acceptance("", "alice", "/f", 100 + ACCEPTANCE_SECS);
        assert_eq!(earlier(Some(&before), &this), Earlier::Accepted);
    }

    #[test]
    fn the_same_line_again_is_a_new_pass_and_is_asked() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        let this = acceptance("nullok", "alice", "/f", 101);
        assert_eq!(earlier(Some(&before), &this), Earlier::NewPass);
    }

    #[test]
    fn another_user_another_file_an_old_or_broken_record_is_asked() {
        let before = acceptance("nullok", "alice", "/f", 100).record();
        for this in [
            acceptance("", "bob", "/f", 100),
            acceptance("", "alice", "/g", 100),
            acceptance("", "alice", "/f", 101 + ACCEPTANCE_SECS),
            acceptance("", "alice", "/f", 99),
        ] {
            assert_eq!(earlier(Some(&before), &this), Earlier::None, "{this:?}");
        }
        let this = acceptance("", "alice", "/f", 100);
        for broken in [
            "",
            "v2\nnullok\nalice\n/f\n100000000",
            "v1\nx\nalice\n/f",
            "v1\na\nb\nc\nnot a time",
        ] {
            assert_eq!(earlier(Some(broken), &this), Earlier::None, "{broken:?}");
        }
        assert_eq!(earlier(None, &this), Earlier::None);
    }
}
