//! NVRTC: every call goes to the real NVRTC (`VOXIDE_EMU_NVRTC`, default
//! `target/nvrtc/lib/libnvrtc.so.12` beside the emulator, from
//! `scripts/fetch-nvrtc.sh`; loaded by absolute path, since the emulator
//! itself answers to the name `libnvrtc`), so PTX and compile errors are
//! real. A program that compiles is also compiled for the host (`hostcc`),
//! and the PTX handed back starts with a comment line naming that host
//! module, which `cuModuleLoadData` loads.

use crate::nv::nvrtcResult::{self, *};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The first line of PTX from the emulator's NVRTC names its host module.
pub const HOST_TAG: &str = "// voxide-cuda-emu host module: ";

type Create = unsafe extern "C" fn(
    *mut *mut c_void,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> nvrtcResult;
type Compile = unsafe extern "C" fn(*mut c_void, c_int, *const *const c_char) -> nvrtcResult;
type Size = unsafe extern "C" fn(*mut c_void, *mut usize) -> nvrtcResult;
type Get = unsafe extern "C" fn(*mut c_void, *mut c_char) -> nvrtcResult;
type Destroy = unsafe extern "C" fn(*mut *mut c_void) -> nvrtcResult;
type ErrStr = unsafe extern "C" fn(nvrtcResult) -> *const c_char;
type Version = unsafe extern "C" fn(*mut c_int, *mut c_int) -> nvrtcResult;

struct Real {
    create: Create,
    compile: Compile,
    log_size: Size,
    log: Get,
    ptx_size: Size,
    ptx: Get,
    destroy: Destroy,
    err: ErrStr,
    version: Version,
}

fn real_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VOXIDE_EMU_NVRTC").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    crate::hostcc::own_dir()
        .map(|d| d.join("../../nvrtc/lib/libnvrtc.so.12"))
        .unwrap_or_else(|| PathBuf::from("target/nvrtc/lib/libnvrtc.so.12"))
}

fn real() -> Option<&'static Real> {
    static REAL: OnceLock<Option<Real>> = OnceLock::new();
    REAL.get_or_init(|| {
        let path = real_path();
        let c = CString::new(path.to_string_lossy().as_bytes()).ok()?;
        // SAFETY: loads NVRTC by absolute path and reads its documented entry points.
        unsafe {
            let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if h.is_null() {
                let e = CStr::from_ptr(libc::dlerror()).to_string_lossy().into_owned();
                eprintln!(
                    "voxide-cuda-emu: the real NVRTC is needed at {} ({e}); run scripts/fetch-nvrtc.sh or set VOXIDE_EMU_NVRTC",
                    path.display()
                );
                return None;
            }
            let get = |n: &str| {
                let cn = CString::new(n).unwrap();
                let p = libc::dlsym(h, cn.as_ptr());
                if p.is_null() {
                    eprintln!("voxide-cuda-emu: {n} missing from {}", path.display());
                }
                p
            };
            let syms = [
                "nvrtcCreateProgram",
                "nvrtcCompileProgram",
                "nvrtcGetProgramLogSize",
                "nvrtcGetProgramLog",
                "nvrtcGetPTXSize",
                "nvrtcGetPTX",
                "nvrtcDestroyProgram",
                "nvrtcGetErrorString",
                "nvrtcVersion",
            ]
            .map(get);
            if syms.iter().any(|p| p.is_null()) {
                return None;
            }
            Some(Real {
                create: std::mem::transmute::<*mut c_void, Create>(syms[0]),
                compile: std::mem::transmute::<*mut c_void, Compile>(syms[1]),
                log_size: std::mem::transmute::<*mut c_void, Size>(syms[2]),
                log: std::mem::transmute::<*mut c_void, Get>(syms[3]),
                ptx_size: std::mem::transmute::<*mut c_void, Size>(syms[4]),
                ptx: std::mem::transmute::<*mut c_void, Get>(syms[5]),
                destroy: std::mem::transmute::<*mut c_void, Destroy>(syms[6]),
                err: std::mem::transmute::<*mut c_void, ErrStr>(syms[7]),
                version: std::mem::transmute::<*mut c_void, Version>(syms[8]),
            })
        }
    })
    .as_ref()
}

