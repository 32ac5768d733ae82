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
