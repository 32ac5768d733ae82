//! Kernel sources compiled for the host: the source NVRTC compiles is also
//! preprocessed and compiled by g++ as C++ (with `prelude.h`), into a shared
//! object holding, for every `__global__` function, a trampoline that unpacks
//! the launch's argument array by the kernel's own signature, and a table
//! (name, trampoline, parameter sizes, which are pointers, parameter names,
//! whether it reaches `__syncthreads`). Objects are cached by a hash of the
//! source, prelude and flags (`VOXIDE_EMU_CACHE`, default the `modules`
//! folder beside the emulator's `lib`), so reruns do not recompile.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_void, CStr};
use std::path::PathBuf;
use std::process::Command;

/// The folder the emulator library was loaded from.
pub fn own_dir() -> Option<PathBuf> {
    // SAFETY: dladdr on a function of this library.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(own_dir as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let p = PathBuf::from(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        );
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        // The links (libcuda.so, ...) sit beside the library's real file in `lib`.
        p.parent().map(|d| d.to_path_buf())
    }
}

/// Macros for the first pass (preprocessing): CUDA's keywords become markers
/// that the second pass rewrites, or vanish.
const MACROS: &str = r#"
#define __global__ __EMU_GLOBAL
#define __shared__ __EMU_SHARED
#define __device__
#define __host__
#define __constant__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __CUDACC__ 1
#define __CUDACC_RTC__ 1
#define __CUDA_ARCH__ 900
"#;

const PRELUDE: &str = include_str!("prelude.h");

fn flags() -> Vec<String> {
    let extra = std::env::var("VOXIDE_EMU_CXXFLAGS").unwrap_or_default();
    let mut f: Vec<String> = [
        "-std=c++17",
        "-O2",
        "-fPIC",
        "-shared",
        "-w",
        "-ffp-contract=off",
        "-fno-strict-aliasing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.extend(extra.split_whitespace().map(String::from));
    f
}

/// FNV-1a, 64 bits: a stable hash for cache names.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Where compiled modules are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VOXIDE_EMU_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    match own_dir() {
        Some(lib) => lib.join("../modules"),
        None => std::env::temp_dir().join("voxide-cuda-emu-modules"),
    }
}

