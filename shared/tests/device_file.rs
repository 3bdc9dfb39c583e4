//! Bad device files (docs/design.md §3): every kind of bad content is refused with
//! one line that names the file, the line and the key, and says what is
//! allowed. Exact strings, because these sentences are what an administrator
//! reads in syslog and in `totp-enroll`'s output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use shared::device::{DeviceFile, MAX_DEVICES};
use shared::error::Error;
use shared::Timestamp;

const PATH: &str = "/x/devices.toml";
/// RFC 4226's test key.
const KEY: &str = "3132333435363738393031323334353637383930";

/// A valid one-device file; `line7` (maybe several lines) starts at line 7.
fn file_with(line7: &str) -> String {
    format!(
        "version = 1\n\
         \n\
         [[device]]\n\
         name = \"phone\"\n\
         key = \"{KEY}\"\n\
         confirmed = true\n\
         {line7}\n"
    )
}

fn parse(text: &str) -> Result<DeviceFile, Error> {
    DeviceFile::parse(text, Path::new(PATH))
}

/// `text` is refused with exactly `expected` (the path is prepended), as an
/// [`Error::Invalid`], on one line.
#[track_caller]
fn refused(text: &str, expected: &str) {
    let err = parse(text).expect_err("accepted a bad file");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    assert_eq!(message, format!("{PATH}{expected}"));
}

#[test]
fn the_base_file_of_these_tests_is_valid() {
    let file = parse(&file_with("")).unwrap();
    assert_eq!(file.devices.len(), 1);
    assert_eq!(file.devices[0].name, "phone");
}

/// A refusal by the TOML parser itself: file, line and the parser's one-line
/// message, whose words differ between toml 0.8 (Debian 13) and 1.
fn refused_by_parser(text: &str, line: usize, any_of: &[&str]) {
    let message = parse(text).expect_err("accepted a bad file").to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    let prefix = format!("{PATH}:{line}: not valid TOML: ");
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        any_of.iter().any(|m| message[prefix.len()..].contains(m)),
        "{message}"
    );
}

#[test]
fn a_toml_syntax_error_names_the_file_and_the_line() {
    refused_by_parser(
        "version = 1\n[[device]\n",
        2,
        &["unclosed array table, expected `]`", "invalid table header"],
    );
    refused_by_parser(&file_with("step = 30\nstep = 31"), 8, &["duplicate key"]);
}

#[test]
fn a_syntax_error_on_the_key_line_does_not_echo_the_key() {
    for bad in [format!("\"{KEY}"), format!("{KEY}zz"), format!("'{KEY}")] {
        let text = file_with("").replace(&format!("\"{KEY}\""), &bad);
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{PATH}:5: not valid TOML: ")),
            "{message}"
        );
        assert!(!message.contains("31323334"), "key echoed: {message}");
    }
}

#[test]
fn a_missing_version_is_refused() {
    refused("\n", ":1: key `version`: missing; this key is required");
    refused(
        "[[device]]\nname = \"phone\"\n",
        ":1: key `version`: missing; this key is required",
    );
}

#[test]
fn an_unsupported_version_is_refused_at_its_line() {
    refused(
        "# a newer file\nversion = 2\n",
        ":2: key `version`: unsupported version 2; this build reads version 1",
    );
    refused(
        "version = 0\n",
        ":1: key `version`: unsupported version 0; this build reads version 1",
    );
}

