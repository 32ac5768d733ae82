//! The server's settings (`voxide serve`'s flags) and the voice catalogue
//! built from them.

use super::error::ApiError;
use crate::voice::VoiceConfig;
use crate::{Device, Engine, Error};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of [`serve`](super::serve).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (default 127.0.0.1:8000, loopback only).
    pub bind: SocketAddr,
    /// Voice files (`.onnx` with `.onnx.json` beside). The first is the
    /// default voice.
    pub voices: Vec<PathBuf>,
    /// A directory whose every `*.onnx` is loaded too.
    pub voices_dir: Option<PathBuf>,
    /// A file holding the API keys, one a line: requests to `/v1/*` and
    /// `/metrics` need `Authorization: Bearer KEY`.
    pub api_key_file: Option<PathBuf>,
    /// Engine permits: requests synthesized at once.
    pub max_concurrent: usize,
    /// Requests that may wait for a permit; beyond that, 429.
    pub queue: usize,
    /// Longest wait in the queue before 429.
    pub queue_timeout: Duration,
    /// Most characters of `input`.
    pub max_input_chars: usize,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Time to read a request's headers (then the connection is closed).
    pub header_timeout: Duration,
    /// Time to read a request's body (then 400).
    pub body_timeout: Duration,
    /// Longest a streamed response waits for a stalled client to take the
    /// next chunk before it cancels the synthesis.
    pub send_timeout: Duration,
    /// Longest wait for in-flight requests at shutdown.
    pub drain_timeout: Duration,
    /// `Access-Control-Allow-Origin` for this origin (`*`: any); none: no CORS.
    pub cors: Option<String>,
    /// Compute device (`auto`, `cpu`, `cuda`, `cuda:N`).
    pub device: Option<String>,
    /// CPU threads (0: all cores).
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            voices: Vec::new(),
            voices_dir: None,
            api_key_file: None,
            max_concurrent: 2,
            queue: 16,
            queue_timeout: Duration::from_secs(30),
            max_input_chars: 4096,
            max_body_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(60),
            cors: None,
            device: None,
            threads: 0,
        }
    }
}

/// A loaded voice as `/v1/audio/voices` lists it.
#[derive(Clone, Debug)]
pub struct VoiceInfo {
    /// The file stem.
    pub name: String,
    /// `en_US`, if the config says.
    pub language: Option<String>,
    /// Output rate.
    pub sample_rate: u32,
    /// Speaker names and ids (empty: one speaker).
    pub speakers: Vec<(String, i64)>,
    /// Number of speakers.
    pub num_speakers: usize,
}

fn stem(p: &Path) -> Result<String, Error> {
    p.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidArgument(format!("{}: no usable file name", p.display())))
}

fn config_of(p: &Path) -> PathBuf {
    let mut s = p.to_path_buf().into_os_string();
    s.push(".json");
    s.into()
}

/// The voice files of a config: `voices`, then the directory's, sorted, no
/// name twice.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be read; [`Error::InvalidArgument`]
/// when there is no voice.
pub fn voice_files(c: &ServerConfig) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut files = c.voices.clone();
    if let Some(dir) = &c.voices_dir {
        files.extend(crate::voice::voice_files_in(dir)?);
    }
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for f in files {
        let name = stem(&f)?;
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, f));
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(
            "no voice: give --voice PATH.onnx or --voices DIR".into(),
        ));
    }
    Ok(out)
}

/// Build the engine and the catalogue of its voices.
///
/// # Errors
/// As [`crate::EngineBuilder::build`]; a voice config that cannot be read.
pub fn build(c: &ServerConfig) -> Result<(Engine, Vec<VoiceInfo>), Error> {
    let files = voice_files(c)?;
    let mut b = Engine::builder()
        .max_concurrent(c.max_concurrent.max(1))
        .threads(c.threads);
    if let Some(d) = &c.device {
        b = b.device(Device::parse(d)?);
    }
    let mut infos = Vec::new();
    for (name, path) in &files {
        // The first voice added is the engine's default.
        b = b.named_voice(name, path);
        let cfg = VoiceConfig::load(&config_of(path))?;
        let speakers: Vec<(String, i64)> = cfg
            .named_speakers()
            .into_iter()
            .map(|(id, n)| (n.to_string(), id))
            .collect();
        infos.push(VoiceInfo {
            name: name.clone(),
            language: cfg.language.clone(),
            sample_rate: cfg.sample_rate,
            speakers,
            num_speakers: cfg.num_speakers,
        });
    }
    Ok((b.build()?, infos))
}

/// The API keys of a key file: one a line, blank lines and `#` comments
/// skipped.
///
/// # Errors
/// [`Error::Io`]; [`Error::InvalidArgument`] for a file with no key.
pub fn load_keys(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("cannot read {}", path.display()),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no API key in the file",
            path.display()
        )));
    }
    Ok(keys)
}

/// Constant-time comparison of a presented key with the configured ones
/// (time depends on the lengths only).
pub fn key_matches(keys: &[String], presented: &str) -> bool {
    let p = presented.as_bytes();
    let mut any = 0u8;
    for k in keys {
        let k = k.as_bytes();
        let mut diff = u8::from(k.len() != p.len());
        for i in 0..k.len().max(p.len()) {
            diff |= k.get(i).copied().unwrap_or(0) ^ p.get(i).copied().unwrap_or(0xff);
        }
        any |= u8::from(diff == 0);
    }
    any != 0
}

/// A voice by request name: a loaded name, or an OpenAI alias of the default.
///
/// # Errors
/// 400 with `param: "voice"`, listing the voices.
pub fn resolve_voice<'a>(
    voices: &'a [VoiceInfo],
    requested: Option<&str>,
) -> Result<&'a VoiceInfo, ApiError> {
    let Some(r) = requested else {
        return Ok(&voices[0]);
    };
    if let Some(v) = voices.iter().find(|v| v.name == r) {
        return Ok(v);
    }
    if super::request::OPENAI_VOICES.contains(&r.to_ascii_lowercase().as_str()) {
        return Ok(&voices[0]);
    }
    let names: Vec<&str> = voices.iter().map(|v| v.name.as_str()).collect();
    Err(ApiError::invalid(
        "voice",
        format!(
            "unknown voice {r:?}: loaded are {} (and OpenAI's names, aliases of {})",
            names.join(", "),
            voices[0].name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        let keys = vec!["secret".to_string(), "other-key".into()];
        assert!(key_matches(&keys, "secret"));
        assert!(key_matches(&keys, "other-key"));
        assert!(!key_matches(&keys, "secre"));
        assert!(!key_matches(&keys, "secret2"));
        assert!(!key_matches(&keys, ""));
    }
}
