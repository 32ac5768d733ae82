//! AFL++ entry point for the `phonemes` target (see `voxide_fuzz::phonemes`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::phonemes(data);
    });
}
