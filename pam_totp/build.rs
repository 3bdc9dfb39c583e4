//! Export only the six PAM entry points from `pam_totp.so`: a version script
//! makes every other symbol local, whatever the Rust toolchain or a
//! dependency would export by default.

fn main() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("exports.map");
    println!("cargo:rerun-if-changed={}", script.display());
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
}
