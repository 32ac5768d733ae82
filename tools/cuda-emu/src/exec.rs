//! Kernels on the host: loaded host modules ([`Module`], [`Function`]), the
//! work a stream runs or a graph records ([`Op`]), and running a grid: blocks
//! spread over host threads, each OS thread running one block at a time; the
//! threads of a block that reaches `__syncthreads` run as fibers, so the
//! barrier is a real one (a barrier reached by only part of a block stops
//! the process with a message), the others run one after another.

use crate::mem::{self, Activity};
use crate::report::fatal;
use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `__EmuThread` of prelude.h.
#[repr(C)]
struct EmuThread {
    thread_idx: [u32; 3],
    block_idx: [u32; 3],
    block_dim: [u32; 3],
    grid_dim: [u32; 3],
    shared: *mut u8,
}

/// `__EmuCallbacks` of prelude.h.
#[repr(C)]
struct Callbacks {
    syncthreads: extern "C" fn(),
    trap: extern "C" fn(*const c_char),
}

/// `__EmuKernel` of prelude.h.
#[repr(C)]
struct KernelDesc {
    name: *const c_char,
    tramp: Option<unsafe extern "C" fn(*mut *mut c_void)>,
    n: u32,
    sizes: *const u32,
    ptrs: *const u8,
    params: *const c_char,
    barrier: i32,
}

static CALLBACKS: Callbacks = Callbacks {
    syncthreads: on_syncthreads,
    trap: on_trap,
};

/// One `__global__` function of a loaded module.
pub struct Function {
    pub name: String,
    tramp: unsafe extern "C" fn(*mut *mut c_void),
    bind: unsafe extern "C" fn(*mut EmuThread),
    pub sizes: Vec<usize>,
    pub is_ptr: Vec<bool>,
    pub params: Vec<String>,
    pub barrier: bool,
}

/// A loaded module: its host object and kernels.
pub struct Module {
    pub functions: HashMap<String, Box<Function>>,
}

type Sym = *mut c_void;

unsafe fn sym(h: Sym, name: &str) -> Result<Sym, String> {
    let c = std::ffi::CString::new(name).unwrap();
    let p = libc::dlsym(h, c.as_ptr());
    if p.is_null() {
        Err(format!("{name} missing from the host module"))
    } else {
        Ok(p)
    }
}

impl Module {
    /// Load the host object at `path` (made by `hostcc`).
    pub fn load(path: &str) -> Result<Module, String> {
        let c = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
        // SAFETY: loads an object this emulator compiled; its symbols have the
        // types of prelude.h.
        unsafe {
            let h = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if h.is_null() {
                let e = CStr::from_ptr(libc::dlerror())
                    .to_string_lossy()
                    .into_owned();
                return Err(format!("cannot load host module {path}: {e}"));
            }
            let init: unsafe extern "C" fn(*const Callbacks) =
                std::mem::transmute(sym(h, "__emu_init")?);
            let bind: unsafe extern "C" fn(*mut EmuThread) =
                std::mem::transmute(sym(h, "__emu_bind")?);
            let table: unsafe extern "C" fn(*mut u32) -> *const KernelDesc =
                std::mem::transmute(sym(h, "__emu_table")?);
            init(&CALLBACKS);
            let mut n = 0u32;
            let t = table(&mut n);
            let mut functions = HashMap::new();
            for i in 0..n as usize {
                let d = &*t.add(i);
                let name = CStr::from_ptr(d.name).to_string_lossy().into_owned();
                let k = d.n as usize;
                let sizes = (0..k).map(|j| *d.sizes.add(j) as usize).collect();
                let is_ptr = (0..k).map(|j| *d.ptrs.add(j) != 0).collect();
                let params: Vec<String> = CStr::from_ptr(d.params)
                    .to_string_lossy()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let params = if params.len() == k {
                    params
                } else {
                    (0..k).map(|j| format!("arg{j}")).collect()
                };
                let Some(tramp) = d.tramp else {
                    return Err(format!("{name}: no trampoline"));
                };
                functions.insert(
                    name.clone(),
                    Box::new(Function {
                        name,
                        tramp,
                        bind,
                        sizes,
                        is_ptr,
                        params,
                        barrier: d.barrier != 0,
                    }),
                );
            }
            Ok(Module { functions })
        }
    }
}

/// A kernel launch's arguments, copied at launch (8-byte aligned each).
pub type Args = Vec<Vec<u64>>;

/// Copy the arguments of a launch of `f` from the driver's pointer array.
///
/// # Safety
/// `params` holds `f`'s parameter count of pointers to values of the sizes
/// of its parameters.
pub unsafe fn copy_args(f: &Function, params: *mut *mut c_void) -> Args {
    (0..f.sizes.len())
        .map(|i| {
            let size = f.sizes[i];
            let mut v = vec![0u64; size.div_ceil(8).max(1)];
            let src = *params.add(i) as *const u8;
            std::ptr::copy_nonoverlapping(src, v.as_mut_ptr() as *mut u8, size);
            v
        })
        .collect()
}