#[test]
fn an_unknown_key_is_refused_at_the_top_and_in_a_device() {
    refused(
        "version = 1\nfoo = 3\n",
        ":2: key `foo`: unknown key (misspelt, or from a newer version?)",
    );
    refused(
        &file_with("colour = \"blue\""),
        ":7: key `device[1].colour`: unknown key (misspelt, or from a newer version?)",
    );
    // A dotted key and a sub-table are unknown keys of the device too.
    refused(
        &file_with("step = 30\nx.y = 1"),
        ":8: key `device[1].x`: unknown key (misspelt, or from a newer version?)",
    );
    refused(
        &file_with("[device.sub]"),
        ":7: key `device[1].sub`: unknown key (misspelt, or from a newer version?)",
    );
    // The second device is `device[2]`, on its own line numbers.
    refused(
        &file_with(&format!(
            "\n[[device]]\nname = \"laptop\"\nkey = \"{KEY}\"\nconfirmed = true\nstpe = 30"
        )),
        ":12: key `device[2].stpe`: unknown key (misspelt, or from a newer version?)",
    );
}

#[test]
fn a_missing_required_key_names_the_device_table() {
    refused(
        &format!("version = 1\n\n[[device]]\nkey = \"{KEY}\"\nconfirmed = true\n"),
        ":3: key `device[1].name`: missing; this key is required",
    );
    refused(
        "version = 1\n\n[[device]]\nname = \"phone\"\nconfirmed = true\n",
        ":3: key `device[1].key`: missing; this key is required",
    );
    refused(
        &format!("version = 1\n\n[[device]]\nname = \"phone\"\nkey = \"{KEY}\"\n"),
        ":3: key `device[1].confirmed`: missing; this key is required",
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_expected_and_the_found_type() {
    refused(
        "version = \"1\"\n",
        ":1: key `version`: expected an integer, found string",
    );
    refused(
        &file_with("step = \"30\""),
        ":7: key `device[1].step`: expected an integer, found string",
    );
    refused(
        &file_with("step = 30.0"),
        ":7: key `device[1].step`: expected an integer, found float",
    );
    refused(
        &file_with("").replace("confirmed = true", "confirmed = \"yes\""),
        ":6: key `device[1].confirmed`: expected true or false, found string",
    );
    refused(
        &file_with("").replace(&format!("\"{KEY}\""), "1234567890"),
        ":5: key `device[1].key`: expected a string, found integer",
    );
    refused(
        &file_with("created_at = \"2026-01-01T00:00:00Z\""),
        ":7: key `device[1].created_at`: expected a date-time such as 2026-11-28T06:13:19Z, found string",
    );
}

#[test]
fn an_out_of_range_value_names_the_allowed_range() {
    let cases = [
        ("step = 0", "step", "0 is out of range; allowed: 1 to 3600"),
        (
            "step = 3601",
            "step",
            "3601 is out of range; allowed: 1 to 3600",
        ),
        (
            "tolerance = 11",
            "tolerance",
            "11 is out of range; allowed: 0 to 10",
        ),
        (
            "tolerance = -1",
            "tolerance",
            "-1 is out of range; allowed: 0 to 10",
        ),
        (
            "drift = 32768",
            "drift",
            "32768 is out of range; allowed: -32768 to 32767",
        ),
        (
            "drift = -32769",
            "drift",
            "-32769 is out of range; allowed: -32768 to 32767",
        ),
        (
            "last_t = -2",
            "last_t",
            "-2 is out of range; allowed: -1 to 9223372036854775807",
        ),
        (
            "throttling_failure_count = -1",
            "throttling_failure_count",
            "-1 is out of range; allowed: 0 to 4294967295",
        ),
        (
            "t0 = 9007199254740993",
            "t0",
            "the value is out of range; allowed: -9007199254740992 to 9007199254740992",
        ),
    ];
    for (line, key, problem) in cases {
        refused(
            &file_with(line),
            &format!(":7: key `device[1].{key}`: {problem}"),
        );
    }
}

/// A number too long for any field: toml 1 hands it over and the range
/// check refuses it; toml 0.8 refuses it while parsing. Either way on its
/// line, and the number is never quoted.
#[test]
fn a_number_past_64_bits_is_refused_on_its_line_without_quoting_it() {
    let text = file_with("last_t = 99999999999999999999");
    let message = parse(&text).expect_err("accepted").to_string();
    assert!(!message.contains("9999999"), "{message}");
    assert!(
        message
            == format!(
                "{PATH}:7: key `device[1].last_t`: the value is out of range; \
             allowed: -1 to 9223372036854775807"
            )
            || message
                == format!("{PATH}:7: not valid TOML: number too large to fit in target type"),
        "{message}"
    );
}

#[test]
fn the_edges_of_each_range_are_accepted() {
    for line in [
        "step = 1",
        "step = 3600",
        "tolerance = 0",
        "tolerance = 10",
        "drift = -32768",
        "drift = 32767",
        "last_t = -1",
        "last_t = 9223372036854775807",
        "throttling_failure_count = 4294967295",
        "digits = 8",
        // TOML spellings of 30.
        "step = 3_0",
        "step = 0x1e",
    ] {
        parse(&file_with(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

#[test]
fn digits_other_than_6_or_8_are_refused() {
    refused(
        &file_with("digits = 7"),
        ":7: key `device[1].digits`: must be 6 or 8",
    );
    // Not "allowed: 6 to 8", which would suggest that 7 is.
    for digits in ["10", "0", "-6"] {
        refused(
            &file_with(&format!("digits = {digits}")),
            ":7: key `device[1].digits`: must be 6 or 8",
        );
    }
}

#[test]
fn a_bad_key_is_refused_without_echoing_it() {
    let cases = [
        ("3132333435zz", "not an even-length hex string"),
        ("313", "not an even-length hex string"),
        (
            "313233343536373839",
            "a key must be 10 to 64 bytes (20 to 128 hex digits), not 9 bytes",
        ),
    ];
    for (key, problem) in cases {
        let text = file_with("").replace(KEY, key);
        refused(&text, &format!(":5: key `device[1].key`: {problem}"));
        assert!(!parse(&text).unwrap_err().to_string().contains(key));
    }
    let long = "ab".repeat(65);
    refused(
        &file_with("").replace(KEY, &long),
        ":5: key `device[1].key`: a key must be 10 to 64 bytes (20 to 128 hex digits), not 65 bytes",
    );
    // 10 bytes (old imports) and 64 bytes (SHA512) are fine.
    parse(&file_with("").replace(KEY, &"ab".repeat(10))).unwrap();
    parse(&file_with("").replace(KEY, &"ab".repeat(64))).unwrap();
}

#[test]
fn a_bad_device_name_is_refused() {
    let cases = [
        ("\"\"", "a device name must not be empty"),
        (
            "\"a\\u0007b\"",
            "a device name must not contain control characters",
        ),
        (
            "\"\"\"ab\ncd\"\"\"",
            "a device name must not contain control characters",
        ),
    ];
    for (name, problem) in cases {
        refused(
            &file_with("").replace("\"phone\"", name),
            &format!(":4: key `device[1].name`: {problem}"),
        );
    }
    refused(
        &file_with("").replace("phone", &"x".repeat(65)),
        ":4: key `device[1].name`: a device name must be at most 64 bytes",
    );
}

#[test]
fn a_duplicate_device_name_is_refused_at_the_second_one() {
    refused(
        &file_with(&format!(
            "\n[[device]]\nname = \"phone\"\nkey = \"{KEY}\"\nconfirmed = true"
        )),
        ":9: key `device[2].name`: duplicate device name; names must be unique",
    );
}

#[test]
fn an_unknown_algorithm_is_refused_with_the_choices() {
    refused(
        &file_with("algorithm = \"MD5\""),
        ":7: key `device[1].algorithm`: unknown algorithm; use SHA1, SHA256 or SHA512",
    );
    for ok in ["SHA1", "SHA256", "SHA512"] {
        parse(&file_with(&format!("algorithm = \"{ok}\""))).unwrap();
    }
}

#[test]
fn a_date_time_must_say_its_offset() {
    refused(
        &file_with("created_at = 2026-01-01T00:00:00"),
        ":7: key `device[1].created_at`: `2026-01-01T00:00:00` is not a date-time with an offset; \
         write UTC, e.g. 2026-11-28T06:13:19Z",
    );
    refused(
        &file_with("last_used_at = 2026-01-01"),
        ":7: key `device[1].last_used_at`: `2026-01-01` is not a date-time with an offset; \
         write UTC, e.g. 2026-11-28T06:13:19Z",
    );
    // An explicit offset is an instant, kept as UTC.
    let file = parse(&file_with("created_at = 2026-01-01T01:00:00+01:00")).unwrap();
    assert_eq!(
        file.devices[0].created_at,
        Some(Timestamp::from_secs(1_767_225_600))
    );
}

#[test]
fn device_must_be_an_array_of_tables() {
    refused(
        "version = 1\ndevice = 1\n",
        ":2: key `device`: expected an array of tables, found integer",
    );
    refused(
        "version = 1\n[device]\nname = \"x\"\n",
        ":2: key `device`: expected an array of tables, found table",
    );
    refused(
        &format!(
            "version = 1\ndevice = [{{name = \"a\", key = \"{KEY}\", confirmed = true}}, 2]\n"
        ),
        ":2: key `device`: expected a table, found integer",
    );
}

fn devices(n: usize) -> String {
    let mut text = String::from("version = 1\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[device]]\nname = \"d{i}\"\nkey = \"{KEY}\"\nconfirmed = true\n"
        ));
    }
    text
}

#[test]
fn more_than_32_devices_are_refused_at_the_33rd() {
    assert_eq!(parse(&devices(MAX_DEVICES)).unwrap().devices.len(), 32);
    // Each device takes 4 lines after the version line: the 33rd starts at
    // line 2 + 32 * 4.
    refused(
        &devices(MAX_DEVICES + 1),
        ":130: key `device`: too many devices; at most 32",
    );
}

/// A valid file with a `[backup_codes]` table whose lines from line 3 on
/// are `rest` after the required keys.
fn backup_with(rest: &str) -> String {
    format!(
        "version = 1\n[backup_codes]\nhash = \"argon2id\"\nparams = \"m=2048,t=2,p=1\"\n\
         salt = \"00112233445566778899aabbccddeeff\"\ncodes = [\"{H}\"]\n{rest}\n"
    )
}

const H: &str = "5be15be15be15be15be15be15be15be15be15be15be15be15be15be15be15be1";

#[test]
fn a_backup_code_table_is_read_with_its_state() {
    let file = parse(&backup_with(
        "format = \"digits-8\"\nconfirmed = true\nthrottling_failure_count = 2\n\
         throttling_failure_timestamp = 2026-11-28T06:59:30Z",
    ))
    .unwrap();
    let set = file.backup.unwrap();
    assert_eq!(set.remaining(), 1);
    assert_eq!(set.params.to_string(), "m=2048,t=2,p=1");
    assert_eq!(set.format, shared::backup::CodeFormat::Digits8);
    assert_eq!(set.throttling_failure_count, 2);
}

#[test]
fn bad_backup_code_tables_name_the_file_the_line_and_the_key() {
    refused(
        "version = 1\n[backup_codes]\n",
        ":2: key `backup_codes.hash`: missing; this key is required",
    );
    refused(
        &backup_with("").replace("argon2id", "md5"),
        ":3: key `backup_codes.hash`: unknown hash `md5`; this build knows \"argon2id\"",
    );
    refused(
        &backup_with("").replace("m=2048", "m=9999999"),
        ":4: key `backup_codes.params`: `m=9999999,t=2,p=1`: m must be 8 to 65536 KiB",
    );
    refused(
        &backup_with("").replace("00112233", "zz"),
        ":5: key `backup_codes.salt`: must be 8 to 64 bytes of hex",
    );
    refused(
        &backup_with("").replace("[\"", "[\"00\", \""),
        ":6: key `backup_codes.codes`: each code is a hash of 32 bytes in hex",
    );
    refused(
        &backup_with("code = \"abc\""),
        ":7: key `backup_codes.code`: unknown key (misspelt, or from a newer version?)",
    );
    refused(
        &backup_with("format = \"words\""),
        ":7: key `backup_codes.format`: unknown code format `words`; use \"crockford-10\" or \"digits-8\"",
    );
    refused(
        &backup_with("throttling_failure_count = -1"),
        ":7: key `backup_codes.throttling_failure_count`: -1 is out of range; allowed: 0 to 4294967295",
    );
}

#[test]
fn a_file_with_backup_codes_round_trips_through_its_canonical_text() {
    let mut file = parse(&file_with("")).unwrap();
    let new =
        shared::backup::BackupCodes::generate(3, Timestamp::from_secs(1_700_000_000)).unwrap();
    file.backup = Some(new.set);
    let text = file.to_toml("alice");
    assert_eq!(parse(&text).unwrap(), file);
    assert_eq!(parse(&text).unwrap().to_toml("alice"), text);
}

#[test]
fn a_file_over_64_kib_is_refused() {
    let text = format!("version = 1\n#{}\n", "x".repeat(65536));
    refused(&text, ": file is larger than 65536 bytes");
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_are_read_and_lines_still_count() {
    parse(&file_with("").replace('\n', "\r\n")).unwrap();
    parse(&format!("\u{feff}{}", file_with(""))).unwrap();
    refused(
        &file_with("step = 0").replace('\n', "\r\n"),
        ":7: key `device[1].step`: 0 is out of range; allowed: 1 to 3600",
    );
}

#[test]
fn the_canonical_text_reads_back_to_the_same_devices() {
    let text = file_with(
        "algorithm = \"SHA256\"\ndigits = 8\nstep = 60\nt0 = -30\ntolerance = 2\ndrift = -3\n\
         last_t = 12345\ncreated_at = 2026-11-28T06:13:19Z\nlast_used_at = 2026-11-28T07:00:02.5Z\n\
         throttling_failure_count = 4\nthrottling_failure_timestamp = 2026-11-28T06:59:30Z",
    );
    let file = parse(&text).unwrap();
    let again = parse(&file.to_toml("alice")).unwrap();
    assert_eq!(again, file);
    assert_eq!(again.to_toml("alice"), file.to_toml("alice"));
}

#[test]
fn control_characters_from_the_file_never_reach_the_error_line() {
    // A device file can be its user's own (per-user mode), and its errors
    // go to syslog through pam_syslog and to root's terminal through
    // totp-enroll: quoted content must not forge a log line or send an
    // escape sequence.
    refused(
        &file_with("\"x\\nJan  1 sshd[1]: Accepted \\u001b[2J\" = 1"),
        ":7: key `device[1].?`: unknown key (misspelt, or from a newer version?); its name is \
         not shown",
    );
    refused(
        &file_with("algorithm = \"SHA1\\r\\u0007\""),
        ":7: key `device[1].algorithm`: unknown algorithm; use SHA1, SHA256 or SHA512",
    );
}

#[test]
fn the_canonical_text_is_written_into_one_allocation_of_its_exact_size() {
    // A String that grows leaves a copy of the keys behind, unwiped, in
    // the buffer it frees. Worst case: 32 devices, 64-byte keys, long
    // names that quoting doubles, every number and time stamp at its
    // longest.
    use shared::device::{Device, Params};
    use shared::{Algorithm, Secret};
    let params = Params {
        algorithm: Algorithm::Sha512,
        digits: 8,
        step: 3600,
        t0: -(1 << 53),
        tolerance: 10,
    };
    let t = Timestamp::from_micros(1_764_310_399_123_457);
    let mut file = DeviceFile::default();
    for i in 0..MAX_DEVICES {
        let name = format!("{}{i:02}", "\"".repeat(62));
        let mut d = Device::new(&name, Secret::new(vec![0xab; 64]), &params, t);
        d.drift = i16::MIN;
        d.last_t = i64::MAX;
        d.last_used_at = Some(t);
        d.throttling_failure_count = u32::MAX;
        d.throttling_failure_timestamp = Some(t);
        file.add(d).unwrap();
    }
    for n in [1, 4, MAX_DEVICES] {
        let part = DeviceFile {
            devices: file.devices[..n].to_vec(),
            ..DeviceFile::default()
        };
        let text = part.to_toml("alice");
        assert_eq!(text.capacity(), text.len(), "{n} devices");
        assert_eq!(parse(&text).unwrap(), part);
    }
}

#[test]
fn finding_5_a_second_device_with_the_same_key_and_another_clock_is_refused() {
    // Issue 11, finding 5: the same key under another step or t0 would mix
    // the scales of `last_t` (one counter space, two clocks).
    for other in ["step = 60", "t0 = 15"] {
        let text = file_with(&format!(
            "\n[[device]]\nname = \"copy\"\nkey = \"{KEY}\"\nconfirmed = true\n{other}"
        ));
        let err = parse(&text).expect_err(other).to_string();
        assert!(err.contains("key `device[2].key`"), "{err}");
        assert!(!err.contains(KEY), "{err}");
    }
    // The same key with another length and the same clock is allowed.
    parse(&file_with(&format!(
        "\n[[device]]\nname = \"copy\"\nkey = \"{KEY}\"\nconfirmed = true\ndigits = 8"
    )))
    .unwrap();
    // totp-enroll adds through DeviceFile::add, which refuses the same.
    let mut file = parse(&file_with("")).unwrap();
    let mut copy = file.devices[0].clone();
    copy.name = "copy".into();
    copy.step = 60;
    let err = file.add(copy.clone()).unwrap_err();
    assert!(
        err.contains("one key, one clock") && !err.contains(KEY),
        "{err}"
    );
    copy.step = 30;
    copy.digits = 8;
    file.add(copy).unwrap();
}

#[test]
fn finding_7_no_value_from_the_file_is_echoed_in_an_error() {
    // Issue 11, finding 7: a key pasted into the wrong field, as a key
    // name, or swallowed by a string, must never reach syslog.
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    for line in [
        format!("algorithm = \"{KEY}\""),
        format!("algorithm = \"{b32}\""),
        format!("{KEY} = 1"),
        format!("\"{b32}\" = 1"),
        format!(
            "name = \"x{KEY}\"\n[[device]]\nname = \"x{KEY}\"\nkey = \"{KEY}\"\nconfirmed = true"
        ),
    ] {
        let err = parse(&file_with(&line)).expect_err(&line).to_string();
        assert!(!err.contains(KEY) && !err.contains(b32), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn finding_9_unicode_format_and_separator_characters_are_refused_in_device_names() {
    for bad in [
        "\u{202e}lanimret",
        "a\u{200b}b",
        "a\u{2028}b",
        "a\u{2029}b",
        "\u{feff}x",
        "a\u{2066}b",
    ] {
        let text = file_with("").replace("\"phone\"", &format!("\"{bad}\""));
        assert!(parse(&text).is_err(), "{bad:?} accepted");
    }
}

/// A file of 64 KiB can nest 30,000 arrays or inline tables: refused (or
/// read) without exhausting a 2 MiB thread stack, which would kill the
/// PAM application instead of refusing the login.
#[test]
fn deeply_nested_values_do_not_exhaust_the_stack() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let depth = 30_000 / open.len();
        let text = format!(
            "version = 1\nx = {}1{}\n",
            open.repeat(depth),
            close.repeat(depth)
        );
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&text).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .expect("the parse overflowed or panicked");
        let message = outcome.expect_err("a nested unknown key was accepted");
        assert!(message.starts_with(&format!("{PATH}:2: ")), "{message}");
    }
}
