//! AFL++ entry point for the `capi` target (see `voxide_fuzz::capi`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::capi(data);
    });
}
