//! AFL++ entry point for the `ssml` target (see `voxide_fuzz::ssml`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::ssml(data);
    });
}
