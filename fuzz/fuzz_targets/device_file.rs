//! The device file (docs/design.md §3): whatever the bytes, parsing never
//! panics; a file that parses round-trips through its canonical text; an
//! error is one line and holds no run shaped like a key (issue 11,
//! finding 7: keys pasted into the wrong field reached syslog).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shared::device::DeviceFile;
use shared::secret::mask_key_like;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/devices.toml");
    match DeviceFile::parse(text, path) {
        Ok(file) => {
            let canonical = file.to_toml("fuzz");
            let again = DeviceFile::parse(&canonical, path)
                .unwrap_or_else(|e| panic!("canonical text does not parse: {e}"));
            assert_eq!(again, file, "parse(to_toml(x)) != x");
            assert_eq!(again.to_toml("fuzz"), canonical, "canonical text not stable");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n') && !message.contains('\r'), "{message:?}");
            assert_eq!(mask_key_like(&message), message, "key-shaped run in an error");
        }
    }
});
