fn main() {
    // Give the shared library a proper soname so installed copies can be versioned.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvoxide.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
