//! mp3 and opus through the system's LAME (`libmp3lame.so.0`, Debian
//! `libmp3lame0`) and libopus (`libopus.so.0`, Debian `libopus0`), loaded at
//! run time: the crate builds everywhere without them, and a server without
//! one still serves the other formats (that format answers 501 naming the
//! missing library). Opus is written as Ogg Opus (RFC 7845).

use super::error::ApiError;
use super::resample::Resampler;
use libloading::Library;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

type LameInit = unsafe extern "C" fn() -> *mut c_void;
type LameSetInt = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type LameInitParams = unsafe extern "C" fn(*mut c_void) -> c_int;
type LameEncode =
    unsafe extern "C" fn(*mut c_void, *const i16, *const i16, c_int, *mut u8, c_int) -> c_int;
type LameFlush = unsafe extern "C" fn(*mut c_void, *mut u8, c_int) -> c_int;
type LameClose = unsafe extern "C" fn(*mut c_void) -> c_int;

type OpusCreate = unsafe extern "C" fn(i32, c_int, c_int, *mut c_int) -> *mut c_void;
type OpusCtl = unsafe extern "C" fn(*mut c_void, c_int, ...) -> c_int;
type OpusEncodeFloat = unsafe extern "C" fn(*mut c_void, *const f32, c_int, *mut u8, i32) -> i32;
type OpusDestroy = unsafe extern "C" fn(*mut c_void);

/// LAME's entry points.
struct LameLib {
    _lib: Library,
    init: LameInit,
    set_in_samplerate: LameSetInt,
    set_num_channels: LameSetInt,
    set_mode: LameSetInt,
    set_brate: LameSetInt,
    set_quality: LameSetInt,
    init_params: LameInitParams,
    encode: LameEncode,
    flush: LameFlush,
    close: LameClose,
}

/// libopus's entry points.
struct OpusLib {
    _lib: Library,
    create: OpusCreate,
    ctl: OpusCtl,
    encode_float: OpusEncodeFloat,
    destroy: OpusDestroy,
}

const LAME_NAMES: &[&str] = &["libmp3lame.so.0", "libmp3lame.0.dylib", "libmp3lame.dll"];
const OPUS_NAMES: &[&str] = &[
    "libopus.so.0",
    "libopus.0.dylib",
    "opus.dll",
    "libopus-0.dll",
];

fn open(names: &[&str]) -> Result<Library, String> {
    let mut last = String::new();
    for n in names {
        // SAFETY: loading a codec library runs its initialisers, which for
        // LAME and libopus only set up static tables.
        match unsafe { Library::new(*n) } {
            Ok(l) => return Ok(l),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

macro_rules! sym {
    ($lib:expr, $name:literal) => {
        // SAFETY: the symbol has the C signature declared for its field
        // (LAME's lame.h, libopus's opus.h); the pointer is used only while
        // the library, kept in the same struct, stays loaded.
        *unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
            .map_err(|e| format!("{}: {e}", $name))?
    };
}

fn lame() -> Result<&'static LameLib, ApiError> {
    static LIB: OnceLock<Result<LameLib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let lib = open(LAME_NAMES)?;
        Ok(LameLib {
            init: sym!(lib, "lame_init"),
            set_in_samplerate: sym!(lib, "lame_set_in_samplerate"),
            set_num_channels: sym!(lib, "lame_set_num_channels"),
            set_mode: sym!(lib, "lame_set_mode"),
            set_brate: sym!(lib, "lame_set_brate"),
            set_quality: sym!(lib, "lame_set_quality"),
            init_params: sym!(lib, "lame_init_params"),
            encode: sym!(lib, "lame_encode_buffer"),
            flush: sym!(lib, "lame_encode_flush"),
            close: sym!(lib, "lame_close"),
            _lib: lib,
        })
    })
    .as_ref()
    .map_err(|e| {
        ApiError::unavailable_format(format!(
            "mp3 needs LAME (libmp3lame.so.0, Debian package libmp3lame0), which cannot be loaded: {e}"
        ))
    })
}

fn opus() -> Result<&'static OpusLib, ApiError> {
    static LIB: OnceLock<Result<OpusLib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let lib = open(OPUS_NAMES)?;
        Ok(OpusLib {
            create: sym!(lib, "opus_encoder_create"),
            ctl: sym!(lib, "opus_encoder_ctl"),
            encode_float: sym!(lib, "opus_encode_float"),
            destroy: sym!(lib, "opus_encoder_destroy"),
            _lib: lib,
        })
    })
    .as_ref()
    .map_err(|e| {
        ApiError::unavailable_format(format!(
            "opus needs libopus (libopus.so.0, Debian package libopus0), which cannot be loaded: {e}"
        ))
    })
}

/// Whether mp3 can be encoded here.
pub fn mp3_available() -> bool {
    lame().is_ok()
}

/// Whether opus can be encoded here.
pub fn opus_available() -> bool {
    opus().is_ok()
}

