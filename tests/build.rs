//! Sets `cfg(not_root)` when the tests are built without root, so that a
//! test marked `#[cfg_attr(not_root, ignore = "needs root")]` is reported as
//! ignored, not passed, by a run without root (see `src/kit.rs`).
use std::os::unix::fs::MetadataExt;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(not_root)");
    // The uid is not part of cargo's fingerprint: rerun when the user
    // (as the shell and sudo set it) changes. `kit::require_root` catches
    // a binary built as root and run by someone else.
    // This file is also totp-enroll's build script (`build =
    // "../tests/build.rs"`); a path relative to that package's directory
    // that does not exist would make cargo rebuild totp-enroll every time.
    let me = if std::path::Path::new("build.rs").exists() {
        "build.rs"
    } else {
        "../tests/build.rs"
    };
    println!("cargo::rerun-if-changed={me}");
    println!("cargo::rerun-if-env-changed=USER");
    println!("cargo::rerun-if-env-changed=SUDO_UID");
    // /proc/self is owned by the effective uid of the build script.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        println!("cargo::rustc-cfg=not_root");
    }
}
