//! Token input (docs/design.md §4): `normalize_code` yields exactly
//! `digits` ASCII digits, and exactly those of the input once surrounding
//! white space is trimmed and inner spaces dropped; anything else is None.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::secret::{normalize_code, Answer};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let digits = if selector & 1 == 0 { 6 } else { 8 };
    // The module reads answers as bytes; only the code needs to be text.
    let answer = Answer::from_bytes(rest.to_vec());
    let input = answer.expose();
    let expected: Option<String> = {
        let trimmed = input.trim();
        let kept: String = trimmed.chars().filter(|c| *c != ' ').collect();
        (trimmed.len() <= 64
            && kept.len() == digits as usize
            && kept.bytes().all(|b| b.is_ascii_digit()))
        .then_some(kept)
    };
    match normalize_code(input, digits) {
        Some(code) => {
            assert_eq!(code.len(), digits as usize);
            assert!(code.iter().all(u8::is_ascii_digit));
            assert_eq!(Some(code.as_slice()), expected.as_deref().map(str::as_bytes));
        }
        None => assert!(expected.is_none(), "refused {input:?}"),
    }
    // forward_pass: the password part is the bytes before the code, as is.
    if let Some((password, code)) = answer.split_forward_pass(digits as usize) {
        let mut joined = password.expose_bytes().to_vec();
        joined.extend_from_slice(code.expose_bytes());
        assert_eq!(joined, rest);
    }
});