/// A LAME encoder: mono, 64 kbit/s CBR, quality 5.
pub struct Lame {
    lib: &'static LameLib,
    gf: *mut c_void,
}

// SAFETY: a LAME context has no thread affinity; `Lame` is used by one
// thread at a time (`&mut self`).
unsafe impl Send for Lame {}

impl Lame {
    /// A new encoder of `rate` Hz mono input.
    ///
    /// # Errors
    /// 501 without LAME; 500 when LAME refuses the settings.
    pub fn new(rate: u32) -> Result<Lame, ApiError> {
        let lib = lame()?;
        // SAFETY: lame_init takes no arguments and returns a context or NULL.
        let gf = unsafe { (lib.init)() };
        if gf.is_null() {
            return Err(ApiError::internal("lame_init failed"));
        }
        let l = Lame { lib, gf };
        let rate = c_int::try_from(rate).unwrap_or(c_int::MAX);
        // SAFETY: gf is a live context; MONO is 3 in LAME's MPEG_mode.
        let rc = unsafe {
            (lib.set_in_samplerate)(gf, rate)
                | (lib.set_num_channels)(gf, 1)
                | (lib.set_mode)(gf, 3)
                | (lib.set_brate)(gf, 64)
                | (lib.set_quality)(gf, 5)
        };
        // SAFETY: gf is a live context whose parameters are set.
        if rc != 0 || unsafe { (lib.init_params)(gf) } < 0 {
            return Err(ApiError::internal(format!(
                "LAME refuses {rate} Hz mono at 64 kbit/s"
            )));
        }
        Ok(l)
    }

    /// Encode samples; the mp3 bytes ready.
    ///
    /// # Errors
    /// 500 when LAME fails.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        // LAME's bound for its output: 1.25 * samples + 7200.
        for chunk in pcm.chunks(8192) {
            let cap = chunk.len() * 5 / 4 + 7200;
            let mut buf = vec![0u8; cap];
            // SAFETY: gf is live; `chunk` has `len` samples (the right channel
            // is ignored for mono); `buf` has `cap` writable bytes.
            let n = unsafe {
                (self.lib.encode)(
                    self.gf,
                    chunk.as_ptr(),
                    chunk.as_ptr(),
                    chunk.len() as c_int,
                    buf.as_mut_ptr(),
                    cap as c_int,
                )
            };
            if n < 0 {
                return Err(ApiError::internal(format!(
                    "lame_encode_buffer failed ({n})"
                )));
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        Ok(out)
    }

    /// The last frames.
    ///
    /// # Errors
    /// 500 when LAME fails.
    pub fn flush(&mut self) -> Result<Vec<u8>, ApiError> {
        let mut buf = vec![0u8; 7200];
        // SAFETY: gf is live; buf has 7200 writable bytes (LAME's bound).
        let n = unsafe { (self.lib.flush)(self.gf, buf.as_mut_ptr(), buf.len() as c_int) };
        if n < 0 {
            return Err(ApiError::internal(format!(
                "lame_encode_flush failed ({n})"
            )));
        }
        buf.truncate(n as usize);
        Ok(buf)
    }
}

impl Drop for Lame {
    fn drop(&mut self) {
        // SAFETY: gf is live and closed once.
        unsafe { (self.lib.close)(self.gf) };
    }
}

/// Opus's frame: 20 ms at 48 kHz.
const FRAME: usize = 960;
const OPUS_APPLICATION_AUDIO: c_int = 2049;
const OPUS_GET_LOOKAHEAD_REQUEST: c_int = 4027;
const OPUS_SET_BITRATE_REQUEST: c_int = 4002;

/// An Ogg Opus encoder: mono, 48 kHz, 48 kbit/s, 20 ms frames.
pub struct OpusEnc {
    lib: &'static OpusLib,
    enc: *mut c_void,
    resampler: Option<Resampler>,
    in_rate: u32,
    pending: Vec<f32>,
    /// The previous packet, written when the next one (or the end) shows
    /// whether it is the last.
    held: Option<Vec<u8>>,
    ogg: super::ogg::OggWriter,
    pre_skip: u16,
    /// 48 kHz samples of input so far.
    samples48: u64,
    /// 48 kHz samples encoded (whole frames).
    encoded48: u64,
    headers_written: bool,
}

// SAFETY: an OpusEncoder has no thread affinity; used through `&mut self`.
unsafe impl Send for OpusEnc {}

impl OpusEnc {
    /// A new encoder of `in_rate` Hz mono input (resampled to 48 kHz).
    ///
    /// # Errors
    /// 501 without libopus; 500 when it refuses.
    pub fn new(in_rate: u32) -> Result<OpusEnc, ApiError> {
        let lib = opus()?;
        let mut err: c_int = 0;
        // SAFETY: valid rate, channels and application; err is writable.
        let enc = unsafe { (lib.create)(48000, 1, OPUS_APPLICATION_AUDIO, &mut err) };
        if enc.is_null() || err != 0 {
            return Err(ApiError::internal(format!(
                "opus_encoder_create failed ({err})"
            )));
        }
        let mut me = OpusEnc {
            lib,
            enc,
            resampler: if in_rate == 48000 {
                None
            } else {
                Some(Resampler::new(in_rate, 48000)?)
            },
            in_rate,
            pending: Vec::new(),
            held: None,
            ogg: super::ogg::OggWriter::new(0x766f_7869),
            pre_skip: 312,
            samples48: 0,
            encoded48: 0,
            headers_written: false,
        };
        let mut lookahead: i32 = 0;
        // SAFETY: enc is live; these requests take an opus_int32 and an
        // opus_int32 pointer respectively.
        unsafe {
            (lib.ctl)(enc, OPUS_SET_BITRATE_REQUEST, 48000i32);
            if (lib.ctl)(enc, OPUS_GET_LOOKAHEAD_REQUEST, &mut lookahead as *mut i32) == 0 {
                me.pre_skip = u16::try_from(lookahead).unwrap_or(312);
            }
        }
        Ok(me)
    }

