//! Optional exact-Piper phonemes: espeak-ng loaded at run time.
//!
//! `libespeak-ng.so.1` is opened with `dlopen` on first use, never linked,
//! so voxide carries no GPL code; without the library a clear error says so.
//! Clauses are phonemized one at a time with `espeak_TextToPhonemes` in IPA
//! mode, as Piper does, and the punctuation that ended each clause is put
//! back the way Piper writes it (`, : ;` followed by a space; `. ? !` end a
//! sentence).

use super::TextError;
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// The library file name that is loaded.
pub const LIBRARY: &str = "libespeak-ng.so.1";

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
}

fn symbol(handle: *mut c_void, name: &str) -> Result<*mut c_void, String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: handle is a live dlopen handle and c a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
    if p.is_null() {
        Err(format!("{LIBRARY} has no symbol {name}"))
    } else {
        Ok(p)
    }
}

fn load() -> Result<Lib, String> {
    let name = CString::new(LIBRARY).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is never closed.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a valid C string.
        let why = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "not found".to_string()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(format!(
            "cannot load {LIBRARY} ({why}); install espeak-ng (Debian/Ubuntu: apt install libespeak-ng1) or use the built-in phonemizer"
        ));
    }
    // SAFETY: the symbols have these C signatures in espeak-ng's speak_lib.h.
    let (init, set_voice, text_to_phonemes) = unsafe {
        (
            std::mem::transmute::<*mut c_void, InitializeFn>(symbol(handle, "espeak_Initialize")?),
            std::mem::transmute::<*mut c_void, SetVoiceFn>(symbol(
                handle,
                "espeak_SetVoiceByName",
            )?),
            std::mem::transmute::<*mut c_void, TextToPhonemesFn>(symbol(
                handle,
                "espeak_TextToPhonemes",
            )?),
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
