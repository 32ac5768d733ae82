//! Device memory. Every allocation is its own mapping: a guard page, the
//! data pages, a guard page; the allocation ends where the trailing guard
//! begins (rounded up to 16 bytes: the few slack bytes hold a canary that is
//! checked after every launch), so a read or write past the end faults at
//! once. New memory is filled with 0xFF bytes (NaN as `f32`): a kernel that
//! reads memory nobody wrote surfaces as NaN in the parity tests. Freed
//! memory is made inaccessible and kept reserved for a while (quarantine),
//! so a use after free faults too. The SIGSEGV handler maps a faulting
//! address to its allocation and to the kernel (or cuBLAS call) and argument
//! that reached it, prints that, and stops the process.

use crate::report::{fatal, FATAL_EXIT};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, Once};

const PAGE: usize = 4096;
/// Bytes between the end of an allocation and its trailing guard hold this.
const CANARY: u8 = 0xFF;
/// Freed mappings kept inaccessible (beyond this, the oldest are unmapped).
const QUARANTINE_BYTES: usize = 16 << 30;

#[derive(Clone, Copy, Debug)]
pub struct Alloc {
    /// The mapping (guards included).
    base: usize,
    map_len: usize,
    /// The address handed out and the size asked for.
    pub ptr: u64,
    pub size: usize,
    /// Allocation number (1 = the first of the process).
    pub id: u64,
}

impl Alloc {
    /// End of the data (start of the trailing guard).
    fn data_end(&self) -> usize {
        self.base + self.map_len - PAGE
    }
    fn describe(&self) -> String {
        format!(
            "allocation #{} ({} bytes at {:#x})",
            self.id, self.size, self.ptr
        )
    }
}

#[derive(Default)]
struct Mem {
    live: BTreeMap<u64, Alloc>,
    freed: VecDeque<Alloc>,
    /// Freed by `cuMemFreeAsync` (poisoned, like `freed`), handed out again by
    /// the next stream-ordered allocation of the same size, most recent first,
    /// as the driver's memory pool reuses memory.
    pool: Vec<Alloc>,
    freed_bytes: usize,
    used: usize,
    next_id: u64,
}

static MEM: Mutex<Mem> = Mutex::new(Mem {
    live: BTreeMap::new(),
    freed: VecDeque::new(),
    pool: Vec::new(),
    freed_bytes: 0,
    used: 0,
    next_id: 0,
});

fn mem() -> MutexGuard<'static, Mem> {
    MEM.lock().unwrap_or_else(|p| p.into_inner())
}

/// Device memory the emulated device reports (`VOXIDE_EMU_MEM_MB`, default 16 GiB).
pub fn total() -> usize {
    std::env::var("VOXIDE_EMU_MEM_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(16 << 30, |mb| mb << 20)
}

/// Bytes allocated now.
pub fn used() -> usize {
    mem().used
}

/// Pool entries kept at most.
const POOL_ENTRIES: usize = 4096;

/// A new allocation of `size` bytes, or `None` when the device's memory
/// would be exceeded or the host has no memory. `pooled`: a stream-ordered
/// allocation, which reuses memory its pool got back (same size).
pub fn alloc(size: usize, pooled: bool) -> Option<u64> {
    let mut m = mem();
    if m.used.saturating_add(size) > total() {
        return None;
    }
    if pooled {
        if let Some(i) = m.pool.iter().rposition(|a| a.size == size) {
            let mut a = m.pool.remove(i);
            // SAFETY: the data pages of a pooled mapping of this module.
            unsafe {
                let data = (a.base + PAGE) as *mut libc::c_void;
                let len = a.map_len - 2 * PAGE;
                libc::mprotect(data, len, libc::PROT_READ | libc::PROT_WRITE);
                libc::memset(data, CANARY as i32, len);
            }
            m.next_id += 1;
            a.id = m.next_id;
            m.used += size;
            m.live.insert(a.ptr, a);
            return Some(a.ptr);
        }
    }
    let rounded = size.div_ceil(16) * 16;
    let data_pages = rounded.div_ceil(PAGE).max(1);
    let map_len = (data_pages + 2) * PAGE;
    // SAFETY: a fresh anonymous mapping; the guards are made inaccessible.
    let base = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return None;
        }
        libc::mprotect(p, PAGE, libc::PROT_NONE);
        libc::mprotect(
            (p as usize + map_len - PAGE) as *mut _,
            PAGE,
            libc::PROT_NONE,
        );
        // NaN everywhere (the slack after the data is the canary).
        libc::memset(
            (p as usize + PAGE) as *mut _,
            CANARY as i32,
            data_pages * PAGE,
        );
        p as usize
    };
    m.next_id += 1;
    let a = Alloc {
        base,
        map_len,
        ptr: (base + map_len - PAGE - rounded) as u64,
        size,
        id: m.next_id,
    };
    m.used += size;
    m.live.insert(a.ptr, a);
    Some(a.ptr)
}

