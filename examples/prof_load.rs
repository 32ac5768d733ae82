use std::path::Path;
use voxide::backend::cpu::{CpuBackend, Precision};
use voxide::backend::Backend;
use voxide::model::Vits;
use voxide::voice::Voice;
fn cpu() -> f64 {
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(r.ru_utime) + t(r.ru_stime)
}
fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let be = CpuBackend::with_precision(2, Precision::F32).unwrap();
    let (mut tl, mut tm) = (0.0, 0.0);
    let (mut cl, mut cm) = (0.0, 0.0);
    for _ in 0..n {
        let c0 = cpu();
        let t0 = std::time::Instant::now();
        let voice = Voice::load(Path::new("voices/en_US-joe-medium.onnx"), None).unwrap();
        let t1 = std::time::Instant::now();
        let c1 = cpu();
        let model = be.install(|| Vits::new(&be, &voice.weights)).unwrap();
        let t2 = std::time::Instant::now();
        let c2 = cpu();
        cl += c1 - c0;
        cm += c2 - c1;
        drop(model);
        drop(voice);
        tl += (t1 - t0).as_secs_f64();
        tm += (t2 - t1).as_secs_f64();
    }
    println!(
        "load {:.1} ms, model {:.1} ms; cpu {:.1} / {:.1} ms",
        tl * 1e3 / n as f64,
        tm * 1e3 / n as f64,
        cl * 1e3 / n as f64,
        cm * 1e3 / n as f64
    );
}
