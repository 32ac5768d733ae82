//! `POST /v1/audio/speech`: the request body parsed and checked, with no I/O
//! and no engine (so it can be fuzzed: `fuzz/fuzz_targets/server_request.rs`).
//!
//! OpenAI's fields: `model`, `input`, `voice`, `response_format`
//! (`wav|pcm|flac|mp3|opus`, default `mp3`; `aac` is refused), `speed`
//! (0.25 to 4), `stream_format` (`audio|sse`), `instructions` (accepted and
//! ignored: the voices are not instructable). Ours: `seed`, `noise_scale`,
//! `noise_w`, `length_scale`, `speaker` (name or id), `input_type`
//! (`text|ssml|phonemes`), `timestamps` (word events; SSE only). Unknown
//! fields are ignored, as OpenAI's API does for forward compatibility.

use super::error::ApiError;
use crate::Input;
use serde_json::{Map, Value};

/// OpenAI's voice names: aliases of the default voice.
pub const OPENAI_VOICES: [&str; 11] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
];

/// Model names accepted besides the loaded voices' names.
pub const MODELS: [&str; 4] = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "voxide"];

/// An audio encoding of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// RIFF WAV, 16-bit mono.
    Wav,
    /// Raw signed 16-bit little-endian samples at the voice's rate.
    Pcm,
    /// FLAC, 16-bit mono.
    Flac,
    /// MPEG-1/2 layer III (LAME), mono.
    Mp3,
    /// Opus in Ogg (libopus), 48 kHz mono.
    Opus,
}

impl Format {
    /// Every format, in the order `/v1/models` lists them.
    pub const ALL: [Format; 5] = [
        Format::Mp3,
        Format::Opus,
        Format::Flac,
        Format::Wav,
        Format::Pcm,
    ];

    /// The name in `response_format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Pcm => "pcm",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::Opus => "opus",
        }
    }

    /// The response's `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Wav => "audio/wav",
            Format::Pcm => "audio/pcm",
            Format::Flac => "audio/flac",
            Format::Mp3 => "audio/mpeg",
            Format::Opus => "audio/ogg",
        }
    }

    /// Parse a `response_format` value.
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// A speaker of a multi-speaker voice: by name or by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Speaker {
    /// A name of the voice's `speaker_id_map` (or a number as text).
    Name(String),
    /// A speaker id.
    Id(i64),
}

/// A checked speech request.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechRequest {
    /// `model` (default `voxide`).
    pub model: String,
    /// The text, SSML or phonemes to speak (not empty).
    pub input: String,
    /// `voice` as given (`None`: the default voice).
    pub voice: Option<String>,
    /// `response_format` (default mp3, as OpenAI's).
    pub format: Format,
    /// `speed` (default 1).
    pub speed: f32,
    /// `stream_format: "sse"`.
    pub sse: bool,
    /// `seed` (default 0).
    pub seed: u64,
    /// `noise_scale`.
    pub noise_scale: Option<f32>,
    /// `noise_w`.
    pub noise_w: Option<f32>,
    /// `length_scale`.
    pub length_scale: Option<f32>,
    /// `speaker`.
    pub speaker: Option<Speaker>,
    /// `input_type` (default text).
    pub input_type: Input,
    /// `timestamps`: word events in the SSE stream.
    pub timestamps: bool,
}

/// The server's limits on a request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most characters (Unicode scalar values) in `input`.
    pub max_input_chars: usize,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(m: &Map<String, Value>, key: &'static str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a string, not {}", kind(v)),
        )),
    }
}

fn number(m: &Map<String, Value>, key: &'static str) -> Result<Option<f64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ApiError::invalid(
                key,
                format!("'{key}' is not a finite number"),
            )),
        },
        Some(v) => Err(ApiError::invalid(
            key,
            format!("'{key}' must be a number, not {}", kind(v)),
        )),
    }
}

fn scale(m: &Map<String, Value>, key: &'static str) -> Result<Option<f32>, ApiError> {
    match number(m, key)? {
        None => Ok(None),
        Some(x) if (0.0..=10.0).contains(&x) => Ok(Some(x as f32)),
        Some(x) => Err(ApiError::invalid(
            key,
            format!("'{key}' is {x}; it must be between 0 and 10"),
        )),
    }
}

