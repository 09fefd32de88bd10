//! Records the target triple for `--version`, so a binary found on a device says what it is.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=CONTAINER_LOADER_TARGET={target}");
}