    fn headers(&mut self) -> Vec<u8> {
        // OpusHead (RFC 7845 5.1): version 1, 1 channel, pre-skip, the
        // input rate (informational), gain 0, mapping family 0.
        let mut head = b"OpusHead".to_vec();
        head.push(1);
        head.push(1);
        head.extend_from_slice(&self.pre_skip.to_le_bytes());
        head.extend_from_slice(&self.in_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        let mut out = self.ogg.page(&head, 0, true, false);
        // OpusTags (5.2): vendor string, no comments.
        let vendor = b"voxide";
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        out.extend(self.ogg.page(&tags, 0, false, false));
        out
    }

    fn encode_frames(&mut self, last: bool) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        if !self.headers_written {
            self.headers_written = true;
            out = self.headers();
        }
        if last {
            // Encode past the end by the encoder's lookahead, so the last
            // input samples come out; pad the final frame with silence.
            let total = self.samples48 + u64::from(self.pre_skip);
            let want = total.div_ceil(FRAME as u64) * FRAME as u64;
            let pad = want.saturating_sub(self.encoded48 + self.pending.len() as u64);
            self.pending.extend(std::iter::repeat_n(0.0, pad as usize));
        }
        let mut frame_at = 0;
        while self.pending.len() - frame_at >= FRAME {
            let mut packet = vec![0u8; 4000];
            // SAFETY: enc is live; the frame has FRAME samples; packet has
            // its length in writable bytes.
            let n = unsafe {
                (self.lib.encode_float)(
                    self.enc,
                    self.pending[frame_at..].as_ptr(),
                    FRAME as c_int,
                    packet.as_mut_ptr(),
                    packet.len() as i32,
                )
            };
            if n < 0 {
                return Err(ApiError::internal(format!(
                    "opus_encode_float failed ({n})"
                )));
            }
            packet.truncate(n as usize);
            frame_at += FRAME;
            if let Some(prev) = self.held.replace(packet) {
                // Granule: 48 kHz samples (with pre-skip) decoded by the end
                // of this page.
                self.encoded48 += FRAME as u64;
                out.extend(self.ogg.page(&prev, self.encoded48, false, false));
            }
        }
        self.pending.drain(..frame_at);
        if last {
            if let Some(prev) = self.held.take() {
                // The final page's granule ends the stream at the input's
                // end: the decoder trims the padding (RFC 7845 4.5).
                let end = self.samples48 + u64::from(self.pre_skip);
                out.extend(self.ogg.page(&prev, end, false, true));
            }
        }
        Ok(out)
    }

    /// Encode samples at the input rate; the Ogg pages ready.
    ///
    /// # Errors
    /// 500 when libopus fails.
    pub fn encode(&mut self, samples: &[f32]) -> Result<Vec<u8>, ApiError> {
        let x = match &mut self.resampler {
            Some(r) => r.process(samples, false),
            None => samples.to_vec(),
        };
        self.samples48 += x.len() as u64;
        self.pending.extend(x.iter().map(|v| v.clamp(-1.0, 1.0)));
        self.encode_frames(false)
    }

    /// The last pages.
    ///
    /// # Errors
    /// 500 when libopus fails.
    pub fn finish(&mut self) -> Result<Vec<u8>, ApiError> {
        if let Some(r) = &mut self.resampler {
            let x = r.process(&[], true);
            self.samples48 += x.len() as u64;
            self.pending.extend(x.iter().map(|v| v.clamp(-1.0, 1.0)));
        }
        self.encode_frames(true)
    }
}

impl Drop for OpusEnc {
    fn drop(&mut self) {
        // SAFETY: enc is live and destroyed once.
        unsafe { (self.lib.destroy)(self.enc) };
    }
}