/// Work on a stream (run at once, or recorded into a graph).
#[derive(Clone)]
pub enum Op {
    Kernel {
        f: *const Function,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: Args,
    },
    Memset {
        dst: u64,
        value: u8,
        n: usize,
    },
    Copy {
        dst: u64,
        src: u64,
        n: usize,
    },
    Gemm(crate::gemm::Gemm),
    /// An allocation made during capture: each replay gives it fresh (NaN) contents.
    Alloc {
        ptr: u64,
        n: usize,
    },
}

// SAFETY: functions are never freed (modules stay loaded); ops only read them.
unsafe impl Send for Op {}

impl Op {
    /// Check the memory the op touches (stops the process when it is not
    /// live device memory).
    fn check(&self) {
        match self {
            Op::Kernel { f, args, .. } => {
                // SAFETY: functions live as long as the process.
                let f = unsafe { &**f };
                for (i, a) in args.iter().enumerate() {
                    if !f.is_ptr[i] {
                        continue;
                    }
                    let p = a[0];
                    if p != 0 && mem::live_at(p).is_none() {
                        mem::bad_pointer(
                            &format!("kernel {}", f.name),
                            &format!("argument `{}` = {p:#x} is {}", f.params[i], mem::what_is(p)),
                        );
                    }
                }
            }
            Op::Memset { dst, n, .. } => {
                if let Err(e) = mem::check_range(*dst, *n) {
                    mem::bad_pointer("cuMemsetD8", &e);
                }
            }
            Op::Copy { dst, src, n } => {
                if let Err(e) = mem::check_range(*src, *n) {
                    mem::bad_pointer("cuMemcpyDtoD (source)", &e);
                }
                if let Err(e) = mem::check_range(*dst, *n) {
                    mem::bad_pointer("cuMemcpyDtoD (destination)", &e);
                }
            }
            Op::Gemm(_) | Op::Alloc { .. } => {}
        }
    }

    /// Run it (the device's work runs one op at a time).
    pub fn run(&self) {
        static DEVICE: Mutex<()> = Mutex::new(());
        let _one = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
        self.check();
        match self {
            Op::Kernel {
                f,
                grid,
                block,
                shared,
                args,
            } => {
                // SAFETY: functions live as long as the process.
                let f = unsafe { &**f };
                run_kernel(f, *grid, *block, *shared as usize, args);
            }
            // SAFETY: checked inside live allocations above.
            Op::Memset { dst, value, n } => unsafe {
                std::ptr::write_bytes(*dst as *mut u8, *value, *n)
            },
            Op::Copy { dst, src, n } => unsafe {
                std::ptr::copy(*src as *const u8, *dst as *mut u8, *n)
            },
            Op::Gemm(g) => crate::gemm::run(g),
            Op::Alloc { ptr, n } => {
                if mem::check_range(*ptr, *n).is_ok() {
                    // SAFETY: a live allocation of n bytes.
                    unsafe { std::ptr::write_bytes(*ptr as *mut u8, 0xFF, *n) }
                }
            }
        }
    }
}

thread_local! {
    /// The running fiber's yielder (null outside fibers).
    static YIELDER: Cell<*const Yielder<(), ()>> = const { Cell::new(std::ptr::null()) };
    /// The kernel this OS thread runs, for barrier messages.
    static KERNEL: Cell<*const Function> = const { Cell::new(std::ptr::null()) };
}

extern "C" fn on_syncthreads() {
    let y = YIELDER.with(|y| y.get());
    if y.is_null() {
        let k = KERNEL.with(|k| k.get());
        let name = if k.is_null() {
            "?".to_string()
        } else {
            // SAFETY: set while the kernel runs.
            unsafe { (*k).name.clone() }
        };
        fatal(&format!(
            "kernel {name} reached __syncthreads, but the emulator's source analysis found no barrier in it (it ran without fibers)"
        ));
    }
    // SAFETY: the yielder of the fiber running now.
    unsafe { (*y).suspend(()) }
}

extern "C" fn on_trap(what: *const c_char) {
    // SAFETY: a C string from the host module.
    let w = unsafe { CStr::from_ptr(what) }.to_string_lossy();
    let k = KERNEL.with(|k| k.get());
    let name = if k.is_null() {
        "?".into()
    } else {
        // SAFETY: set while the kernel runs.
        unsafe { (*k).name.clone() }
    };
    fatal(&format!("kernel {name}: {w}"));
}

/// Host threads for launches: `VOXIDE_EMU_THREADS`, default the CPUs.
fn workers() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("VOXIDE_EMU_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    })
}

const FIBER_STACK: usize = 256 << 10;

