//! Audio entry points.

use super::handles::{self, VoxideAudio};
use super::status::{boundary, boundary_value, VoxideStatus};
use std::ffi::c_char;

/// The audio's float samples (mono, the model's raw output in about
/// [-1, 1], sentences concatenated, not normalised).
///
/// The array has `voxide_audio_len(audio)` elements, is owned by the audio
/// and stays valid until `voxide_audio_free(audio)`. For an audio of 0
/// samples the pointer is non-NULL but must not be dereferenced. NULL if
/// `audio` is NULL.
///
/// # Safety
/// `audio` is NULL or a live audio.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_samples(audio: *const VoxideAudio) -> *const f32 {
    boundary_value(std::ptr::null(), || {
        Ok(handles::audio(audio)?.audio.samples_f32().as_ptr())
    })
}

/// Number of samples in the audio (0 for empty text, and if `audio` is NULL).
///
/// # Safety
/// `audio` is NULL or a live audio.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_len(audio: *const VoxideAudio) -> usize {
    boundary_value(0, || Ok(handles::audio(audio)?.audio.samples().len()))
}

/// Sample rate of the audio in Hz (the voice's, e.g. 22050); 0 if `audio` is NULL.
///
/// # Safety
/// `audio` is NULL or a live audio.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_sample_rate(audio: *const VoxideAudio) -> u32 {
    boundary_value(0, || Ok(handles::audio(audio)?.audio.sample_rate().hz()))
}

/// Write the audio to `path` as a 16-bit mono PCM WAV file (each sentence
/// peak-normalised, as Piper does). `path` (UTF-8) is only read during the
/// call; the audio is not modified.
/// Errors: `VOXIDE_ERR_NULL_ARGUMENT`, `VOXIDE_ERR_INVALID_UTF8`, `VOXIDE_ERR_IO`.
///
/// # Safety
/// `audio` is NULL or a live audio; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_write_wav(
    audio: *const VoxideAudio,
    path: *const c_char,
) -> VoxideStatus {
    boundary(|| {
        let audio = handles::audio(audio)?;
        let path = handles::str_arg(path, "path")?;
        Ok(audio.audio.write_wav(path)?)
    })
}

/// Free an audio and its samples. NULL is a no-op.
///
/// # Safety
/// `audio` is NULL or a live audio, not used again.
#[no_mangle]
pub unsafe extern "C" fn voxide_audio_free(audio: *mut VoxideAudio) {
    boundary_value((), || {
        handles::free(audio);
        Ok(())
    })
}
