use std::path::Path;
use voxide::backend::cpu::{CpuBackend, Precision};
use voxide::backend::Backend;
use voxide::model::{SynthOptions, Vits};
use voxide::voice::Voice;
const TEXT: &str = "The old lighthouse stood at the edge of the cliff for more than a hundred years, and in all that time its lamp had never failed.";
fn main() {
    let voice = Voice::load(Path::new("voices/en_US-joe-medium.onnx"), None).unwrap();
    let ph = voxide::text::phonemize(TEXT).unwrap();
    let ids = voice.ids.sentence_ids(&ph.join(" ")).ids;
    let th: usize = std::env::var("TH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let be = CpuBackend::with_precision(th, Precision::F32).unwrap();
    let model = Vits::new(&be, &voice.weights).unwrap();
    let opts = SynthOptions::default();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let t0 = std::time::Instant::now();
    let (mut enc, mut dp) = (0.0, 0.0);
    for _ in 0..n {
        be.install(|| {
            let u = model.prepare(&be, &ids, &opts).unwrap();
            enc += u.times.encoder;
            dp += u.times.duration;
        });
    }
    println!(
        "{} ids: prepare {:.2} ms (enc {:.2} dp {:.2})",
        ids.len(),
        t0.elapsed().as_secs_f64() * 1e3 / n as f64,
        enc * 1e3 / n as f64,
        dp * 1e3 / n as f64
    );
}
