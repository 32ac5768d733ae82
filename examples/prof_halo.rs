use std::path::Path;
use voxide::backend::cpu::CpuBackend;
use voxide::model::Vits;
use voxide::voice::Voice;
fn main() {
    let voice = Voice::load(Path::new("voices/en_US-joe-medium.onnx"), None).unwrap();
    let be = CpuBackend::new(1).unwrap();
    let model = Vits::new(&be, &voice.weights).unwrap();
    println!("halo {} hop {}", model.halo(), model.hop());
}
