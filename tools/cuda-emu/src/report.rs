//! How the emulator speaks: `fatal` for what a GPU would turn into a crash or
//! silent corruption (the process stops with a message naming the cause), and
//! `trace!` for every call when `VOXIDE_EMU_TRACE=1`.

use std::sync::OnceLock;

/// Exit status of a process the emulator stopped.
pub const FATAL_EXIT: i32 = 86;

/// Print `msg` and stop the process (status [`FATAL_EXIT`]).
pub fn fatal(msg: &str) -> ! {
    eprintln!("voxide-cuda-emu: FATAL: {msg}");
    // SAFETY: ends the process at once; nothing after this runs.
    unsafe { libc::_exit(FATAL_EXIT) }
}

/// Whether `VOXIDE_EMU_TRACE=1`.
pub fn trace_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("VOXIDE_EMU_TRACE").is_ok_and(|v| v == "1"))
}

/// Print a line when tracing.
macro_rules! trace {
    ($($t:tt)*) => {
        if $crate::report::trace_on() {
            eprintln!("voxide-cuda-emu: {}", format!($($t)*));
        }
    };
}
pub(crate) use trace;
