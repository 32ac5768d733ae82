//! Option structs of the C ABI and their `*_default()` functions.

use super::handles::SizedOptions;
use super::status::boundary_value;
use std::ffi::c_char;
use std::mem::{offset_of, size_of};

/// Which compute device an engine uses (`VoxideEngineOptions.device`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxideDevice {
    /// `$VOXIDE_DEVICE` if set (auto, cpu, cuda, cuda:N), else CUDA when a
    /// usable GPU and driver are present, else the CPU.
    /// `voxide_engine_device_name` tells which was chosen.
    VOXIDE_DEVICE_AUTO = 0,
    /// The CPU.
    VOXIDE_DEVICE_CPU = 1,
    /// The CUDA GPU `device_ordinal`; `VOXIDE_ERR_DEVICE` when it is not usable
    /// (never a silent fallback to the CPU).
    VOXIDE_DEVICE_CUDA = 2,
}

/// What the `text` argument of a speak call holds (`VoxideSpeakOptions.input`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxideInput {
    /// Plain text, split into sentences and phonemized by voxide.
    VOXIDE_INPUT_TEXT = 0,
    /// espeak-style IPA as Piper writes it, one sentence per line
    /// (for example "həlˈoʊ wˈɜːld.").
    VOXIDE_INPUT_PHONEMES = 1,
    /// Comma-separated phoneme ids of one utterance (for example "1,0,20,0,2").
    VOXIDE_INPUT_IDS = 2,
    /// SSML: a `<speak>` document (see docs/ssml.md for the elements);
    /// malformed SSML is `VOXIDE_ERR_INVALID_ARGUMENT` naming line and column.
    VOXIDE_INPUT_SSML = 3,
}

/// Which phonemizer turns plain text into phonemes (`VoxideSpeakOptions.phonemizer`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxidePhonemizer {
    /// voxide's built-in English frontend (no espeak needed).
    VOXIDE_PHONEMIZER_BUILTIN = 0,
    /// espeak-ng, loaded at run time from `libespeak-ng.so.1` (never linked):
    /// exactly Piper's phonemes, in the voice's espeak language. Without the
    /// library the call fails with `VOXIDE_ERR_UNAVAILABLE` and a message.
    VOXIDE_PHONEMIZER_ESPEAK = 1,
}

/// The arithmetic of an engine (`VoxideEngineOptions.precision`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxidePrecision {
    /// `$VOXIDE_PRECISION` if set, else the device's best f32-grade
    /// arithmetic (bf16x3 on CPUs with AMX tiles, else f32).
    VOXIDE_PRECISION_AUTO = 0,
    /// f32, the reference arithmetic, on every device.
    VOXIDE_PRECISION_F32 = 1,
    /// f32-grade arithmetic on AMX tiles (CPUs with AMX-BF16).
    VOXIDE_PRECISION_BF16X3 = 2,
    /// Reduced precision for the decoder (bf16 on CPUs with AVX-512 BF16,
    /// TF32 tensor cores on CUDA): faster, lower fidelity.
    VOXIDE_PRECISION_BF16 = 3,
}

/// The CPU kernel family of an engine (`VoxideEngineOptions.cpu_isa`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxideCpuIsa {
    /// `$VOXIDE_CPU_ISA` if set, else the best family this CPU runs.
    VOXIDE_CPU_ISA_AUTO = 0,
    /// The AVX-512 kernels (`VOXIDE_ERR_DEVICE` on a CPU without them).
    VOXIDE_CPU_ISA_AVX512 = 1,
    /// The portable kernels in plain Rust (every CPU; f32 only).
    VOXIDE_CPU_ISA_PORTABLE = 2,
    /// The portable kernels on AVX2 + FMA (`VOXIDE_ERR_DEVICE` on a CPU
    /// without them; f32 only).
    VOXIDE_CPU_ISA_AVX2 = 3,
}

/// A three-way switch (`VoxideEngineOptions.scheduler`, `.cuda_graphs`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoxideSwitch {
    /// The environment variable of the setting if set, else its default.
    VOXIDE_SWITCH_DEFAULT = -1,
    /// Off.
    VOXIDE_SWITCH_OFF = 0,
    /// On.
    VOXIDE_SWITCH_ON = 1,
}

