fn main() {
    let t0 = std::time::Instant::now();
    let _ = voxide::text::phonemize("Hello there.").unwrap();
    let t1 = std::time::Instant::now();
    let _ = voxide::text::phonemize("Hello there again, my friend.").unwrap();
    println!(
        "first {:.2} ms, second {:.3} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        t1.elapsed().as_secs_f64() * 1e3
    );
}
