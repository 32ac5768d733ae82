//! AFL++ entry point for the `voice_config` target (see `voxide_fuzz::voice_config`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::voice_config(data);
    });
}
