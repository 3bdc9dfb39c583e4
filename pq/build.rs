//! Links Debian's libpq5 (`libpq-dev` provides `libpq.so`). No bindgen, no
//! pkg-config: the few functions used are declared by hand in `sys.rs`.

fn main() {
    println!("cargo:rustc-link-lib=dylib=pq");
}
