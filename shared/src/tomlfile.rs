//! Strict reading of TOML tables with positions, so that every error names
//! the file, the line and the key. Shared by the device file and settings.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// A parsed document and where it came from.
pub(crate) struct Doc<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Doc<'a> {
    /// Parses `text`; a syntax error names the line.
    pub fn parse(path: &'a Path, text: &'a str) -> Result<(Self, Spanned<DeTable<'a>>)> {
        let doc = Doc { path, text };
        match DeTable::parse(text) {
            Ok(table) => Ok((doc, table)),
            Err(e) => {
                let line = e.span().map(|s| doc.line_of(s.start));
                let message = e.message().trim().replace('\n', "; ");
                Err(Error::invalid(
                    path,
                    line,
                    None,
                    format!("not valid TOML: {message}"),
                ))
            }
        }
    }

    /// 1-based line number of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// An error at `span` about `key`.
    pub fn error(&self, span: Range<usize>, key: &str, problem: impl Into<String>) -> Error {
        Error::invalid(
            self.path,
            Some(self.line_of(span.start)),
            Some(key),
            problem,
        )
    }
}

/// A string value and where it is.
pub(crate) type Located<'d> = (&'d str, Range<usize>);

/// Reads the keys of one table, tracking which were read so that any key
/// left over is reported as unknown.
pub(crate) struct Fields<'d, 'i> {
    doc: &'d Doc<'d>,
    /// Dotted prefix for error messages: "" at the top, "device[2]" inside.
    prefix: String,
    entries: Vec<(&'d str, Range<usize>, &'d Spanned<DeValue<'i>>, bool)>,
    /// Where the table starts, for "missing key" errors.
    span: Range<usize>,
}

impl<'d, 'i> Fields<'d, 'i> {
    pub fn new(doc: &'d Doc<'d>, table: &'d DeTable<'i>, span: Range<usize>, prefix: &str) -> Self {
        let entries = table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v, false))
            .collect();
        Fields {
            doc,
            prefix: prefix.to_owned(),
            entries,
            span,
        }
    }

    /// The dotted name of `key` in this table.
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `key` and its span, marking it read.
    pub fn take(&mut self, key: &str) -> Option<(&'d DeValue<'i>, Range<usize>)> {
        let entry = self.entries.iter_mut().find(|e| e.0 == key)?;
        entry.3 = true;
        Some((entry.2.get_ref(), entry.2.span()))
    }

    fn type_error(&self, key: &str, span: Range<usize>, want: &str, got: &DeValue<'_>) -> Error {
        self.doc.error(
            span,
            &self.name(key),
            format!("expected {want}, found {}", got.type_str()),
        )
    }

    /// An error about `key`, at its value (or at the table when absent).
    pub fn error_at(
        &self,
        key: &str,
        span: Option<Range<usize>>,
        problem: impl Into<String>,
    ) -> Error {
        let span = span.unwrap_or_else(|| self.span.clone());
        self.doc.error(span, &self.name(key), problem)
    }

    /// A required key.
    pub fn missing(&self, key: &str) -> Error {
        self.error_at(key, None, "missing; this key is required")
    }

    /// An integer in `min..=max`, if present.
    pub fn int_incl(&mut self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        let DeValue::Integer(i) = value else {
            return Err(self.type_error(key, span, "an integer", value));
        };
        let parsed = i64::from_str_radix(i.as_str(), i.radix()).ok();
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            // A short number is quoted; a long one may be a key pasted
            // into the wrong field (issue 11, finding 7).
            _ if i.as_str().len() <= MAX_QUOTED_NUMBER => Err(self.error_at(
                key,
                Some(span),
                format!("{} is out of range; allowed: {min} to {max}", i.as_str()),
            )),
            _ => Err(self.error_at(
                key,
                Some(span),
                format!("the value is out of range; allowed: {min} to {max}"),
            )),
        }
    }

    /// A string, if present.
    pub fn string(&mut self, key: &str) -> Result<Option<(&'d str, Range<usize>)>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            DeValue::String(s) => Ok(Some((s.as_ref(), span))),
            other => Err(self.type_error(key, span, "a string", other)),
        }
    }

    /// An array of strings, if present; each with its own span.
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<Located<'d>>>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = value else {
            return Err(self.type_error(key, span, "an array of strings", value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok((s.as_ref(), item.span())),
                other => Err(self.type_error(key, item.span(), "a string", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A boolean, if present.
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            DeValue::Boolean(b) => Ok(Some(*b)),
            other => Err(self.type_error(key, span, "true or false", other)),
        }
    }

    /// A UTC date-time, if present.
    pub fn timestamp(&mut self, key: &str) -> Result<Option<Timestamp>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            DeValue::Datetime(dt) => Timestamp::from_toml(dt)
                .map(Some)
                .map_err(|problem| self.error_at(key, Some(span), problem)),
            other => {
                Err(self.type_error(key, span, "a date-time such as 2026-11-28T06:13:19Z", other))
            }
        }
    }

    /// A sub-table, if present.
    pub fn table(&mut self, key: &str) -> Result<Option<(&'d DeTable<'i>, Range<usize>)>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            DeValue::Table(t) => Ok(Some((t, span))),
            other => Err(self.type_error(key, span, "a table", other)),
        }
    }

    /// An array of tables (`[[key]]`), if present.
    pub fn tables(&mut self, key: &str) -> Result<Vec<(&'d DeTable<'i>, Range<usize>)>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(items) = value else {
            return Err(self.type_error(key, span, "an array of tables", value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Table(t) => Ok((t, item.span())),
                other => Err(self.type_error(key, item.span(), "a table", other)),
            })
            .collect()
    }

    /// Fails on the first key that was never read.
    pub fn finish(self) -> Result<()> {
        match self.entries.iter().find(|e| !e.3) {
            None => Ok(()),
            // The name is quoted only when it cannot be a value in
            // disguise: a key pasted as a name must not reach syslog
            // (issue 11, finding 7).
            Some((key, span, _, _)) if is_plain_key(key) => Err(self.doc.error(
                span.clone(),
                &self.name(key),
                "unknown key (misspelt, or from a newer version?)",
            )),
            Some((_, span, _, _)) => Err(self.doc.error(
                span.clone(),
                &self.name("?"),
                "unknown key (misspelt, or from a newer version?); its name is not shown",
            )),
        }
    }
}

/// The longest number an error quotes.
const MAX_QUOTED_NUMBER: usize = 6;
/// The longest key name an error quotes.
const MAX_QUOTED_KEY: usize = 32;

/// Whether a key name from the file may be quoted in an error: short and
/// only `[A-Za-z0-9_.-]`, so never a key, a code or an escape sequence.
pub(crate) fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_QUOTED_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && crate::secret::mask_key_like(key) == key
}

/// Writes `s` as a TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