/// The raw integer behind a `VoxidePrecision` field (named `VoxidePrecision` in the header).
pub type VoxidePrecisionValue = i32;
/// The raw integer behind a `VoxideCpuIsa` field (named `VoxideCpuIsa` in the header).
pub type VoxideCpuIsaValue = i32;
/// The raw integer behind a `VoxideSwitch` field (named `VoxideSwitch` in the header).
pub type VoxideSwitchValue = i32;

/// The raw integer behind a `VoxideDevice` field (named `VoxideDevice` in the
/// header; Rust reads it as an integer so an unknown value is an error, not
/// undefined behaviour).
pub type VoxideDeviceValue = i32;
/// The raw integer behind a `VoxideInput` field (named `VoxideInput` in the header).
pub type VoxideInputValue = i32;
/// The raw integer behind a `VoxidePhonemizer` field (named `VoxidePhonemizer` in the header).
pub type VoxidePhonemizerValue = i32;

/// Options of `voxide_engine_create_with`. Always start from
/// `voxide_engine_options_default()` and then set fields, so that
/// `struct_size` is right and fields added by later versions get defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxideEngineOptions {
    /// `sizeof(VoxideEngineOptions)` as compiled by the caller (set by
    /// `voxide_engine_options_default()`). A smaller size from an older header
    /// is honoured (missing fields take their defaults); a larger one is
    /// `VOXIDE_ERR_INVALID_ARGUMENT`.
    pub struct_size: usize,
    /// Path of the voice model `NAME.onnx` (UTF-8, NUL-terminated). Required.
    /// Only read during the call; the engine keeps no pointer to it.
    /// Default: NULL.
    pub voice_path: *const c_char,
    /// Path of the voice config; NULL: `voice_path` + ".json". Only read
    /// during the call. Default: NULL.
    pub config_path: *const c_char,
    /// How many requests may run at once (permits), at least 1. Default: 2.
    pub max_concurrent: u32,
    /// The compute device. Default: `VOXIDE_DEVICE_AUTO`.
    pub device: VoxideDeviceValue,
    /// CUDA device ordinal, used with `VOXIDE_DEVICE_CUDA`. Default: 0.
    pub device_ordinal: u32,
    /// CPU threads of the engine's pool; 0: all cores. Default: 0.
    pub threads: u32,
    /// The arithmetic. Default: `VOXIDE_PRECISION_AUTO` (`$VOXIDE_PRECISION`,
    /// else the device's best f32-grade arithmetic). A precision the device
    /// cannot run is `VOXIDE_ERR_DEVICE`.
    pub precision: VoxidePrecisionValue,
    /// The CPU kernel family. Default: `VOXIDE_CPU_ISA_AUTO`
    /// (`$VOXIDE_CPU_ISA`, else the best this CPU runs).
    pub cpu_isa: VoxideCpuIsaValue,
    /// Run requests through the device's scheduler (a bounded queue, batching
    /// of concurrent requests). Default: `VOXIDE_SWITCH_DEFAULT`
    /// (`$VOXIDE_SCHEDULER`, else off).
    pub scheduler: VoxideSwitchValue,
    /// Requests that may wait in the scheduler's queue; 0: the default (64).
    pub queue_depth: u32,
    /// Record and replay CUDA graphs. Default: `VOXIDE_SWITCH_DEFAULT`
    /// (`$VOXIDE_CUDA_GRAPHS`, else on).
    pub cuda_graphs: VoxideSwitchValue,
}

/// Options of `voxide_engine_speak_with` and `voxide_engine_speak_stream`.
/// Always start from `voxide_speak_options_default()` and then set fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxideSpeakOptions {
    /// `sizeof(VoxideSpeakOptions)` as compiled by the caller (set by
    /// `voxide_speak_options_default()`); smaller is honoured, larger is
    /// `VOXIDE_ERR_INVALID_ARGUMENT`.
    pub struct_size: usize,
    /// Prior noise scale; negative: the voice's default (0.667 for most voices).
    /// Default: -1.
    pub noise_scale: f32,
    /// Duration multiplier, larger is slower; negative: the voice's default (1).
    /// Default: -1.
    pub length_scale: f32,
    /// Duration noise scale; negative: the voice's default (0.8).
    /// Default: -1.
    pub noise_w: f32,
    /// Noise seed: the same input, voice and options give the same samples,
    /// run after run and thread after thread. Default: 0.
    pub seed: u64,
    /// Speaker of a multi-speaker voice; negative: the voice's default. Default: -1.
    pub speaker_id: i64,
    /// What `text` holds. Default: `VOXIDE_INPUT_TEXT`.
    pub input: VoxideInputValue,
    /// Phonemizer for `VOXIDE_INPUT_TEXT`. Default: `VOXIDE_PHONEMIZER_BUILTIN`.
    pub phonemizer: VoxidePhonemizerValue,
    /// Speaking speed, 0.25 to 4 (divides the length scale); 0: 1 (normal).
    /// Default: 1.
    pub speed: f32,
}

