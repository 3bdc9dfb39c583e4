//! `import-google-authenticator`'s parser (enroll/src/google.rs, used as
//! is): never a panic; a result is within pam-totp's limits; an error is
//! one line with no run shaped like a key (the first line is a secret).
#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../enroll/src/google.rs"]
mod google;

use libfuzzer_sys::fuzz_target;
use shared::secret::mask_key_like;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match google::GaFile::parse(text) {
        Ok(file) => {
            assert!(!file.secret.is_empty());
            let _ = file.tolerance();
            for note in &file.notes {
                assert!(!note.contains('\n'), "{note:?}");
                assert_eq!(&mask_key_like(note), note, "key-shaped run in a note");
            }
        }
        Err(message) => {
            assert!(!message.contains('\n') && !message.contains('\r'), "{message:?}");
            assert_eq!(mask_key_like(&message), message, "key-shaped run in an error");
        }
    }
});
