//! The one place where raw pointers from C become Rust references or owned
//! values: the opaque handles, C strings, out-pointers and sized option
//! structs. Every function here checks for NULL and states what the caller
//! (the C side) must guarantee for the rest.

use super::status::{FfiError, FfiResult as Result};
use crate::audio::Audio;
use crate::engine::{Engine, Permit};
use crate::error::Error;
use std::ffi::{c_char, CStr, CString};
use std::mem::size_of;

/// A loaded engine (voices, device, permits). Create with
/// `voxide_engine_create` or `voxide_engine_create_with`, free with
/// `voxide_engine_free`. Thread-safe: share one engine between any number of
/// threads.
pub struct VoxideEngine {
    pub(crate) engine: Engine,
    pub(crate) device_name: CString,
}

/// The right to run one request on the engine that issued it. Obtained from
/// `voxide_engine_acquire_permit`; consumed by a speak call (on every path,
/// errors included) or given back unused with `voxide_permit_free`. A permit
/// keeps its engine's shared state alive, so it may outlive the
/// `VoxideEngine` handle.
pub struct VoxidePermit {
    pub(crate) permit: Permit,
}

/// Synthesized audio: float samples at the voice's sample rate. Owns its
/// samples; free with `voxide_audio_free`.
pub struct VoxideAudio {
    pub(crate) audio: Audio,
    /// The words' texts as C strings (for `voxide_audio_word`).
    pub(crate) word_texts: Vec<CString>,
    /// The marks' names as C strings.
    pub(crate) mark_names: Vec<CString>,
}

/// A C string of `s` (NUL bytes, impossible in words and names, become spaces).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

impl VoxideAudio {
    pub(crate) fn new(audio: Audio) -> VoxideAudio {
        let word_texts = audio.words().iter().map(|w| c_string(&w.text)).collect();
        let mark_names = audio.marks().iter().map(|m| c_string(&m.name)).collect();
        VoxideAudio {
            audio,
            word_texts,
            mark_names,
        }
    }
}

impl VoxideEngine {
    pub(crate) fn new(engine: Engine) -> VoxideEngine {
        let name = engine.device_name().replace('\0', " ");
        VoxideEngine {
            engine,
            device_name: CString::new(name).unwrap_or_default(),
        }
    }
}

fn null(what: &str) -> FfiError {
    FfiError::Null(format!("{what} is NULL"))
}

/// Borrow the engine behind `ptr`.
///
/// # Safety
/// `ptr` is NULL or a live pointer from `voxide_engine_create*` not yet freed,
/// and is not freed while the returned reference is in use (callers clone the
/// [`Engine`] at once and drop the reference).
pub(crate) unsafe fn engine<'a>(ptr: *const VoxideEngine) -> Result<&'a VoxideEngine> {
    ptr.as_ref().ok_or_else(|| null("engine"))
}

/// Borrow the audio behind `ptr`.
///
/// # Safety
/// `ptr` is NULL or a live pointer from a speak call not yet freed.
pub(crate) unsafe fn audio<'a>(ptr: *const VoxideAudio) -> Result<&'a VoxideAudio> {
    ptr.as_ref().ok_or_else(|| null("audio"))
}

/// Take ownership of the permit behind `ptr` (it is consumed whatever happens next).
///
/// # Safety
/// `ptr` is NULL or a live pointer from `voxide_engine_acquire_permit` that
/// the caller gives up.
pub(crate) unsafe fn take_permit(ptr: *mut VoxidePermit) -> Result<Permit> {
    if ptr.is_null() {
        return Err(null("permit"));
    }
    Ok(Box::from_raw(ptr).permit)
}

/// Free a handle made by [`into_raw`]; NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a live pointer made by [`into_raw`] for the same `T`,
/// not used again afterwards.
pub(crate) unsafe fn free<T>(ptr: *mut T) {
    if !ptr.is_null() {
        drop(Box::from_raw(ptr));
    }
}

/// Give a handle to C.
pub(crate) fn into_raw<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null(what));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|e| FfiError::Utf8(format!("{what} (byte {})", e.valid_up_to())))
}

/// An optional string argument: NULL gives `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        str_arg(ptr, what).map(Some)
    }
}

/// A checked out-pointer; written only on success.
pub(crate) struct Out<T>(*mut T);

/// Check an out-pointer for NULL (before doing any work).
pub(crate) fn out<T>(ptr: *mut T, what: &str) -> Result<Out<T>> {
    if ptr.is_null() {
        Err(null(what))
    } else {
        Ok(Out(ptr))
    }
}

impl<T> Out<T> {
    /// Store the result.
    ///
    /// # Safety
    /// The pointer given to [`out`] is valid for a write of `T` (it need not be initialised).
    pub(crate) unsafe fn write(self, value: T) {
        self.0.write(value);
    }
}

/// A `#[repr(C)]` option struct whose first field is `struct_size: size_t`
/// and whose fields are all plain data (any bit pattern is a valid value).
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `usize` and hold only
/// integers, floats and raw pointers.
pub(crate) unsafe trait SizedOptions: Copy {
    /// The defaults (`*_default()`), with `struct_size = size_of::<Self>()`.
    fn defaults() -> Self;
    /// Reset to `defaults` every field that does not lie wholly within the
    /// first `size` bytes (a caller built against an older, smaller struct).
    fn keep_fields_within(&mut self, size: usize, defaults: &Self);
}

/// Read a caller's option struct honouring its `struct_size`: an older,
/// smaller struct gets defaults for the fields it lacks; a larger one (a newer
/// header than this library) or a size below `sizeof(size_t)` is rejected.
///
/// # Safety
/// `ptr` is NULL or points to at least `struct_size` readable bytes.
pub(crate) unsafe fn sized_options<T: SizedOptions>(ptr: *const T, what: &str) -> Result<T> {
    if ptr.is_null() {
        return Err(null(what));
    }
    let size = ptr.cast::<usize>().read_unaligned();
    let max = size_of::<T>();
    if size < size_of::<usize>() || size > max {
        return Err(Error::InvalidArgument(format!(
            "{what}->struct_size is {size}; this library knows {max} bytes \
             (initialise the struct with its *_default() function)"
        ))
        .into());
    }
    let defaults = T::defaults();
    let mut value = defaults;
    // SAFETY: `size <= size_of::<T>()`, the caller's struct has `size` readable
    // bytes, and every bit pattern of T's plain-data fields is valid.
    std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut value as *mut T).cast::<u8>(), size);
    value.keep_fields_within(size, &defaults);
    Ok(value)
}
