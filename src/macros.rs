//! The crate's own macros (textual scope: declared first in `lib.rs`).

/// Declare an internal room: crate-private, or (doc-hidden) public with the
/// `internals` feature.
macro_rules! internal_mod {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$doc])*
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unused_imports)]
        pub(crate) mod $name;
    )*};
}

/// A unit test (or a part of one) that cannot run here: prints
/// `SKIP <test>: <why>` and appends it to `$VOXIDE_SKIP_LOG` (else
/// `target/test-skips.log`), as the integration tests' `common::skip` does,
/// so `scripts/test.sh` counts it.
#[cfg(test)]
pub(crate) fn test_skip(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    let path = std::env::var_os("VOXIDE_SKIP_LOG")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-skips.log")
        });
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}
