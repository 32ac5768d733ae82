//! Tests of the CPU backend: its options ([`Isa`], precision), shape
//! faults as errors, the portable convs against their definitions, and on
//! x86-64 the direct kernels against the portable path.

use super::conv::{conv1d, conv_transpose, CpuConv, CpuConvT};
use super::*;

/// A pseudo-random value in [−0.5, 0.5).
fn rnd(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// A conv with random weights and bias.
fn random_conv(seed: &mut u64, cout: usize, cin: usize, k: usize, dilation: usize) -> Conv {
    Conv {
        w: (0..cout * cin * k).map(|_| rnd(seed)).collect(),
        b: Some((0..cout).map(|_| rnd(seed)).collect()),
        cout,
        cin,
        k,
        dilation,
    }
}

#[test]
fn zero_cols_zeroes_only_the_ranges_of_the_view() {
    let be = CpuBackend::new(1).unwrap();
    // A 3 × 10 buffer; the view is rows 1..3, columns 2..9.
    let mut x: Vec<f32> = (1..=30).map(|v| v as f32).collect();
    let view = Mat::new(3, 10).sub_rows(1, 3).sub_cols(2, 9);
    be.zero_cols(&mut x, view, &[(0, 2), (5, 20)]);
    for r in 0..3 {
        for c in 0..10 {
            let v = x[r * 10 + c];
            let zeroed = r >= 1 && ((2..4).contains(&c) || (7..9).contains(&c));
            if zeroed {
                assert_eq!(v, 0.0, "row {r} col {c}");
            } else {
                assert_eq!(v, (r * 10 + c + 1) as f32, "row {r} col {c}");
            }
        }
    }
}

/// Names round-trip; the legacy `gemm` is the portable path; an unknown
/// name is refused with the accepted ones.
#[test]
fn isa_names_round_trip() {
    for i in [Isa::Auto, Isa::Avx512, Isa::Avx2, Isa::Portable] {
        assert_eq!(Isa::parse(i.as_str()), Ok(i));
        assert_eq!(i.to_string(), i.as_str());
    }
    assert_eq!(Isa::parse(" GEMM "), Ok(Isa::Portable));
    let e = Isa::parse("neon").unwrap_err();
    assert!(
        e.contains("'neon'") && e.contains("auto, avx512, avx2 or portable"),
        "{e}"
    );
}

/// The portable kernels run f32 only, and say why they refuse the rest;
/// every family keeps columns exact.
#[test]
fn portable_options() {
    for p in [Precision::F32, Precision::Auto] {
        let be = CpuBackend::with_options(1, p, Isa::Portable).unwrap();
        assert_eq!(be.isa(), Isa::Portable);
        assert!(!be.direct_kernels() && be.columns_exact());
        assert_eq!(be.precision(), Precision::F32);
    }
    for isa in [Isa::Portable, Isa::Avx2] {
        for p in [Precision::Bf16, Precision::Bf16x3] {
            let Err(e) = CpuBackend::with_options(1, p, isa) else {
                panic!("{isa} accepted {p}");
            };
            let e = e.to_string();
            // Off x86-64, avx2 itself is refused first.
            let avx2_elsewhere = isa == Isa::Avx2 && cfg!(not(target_arch = "x86_64"));
            assert!(
                if avx2_elsewhere {
                    e.contains("only on x86-64")
                } else {
                    e.contains(p.as_str()) && e.contains("use f32")
                },
                "{isa} {p}: {e}"
            );
        }
    }
}

/// `avx2` runs exactly where the CPU has AVX2 + FMA (x86-64), else is an
/// error naming the cause; `auto` takes it where AVX-512 is missing.
#[test]
fn avx2_only_where_the_cpu_has_it() {
    #[cfg(target_arch = "x86_64")]
    let (has, has512) = (
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        super::x86::has_avx512(),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (has, has512) = (false, false);
    match CpuBackend::with_options(1, Precision::F32, Isa::Avx2) {
        Ok(be) => {
            assert!(has);
            assert_eq!(be.isa(), Isa::Avx2);
            assert!(be.columns_exact() && !be.direct_kernels());
        }
        Err(e) => {
            assert!(!has);
            let e = e.to_string();
            assert!(e.contains("avx2") && e.contains("use auto"), "{e}");
        }
    }
    let auto = CpuBackend::with_options(1, Precision::F32, Isa::Auto).unwrap();
    if !has512 {
        let want = if has { Isa::Avx2 } else { Isa::Portable };
        assert_eq!(auto.isa(), want);
    }
}

/// `auto` picks the direct kernels exactly where the CPU has AVX-512;
/// `avx512` elsewhere is an error naming the cause.
#[test]
fn avx512_only_where_the_cpu_has_it() {
    #[cfg(target_arch = "x86_64")]
    let has = super::x86::has_avx512();
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    let auto = CpuBackend::with_options(1, Precision::F32, Isa::Auto).unwrap();
    assert_eq!(auto.isa() == Isa::Avx512, has);
    assert!(auto.columns_exact());
    match CpuBackend::with_options(1, Precision::F32, Isa::Avx512) {
        Ok(be) => {
            assert!(has);
            assert_eq!(be.isa(), Isa::Avx512);
            assert_eq!(be.precision(), Precision::F32);
        }
        Err(e) => {
            assert!(!has);
            let e = e.to_string();
            #[cfg(target_arch = "x86_64")]
            assert!(e.contains("which this CPU lacks"), "{e}");
            #[cfg(not(target_arch = "x86_64"))]
            assert!(e.contains("only on x86-64"), "{e}");
        }
    }
}

/// A weight whose arrays disagree with its shape is refused when it is
/// prepared (the kernels read it by its shape).
#[test]
fn inconsistent_weights_are_refused() {
    let be = CpuBackend::new(1).unwrap();
    let mut seed = 9u64;
    let good = random_conv(&mut seed, 4, 3, 3, 1);
    assert!(be.prepare_conv(&good).is_ok());
    let short = Conv {
        w: good.w[1..].to_vec(),
        ..good.clone()
    };
    let bias = Conv {
        b: Some(vec![0.0; 3]),
        ..good.clone()
    };
    let no_taps = Conv {
        k: 0,
        w: Vec::new(),
        ..good.clone()
    };
    for c in [short, bias, no_taps] {
        assert!(matches!(be.prepare_conv(&c), Err(BackendError::Shape(_))));
        assert!(matches!(
            be.prepare_conv_lowp(&c),
            Err(BackendError::Shape(_))
        ));
    }
    let t = ConvTranspose {
        w: vec![0.5; 2 * 3 * 8],
        b: vec![0.0; 3],
        cin: 2,
        cout: 3,
        k: 8,
        stride: 4,
    };
    assert!(be.prepare_conv_t(&t).is_ok());
    let odd_k = ConvTranspose {
        k: 7,
        w: vec![0.5; 2 * 3 * 7],
        ..t.clone()
    };
    match be.prepare_conv_t(&odd_k) {
        Err(BackendError::Shape(e)) => assert!(e.contains("k must be 2·stride"), "{e}"),
        _ => panic!("a transposed conv of kernel 7, stride 4 was prepared"),
    }
}

/// Views that do not fit a conv are a shape error from `check`, on
/// every conv entry (the fused ones included), never a panic or a write.
#[test]
fn conv_shape_faults_are_errors() {
    let be = CpuBackend::new(1).unwrap();
    let mut seed = 4u64;
    let w = be
        .prepare_conv(&random_conv(&mut seed, 6, 6, 3, 1))
        .unwrap();
    let x = vec![1.0f32; 6 * 10];
    let mut tmp = vec![0.0f32; 6 * 10];
    let mut y = vec![0.0f32; 6 * 10];
    let good = Mat::new(6, 10);
    let short = Mat::new(5, 10);
    let past = Mat::strided(1, 6, 10, 10).unwrap();
    be.conv1d(&w, &x, short, &mut y, good, Out::Set);
    assert!(matches!(be.check(), Err(BackendError::Shape(e)) if e.starts_with("conv1d:")));
    be.conv1d_lrelu(&w, 0.1, &x, good, &mut tmp, &[], &mut y, past, Out::Add);
    assert!(matches!(be.check(), Err(BackendError::Shape(e)) if e.contains("outside its buffer")));
    be.conv1d_lrelu_add_inplace(&w, 0.1, &mut y, past, &mut tmp, &[]);
    assert!(be.check().is_err());
    be.conv1d_lrelu_add_inplace(&w, 0.1, &mut y, short, &mut tmp, &[]);
    assert!(be.check().is_err());
    assert!(y.iter().all(|&v| v == 0.0), "a refused op wrote");
    be.conv1d(&w, &x, good, &mut y, good, Out::Set);
    assert!(be.check().is_ok());
    let t = be
        .prepare_conv_t(&ConvTranspose {
            w: vec![0.5; 6 * 3 * 4],
            b: vec![0.0; 3],
            cin: 6,
            cout: 3,
            k: 4,
            stride: 2,
        })
        .unwrap();
    be.conv_transpose(&t, &x, good, &mut y, Mat::new(3, 19));
    assert!(be.check().is_err());
}

/// More spline bins than the CPU spline holds is a shape error.
#[test]
fn too_many_spline_bins_are_an_error() {
    let be = CpuBackend::new(1).unwrap();
    let bins = 65;
    let mut z = vec![0.5f32; 4];
    let theta = vec![0.0f32; (3 * bins - 1) * 4];
    be.spline_inverse(
        &mut z,
        Mat::new(1, 4),
        &theta,
        Mat::new(3 * bins - 1, 4),
        bins,
        1.0,
    );
    assert!(matches!(be.check(), Err(BackendError::Shape(e)) if e.contains("at most 64")));
    assert_eq!(z, [0.5; 4]);
}

/// `y (op)= b + Σ_i Σ_j w[o, i, j] · x[i, t + j·d − pad]` ("same"
/// padding, zeros outside), each sum in f64; depthwise when `dw`.
fn naive_conv(c: &Conv, x: &[f32], xm: Mat, y: &mut [f32], ym: Mat, out: Out, dw: bool) {
    let t = xm.cols() as isize;
    let pad = (c.dilation * (c.k - 1) / 2) as isize;
    for o in 0..c.cout {
        for col in 0..t {
            let mut s = f64::from(c.b.as_ref().map_or(0.0, |b| b[o]));
            for i in 0..c.cin {
                let row = if dw { o } else { i };
                for j in 0..c.k {
                    let src = col + (j * c.dilation) as isize - pad;
                    if (0..t).contains(&src) {
                        let v = x[xm.off() + row * xm.ld() + src as usize];
                        s += f64::from(c.w[(o * c.cin + i) * c.k + j]) * f64::from(v);
                    }
                }
            }
            let s = s as f32;
            let d = &mut y[ym.off() + o * ym.ld() + col as usize];
            *d = match out {
                Out::Set => s,
                Out::SetRelu => s.max(0.0),
                Out::Add => *d + s,
            };
        }
    }
}

/// The portable conv (im2col + GEMM, and depthwise) equals its
/// definition on strided views: dilations, k = 1, every output mode,
/// lengths shorter than the kernel.
#[test]
fn portable_conv_matches_definition() {
    let mut seed = 21u64;
    for &(cout, cin, k, d, dw) in &[
        (8, 4, 3, 1, false),
        (13, 5, 5, 3, false),
        (7, 9, 1, 1, false),
        (6, 1, 7, 2, true),
    ] {
        let c = random_conv(&mut seed, cout, cin, k, d);
        let w = CpuConv::portable(&c, true);
        let rows_in = if dw { cout } else { cin };
        for &t in &[1usize, 4, 37, 300] {
            for out in [Out::Set, Out::SetRelu, Out::Add] {
                for threads in [1, 2] {
                    let xm = Mat::strided(3, rows_in, t, t + 5).unwrap();
                    let ym = Mat::strided(2, cout, t, t + 7).unwrap();
                    let x: Vec<f32> = (0..xm.end() + 4).map(|_| rnd(&mut seed)).collect();
                    let y0: Vec<f32> = (0..ym.end() + 3).map(|_| rnd(&mut seed)).collect();
                    let mut want = y0.clone();
                    naive_conv(&c, &x, xm, &mut want, ym, out, dw);
                    let mut got = y0.clone();
                    conv1d(threads, &w, &x, xm, &mut got, ym, out);
                    let tol = 1e-5 * (cin * k) as f32;
                    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                        assert!(
                            (a - b).abs() <= tol,
                            "cout {cout} cin {cin} k {k} d {d} t {t} {out:?}: element {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}

/// The portable transposed conv equals its definition:
/// `y[o, t·u + j − u/2] += w[i, o, j] · x[i, t]` over the `u·L` outputs.
#[test]
fn portable_conv_transpose_matches_definition() {
    let mut seed = 8u64;
    for &(cin, cout, u) in &[(5, 3, 2), (4, 6, 3), (8, 4, 8)] {
        let c = ConvTranspose {
            w: (0..cin * cout * 2 * u).map(|_| rnd(&mut seed)).collect(),
            b: (0..cout).map(|_| rnd(&mut seed)).collect(),
            cin,
            cout,
            k: 2 * u,
            stride: u,
        };
        let w = CpuConvT::portable(&c, true);
        for &l in &[0usize, 1, 2, 9] {
            let xm = Mat::strided(1, cin, l, l + 3).unwrap();
            let ym = Mat::strided(2, cout, u * l, u * l + 5).unwrap();
            let x: Vec<f32> = (0..xm.end() + 2).map(|_| rnd(&mut seed)).collect();
            let y0: Vec<f32> = (0..ym.end() + 2).map(|_| rnd(&mut seed)).collect();
            let mut want = y0.clone();
            for o in 0..cout {
                for n in 0..u * l {
                    let mut s = f64::from(c.b[o]);
                    for t in 0..l {
                        for j in 0..2 * u {
                            if t * u + j == n + u / 2 {
                                for i in 0..cin {
                                    let wv = c.w[(i * cout + o) * 2 * u + j];
                                    let xv = x[xm.off() + i * xm.ld() + t];
                                    s += f64::from(wv) * f64::from(xv);
                                }
                            }
                        }
                    }
                    want[ym.off() + o * ym.ld() + n] = s as f32;
                }
            }
            for threads in [1, 2] {
                let mut got = y0.clone();
                conv_transpose(threads, &w, &x, xm, &mut got, ym);
                for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * cin as f32,
                        "cin {cin} cout {cout} u {u} l {l}: element {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// Depthwise convs split over threads by rows equal one thread's result.
#[test]
fn depthwise_threads_equal() {
    let mut seed = 5u64;
    let (ch, k, d, t) = (192, 3, 3, 700);
    let c = random_conv(&mut seed, ch, 1, k, d);
    let w = CpuConv::portable(&c, true);
    let x: Vec<f32> = (0..ch * t).map(|_| rnd(&mut seed)).collect();
    let m = Mat::new(ch, t);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    for out in [Out::Set, Out::SetRelu, Out::Add] {
        let mut one: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
        let mut two = one.clone();
        conv1d(1, &w, &x, m, &mut one, m, out);
        pool.install(|| conv1d(2, &w, &x, m, &mut two, m, out));
        assert!(one
            .iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// The direct kernels against the portable path.
#[cfg(target_arch = "x86_64")]
mod direct {
    use super::super::conv::{conv1d_lrelu, conv1d_lrelu_add_inplace};
    use super::super::x86::{has_amx, has_avx512, has_bf16, Arith};
    use super::*;
    use conv1d as reference;

    /// The precisions this CPU's direct kernels run.
    fn precisions() -> &'static [Arith] {
        if !has_bf16() {
            crate::test_skip("backend::cpu::tests (bf16 precision)", "this CPU has no AVX-512 BF16");
        }
        if !has_amx() {
            crate::test_skip("backend::cpu::tests (bf16x3 precision)", "this CPU has no AMX tiles");
        }
        match (has_bf16(), has_amx()) {
            (true, true) => &[Arith::F32, Arith::Bf16, Arith::Bf16x3],
            (true, false) => &[Arith::F32, Arith::Bf16],
            _ => &[Arith::F32],
        }
    }

    /// Direct kernels against the im2col + GEMM reference over awkward shapes:
    /// row remainders, odd channel counts, every output mode, short and
    /// tile-straddling lengths, dilations, strided views.
    #[test]
    fn direct_matches_im2col_gemm() {
        if !has_avx512() {
            crate::test_skip("backend::cpu::tests::direct_matches_im2col_gemm", "this CPU has no AVX-512");
            return;
        }
        let mut seed = 7u64;
        let precisions = precisions();
        for &(cout, cin, k, d) in &[
            (8, 4, 3, 1),
            (13, 5, 3, 2),
            (1, 32, 7, 1),
            (24, 17, 5, 3),
            (16, 1, 1, 1),
            (32, 32, 7, 12),
            (9, 64, 1, 1),
            (72, 70, 3, 2),
        ] {
            let c = random_conv(&mut seed, cout, cin, k, d);
            let plain = CpuConv::portable(&c, true);
            for &t in &[1usize, 5, 47, 48, 49, 130, 300] {
                for out in [Out::Set, Out::SetRelu, Out::Add] {
                    for &p in precisions {
                        for threads in [1, 2] {
                            // Views with a stride and an offset, inside larger buffers.
                            let xm = Mat::strided(3, cin, t, t + 5).unwrap();
                            let ym = Mat::strided(2, cout, t, t + 7).unwrap();
                            let x: Vec<f32> = (0..xm.end() + 4).map(|_| rnd(&mut seed)).collect();
                            let y0: Vec<f32> = (0..ym.end() + 3).map(|_| rnd(&mut seed)).collect();
                            let mut want = y0.clone();
                            reference(1, &plain, &x, xm, &mut want, ym, out);
                            let mut got = y0.clone();
                            let packed = CpuConv::packed(&c, p);
                            reference(threads, &packed, &x, xm, &mut got, ym, out);
                            let scale = (cin * k) as f32;
                            let tol = match p {
                                Arith::F32 => 1e-5 * scale,
                                Arith::Bf16x3 => 2e-5 * scale,
                                Arith::Bf16 => 1e-2 * scale.sqrt(),
                            };
                            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                                assert!(
                                    (a - b).abs() <= tol,
                                    "{p:?} cout {cout} cin {cin} k {k} d {d} t {t} {out:?} threads {threads}: element {i}: {a} vs {b}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every column is computed in the same order whatever the length: the
    /// kept columns of any window equal the whole run's bit for bit, for
    /// every width (full tiles and 1-, 2- and 3-vector tails), threads and
    /// precision.
    #[test]
    fn columns_do_not_depend_on_tiling() {
        if !has_avx512() {
            crate::test_skip("backend::cpu::tests::columns_do_not_depend_on_tiling", "this CPU has no AVX-512");
            return;
        }
        let precisions = precisions();
        let mut seed = 11u64;
        // 72 outputs: two full AMX row blocks and a partial one (bf16x3).
        let (cout, cin, k, d) = (72, 40, 5, 2);
        let c = random_conv(&mut seed, cout, cin, k, d);
        let t = 400;
        let x: Vec<f32> = (0..cin * t).map(|_| rnd(&mut seed)).collect();
        for &p in precisions {
            let w = CpuConv::packed(&c, p);
            let mut whole = vec![0.0; cout * t];
            let tm = Mat::new(cin, t);
            reference(2, &w, &x, tm, &mut whole, Mat::new(cout, t), Out::Set);
            // Windows with a halo of 4 each side; widths 308, 20, 40, 65, 9.
            for (s, e) in [(33, 341), (30, 50), (100, 140), (200, 265), (391, 400)] {
                let xm = tm.sub_cols(s, e);
                let mut part = vec![0.0; cout * (e - s)];
                reference(1, &w, &x, xm, &mut part, Mat::new(cout, e - s), Out::Set);
                let keep = (if s == 0 { 0 } else { s + 4 })..(if e == t { t } else { e - 4 });
                for o in 0..cout {
                    for col in keep.clone() {
                        assert_eq!(
                            whole[o * t + col].to_bits(),
                            part[o * (e - s) + col - s].to_bits(),
                            "{p:?} window {s}..{e} row {o} col {col}"
                        );
                    }
                }
            }
        }
    }

    /// LeakyReLU staged with the input (and the in-place residual form)
    /// equals a separate LeakyReLU pass then the conv, bit for bit.
    #[test]
    fn fused_lrelu_equals_two_passes() {
        if !has_avx512() {
            crate::test_skip("backend::cpu::tests::fused_lrelu_equals_two_passes", "this CPU has no AVX-512");
            return;
        }
        let precisions = precisions();
        let mut seed = 3u64;
        let (ch, k, d, t) = (40, 5, 3, 203);
        let c = random_conv(&mut seed, ch, ch, k, d);
        // Strided view with negative values, −0 and a NaN-free mix.
        let ld = t + 9;
        let mut x: Vec<f32> = (0..ch * ld).map(|_| rnd(&mut seed) * 4.0).collect();
        x[ld + 3] = -0.0;
        let m = Mat::strided(2, ch, t, ld).unwrap();
        let lrelu: Vec<f32> = x
            .iter()
            .map(|&v| if v >= 0.0 { v } else { v * 0.1 })
            .collect();
        for &p in precisions {
            let w = CpuConv::packed(&c, p);
            for threads in [1, 2] {
                for out in [Out::Set, Out::Add] {
                    let y0: Vec<f32> = (0..ch * ld).map(|i| i as f32 * 1e-3).collect();
                    let mut want = y0.clone();
                    reference(threads, &w, &lrelu, m, &mut want, m, out);
                    let mut got = y0.clone();
                    assert!(conv1d_lrelu(threads, &w, 0.1, &x, m, &mut got, m, out));
                    assert!(want
                        .iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                }
                // y += conv(lrelu(y)) in place.
                let mut want = x.clone();
                reference(threads, &w, &lrelu, m, &mut want, m, Out::Add);
                let mut got = x.clone();
                assert!(conv1d_lrelu_add_inplace(threads, &w, 0.1, &mut got, m));
                assert!(want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    /// Polyphase transposed conv: direct (f32, bf16) against the GEMM path.
    #[test]
    fn conv_transpose_matches_reference() {
        use conv_transpose as reference_t;
        if !has_avx512() {
            crate::test_skip("backend::cpu::tests::conv_transpose_matches_reference", "this CPU has no AVX-512");
            return;
        }
        let mut seed = 3u64;
        for &(cin, cout, u) in &[(16, 8, 8), (9, 13, 4), (32, 16, 2), (5, 3, 3)] {
            let c = ConvTranspose {
                w: (0..cin * cout * 2 * u).map(|_| rnd(&mut seed)).collect(),
                b: (0..cout).map(|_| rnd(&mut seed)).collect(),
                cin,
                cout,
                k: 2 * u,
                stride: u,
            };
            let plain = CpuConvT::portable(&c, true);
            for &l in &[1usize, 2, 7, 60] {
                let xm = Mat::strided(1, cin, l, l + 3).unwrap();
                let ym = Mat::strided(2, cout, u * l, u * l + 5).unwrap();
                let x: Vec<f32> = (0..xm.end() + 2).map(|_| rnd(&mut seed)).collect();
                let y0: Vec<f32> = (0..ym.end() + 2).map(|_| rnd(&mut seed)).collect();
                let mut want = y0.clone();
                reference_t(1, &plain, &x, xm, &mut want, ym);
                let precisions = precisions();
                for &p in precisions {
                    for threads in [1, 2] {
                        let mut got = y0.clone();
                        reference_t(threads, &CpuConvT::packed(&c, p), &x, xm, &mut got, ym);
                        let tol = match p {
                            Arith::F32 => 1e-5 * cin as f32,
                            Arith::Bf16x3 => 2e-5 * cin as f32,
                            Arith::Bf16 => 1e-2 * (cin as f32).sqrt(),
                        };
                        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                            assert!(
                                (a - b).abs() <= tol,
                                "{p:?} cin {cin} cout {cout} u {u} l {l}: element {i}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}
