//! AFL++ entry point for the `text` target (see `voxide_fuzz::text`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::text(data);
    });
}
