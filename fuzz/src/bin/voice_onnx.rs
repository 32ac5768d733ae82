//! AFL++ entry point for the `voice_onnx` target (see `voxide_fuzz::voice_onnx`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        voxide_fuzz::voice_onnx(data);
    });
}