/// Why freeing `ptr` is not allowed, or the freed allocation. `pooled`: a
/// stream-ordered free (the memory goes back to the pool for reuse).
pub fn free(ptr: u64, pooled: bool) -> Result<Alloc, String> {
    let mut m = mem();
    let Some(a) = m.live.remove(&ptr) else {
        return Err(match find_in(&m, ptr) {
            Some((a, true)) => format!("{ptr:#x} is inside {}, not its start", a.describe()),
            Some((a, false)) => format!("{ptr:#x}: {} was already freed", a.describe()),
            None => format!("{ptr:#x} is not device memory"),
        });
    };
    m.used -= a.size;
    check_canary(&a).map_err(|e| format!("at free: {e}"))?;
    // SAFETY: the data pages of a mapping this module made; poisoned (no access).
    unsafe {
        let data = (a.base + PAGE) as *mut libc::c_void;
        let len = a.map_len - 2 * PAGE;
        libc::madvise(data, len, libc::MADV_DONTNEED);
        libc::mprotect(data, len, libc::PROT_NONE);
    }
    if pooled {
        m.pool.push(a);
        if m.pool.len() > POOL_ENTRIES {
            let old = m.pool.remove(0);
            m.freed_bytes += old.map_len;
            m.freed.push_back(old);
        }
    } else {
        m.freed_bytes += a.map_len;
        m.freed.push_back(a);
    }
    while m.freed_bytes > QUARANTINE_BYTES {
        let Some(old) = m.freed.pop_front() else {
            break;
        };
        m.freed_bytes -= old.map_len;
        // SAFETY: a quarantined mapping of this module, no longer handed out.
        unsafe { libc::munmap(old.base as *mut _, old.map_len) };
    }
    Ok(a)
}

/// The allocation whose mapping holds `addr`, and whether it is live.
fn find_in(m: &Mem, addr: u64) -> Option<(Alloc, bool)> {
    let a = addr as usize;
    let inside = |x: &Alloc| a >= x.base && a < x.base + x.map_len;
    if let Some((_, x)) = m.live.range(..=addr + PAGE as u64).next_back() {
        if inside(x) {
            return Some((*x, true));
        }
    }
    if let Some(x) = m.live.values().find(|x| inside(x)) {
        return Some((*x, true));
    }
    m.freed
        .iter()
        .rev()
        .find(|x| inside(x))
        .map(|x| (*x, false))
}

/// The live allocation holding `addr` (its end counts as inside).
pub fn live_at(addr: u64) -> Option<Alloc> {
    let m = mem();
    let (_, a) = m.live.range(..=addr).next_back()?;
    (addr <= a.ptr + a.size as u64).then_some(*a)
}

/// What `addr` is, for messages: inside a live allocation, freed, or not device memory.
pub fn what_is(addr: u64) -> String {
    let m = mem();
    match find_in(&m, addr) {
        Some((a, true)) if addr >= a.ptr && addr <= a.ptr + a.size as u64 => {
            format!("offset {} of {}", addr - a.ptr, a.describe())
        }
        Some((a, true)) => format!("outside {} (in its guard)", a.describe()),
        Some((a, false)) => format!("inside {}, which was freed", a.describe()),
        None => "not device memory (a host pointer or a wild address)".into(),
    }
}

/// `Ok` when `[ptr, ptr + len)` lies inside one live allocation; else why not.
pub fn check_range(ptr: u64, len: usize) -> Result<(), String> {
    if len == 0 {
        return Ok(());
    }
    match live_at(ptr) {
        Some(a) if ptr + len as u64 <= a.ptr + a.size as u64 => Ok(()),
        Some(a) => Err(format!(
            "{len} bytes at {ptr:#x} run {} bytes past the end of {}",
            ptr + len as u64 - (a.ptr + a.size as u64),
            a.describe()
        )),
        None => Err(format!("{ptr:#x} is {}", what_is(ptr))),
    }
}

