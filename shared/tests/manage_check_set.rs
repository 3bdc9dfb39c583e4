//! `shared::manage::check` and `set` (issue 14, item 3): `check` reads and
//! changes nothing; `set` changes only what it is asked to, in one
//! transaction. The file is the caller's own (owner = the test's uid), as
//! for a user managing their own devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use shared::device::{Device, DeviceFile, Params};
use shared::manage::{self, Settable};
use shared::oath::hotp_value;
use shared::store::{Access, FileSpec, Store};
use shared::verify::current_step;
use shared::{Secret, Timestamp};

const KEY_HEX: &str = "3132333435363738393031323334353637383930";
const NOW: i64 = 1_764_310_000;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new(devices: &[Device]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        let mut file = DeviceFile::default();
        for d in devices {
            file.add(d.clone()).unwrap();
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(file.to_toml("alice").as_bytes()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        Fixture { _dir: dir, path }
    }

    fn store(&self) -> Store {
        let spec = FileSpec {
            path: self.path.clone(),
            owner: posix::unistd::geteuid().as_raw(),
            access: Access::AsCaller,
            home: None,
        };
        Store::file(spec, "alice").at(Timestamp::from_secs(NOW))
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap()
    }
}

fn phone(name: &str) -> Device {
    let mut d = Device::new(
        name,
        Secret::from_hex(KEY_HEX).unwrap(),
        &Params::default(),
        Timestamp::from_secs(0),
    );
    d.confirmed = true;
    d
}

fn code_at_offset(d: &Device, offset: i64) -> String {
    let t = current_step(d, Timestamp::from_secs(NOW)) + offset;
    let v = hotp_value(d.algorithm, d.key.expose(), t as u64, d.digits).unwrap();
    format!("{v:06}")
}

#[test]
fn check_reports_a_phone_60_s_ahead_and_changes_nothing_in_the_file() {
    let d = phone("phone");
    let fx = Fixture::new(std::slice::from_ref(&d));
    let before = fx.text();
    let checked = manage::check(&fx.store(), "phone", &code_at_offset(&d, 2), 10).unwrap();
    let found = checked.found.unwrap();
    assert_eq!(found.offset, 2);
    assert!(!found.in_window(&checked.device));
    assert_eq!(
        found.describe(&checked.device),
        "code matches step +2: the device's clock is about 60 s ahead"
    );
    // A wrong code: not found, and still no failure counted.
    let wrong = manage::check(&fx.store(), "phone", &code_at_offset(&d, 40), 10).unwrap();
    assert_eq!(wrong.found, None);
    assert_eq!(fx.text(), before, "check writes nothing");
}

#[test]
fn set_changes_the_tolerance_and_the_name_and_keeps_the_state() {
    let mut d = phone("phone");
    d.drift = 1;
    d.last_t = 42;
    let fx = Fixture::new(&[d, phone("tablet")]);
    let change = Settable {
        tolerance: Some(3),
        name: Some("old-phone".into()),
    };
    let stored = manage::set(&fx.store(), "phone", &change).unwrap();
    assert_eq!((stored.name.as_str(), stored.tolerance), ("old-phone", 3));
    assert_eq!((stored.drift, stored.last_t), (1, 42));
    let text = fx.text();
    assert!(text.contains("name = \"old-phone\""), "{text}");
    assert!(text.contains("tolerance = 3"), "{text}");
}

#[test]
fn set_refuses_a_taken_name_a_bad_tolerance_and_an_unknown_device_and_writes_nothing() {
    let fx = Fixture::new(&[phone("phone"), phone("tablet")]);
    let before = fx.text();
    let taken = Settable {
        name: Some("tablet".into()),
        ..Settable::default()
    };
    let err = manage::set(&fx.store(), "phone", &taken).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    let wide = Settable {
        tolerance: Some(11),
        ..Settable::default()
    };
    let err = manage::set(&fx.store(), "phone", &wide).unwrap_err();
    assert!(
        err.to_string().contains("tolerance must be 0 to 10"),
        "{err}"
    );
    let err = manage::set(&fx.store(), "laptop", &Settable::default()).unwrap_err();
    assert!(
        err.to_string().contains("no device named `laptop`"),
        "{err}"
    );
    assert_eq!(fx.text(), before);
}
