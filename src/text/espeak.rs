//! Optional exact-Piper phonemes: espeak-ng loaded at run time.
//!
//! The espeak-ng shared library ([`LIBRARY`]: `libespeak-ng.so.1` on Linux
//! and other unix systems, `libespeak-ng.1.dylib` on macOS,
//! `libespeak-ng.dll` on Windows) is opened with `libloading` on first use,
//! never linked, so voxide carries no GPL code; without the library a clear
//! error says so. On unix it is opened with `RTLD_NOW | RTLD_LOCAL` (every
//! symbol resolved at once, none exported to later loads); on Windows with
//! `LoadLibraryExW` and the default search path (the application's directory
//! and `PATH`). Clauses are phonemized one at a time with
//! `espeak_TextToPhonemes` in IPA mode, as Piper does, and the punctuation
//! that ended each clause is put back the way Piper writes it (`, : ;`
//! followed by a space; `. ? !` end a sentence).

use super::TextError;
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// The library file name that is loaded.
#[cfg(all(unix, not(target_os = "macos")))]
pub const LIBRARY: &str = "libespeak-ng.so.1";
/// The library file name that is loaded.
#[cfg(target_os = "macos")]
pub const LIBRARY: &str = "libespeak-ng.1.dylib";
/// The library file name that is loaded.
#[cfg(windows)]
pub const LIBRARY: &str = "libespeak-ng.dll";

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;

type InitializeFn = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceFn = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemesFn = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;

struct Lib {
    set_voice: SetVoiceFn,
    text_to_phonemes: TextToPhonemesFn,
    /// espeak keeps global state: one caller at a time, and the voice last set.
    state: Mutex<Option<String>>,
    /// The loaded library, kept open for the process's life (the function
    /// pointers above point into it).
    _library: libloading::Library,
}

/// The cause of a failed load or symbol lookup, with the OS's own words
/// (`dlerror`, or the Windows error) where it gave any.
fn cause(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

/// Open [`LIBRARY`] from the system's library search path.
fn open() -> Result<libloading::Library, libloading::Error> {
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // SAFETY: loading espeak-ng runs only its (trivial) initialisers.
        unsafe { Library::open(Some(LIBRARY), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        unsafe { libloading::Library::new(LIBRARY) }
    }
}

/// The function `name` of `library` as a `T` (a function pointer type).
///
/// # Safety
/// `T` must be the C signature of `name` in espeak-ng's `speak_lib.h`.
unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &str) -> Result<T, String> {
    // SAFETY: per this function's contract.
    unsafe { library.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| format!("{LIBRARY} has no symbol {name} ({})", cause(&e)))
}

fn load() -> Result<Lib, String> {
    let library = open().map_err(|e| {
        format!(
            "cannot load {LIBRARY} ({}); install espeak-ng (Debian/Ubuntu: apt install libespeak-ng1) or use the built-in phonemizer",
            cause(&e)
        )
    })?;
    // SAFETY: the symbols have these C signatures in espeak-ng's speak_lib.h.
    let (init, set_voice, text_to_phonemes) = unsafe {
        (
            symbol::<InitializeFn>(&library, "espeak_Initialize")?,
            symbol::<SetVoiceFn>(&library, "espeak_SetVoiceByName")?,
            symbol::<TextToPhonemesFn>(&library, "espeak_TextToPhonemes")?,
        )
    };
    // SAFETY: synchronous mode, default buffer and data path, no options.
    let rate = unsafe { init(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), 0) };
    if rate <= 0 {
        return Err(format!(
            "espeak_Initialize failed ({rate}): is espeak-ng-data installed?"
        ));
    }
    Ok(Lib {
        set_voice,
        text_to_phonemes,
        state: Mutex::new(None),
        _library: library,
    })
}

fn lib() -> Result<&'static Lib, TextError> {
    static L: OnceLock<Result<Lib, String>> = OnceLock::new();
    L.get_or_init(load)
        .as_ref()
        .map_err(|e| TextError::Unavailable(e.clone()))
}

/// Whether libespeak-ng could be loaded (loads it on first call).
pub fn available() -> bool {
    lib().is_ok()
}

/// Remove espeak's language-switch marks such as "(en)" / "(fr)".
fn strip_language_flags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Phonemize text with espeak-ng in voice `voice` (e.g. "en-us"): one IPA
/// string per sentence, as Piper produces them.
///
/// # Errors
/// [`TextError::Unavailable`] when the library cannot be loaded; [`TextError::Espeak`] when the voice is
/// unknown, or the text contains a NUL byte.
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<String>, TextError> {
    let lib = lib()?;
    let c_text =
        CString::new(text.replace('\0', " ")).map_err(|e| TextError::Espeak(e.to_string()))?;
    let mut state = lib.state.lock();
    if state.as_deref() != Some(voice) {
        let v = CString::new(voice).map_err(|e| TextError::Espeak(e.to_string()))?;
        // SAFETY: valid C string; espeak is only used under this lock.
        let rc = unsafe { (lib.set_voice)(v.as_ptr()) };
        if rc != 0 {
            return Err(TextError::Espeak(format!(
                "espeak-ng has no voice {voice:?} (error {rc})"
            )));
        }
        *state = Some(voice.to_string());
    }
    let bytes = c_text.as_bytes();
    let base = c_text.as_ptr();
    let mut ptr: *const c_void = base.cast();
    let mut sentences = Vec::new();
    let mut cur = String::new();
    while !ptr.is_null() {
        // SAFETY: ptr points into c_text (NUL-terminated, alive for the loop);
        // espeak advances it clause by clause and sets it to NULL at the end.
        let start = unsafe { ptr.cast::<c_char>().offset_from(base) } as usize;
        let ph =
            unsafe { (lib.text_to_phonemes)(&mut ptr, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA) };
        let end = if ptr.is_null() {
            bytes.len()
        } else {
            // SAFETY: as above.
            (unsafe { ptr.cast::<c_char>().offset_from(base) } as usize).min(bytes.len())
        };
        let clause = if ph.is_null() {
            String::new()
        } else {
            // SAFETY: espeak returns a NUL-terminated string valid until the next call.
            strip_language_flags(&unsafe { CStr::from_ptr(ph) }.to_string_lossy())
        };
        let consumed = String::from_utf8_lossy(&bytes[start.min(end)..end]);
        // espeak may read a little past the clause end; the terminator is the
        // last clause punctuation followed by a space, a quote or the end.
        let chars: Vec<char> = consumed.chars().collect();
        let term = (0..chars.len())
            .rev()
            .find(|&i| {
                ".?!,:;".contains(chars[i])
                    && chars
                        .get(i + 1)
                        .is_none_or(|n| n.is_whitespace() || "\"')]”’".contains(*n))
            })
            .map(|i| chars[i]);
        let clause = clause.trim();
        if !clause.is_empty() {
            if !cur.is_empty() && !cur.ends_with(' ') {
                cur.push(' ');
            }
            cur.push_str(clause);
        }
        match term {
            Some(t @ ('.' | '?' | '!')) if !cur.is_empty() => {
                cur.push(t);
                sentences.push(std::mem::take(&mut cur));
            }
            Some(t) if !cur.is_empty() => {
                cur.push(t);
                cur.push(' ');
            }
            _ => {}
        }
        if end >= bytes.len() {
            break;
        }
    }
    let last = cur.trim_end().to_string();
    if !last.is_empty() {
        sentences.push(last);
    }
    Ok(sentences)
}