/// The host module of `src` (named `name` in messages): compiled now, or
/// from the cache.
///
/// # Errors
/// g++'s messages, or what could not be written.
pub fn compile(src: &str, name: &str) -> Result<PathBuf, String> {
    let fl = flags();
    let key = fnv(&[MACROS, PRELUDE, src, name, &fl.join(" ")]);
    let dir = cache_dir();
    let so = dir.join(format!("{key:016x}.so"));
    if so.exists() {
        return Ok(so);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tag = format!("{key:016x}.{}", std::process::id());
    let first = dir.join(format!("{tag}.cu.cpp"));
    let clean_name = name.replace(['"', '\\', '\n'], "_");
    std::fs::write(&first, format!("{MACROS}\n# 1 \"{clean_name}\"\n{src}\n"))
        .map_err(|e| format!("{}: {e}", first.display()))?;
    let out = gxx()
        .args(["-E", "-x", "c++", "-std=c++17"])
        .arg(&first)
        .output()
        .map_err(|e| format!("g++ not runnable ({e}); install it (apt-get install g++)"))?;
    let _ = std::fs::remove_file(&first);
    if !out.status.success() {
        return Err(format!(
            "g++ -E failed on {name}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let pre = String::from_utf8_lossy(&out.stdout).into_owned();
    let unit = translate(&pre)?;
    let second = dir.join(format!("{tag}.emu.cpp"));
    std::fs::write(&second, format!("{PRELUDE}\n{unit}"))
        .map_err(|e| format!("{}: {e}", second.display()))?;
    let tmp = dir.join(format!("{tag}.so.part"));
    let out = gxx()
        .args(&fl)
        .arg("-x")
        .arg("c++")
        .arg(&second)
        .arg("-o")
        .arg(&tmp)
        .output()
        .map_err(|e| format!("g++ not runnable ({e}); install it (apt-get install g++)"))?;
    if !out.status.success() {
        return Err(format!(
            "g++ failed on {name} compiled for the host (kept in {}):\n{}",
            second.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let _ = std::fs::remove_file(&second);
    std::fs::rename(&tmp, &so).map_err(|e| format!("{}: {e}", so.display()))?;
    Ok(so)
}

fn gxx() -> Command {
    Command::new(std::env::var("VOXIDE_EMU_CXX").unwrap_or_else(|_| "g++".into()))
}

/// A `__global__` function of the source.
#[derive(Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<String>,
    pub barrier: bool,
}

/// The preprocessed text with line markers, string and character literal
/// contents blanked (same length), so structure can be scanned.
fn mask(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut m = b.to_vec();
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        if line_start && c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                m[i] = b' ';
                i += 1;
            }
            continue;
        }
        line_start = c == b'\n';
        if c == b'"' || c == b'\'' {
            let q = c;
            i += 1;
            while i < b.len() && b[i] != q && b[i] != b'\n' {
                if b[i] == b'\\' {
                    m[i] = b' ';
                    i += 1;
                }
                if i < b.len() {
                    m[i] = b' ';
                }
                i += 1;
            }
        }
        i += 1;
    }
    m
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier ending just before `end` (whitespace skipped).
fn ident_before(m: &[u8], end: usize) -> Option<(usize, String)> {
    let mut j = end;
    while j > 0 && m[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    let stop = j;
    while j > 0 && is_ident(m[j - 1]) {
        j -= 1;
    }
    (j < stop).then(|| (j, String::from_utf8_lossy(&m[j..stop]).into_owned()))
}

/// Index of the bracket matching the `open` at `i`, scanning forwards.
fn close_of(m: &[u8], i: usize, open: u8, close: u8) -> Option<usize> {
    let mut d = 0usize;
    for (j, &c) in m.iter().enumerate().skip(i) {
        if c == open {
            d += 1;
        } else if c == close {
            d -= 1;
            if d == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Index of the `(` matching the `)` at `i`, scanning backwards.
fn open_of(m: &[u8], i: usize) -> Option<usize> {
    let mut d = 0usize;
    let mut j = i + 1;
    while j > 0 {
        j -= 1;
        match m[j] {
            b')' => d += 1,
            b'(' => {
                d -= 1;
                if d == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Split a parameter list at its top-level commas; the name of each parameter.
fn param_names(list: &str) -> Vec<String> {
    let t = list.trim();
    if t.is_empty() || t == "void" {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in t.char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&t[start..]);
    parts
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let p = p
                .split('[')
                .next()
                .unwrap_or(p)
                .split('=')
                .next()
                .unwrap_or(p);
            let b = p.trim_end().as_bytes();
            match ident_before(b, b.len()) {
                Some((_, n)) if p.split_whitespace().count() > 1 || p.contains('*') => n,
                _ => format!("arg{k}"),
            }
        })
        .collect()
}

/// Function definitions of the unit: name -> body (brace to brace), and the
/// brace depth of every byte's position for namespace-scope tests.
fn functions(m: &[u8]) -> HashMap<String, (usize, usize)> {
    let mut out = HashMap::new();
    let mut i = 0;
    while i < m.len() {
        if m[i] == b'{' {
            let mut j = i;
            while j > 0 && m[j - 1].is_ascii_whitespace() {
                j -= 1;
            }
            let prev = if j > 0 { m[j - 1] } else { b' ' };
            if prev == b'"' {
                // extern "C" { ... }: its contents are at namespace scope.
                i += 1;
                continue;
            }
            if let Some((s, w)) = ident_before(m, j) {
                if let Some((_, kw)) = ident_before(m, s) {
                    if kw == "namespace" {
                        i += 1;
                        continue;
                    }
                }
                let _ = w;
            }
            let end = close_of(m, i, b'{', b'}').unwrap_or(m.len() - 1);
            if prev == b')' {
                if let Some(o) = open_of(m, j - 1) {
                    if let Some((_, name)) = ident_before(m, o) {
                        out.insert(name, (i, end));
                    }
                }
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    out
}

fn idents(m: &[u8]) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut i = 0;
    while i < m.len() {
        if is_ident(m[i]) && (i == 0 || !is_ident(m[i - 1])) {
            let s = i;
            while i < m.len() && is_ident(m[i]) {
                i += 1;
            }
            out.insert(String::from_utf8_lossy(&m[s..i]).into_owned());
        } else {
            i += 1;
        }
    }
    out
}

/// The kernels of a preprocessed unit, with whether each reaches a barrier
/// (its body, or a function it calls, names `__syncthreads`).
pub fn kernels(pre: &str) -> Result<Vec<Kernel>, String> {
    let m = mask(pre);
    let funcs = functions(&m);
    let calls: HashMap<&str, HashSet<String>> = funcs
        .iter()
        .map(|(n, &(s, e))| (n.as_str(), idents(&m[s..=e])))
        .collect();
    let mut barrier: HashSet<&str> = calls
        .iter()
        .filter(|(_, ids)| ids.contains("__syncthreads"))
        .map(|(n, _)| *n)
        .collect();
    loop {
        let more: Vec<&str> = calls
            .iter()
            .filter(|(n, ids)| {
                !barrier.contains(*n) && ids.iter().any(|i| barrier.contains(i.as_str()))
            })
            .map(|(n, _)| *n)
            .collect();
        if more.is_empty() {
            break;
        }
        barrier.extend(more);
    }
    let marker = b"__EMU_GLOBAL";
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&m, marker, i) {
        i = p + marker.len();
        let Some(open) = m[i..].iter().position(|&c| c == b'(').map(|o| o + i) else {
            break;
        };
        let Some((_, name)) = ident_before(&m, open) else {
            return Err("a __global__ function without a name".into());
        };
        let close =
            close_of(&m, open, b'(', b')').ok_or_else(|| format!("{name}: unclosed parameters"))?;
        // A declaration without a body is not a kernel of this unit.
        let mut k = close + 1;
        while k < m.len() && m[k].is_ascii_whitespace() {
            k += 1;
        }
        if k < m.len() && m[k] == b';' {
            continue;
        }
        let params = param_names(&pre[open + 1..close]);
        let uses = barrier.contains(name.as_str());
        if !out.iter().any(|x: &Kernel| x.name == name) {
            out.push(Kernel {
                name,
                params,
                barrier: uses,
            });
        }
    }
    Ok(out)
}

fn find(h: &[u8], n: &[u8], from: usize) -> Option<usize> {
    if from >= h.len() {
        return None;
    }
    h[from..]
        .windows(n.len())
        .position(|w| w == n)
        .map(|p| p + from)
}

/// Brace depth at every position (for namespace-scope tests).
fn depth_at(m: &[u8], pos: usize) -> usize {
    let mut d = 0usize;
    for &c in &m[..pos] {
        if c == b'{' {
            d += 1;
        } else if c == b'}' {
            d = d.saturating_sub(1);
        }
    }
    d
}

/// The second pass's unit: shared memory rewritten (`extern __shared__ T
/// x[];` becomes a pointer to the block's dynamic shared memory, static
/// `__shared__` becomes per-OS-thread storage, as each OS thread runs one
/// block at a time), `__global__` dropped, trampolines and the table added.
pub fn translate(pre: &str) -> Result<String, String> {
    let ks = kernels(pre)?;
    let m = mask(pre);
    let shared = b"__EMU_SHARED";
    let mut out = String::with_capacity(pre.len() + 4096);
    let mut last = 0;
    let mut i = 0;
    while let Some(p) = find(&m, b"extern", i) {
        i = p + 6;
        if p > 0 && is_ident(m[p - 1]) {
            continue;
        }
        let mut j = i;
        while j < m.len() && m[j].is_ascii_whitespace() {
            j += 1;
        }
        if !m[j..].starts_with(shared) {
            continue;
        }
        let Some(semi) = m[j..].iter().position(|&c| c == b';').map(|s| s + j) else {
            break;
        };
        let decl = &pre[j + shared.len()..semi];
        let Some(br) = decl.rfind('[') else {
            return Err(format!("extern __shared__ without []: {decl}"));
        };
        let head = strip_attributes(&decl[..br]);
        let hb = head.trim_end().as_bytes();
        let Some((s, name)) = ident_before(hb, hb.len()) else {
            return Err(format!("extern __shared__ without a name: {decl}"));
        };
        let ty = head[..s].trim();
        out.push_str(&pre[last..p]);
        if depth_at(&m, p) == 0 {
            out.push_str(&format!("\n#define {name} (({ty} *)__emu_t->shared)\n"));
        } else {
            out.push_str(&format!("{ty} *{name} = ({ty} *)__emu_t->shared;"));
        }
        last = semi + 1;
        i = semi + 1;
    }
    out.push_str(&pre[last..]);
    let mut unit = out
        .replace("__EMU_SHARED", "static thread_local")
        .replace("__EMU_GLOBAL", "");
    unit.push_str("\n// voxide-cuda-emu: trampolines and the kernel table\n");
    for k in &ks {
        unit.push_str(&format!(
            "extern \"C\" void __emu_tramp_{n}(void **a) {{ __EmuSig<decltype({n})>::invoke({n}, a); }}\n",
            n = k.name
        ));
    }
    unit.push_str("extern \"C\" __attribute__((visibility(\"default\"))) const __EmuKernel *__emu_table(unsigned *count) {\n    static const __EmuKernel t[] = {\n");
    for k in &ks {
        unit.push_str(&format!(
            "        {{\"{n}\", __emu_tramp_{n}, __EmuSig<decltype({n})>::n, __EmuSig<decltype({n})>::sizes(), __EmuSig<decltype({n})>::ptrs(), \"{p}\", {b}}},\n",
            n = k.name,
            p = k.params.join(","),
            b = k.barrier as i32
        ));
    }
    unit.push_str(&format!(
        "        {{0, 0, 0, 0, 0, 0, 0}}\n    }};\n    *count = {};\n    return t;\n}}\n",
        ks.len()
    ));
    Ok(unit)
}

fn strip_attributes(s: &str) -> String {
    let mut out = s.to_string();
    while let Some(p) = out.find("__attribute__") {
        let b = out.as_bytes();
        let Some(o) = b[p..].iter().position(|&c| c == b'(').map(|o| o + p) else {
            break;
        };
        let Some(c) = close_of(b, o, b'(', b')') else {
            break;
        };
        out.replace_range(p..=c, " ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_kernels_params_and_barriers() {
        let src = r#"
# 1 "x.cu"
struct View { long long off; int rows; };
inline __attribute__((always_inline)) long long at(View v, int r) { return v.off + r; }
float sum(float v, float *sh) { sh[0] = v; __syncthreads(); return sh[0]; }
float twice(float v, float *sh) { return sum(v, sh) * 2; }
extern "C" __EMU_GLOBAL void plain(const float *x, View xm, float *y, int n) { y[0] = x[at(xm, n)]; }
extern "C" __EMU_GLOBAL void red(float *x) { extern __EMU_SHARED __attribute__((aligned(16))) float sh[]; x[0] = twice(x[0], sh); }
extern "C" __EMU_GLOBAL void none(void) { const char *s = "{ __syncthreads"; (void)s; }
"#;
        let ks = kernels(src).unwrap();
        assert_eq!(
            ks,
            vec![
                Kernel {
                    name: "plain".into(),
                    params: vec!["x".into(), "xm".into(), "y".into(), "n".into()],
                    barrier: false
                },
                Kernel {
                    name: "red".into(),
                    params: vec!["x".into()],
                    barrier: true
                },
                Kernel {
                    name: "none".into(),
                    params: vec![],
                    barrier: false
                },
            ]
        );
        let t = translate(src).unwrap();
        assert!(t.contains("float *sh = (float *)__emu_t->shared;"), "{t}");
        assert!(!t.contains("__EMU_"));
        assert!(t.contains("__emu_tramp_red"));
    }
}

#[cfg(test)]
mod voxide_kernels {
    /// voxide's own kernels compile for the host, and the analysis finds
    /// which of them use barriers.
    #[test]
    fn voxide_kernels_compile_for_the_host() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../src/backend/cuda/kernels"
        );
        let common = std::fs::read_to_string(format!("{dir}/common.cuh"))
            .unwrap()
            .replace("#pragma once", "");
        let cache = std::env::temp_dir().join(format!("voxide-emu-test-{}", std::process::id()));
        std::env::set_var("VOXIDE_EMU_CACHE", &cache);
        let mut barrier = Vec::new();
        for f in [
            "elementwise.cu",
            "norm.cu",
            "conv.cu",
            "attention.cu",
            "spline.cu",
        ] {
            let body = std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
            let src = format!("{common}\n{}", body.replace("#include \"common.cuh\"", ""));
            let so = super::compile(&src, f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(so.is_file());
            let m = crate::exec::Module::load(so.to_str().unwrap()).unwrap();
            for (name, func) in &m.functions {
                if func.barrier {
                    barrier.push(name.clone());
                }
            }
        }
        barrier.sort();
        assert_eq!(barrier, ["vx_layer_norm", "vx_softmax_rows"]);
        let _ = std::fs::remove_dir_all(cache);
    }
}
