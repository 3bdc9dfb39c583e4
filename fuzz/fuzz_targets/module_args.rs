//! The module arguments of a PAM service line (pam_totp/src/args.rs, used
//! as is): never a panic; an error is one line (it goes to syslog); a
//! parse that succeeds merges over the defaults.
#![no_main]

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../pam_totp/src/args.rs"]
mod args;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libpam hands the words of a line over one by one: split on NUL.
    let words: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    match args::Args::parse(words.iter().copied()) {
        Ok(parsed) => {
            let resolved = args::Resolved::merge(&parsed, shared::Settings::default());
            assert!(!resolved.prompt.is_empty());
            assert!(resolved.policy.throttle_factor <= 86_400);
        }
        Err(message) => {
            assert!(
                !message.chars().any(char::is_control),
                "control character in an error: {message:?}"
            );
        }
    }
});
