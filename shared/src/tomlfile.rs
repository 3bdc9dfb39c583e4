//! Strict reading of TOML tables with positions, so that every error names
//! the file, the line and the key. Shared by the device file and settings.

use std::ops::Range;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// A parsed document and where it came from.
pub(crate) struct Doc<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Doc<'a> {
    /// Parses `text`; a syntax error names the line. The returned table
    /// keeps where each key and value is, and wipes its strings (which hold
    /// device keys) when dropped.
    pub fn parse(path: &'a Path, text: &'a str) -> Result<(Self, Spanned<Table>)> {
        let doc = Doc { path, text };
        match toml::from_str::<Table>(text) {
            Ok(table) => Ok((
                doc,
                Spanned {
                    value: table,
                    span: 0..0,
                },
            )),
            Err(e) => {
                let line = e.span().map(|s| doc.line_of(s.start));
                let message = without_names(&e.message().trim().replace('\n', "; "));
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

/// A TOML value, as read by the `toml` crate through serde, so that the
/// same code builds with the toml Debian 13 packages (0.8) and the current
/// one (1): both implement serde's data model and serde_spanned's span
/// protocol, while their own tree types differ.
#[derive(Debug)]
pub(crate) enum Value {
    /// Wiped when dropped: a device key is a string.
    String(Zeroizing<String>),
    /// Wide enough for any integer a parser hands over (toml 1 gives
    /// numbers past i64 as i128), so that range errors stay ours and
    /// never quote a long number.
    Integer(i128),
    /// Its value is never needed: no setting is a float.
    Float,
    Boolean(bool),
    /// The RFC 3339 text the parser gives for any TOML date or time.
    Datetime(String),
    Array(Vec<Spanned<Value>>),
    Table(Table),
}

impl Value {
    /// The TOML name of the value's type, for errors.
    fn type_str(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

/// A table: its keys in order, each with its span and its value's.
#[derive(Debug, Default)]
pub(crate) struct Table(Vec<(Spanned<Name>, Spanned<Value>)>);

/// A key's name, wiped when dropped like a string value: a key pasted
/// where a name goes is still a key (red-team finding R3-5).
#[derive(Debug)]
pub(crate) struct Name(Zeroizing<String>);

impl Name {
    /// Copied into a buffer of exactly its size.
    fn copy(v: &str) -> Name {
        let mut s = Zeroizing::new(String::with_capacity(v.len()));
        s.push_str(v);
        Name(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_string(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Name, E> {
        Ok(Name::copy(v))
    }

    /// Kept without a copy: this very buffer is wiped when dropped.
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Name, E> {
        Ok(Name(Zeroizing::new(v)))
    }
}

/// A value and the byte range it came from (`0..0` when the parser gave
/// none).
#[derive(Debug)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> Spanned<T> {
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}

/// The names of serde_spanned's protocol, the same in 0.6 (toml 0.8) and 1
/// (toml 1): a spanned value is asked for as a struct of this name, and a
/// parser that knows where the value is answers with a map of these fields.
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
/// toml_datetime's (0.6 and 1): a datetime is a map of one entry, this key
/// and the datetime's text.
const DATETIME: &str = "$__toml_private_datetime";

/// Whether `key` is the parser's own field name `name`, not a key of the
/// file spelt the same: the parser hands its protocol names over as plain
/// strings, while every key of the file comes with its span, which is never
/// empty (a key is at least one byte). A file must not be able to speak the
/// protocol: it would turn a table into a datetime or a forged value, and
/// drop the rest of that table unchecked (red-team finding R3-1).
fn is_protocol(key: &Spanned<Name>, name: &str) -> bool {
    key.span.is_empty() && key.value == *name
}

impl<'de> Deserialize<'de> for Spanned<Value> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, SpannedValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Spanned<Name> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, SpannedKeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match d.deserialize_any(ValueVisitor)? {
            Value::Table(t) => Ok(t),
            other => Err(de::Error::custom(format!(
                "expected a table, found {}",
                other.type_str()
            ))),
        }
    }
}

/// Without a span: the parser had none to give (toml 0.8 has none for a
/// table made by a dotted key, `x.y = 1`).
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned { value, span: 0..0 }
}

/// Reads the rest of serde_spanned's map once its first field name is
/// read: start, end and the value, in that order in both versions.
fn read_spanned<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    first: &str,
    mut map: A,
) -> std::result::Result<Spanned<T>, A::Error> {
    let (mut start, mut end) = (None, None);
    let mut field = Some(first.to_owned());
    loop {
        match field.as_deref() {
            Some(SPANNED_START) => start = Some(map.next_value::<usize>()?),
            Some(SPANNED_END) => end = Some(map.next_value::<usize>()?),
            Some(SPANNED_VALUE) => {
                let value = map.next_value::<T>()?;
                let span = match (start, end) {
                    (Some(s), Some(e)) if s <= e => s..e,
                    _ => 0..0,
                };
                return Ok(Spanned { value, span });
            }
            _ => return Err(de::Error::custom("malformed spanned value")),
        }
        field = map.next_key::<String>()?;
    }
}

/// A value with its span when the parser offers one (`Spanned` asked for
/// as the private struct); any value without.
struct SpannedValueVisitor;

impl<'de> Visitor<'de> for SpannedValueVisitor {
    type Value = Spanned<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_bool(v).map(unspanned)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_i64(v).map(unspanned)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_u64(v).map(unspanned)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_i128(v).map(unspanned)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_u128(v).map(unspanned)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_f64(v).map(unspanned)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_str(v).map(unspanned)
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        ValueVisitor.visit_string(v).map(unspanned)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        ValueVisitor.visit_seq(seq).map(unspanned)
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        match map.next_key::<Spanned<Name>>()? {
            Some(k) if is_protocol(&k, SPANNED_START) => read_spanned(k.value.as_str(), map),
            first => read_table(first, map).map(unspanned),
        }
    }
}

/// A key with its span when the parser offers one; without, e.g. the
/// field name of a datetime's map.
struct SpannedKeyVisitor;

impl<'de> Visitor<'de> for SpannedKeyVisitor {
    type Value = Spanned<Name>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        NameVisitor.visit_str(v).map(unspanned)
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        NameVisitor.visit_string(v).map(unspanned)
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        match map.next_key::<String>()? {
            Some(first) => read_spanned(&first, map),
            None => Err(de::Error::custom("malformed spanned key")),
        }
    }
}

/// A table (or a datetime, which toml gives as a one-entry map) from a map
/// whose first key may already have been read.
fn read_table<'de, A: MapAccess<'de>>(
    first: Option<Spanned<Name>>,
    mut map: A,
) -> std::result::Result<Value, A::Error> {
    let Some(first) = first else {
        return Ok(Value::Table(Table::default()));
    };
    if is_protocol(&first, DATETIME) {
        return Ok(Value::Datetime(map.next_value::<String>()?));
    }
    let mut entries = vec![(first, map.next_value::<Spanned<Value>>()?)];
    while let Some(key) = map.next_key::<Spanned<Name>>()? {
        let value = map.next_value::<Spanned<Value>>()?;
        entries.push((key, value));
    }
    Ok(Value::Table(Table(entries)))
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        Ok(Value::Integer(v))
    }

    /// Past i128: saturated, which is out of every range all the same.
    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        Ok(Value::Integer(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float)
    }

    /// Copied into a buffer that is wiped when dropped.
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        let mut s = Zeroizing::new(String::with_capacity(v.len()));
        s.push_str(v);
        Ok(Value::String(s))
    }

    /// Kept without a copy: this very buffer is wiped when dropped.
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(Zeroizing::new(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let first = map.next_key::<Spanned<Name>>()?;
        read_table(first, map)
    }
}