/// Parse and check a request body against `limits`. Voices, models and
/// speakers are checked later against what is loaded.
///
/// # Errors
/// A 400 [`ApiError`] naming the field at fault.
pub fn parse_speech_request(body: &[u8], limits: &Limits) -> Result<SpeechRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            .code("invalid_json")
    })?;
    let Value::Object(m) = value else {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            kind(&value)
        )));
    };
    let input =
        string(&m, "input")?.ok_or_else(|| ApiError::invalid("input", "'input' is required"))?;
    if input.trim().is_empty() {
        return Err(ApiError::invalid("input", "'input' is empty"));
    }
    let chars = input.chars().count();
    if chars > limits.max_input_chars {
        return Err(ApiError::invalid(
            "input",
            format!(
                "'input' has {chars} characters; the limit is {}",
                limits.max_input_chars
            ),
        )
        .code("string_above_max_length"));
    }
    let model = string(&m, "model")?.unwrap_or_else(|| "voxide".into());
    if model.is_empty() {
        return Err(ApiError::invalid("model", "'model' is empty"));
    }
    let voice = string(&m, "voice")?;
    if voice.as_deref() == Some("") {
        return Err(ApiError::invalid("voice", "'voice' is empty"));
    }
    let format = match string(&m, "response_format")? {
        None => Format::Mp3,
        Some(f) => Format::parse(&f).ok_or_else(|| {
            ApiError::invalid(
                "response_format",
                format!("'response_format' {f:?} is not supported (wav, pcm, flac, mp3, opus)"),
            )
        })?,
    };
    let speed = match number(&m, "speed")? {
        None => 1.0,
        Some(s) if (0.25..=4.0).contains(&s) => s as f32,
        Some(s) => {
            return Err(ApiError::invalid(
                "speed",
                format!("'speed' is {s}; it must be between 0.25 and 4.0"),
            ))
        }
    };
    let sse = match string(&m, "stream_format")?.as_deref() {
        None | Some("audio") => false,
        Some("sse") => true,
        Some(o) => {
            return Err(ApiError::invalid(
                "stream_format",
                format!("'stream_format' {o:?} is not supported (audio, sse)"),
            ))
        }
    };
    let seed = match m.get("seed") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            ApiError::invalid("seed", "'seed' must be an integer from 0 to 2^64-1")
        })?,
        Some(v) => {
            return Err(ApiError::invalid(
                "seed",
                format!("'seed' must be an integer, not {}", kind(v)),
            ))
        }
    };
    let speaker = match m.get("speaker") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(Speaker::Name(s.clone())),
        Some(Value::Number(n)) => Some(Speaker::Id(n.as_i64().filter(|i| *i >= 0).ok_or_else(
            || {
                ApiError::invalid(
                    "speaker",
                    "'speaker' must be a non-negative integer id or a name",
                )
            },
        )?)),
        Some(v) => {
            return Err(ApiError::invalid(
                "speaker",
                format!("'speaker' must be a name or an id, not {}", kind(v)),
            ))
        }
    };
    let input_type = match string(&m, "input_type")?.as_deref() {
        None | Some("text") => Input::Text,
        Some("ssml") => Input::Ssml,
        Some("phonemes") => Input::Phonemes,
        Some(o) => {
            return Err(ApiError::invalid(
                "input_type",
                format!("'input_type' {o:?} is not supported (text, ssml, phonemes)"),
            ))
        }
    };
    let timestamps = match m.get("timestamps") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::invalid(
                "timestamps",
                format!("'timestamps' must be a boolean, not {}", kind(v)),
            ))
        }
    };
    if timestamps && !sse {
        return Err(ApiError::invalid(
            "timestamps",
            "'timestamps' needs \"stream_format\": \"sse\" (word events travel in the event stream)",
        ));
    }
    // `instructions` (gpt-4o-mini-tts) is accepted if it is a string.
    string(&m, "instructions")?;
    Ok(SpeechRequest {
        model,
        input,
        voice,
        format,
        speed,
        sse,
        seed,
        noise_scale: scale(&m, "noise_scale")?,
        noise_w: scale(&m, "noise_w")?,
        length_scale: scale(&m, "length_scale")?,
        speaker,
        input_type,
        timestamps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_input_chars: 10,
    };

    fn err(body: &str) -> ApiError {
        parse_speech_request(body.as_bytes(), &L).unwrap_err()
    }

    #[test]
    fn defaults_and_fields() {
        let r = parse_speech_request(br#"{"model":"tts-1","input":"Hi.","voice":"alloy"}"#, &L)
            .unwrap();
        assert_eq!(r.format, Format::Mp3);
        assert_eq!(r.speed, 1.0);
        assert!(!r.sse);
        let r = parse_speech_request(
            br#"{"input":"Hi.","response_format":"pcm","speed":2,"stream_format":"sse","seed":7,"speaker":3,"timestamps":true,"input_type":"ssml"}"#,
            &L,
        )
        .unwrap();
        assert_eq!(
            (
                r.format,
                r.speed,
                r.sse,
                r.seed,
                r.speaker,
                r.input_type,
                r.timestamps
            ),
            (
                Format::Pcm,
                2.0,
                true,
                7,
                Some(Speaker::Id(3)),
                Input::Ssml,
                true
            )
        );
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(err("{").code, Some("invalid_json"));
        assert_eq!(err("[1]").status, 400);
        assert_eq!(err(r#"{"input":1}"#).param, Some("input"));
        assert_eq!(err(r#"{"input":""}"#).param, Some("input"));
        assert_eq!(err(r#"{"input":"01234567890"}"#).param, Some("input"));
        assert_eq!(err(r#"{"input":"a","speed":5}"#).param, Some("speed"));
        assert_eq!(err(r#"{"input":"a","speed":"1"}"#).param, Some("speed"));
        assert_eq!(
            err(r#"{"input":"a","response_format":"aac"}"#).param,
            Some("response_format")
        );
        assert_eq!(err(r#"{"input":"a","seed":-1}"#).param, Some("seed"));
        assert_eq!(
            err(r#"{"input":"a","timestamps":true}"#).param,
            Some("timestamps")
        );
        assert_eq!(err(r#"{"input":"a","voice":5}"#).param, Some("voice"));
        assert_eq!(err(r#"{"input":"a","noise_w":-1}"#).param, Some("noise_w"));
        // Invalid UTF-8 inside a string.
        let bad = b"{\"input\":\"\xff\xfe\"}";
        assert_eq!(parse_speech_request(bad, &L).unwrap_err().status, 400);
    }
}