fn engine_defaults() -> VoxideEngineOptions {
    VoxideEngineOptions {
        struct_size: size_of::<VoxideEngineOptions>(),
        voice_path: std::ptr::null(),
        config_path: std::ptr::null(),
        max_concurrent: 2,
        device: VoxideDevice::VOXIDE_DEVICE_AUTO as i32,
        device_ordinal: 0,
        threads: 0,
        precision: VoxidePrecision::VOXIDE_PRECISION_AUTO as i32,
        cpu_isa: VoxideCpuIsa::VOXIDE_CPU_ISA_AUTO as i32,
        scheduler: VoxideSwitch::VOXIDE_SWITCH_DEFAULT as i32,
        queue_depth: 0,
        cuda_graphs: VoxideSwitch::VOXIDE_SWITCH_DEFAULT as i32,
    }
}

fn speak_defaults() -> VoxideSpeakOptions {
    VoxideSpeakOptions {
        struct_size: size_of::<VoxideSpeakOptions>(),
        noise_scale: -1.0,
        length_scale: -1.0,
        noise_w: -1.0,
        seed: 0,
        speaker_id: -1,
        input: VoxideInput::VOXIDE_INPUT_TEXT as i32,
        phonemizer: VoxidePhonemizer::VOXIDE_PHONEMIZER_BUILTIN as i32,
        speed: 1.0,
    }
}

/// `true` when the field at `offset` of `len` bytes is wholly inside `size`.
fn within(size: usize, offset: usize, len: usize) -> bool {
    offset + len <= size
}

macro_rules! keep {
    ($self:ident, $d:ident, $size:ident, $ty:ty, $($field:ident),*) => {
        $(
            if !within($size, offset_of!($ty, $field), std::mem::size_of_val(&$d.$field)) {
                $self.$field = $d.$field;
            }
        )*
    };
}

// SAFETY: repr(C), starts with usize, plain-data fields only.
unsafe impl SizedOptions for VoxideEngineOptions {
    fn defaults() -> Self {
        engine_defaults()
    }
    fn keep_fields_within(&mut self, size: usize, d: &Self) {
        keep!(
            self,
            d,
            size,
            VoxideEngineOptions,
            voice_path,
            config_path,
            max_concurrent,
            device,
            device_ordinal,
            threads,
            precision,
            cpu_isa,
            scheduler,
            queue_depth,
            cuda_graphs
        );
    }
}

// SAFETY: repr(C), starts with usize, plain-data fields only.
unsafe impl SizedOptions for VoxideSpeakOptions {
    fn defaults() -> Self {
        speak_defaults()
    }
    fn keep_fields_within(&mut self, size: usize, d: &Self) {
        keep!(
            self,
            d,
            size,
            VoxideSpeakOptions,
            noise_scale,
            length_scale,
            noise_w,
            seed,
            speaker_id,
            input,
            phonemizer,
            speed
        );
    }
}

/// Default engine options: `struct_size = sizeof(VoxideEngineOptions)`, no
/// voice (set `voice_path`), NULL config, 2 permits, `VOXIDE_DEVICE_AUTO`,
/// ordinal 0, all cores, and every setting that has an environment variable
/// left to it (`*_AUTO`, `VOXIDE_SWITCH_DEFAULT`). Cannot fail.
#[no_mangle]
pub extern "C" fn voxide_engine_options_default() -> VoxideEngineOptions {
    boundary_value(engine_defaults(), || Ok(engine_defaults()))
}

/// Default speak options: `struct_size = sizeof(VoxideSpeakOptions)`, the
/// voice's scales (negative values), seed 0, the default speaker, plain-text
/// input. Cannot fail.
#[no_mangle]
pub extern "C" fn voxide_speak_options_default() -> VoxideSpeakOptions {
    boundary_value(speak_defaults(), || Ok(speak_defaults()))
}