/// A string value and where it is.
pub(crate) type Located<'d> = (&'d str, Range<usize>);

/// Reads the keys of one table, tracking which were read so that any key
/// left over is reported as unknown.
pub(crate) struct Fields<'d> {
    doc: &'d Doc<'d>,
    /// Dotted prefix for error messages: "" at the top, "device[2]" inside.
    prefix: String,
    entries: Vec<(&'d str, Range<usize>, &'d Spanned<Value>, bool)>,
    /// Where the table starts, for "missing key" errors.
    span: Range<usize>,
}

impl<'d> Fields<'d> {
    pub fn new(doc: &'d Doc<'d>, table: &'d Table, span: Range<usize>, prefix: &str) -> Self {
        let entries = table
            .0
            .iter()
            .map(|(k, v)| (k.value.as_str(), k.span(), v, false))
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

    /// The value of `key` and its span, marking it read. A value the
    /// parser gave no span (toml 0.8: a table made by dotted keys) is
    /// placed at its key, never at line 1 (red-team finding R3-2).
    pub fn take(&mut self, key: &str) -> Option<(&'d Value, Range<usize>)> {
        let entry = self.entries.iter_mut().find(|e| e.0 == key)?;
        entry.3 = true;
        let span = if entry.2.span.is_empty() {
            entry.1.clone()
        } else {
            entry.2.span()
        };
        Some((entry.2.get_ref(), span))
    }

    fn type_error(&self, key: &str, span: Range<usize>, want: &str, got: &Value) -> Error {
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
        let Value::Integer(n) = value else {
            return Err(self.type_error(key, span, "an integer", value));
        };
        match *n {
            n if (i128::from(min)..=i128::from(max)).contains(&n) => Ok(Some(n as i64)),
            // A short number is quoted; a long one may be a key pasted
            // into the wrong field (issue 11, finding 7).
            n if n.to_string().len() <= MAX_QUOTED_NUMBER => Err(self.error_at(
                key,
                Some(span),
                format!("{n} is out of range; allowed: {min} to {max}"),
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
            Value::String(s) => Ok(Some((s.as_str(), span))),
            other => Err(self.type_error(key, span, "a string", other)),
        }
    }

    /// An array of strings, if present; each with its own span.
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<Located<'d>>>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(self.type_error(key, span, "an array of strings", value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                Value::String(s) => Ok((s.as_str(), item.span())),
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
            Value::Boolean(b) => Ok(Some(*b)),
            other => Err(self.type_error(key, span, "true or false", other)),
        }
    }

    /// A UTC date-time, if present.
    pub fn timestamp(&mut self, key: &str) -> Result<Option<Timestamp>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            Value::Datetime(dt) => Timestamp::from_toml(dt)
                .map(Some)
                .map_err(|problem| self.error_at(key, Some(span), problem)),
            other => {
                Err(self.type_error(key, span, "a date-time such as 2026-11-28T06:13:19Z", other))
            }
        }
    }

    /// A sub-table, if present.
    pub fn table(&mut self, key: &str) -> Result<Option<(&'d Table, Range<usize>)>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(None);
        };
        match value {
            Value::Table(t) => Ok(Some((t, span))),
            other => Err(self.type_error(key, span, "a table", other)),
        }
    }

    /// An array of tables (`[[key]]`), if present.
    pub fn tables(&mut self, key: &str) -> Result<Vec<(&'d Table, Range<usize>)>> {
        let Some((value, span)) = self.take(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(self.type_error(key, span, "an array of tables", value));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                Value::Table(t) => Ok((t, item.span())),
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

/// A parser's message with every `quoted` part that could be a name from
/// the file hidden unless [`is_plain_key`] (toml 0.8 quotes key names:
/// "duplicate key `...` in table `...`"; red-team finding R3-6). The
/// parser's own symbols (`=`, `]]`, `\"\"\"`: at most three bytes, no letter
/// or digit) stay.
fn without_names(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            let symbol = part.len() <= 3 && !part.chars().any(char::is_alphanumeric);
            if i % 2 == 0 || symbol || is_plain_key(part) {
                part
            } else {
                "?"
            }
        })
        .collect::<Vec<_>>()
        .join("`")
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