thread_local! {
    static IN_NVRTC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside the real NVRTC (which calls the driver).
pub fn in_nvrtc() -> bool {
    IN_NVRTC.with(|f| f.get())
}

struct Program {
    real: *mut c_void,
    src: String,
    name: String,
    /// PTX with the host module line, NUL-terminated.
    ptx: Option<Vec<u8>>,
    /// Why the host compilation failed (appended to the log).
    host_error: Option<String>,
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcCreateProgram(
    prog: *mut *mut c_void,
    src: *const c_char,
    name: *const c_char,
    num_headers: c_int,
    headers: *const *const c_char,
    include_names: *const *const c_char,
) -> nvrtcResult {
    let Some(r) = real() else {
        return NVRTC_ERROR_INTERNAL_ERROR;
    };
    if prog.is_null() || src.is_null() {
        return NVRTC_ERROR_INVALID_INPUT;
    }
    let mut h = std::ptr::null_mut();
    let res = (r.create)(&mut h, src, name, num_headers, headers, include_names);
    if res != NVRTC_SUCCESS {
        return res;
    }
    let name = if name.is_null() {
        "default_program".to_string()
    } else {
        CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    *prog = Box::into_raw(Box::new(Program {
        real: h,
        src: CStr::from_ptr(src).to_string_lossy().into_owned(),
        name,
        ptx: None,
        host_error: None,
    })) as *mut c_void;
    NVRTC_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcCompileProgram(
    prog: *mut c_void,
    n: c_int,
    opts: *const *const c_char,
) -> nvrtcResult {
    let Some(r) = real() else {
        return NVRTC_ERROR_INTERNAL_ERROR;
    };
    if prog.is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    let p = &mut *(prog as *mut Program);
    // NVRTC opens libcuda.so.1 (the emulator) while it compiles and reads the
    // driver's private export table; it must see a driver without a device.
    IN_NVRTC.with(|f| f.set(true));
    let res = (r.compile)(p.real, n, opts);
    IN_NVRTC.with(|f| f.set(false));
    if res != NVRTC_SUCCESS {
        return res;
    }
    let so = match crate::hostcc::compile(&p.src, &p.name) {
        Ok(so) => so,
        Err(e) => {
            p.host_error = Some(format!("\nvoxide-cuda-emu: {e}\n"));
            return NVRTC_ERROR_COMPILATION;
        }
    };
    let mut size = 0usize;
    let res = (r.ptx_size)(p.real, &mut size);
    if res != NVRTC_SUCCESS {
        return res;
    }
    let mut ptx = vec![0u8; size.max(1)];
    let res = (r.ptx)(p.real, ptx.as_mut_ptr() as *mut c_char);
    if res != NVRTC_SUCCESS {
        return res;
    }
    let end = ptx.iter().position(|&b| b == 0).unwrap_or(ptx.len());
    let mut out = format!("{HOST_TAG}{}\n", so.display()).into_bytes();
    out.extend_from_slice(&ptx[..end]);
    out.push(0);
    p.ptx = Some(out);
    NVRTC_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcGetPTXSize(prog: *mut c_void, size: *mut usize) -> nvrtcResult {
    if prog.is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    if size.is_null() {
        return NVRTC_ERROR_INVALID_INPUT;
    }
    match &(*(prog as *const Program)).ptx {
        Some(p) => {
            *size = p.len();
            NVRTC_SUCCESS
        }
        None => NVRTC_ERROR_INVALID_PROGRAM,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcGetPTX(prog: *mut c_void, out: *mut c_char) -> nvrtcResult {
    if prog.is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    if out.is_null() {
        return NVRTC_ERROR_INVALID_INPUT;
    }
    match &(*(prog as *const Program)).ptx {
        Some(p) => {
            std::ptr::copy_nonoverlapping(p.as_ptr(), out as *mut u8, p.len());
            NVRTC_SUCCESS
        }
        None => NVRTC_ERROR_INVALID_PROGRAM,
    }
}

/// The real log (without its NUL) and the host compiler's complaint.
unsafe fn full_log(p: &Program) -> Result<Vec<u8>, nvrtcResult> {
    let r = real().ok_or(NVRTC_ERROR_INTERNAL_ERROR)?;
    let mut size = 0usize;
    let res = (r.log_size)(p.real, &mut size);
    if res != NVRTC_SUCCESS {
        return Err(res);
    }
    let mut log = vec![0u8; size.max(1)];
    let res = (r.log)(p.real, log.as_mut_ptr() as *mut c_char);
    if res != NVRTC_SUCCESS {
        return Err(res);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    log.truncate(end);
    if let Some(e) = &p.host_error {
        log.extend_from_slice(e.as_bytes());
    }
    Ok(log)
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcGetProgramLogSize(
    prog: *mut c_void,
    size: *mut usize,
) -> nvrtcResult {
    if prog.is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    if size.is_null() {
        return NVRTC_ERROR_INVALID_INPUT;
    }
    match full_log(&*(prog as *const Program)) {
        Ok(l) => {
            *size = l.len() + 1;
            NVRTC_SUCCESS
        }
        Err(e) => e,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcGetProgramLog(prog: *mut c_void, out: *mut c_char) -> nvrtcResult {
    if prog.is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    if out.is_null() {
        return NVRTC_ERROR_INVALID_INPUT;
    }
    match full_log(&*(prog as *const Program)) {
        Ok(l) => {
            std::ptr::copy_nonoverlapping(l.as_ptr(), out as *mut u8, l.len());
            *out.add(l.len()) = 0;
            NVRTC_SUCCESS
        }
        Err(e) => e,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcDestroyProgram(prog: *mut *mut c_void) -> nvrtcResult {
    if prog.is_null() || (*prog).is_null() {
        return NVRTC_ERROR_INVALID_PROGRAM;
    }
    let mut p = Box::from_raw(*prog as *mut Program);
    *prog = std::ptr::null_mut();
    match real() {
        Some(r) => (r.destroy)(&mut p.real),
        None => NVRTC_ERROR_INTERNAL_ERROR,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcGetErrorString(e: nvrtcResult) -> *const c_char {
    match real() {
        Some(r) => (r.err)(e),
        None => c"NVRTC_ERROR_INTERNAL_ERROR (voxide-cuda-emu: the real NVRTC is missing)".as_ptr(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvrtcVersion(major: *mut c_int, minor: *mut c_int) -> nvrtcResult {
    match real() {
        Some(r) => (r.version)(major, minor),
        None => NVRTC_ERROR_INTERNAL_ERROR,
    }
}