/// Whether the slack bytes after the allocation's data still hold the canary.
fn check_canary(a: &Alloc) -> Result<(), String> {
    let end = a.ptr as usize + a.size;
    // SAFETY: the slack lies inside the accessible data pages of `a`.
    let slack = unsafe { std::slice::from_raw_parts(end as *const u8, a.data_end() - end) };
    match slack.iter().position(|&b| b != CANARY) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} was written past its end (byte {} after it)",
            a.describe(),
            i
        )),
    }
}

/// The canary check of the live allocation holding `addr`, if any.
pub fn check_canary_at(addr: u64) -> Result<(), String> {
    match live_at(addr) {
        Some(a) => check_canary(&a),
        None => Ok(()),
    }
}

/// What runs now (a kernel, a cuBLAS call, a copy), for the SIGSEGV message:
/// its name and its pointer arguments `(name, address)`.
pub struct Activity {
    pub what: String,
    pub args: Vec<(String, u64)>,
}

static ACTIVITY: Mutex<Option<Activity>> = Mutex::new(None);

/// Say what runs from now on (`None`: nothing).
pub fn set_activity(a: Option<Activity>) {
    *ACTIVITY.lock().unwrap_or_else(|p| p.into_inner()) = a;
}

static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Install the SIGSEGV/SIGBUS handler (once).
pub fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: installs a handler; the previous action is kept for faults
        // outside device memory.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let prev = &raw mut PREVIOUS;
            libc::sigaction(libc::SIGSEGV, &sa, (*prev).as_mut_ptr());
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
    alt_stack();
}

/// Give this thread an alternate signal stack (fibers and deep frames still
/// get their message out).
pub fn alt_stack() {
    thread_local! { static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    const SIZE: usize = 256 << 10;
    // SAFETY: a private mapping used only as this thread's signal stack (leaked with the thread).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t {
            ss_sp: p,
            ss_flags: 0,
            ss_size: SIZE,
        };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: called by the kernel with a valid siginfo.
    let addr = unsafe { (*info).si_addr() } as u64;
    let region = MEM.try_lock().ok().and_then(|m| find_in(&m, addr));
    let Some((a, live)) = region else {
        // Not device memory: a fault of the host code (or of the emulator).
        // Restore the previous action and let the fault happen again.
        // SAFETY: PREVIOUS was filled by install_handler before this handler ran.
        unsafe {
            let prev = &raw const PREVIOUS;
            libc::sigaction(sig, (*prev).as_ptr(), std::ptr::null_mut());
        }
        return;
    };
    let write = fault_was_write(ctx);
    let access = match write {
        Some(true) => "write",
        Some(false) => "read",
        None => "access",
    };
    let place = if !live {
        format!(
            "at {addr:#x}, inside {}, which was freed (use after free)",
            a.describe()
        )
    } else if addr < a.ptr {
        format!(
            "at {addr:#x}, {} bytes before the start of {} (out of bounds)",
            a.ptr - addr,
            a.describe()
        )
    } else {
        format!(
            "at {addr:#x}, {} bytes past the end of {} (out of bounds)",
            addr - (a.ptr + a.size as u64),
            a.describe()
        )
    };
    let (what, blame) = match ACTIVITY.try_lock().ok().as_deref().and_then(|o| o.as_ref()) {
        Some(act) => {
            let names: Vec<String> = act
                .args
                .iter()
                .filter(|(_, p)| {
                    let p = *p as usize;
                    p >= a.base && p < a.base + a.map_len
                })
                .map(|(n, p)| format!("`{n}` ({p:#x})"))
                .collect();
            let blame = if names.is_empty() {
                "no pointer argument points into it".to_string()
            } else {
                format!("argument {} points into it", names.join(", "))
            };
            (act.what.clone(), blame)
        }
        None => ("host code".to_string(), "no kernel was running".to_string()),
    };
    let msg = format!("voxide-cuda-emu: FATAL: {what}: illegal {access} {place}; {blame}\n");
    // SAFETY: writes the message and ends the process.
    unsafe {
        libc::write(2, msg.as_ptr() as *const _, msg.len());
        libc::_exit(FATAL_EXIT);
    }
}

/// Whether the faulting access was a write (x86-64: the page-fault error code).
fn fault_was_write(ctx: *mut libc::c_void) -> Option<bool> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        if ctx.is_null() {
            return None;
        }
        // SAFETY: the kernel passes a ucontext_t to SA_SIGINFO handlers.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        let err = uc.uc_mcontext.gregs[libc::REG_ERR as usize];
        Some(err & 2 != 0)
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        let _ = ctx;
        None
    }
}

/// Stop: a call was handed memory it must not touch.
pub fn bad_pointer(what: &str, msg: &str) -> ! {
    fatal(&format!("{what}: {msg}"))
}
