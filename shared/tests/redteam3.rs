//! Red-team findings, third round (branch `redteam3`, on the serde TOML
//! reader and the posix crate): one regression test per finding, named
//! after it, each seen failing on the code it was written against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use shared::device::DeviceFile;

/// One confirmed device, then `extra` lines in its table (line 7 on).
fn device_file(extra: &str) -> String {
    format!(
        "version = 1\n\n[[device]]\nname = \"phone\"\n\
         key = \"3132333435363738393031323334353637383930\"\nconfirmed = true\n{extra}"
    )
}

fn error(text: &str) -> String {
    match DeviceFile::parse(text, Path::new("/x/devices.toml")) {
        Ok(file) => panic!("accepted: {file:?}"),
        Err(e) => e.to_string(),
    }
}

/// Finding R3-1. A table whose key is toml_datetime's private field name
/// was read as a datetime (toml 0.8 and 1): a table stood in for a
/// timestamp, its other keys were dropped unchecked, and a number under
/// that key was quoted whole in an error that named no key.
#[test]
fn finding_r3_1_a_table_with_toml_s_private_datetime_key_is_not_a_datetime() {
    let e = error(&device_file(
        "throttling_failure_timestamp = { \"$__toml_private_datetime\" = \
         \"2026-01-01T00:00:00Z\", unchecked = \"anything\" }\n",
    ));
    assert_eq!(
        e,
        "/x/devices.toml:7: key `device[1].throttling_failure_timestamp`: expected a \
         date-time such as 2026-11-28T06:13:19Z, found table"
    );
    let e = error(&device_file(
        "created_at = { \"$__toml_private_datetime\" = 87654321 }\n",
    ));
    assert!(
        !e.contains("87654321"),
        "a number from the file was quoted: {e}"
    );
    assert!(
        e.starts_with("/x/devices.toml:7: key `device[1].created_at`:"),
        "{e}"
    );
    // At the top, the name is not a plain key: an unknown key, unnamed.
    let e = error(&format!(
        "\"$__toml_private_datetime\" = \"2026-01-01T00:00:00Z\"\n{}",
        device_file("")
    ));
    assert!(e.contains("unknown key"), "{e}");
}

/// Finding R3-1, the span half. With toml 0.8 a table made by dotted keys
/// comes without a span, and keys named like serde_spanned's private
/// fields in it were read as the span protocol: `drift` became the value
/// 5 the file forged, with a span it chose, and a value under the start
/// field was quoted in the error.
#[test]
fn finding_r3_1_keys_named_like_serde_spanned_s_fields_forge_no_value() {
    let e = error(&device_file(
        "drift.\"$__serde_spanned_private_start\" = 0\n\
         drift.\"$__serde_spanned_private_end\" = 1\n\
         drift.\"$__serde_spanned_private_value\" = 5\n",
    ));
    // The line: finding R3-2's test (toml 0.8 gives this table no span).
    assert!(
        e.ends_with(": key `device[1].drift`: expected an integer, found table"),
        "{e}"
    );
    for value in ["-87654321", "\"hunter2 hunter2\""] {
        let e = error(&device_file(&format!(
            "drift.\"$__serde_spanned_private_start\" = {value}\n"
        )));
        assert!(
            !e.contains("87654321") && !e.contains("hunter2"),
            "a value from the file was quoted: {e}"
        );
        assert!(e.contains("key `device[1].drift`"), "{e}");
    }
}

/// Finding R3-2. With toml 0.8 (Debian 13) a table made by dotted keys
/// comes without a span, and an error about it, or about a key missing
/// from it, named line 1 of the file instead of the key's line.
#[test]
fn finding_r3_2_an_error_about_a_table_made_by_dotted_keys_names_the_key_s_line() {
    assert_eq!(
        error(&device_file("drift.x = 1\n")),
        "/x/devices.toml:7: key `device[1].drift`: expected an integer, found table"
    );
    let e = error(
        &device_file("").replace("[[device]]", "backup_codes.confirmed = true\n\n[[device]]"),
    );
    assert!(
        e.starts_with("/x/devices.toml:3: key `backup_codes."),
        "{e}"
    );
}

/// Finding R3-6. toml 0.8's own messages quote key names ("duplicate key
/// `\"hunter 2\"` in table `device`"), where our errors never show a name
/// that is not a plain key (a key or a password pasted as a name).
#[test]
fn finding_r3_6_a_parser_message_quotes_no_name_that_is_not_a_plain_key() {
    let e = error(&device_file("\"hunter 2\" = 1\n\"hunter 2\" = 2\n"));
    assert!(!e.contains("hunter"), "{e}");
    assert!(e.starts_with("/x/devices.toml:8: not valid TOML: "), "{e}");
    // Plain names and the parser's own symbols are still shown.
    let e = error(&device_file("x = = 1\n"));
    assert!(e.contains("`=`") || e.contains("expected"), "{e}");
}