fn run_kernel(f: &Function, grid: [u32; 3], block: [u32; 3], shared: usize, args: &Args) {
    let ptr_args: Vec<(String, u64)> = (0..args.len())
        .filter(|&i| f.is_ptr[i])
        .map(|i| (f.params[i].clone(), args[i][0]))
        .collect();
    mem::set_activity(Some(Activity {
        what: format!("kernel {}", f.name),
        args: ptr_args.clone(),
    }));
    let blocks = grid[0] as usize * grid[1] as usize * grid[2] as usize;
    let threads = block[0] as usize * block[1] as usize * block[2] as usize;
    let argv: Vec<*mut c_void> = args.iter().map(|a| a.as_ptr() as *mut c_void).collect();
    let argv_addr = argv.as_ptr() as usize;
    let next = AtomicUsize::new(0);
    // Thread indices of a block, in launch order (for the fibers).
    let indices: Vec<[u32; 3]> = if f.barrier {
        (0..threads).map(|i| index(i, block)).collect()
    } else {
        Vec::new()
    };
    let work = |_: usize| {
        mem::alt_stack();
        KERNEL.with(|k| k.set(f));
        let mut shared_mem = vec![0xFFu8; shared.max(1)];
        let mut t = EmuThread {
            thread_idx: [0; 3],
            block_idx: [0; 3],
            block_dim: block,
            grid_dim: grid,
            shared: shared_mem.as_mut_ptr(),
        };
        // SAFETY: binds this OS thread's index block (lives for the loop below).
        unsafe { (f.bind)(&mut t) };
        let mut stacks: Vec<DefaultStack> = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                break;
            }
            t.block_idx = [
                (b % grid[0] as usize) as u32,
                ((b / grid[0] as usize) % grid[1] as usize) as u32,
                (b / (grid[0] as usize * grid[1] as usize)) as u32,
            ];
            if shared > 0 {
                shared_mem.fill(0xFF);
            }
            if f.barrier {
                run_fibers(f, &mut t, &indices, argv_addr, &mut stacks);
            } else {
                for z in 0..block[2] {
                    for y in 0..block[1] {
                        for x in 0..block[0] {
                            t.thread_idx = [x, y, z];
                            // SAFETY: argv holds the kernel's arguments, as its trampoline unpacks them.
                            unsafe { (f.tramp)(argv_addr as *mut *mut c_void) };
                        }
                    }
                }
            }
        }
        KERNEL.with(|k| k.set(std::ptr::null()));
        // SAFETY: nothing reads the index block after this.
        unsafe { (f.bind)(std::ptr::null_mut()) };
    };
    let n = workers().min(blocks);
    if n <= 1 || blocks * threads < 8192 {
        work(0);
    } else {
        std::thread::scope(|s| {
            for w in 1..n {
                let work = &work;
                s.spawn(move || work(w));
            }
            work(0);
        });
    }
    drop(argv);
    mem::set_activity(None);
    for (name, p) in &ptr_args {
        if *p != 0 {
            if let Err(e) = mem::check_canary_at(*p) {
                fatal(&format!("kernel {}: argument `{name}`: {e}", f.name));
            }
        }
    }
}

fn index(i: usize, block: [u32; 3]) -> [u32; 3] {
    let (x, y) = (block[0] as usize, block[1] as usize);
    [(i % x) as u32, ((i / x) % y) as u32, (i / (x * y)) as u32]
}

fn run_fibers(
    f: &Function,
    t: &mut EmuThread,
    indices: &[[u32; 3]],
    argv: usize,
    stacks: &mut Vec<DefaultStack>,
) {
    let threads = indices.len();
    let tramp = f.tramp;
    let mut fibers: Vec<Option<Coroutine<(), (), (), DefaultStack>>> = (0..threads)
        .map(|_| {
            let stack = stacks
                .pop()
                .unwrap_or_else(|| DefaultStack::new(FIBER_STACK).expect("fiber stack"));
            Some(Coroutine::with_stack(
                stack,
                move |y: &Yielder<(), ()>, ()| {
                    YIELDER.with(|c| c.set(y));
                    // SAFETY: argv holds the kernel's arguments (alive until the block ends).
                    unsafe { tramp(argv as *mut *mut c_void) };
                },
            ))
        })
        .collect();
    let mut yielders: Vec<*const Yielder<(), ()>> = vec![std::ptr::null(); threads];
    let mut phase = 0usize;
    loop {
        let mut waiting = 0usize;
        let mut returned = 0usize;
        for i in 0..threads {
            let Some(co) = fibers[i].as_mut() else {
                continue;
            };
            t.thread_idx = indices[i];
            YIELDER.with(|c| c.set(yielders[i]));
            match co.resume(()) {
                CoroutineResult::Yield(()) => {
                    yielders[i] = YIELDER.with(|c| c.get());
                    waiting += 1;
                }
                CoroutineResult::Return(()) => {
                    let co = fibers[i].take().expect("fiber");
                    stacks.push(co.into_stack());
                    returned += 1;
                }
            }
        }
        YIELDER.with(|c| c.set(std::ptr::null()));
        if waiting == 0 {
            return;
        }
        if waiting != threads {
            fatal(&format!(
                "kernel {}: block ({}, {}, {}): __syncthreads #{} reached by {waiting} of {threads} threads; {} had returned",
                f.name,
                t.block_idx[0],
                t.block_idx[1],
                t.block_idx[2],
                phase + 1,
                threads - waiting,
            ));
        }
        let _ = returned;
        phase += 1;
    }
}
