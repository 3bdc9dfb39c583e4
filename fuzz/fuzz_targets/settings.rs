//! The settings file (docs/design.md §5): never a panic; an error is one
//! line with no run shaped like a key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shared::secret::mask_key_like;
use shared::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::parse(text, Path::new("/fuzz/pam_totp.toml")) {
        Ok(settings) => {
            if let Some(max) = settings.policy.throttle_max {
                assert!(max >= 1, "throttle_max 0 accepted");
            }
            assert!(settings.policy.throttle_factor <= 86_400);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n') && !message.contains('\r'), "{message:?}");
            assert_eq!(mask_key_like(&message), message, "key-shaped run in an error");
        }
    }
});
