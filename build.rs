//! Records the target triple for `--version`, so a binary found on a device says what it is.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=CONTAINER_LOADER_TARGET={target}");
    // Each target has a build directory of its own, so the triple never changes under one; without
    // this line cargo re-runs the script, and relinks, whenever any file in the package changes.
    println!("cargo:rerun-if-changed=build.rs");
}
