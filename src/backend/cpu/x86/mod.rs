//! The x86-64 kernels and what they need to know about the CPU: feature
//! detection (AVX-512, AVX-512 BF16, AMX with the Linux tile permission),
//! the kernels' arithmetic, and the one lane helper both kernel families
//! share. Dependencies point one way: `direct` → `pack` → `amx` → here.

pub(crate) mod amx;
pub(crate) mod attention;
pub(crate) mod direct;
pub(crate) mod pack;

use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Arithmetic of the direct conv kernels (the public
/// [`crate::backend::Precision`] resolved by [`super::CpuBackend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arith {
    /// f32 weights and activations, f32 accumulation (the reference).
    F32,
    /// bf16 weights and conv inputs, f32 accumulation (AVX-512 BF16).
    Bf16,
    /// f32-grade arithmetic on AMX tiles: each value split into two bf16
    /// halves, three bf16 products per multiply, f32 accumulation (see
    /// `amx.rs`).
    Bf16x3,
}

/// Whether this CPU runs the direct f32 kernels.
pub(crate) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// Whether this process runs under Valgrind (its `RUNNING_ON_VALGRIND`
/// client request; asked once). Valgrind hides AVX-512 and emulates each
/// fused multiply-add with a call into its own C code, so there the plain
/// tiles run many times faster than the FMA ones.
pub(crate) fn under_valgrind() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        // The request block: RUNNING_ON_VALGRIND (0x1001), five unused arguments.
        let args: [u64; 6] = [0x1001, 0, 0, 0, 0, 0];
        let mut answer: u64 = 0;
        // SAFETY: on a real CPU the four rotations turn rdi by 128 bits
        // (unchanged, and declared clobbered anyway) and `xchg rbx, rbx`
        // changes nothing, so rdx keeps 0; Valgrind's JIT recognises the
        // sequence, reads the block rax points to (alive for the asm) and
        // writes its answer (the number of Valgrind layers) to rdx.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") answer,
                inout("rdi") 0u64 => _,
                options(nostack, preserves_flags),
            );
        }
        answer != 0
    })
}

/// Whether this CPU runs the bf16 kernels.
pub(crate) fn has_bf16() -> bool {
    has_avx512() && is_x86_feature_detected!("avx512bf16")
}

/// Whether this CPU and OS run AMX-BF16 tiles (asks Linux for the tile
/// state once per process).
pub(crate) fn has_amx() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if !has_avx512() {
            return false;
        }
        // CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let l = __cpuid_count(7, 0);
        if l.edx & (1 << 22) == 0 || l.edx & (1 << 24) == 0 {
            return false;
        }
        request_tile_state()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// Lanes `c..c + 16` of a row (zeros past `t`), with `act = Some(slope)`
/// the backend's LeakyReLU applied as a masked multiply: `v·slope` where
/// `v < 0` (NaN and −0 kept).
///
/// # Safety
/// The CPU has AVX-512F; `c < t` and `row[c..t.min(c + 16)]` is readable.
#[inline(always)]
pub(crate) unsafe fn load_act16(row: *const f32, c: usize, t: usize, act: Option<f32>) -> __m512 {
    let mask: __mmask16 = if t - c >= 16 {
        0xffff
    } else {
        ((1u32 << (t - c)) - 1) as __mmask16
    };
    let v = _mm512_maskz_loadu_ps(mask, row.add(c));
    match act {
        None => v,
        Some(slope) => _mm512_mask_mul_ps(
            v,
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps()),
            v,
            _mm512_set1_ps(slope),
        ),
    }
}
