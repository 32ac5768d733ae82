//! The `voxide` command-line tool: speak, phonemize, bench, voices.

use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use voxide::audio::{as_f32, wav_header, SampleRate};
use voxide::voice::{phoneme_sentences, VoiceConfig};
use voxide::{Device, Engine, Error, Input, Isa, Precision, SpeakOptions, SpeechEvent, WordTiming};

#[derive(Parser)]
#[command(
    name = "voxide",
    version,
    about = "Native neural text-to-speech for Piper voices"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Synthesize speech to a WAV file, stdout, or raw float32.
    Speak(SpeakArgs),
    /// Print the phonemes of text, one line of IPA per sentence.
    Phonemize(PhonemizeArgs),
    /// Measure speed, time to first audio, load time and memory.
    Bench(BenchArgs),
    /// List the voices found in a directory.
    Voices {
        /// Directory to scan (default: voices/).
        dir: Option<PathBuf>,
    },
    /// Serve OpenAI's speech API (POST /v1/audio/speech) and a web page.
    #[cfg(feature = "server")]
    Serve(ServeArgs),
}

#[cfg(feature = "server")]
#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0: a free one, reported on stderr).
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: std::net::SocketAddr,
    /// Voice model, repeatable; the first is the default (default: $VOXIDE_VOICE,
    /// else voices/en_US-joe-medium.onnx, unless --voices gives some).
    #[arg(long)]
    voice: Vec<PathBuf>,
    /// Load every *.onnx voice (with its .onnx.json) in this directory.
    #[arg(long)]
    voices: Option<PathBuf>,
    /// File of API keys, one a line: /v1/* and /metrics then need `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Requests synthesized at once (engine permits).
    #[arg(long, default_value_t = 2)]
    max_concurrent: usize,
    /// Requests that may wait for a permit; beyond, 429 with Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Most characters of a request's input.
    #[arg(long, default_value_t = 4096)]
    max_input_chars: usize,
    /// Allow cross-origin requests from this origin (`*`: any).
    #[arg(long)]
    cors: Option<String>,
    /// Compute device: auto, cpu or cuda (default: $VOXIDE_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Seconds a client may take to send a request's headers (then the connection closes).
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client may take to send a request's body (then 400).
    #[arg(long, default_value_t = 10.0)]
    body_timeout: f64,
}

#[cfg(feature = "server")]
fn secs(flag: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::InvalidArgument(format!("--{flag} {v}: expected seconds above 0")))
}

#[cfg(feature = "server")]
fn serve(a: ServeArgs) -> Result<(), Error> {
    let mut voices = a.voice;
    if voices.is_empty() && a.voices.is_none() {
        voices.push(default_voice());
    }
    if a.max_concurrent == 0 {
        return Err(Error::InvalidArgument(
            "--max-concurrent must be at least 1".into(),
        ));
    }
    voxide::server::run(voxide::server::ServerConfig {
        bind: a.bind,
        voices,
        voices_dir: a.voices,
        api_key_file: a.api_key_file,
        max_concurrent: a.max_concurrent,
        queue: a.queue,
        max_input_chars: a.max_input_chars,
        cors: a.cors,
        device: a.device,
        threads: a.threads,
        header_timeout: secs("header-timeout", a.header_timeout)?,
        body_timeout: secs("body-timeout", a.body_timeout)?,
        ..Default::default()
    })
}

#[derive(Args, Clone)]
struct VoiceArgs {
    /// Voice model (default: $VOXIDE_VOICE, else voices/en_US-joe-medium.onnx).
    #[arg(long)]
    voice: Option<PathBuf>,
    /// Voice config (default: the voice path + .json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compute device: auto, cpu or cuda (default: $VOXIDE_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// CPU arithmetic: auto, f32 (the reference), bf16x3 (f32-grade on AMX tiles: Intel Xeon 4th gen and later) or bf16 (decoder in bf16, lower fidelity; faster only where the CPU has fast AVX-512 BF16 dot products, e.g. AMD Zen 4)
    /// (default: $VOXIDE_PRECISION, else auto = bf16x3 where the CPU has AMX, else f32).
    #[arg(long)]
    precision: Option<String>,
    /// CPU kernel family: auto (the best this CPU runs), avx512, avx2 (AVX2 + FMA) or portable (plain Rust, every CPU)
    /// (default: $VOXIDE_CPU_ISA, else auto).
    #[arg(long)]
    isa: Option<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").args(["text", "phonemes", "ids"])))]
struct SpeakArgs {
    #[command(flatten)]
    voice: VoiceArgs,
    /// Text to speak (none of --text/--phonemes/--ids: read text from stdin).
    #[arg(long)]
    text: Option<String>,
    /// espeak-style IPA, one sentence per line.
    #[arg(long)]
    phonemes: Option<String>,
    /// Phoneme ids of one utterance, comma-separated.
    #[arg(long)]
    ids: Option<String>,
    /// Prior noise scale (default: the voice's).
    #[arg(long)]
    noise_scale: Option<f32>,
    /// Duration multiplier, larger is slower (default: the voice's).
    #[arg(long)]
    length_scale: Option<f32>,
    /// Duration noise scale (default: the voice's).
    #[arg(long)]
    noise_w: Option<f32>,
    /// Noise seed: the same input and options give the same samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Speaker of a multi-speaker voice: id or name (`voxide voices` lists them).
    #[arg(long)]
    speaker: Option<String>,
    /// The input text (from --text or stdin) is SSML.
    #[arg(long)]
    ssml: bool,
    /// Speaking speed, 0.25..4 (divides the length scale).
    #[arg(long, default_value_t = 1.0)]
    speed: f32,
    /// Write word timestamps (and SSML marks) as JSON.
    #[arg(long, value_name = "FILE.json")]
    timestamps: Option<PathBuf>,
    /// Write captions of the words: SubRip or WebVTT, by the extension.
    #[arg(long, value_name = "FILE.srt|FILE.vtt")]
    subtitles: Option<PathBuf>,
    /// WAV output file, or - to stream WAV to stdout (default: out.wav unless --raw).
    #[arg(long)]
    output: Option<String>,
    /// Raw float32 little-endian samples, no normalisation.
    #[arg(long)]
    raw: Option<PathBuf>,
    /// Phonemizer for text: builtin, or espeak (libespeak-ng.so.1 loaded at run time; Piper's exact phonemes).
    #[arg(long, default_value = "builtin", value_parser = voxide::text::Phonemizer::parse)]
    phonemizer: voxide::text::Phonemizer,
}

#[derive(Args)]
struct PhonemizeArgs {
    /// Voice; with --phonemizer espeak its config's espeak language is used (default en-us).
    #[arg(long)]
    voice: Option<PathBuf>,
    /// Phonemizer: builtin, or espeak (libespeak-ng.so.1 loaded at run time; Piper's exact phonemes).
    #[arg(long, default_value = "builtin", value_parser = voxide::text::Phonemizer::parse)]
    phonemizer: voxide::text::Phonemizer,
    /// Text (default: stdin).
    #[arg(long)]
    text: Option<String>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    voice: VoiceArgs,
    /// File with the text to speak.
    #[arg(long)]
    text_file: PathBuf,
    /// What the file holds: text, phonemes (IPA, one sentence per line) or ids.
    #[arg(long, default_value = "text")]
    input: String,
    /// Timed repetitions (median reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Simultaneous requests, each the whole text, through the device's
    /// batching scheduler.
    #[arg(long)]
    concurrency: Option<usize>,
    /// With --concurrency: run the requests directly on their own threads,
    /// without the scheduler (for comparison).
    #[arg(long)]
    direct: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn default_voice() -> PathBuf {
    std::env::var_os("VOXIDE_VOICE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("voices/en_US-joe-medium.onnx"))
}

fn build_engine(v: &VoiceArgs, max_concurrent: usize) -> Result<Engine, Error> {
    build_engine_with(v, max_concurrent, None)
}

fn build_engine_with(
    v: &VoiceArgs,
    max_concurrent: usize,
    scheduler: Option<bool>,
) -> Result<Engine, Error> {
    let mut b = Engine::builder()
        .voice(v.voice.clone().unwrap_or_else(default_voice))
        .max_concurrent(max_concurrent)
        .threads(v.threads);
    if let Some(c) = &v.config {
        b = b.config(c);
    }
    if let Some(d) = &v.device {
        b = b.device(Device::parse(d)?);
    }
    if let Some(p) = &v.precision {
        b = b.precision(Precision::parse(p).map_err(Error::InvalidArgument)?);
    }
    if let Some(i) = &v.isa {
        b = b.cpu_isa(Isa::parse(i).map_err(Error::InvalidArgument)?);
    }
    if let Some(on) = scheduler {
        b = b.scheduler(on);
    }
    b.build()
}

fn read_stdin() -> Result<String, Error> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                Error::InvalidArgument("standard input is not valid UTF-8".into())
            }
            _ => Error::Io {
                context: "cannot read standard input".into(),
                source: e,
            },
        })?;
    Ok(s)
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: format!("cannot write {}", path.display()),
        source,
    }
}

fn speak(a: SpeakArgs) -> Result<(), Error> {
    let engine = build_engine(&a.voice, 1)?;
    let (text, input) = match (&a.text, &a.phonemes, &a.ids) {
        (Some(t), _, _) => (t.clone(), Input::Text),
        (_, Some(p), _) => (p.clone(), Input::Phonemes),
        (_, _, Some(i)) => (i.clone(), Input::Ids),
        _ => (read_stdin()?, Input::Text),
    };
    let input = match (a.ssml, input) {
        (false, i) => i,
        (true, Input::Text) => Input::Ssml,
        (true, _) => {
            return Err(Error::InvalidArgument(
                "--ssml takes its input from --text or stdin".into(),
            ))
        }
    };
    let subtitles = match &a.subtitles {
        None => None,
        Some(p) => match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "srt" || e == "vtt" => Some((p.clone(), e == "vtt")),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "--subtitles {}: the file must end in .srt or .vtt",
                    p.display()
                )))
            }
        },
    };
    if input == Input::Phonemes {
        warn_dropped_phonemes(&engine, &a, &text)?;
    }
    let mut opts = SpeakOptions::default()
        .seed(a.seed)
        .input(input)
        .phonemizer(a.phonemizer);
    opts.noise_scale = a.noise_scale;
    opts.length_scale = a.length_scale;
    opts.noise_w = a.noise_w;
    opts.speed = a.speed;
    opts.speaker = match &a.speaker {
        None => None,
        Some(s) => Some(engine.speaker_id(None, s)?),
    };
    let output = match (&a.output, &a.raw) {
        (None, None) => Some("out.wav".to_string()),
        (o, _) => o.clone(),
    };
    let rate = engine.sample_rate(None)?;
    let source = (input == Input::Text).then_some(text.as_str());
    if output.as_deref() == Some("-") {
        let (samples, words, marks) =
            stream_to_stdout(&engine, &text, &opts, rate, a.raw.as_deref())?;
        return write_timing(
            &a,
            subtitles,
            rate,
            source,
            &voxide::captions::timestamps_json_of(rate.hz(), samples, &words, &marks),
            &words,
        );
    }
    let permit = engine.acquire_permit()?;
    let audio = engine.speak_with(&text, None, &opts, permit)?;
    for w in audio.warnings() {
        eprintln!("voxide: warning: SSML {w}");
    }
    write_timing(
        &a,
        subtitles,
        rate,
        source,
        &voxide::captions::timestamps_json(&audio),
        audio.words(),
    )?;
    if let Some(raw) = &a.raw {
        write_raw(raw, as_f32(audio.samples()))?;
    }
    if let Some(out) = output {
        audio.write_wav(&out)?;
        eprintln!(
            "voxide: wrote {out} ({:.2} s of audio at {} Hz, {})",
            audio.duration_secs(),
            rate.hz(),
            engine.device_name()
        );
    }
    Ok(())
}

/// `--timestamps` and `--subtitles`.
fn write_timing(
    a: &SpeakArgs,
    subtitles: Option<(PathBuf, bool)>,
    rate: SampleRate,
    source: Option<&str>,
    json: &str,
    words: &[WordTiming],
) -> Result<(), Error> {
    if let Some(p) = &a.timestamps {
        std::fs::write(p, json).map_err(write_err(p))?;
    }
    if let Some((p, vtt)) = subtitles {
        let c = voxide::captions::Captions::new(words, rate.hz(), source, Default::default());
        let body = if vtt { c.vtt() } else { c.srt() };
        std::fs::write(&p, body).map_err(write_err(&p))?;
    }
    Ok(())
}

fn warn_dropped_phonemes(engine: &Engine, a: &SpeakArgs, text: &str) -> Result<(), Error> {
    let path = a.voice.voice.clone().unwrap_or_else(default_voice);
    let cfg_path = a.voice.config.clone().unwrap_or_else(|| {
        let mut s = path.clone().into_os_string();
        s.push(".json");
        s.into()
    });
    let cfg = VoiceConfig::load(&cfg_path)?;
    let map = voxide::voice::PhonemeIdMap::new(&cfg);
    let _ = engine;
    for (i, s) in phoneme_sentences(text).iter().enumerate() {
        let m = map.sentence_ids(s);
        if !m.dropped.is_empty() {
            let list: String = m.dropped.iter().collect();
            eprintln!(
                "voxide: warning: sentence {} has phonemes the voice lacks, dropped: {list:?}",
                i + 1
            );
        }
    }
    Ok(())
}

fn write_raw(path: &Path, samples: &[f32]) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(samples.len() * 4);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(write_err(path))
}

/// WAV to stdout as chunks are ready. The length fields are set to the maximum
/// (unknown when the header is written); samples are not peak-normalised,
/// since a sentence's peak is unknown until it ends.
fn stream_to_stdout(
    engine: &Engine,
    text: &str,
    opts: &SpeakOptions,
    rate: SampleRate,
    raw: Option<&Path>,
) -> Result<(usize, Vec<WordTiming>, Vec<voxide::Mark>), Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |source| Error::Io {
        context: "cannot write to standard output".into(),
        source,
    };
    out.write_all(&wav_header(rate, u32::MAX - 36))
        .map_err(io)?;
    let mut raw_samples = Vec::new();
    let mut failure = None;
    let permit = engine.acquire_permit()?;
    let (mut samples, mut words, mut marks) = (0, Vec::new(), Vec::new());
    engine
        .speak_events(text, None, opts, permit, |ev| {
            let chunk = match ev {
                SpeechEvent::Audio(c) => c,
                SpeechEvent::Word(w) => {
                    words.push(w.clone());
                    return ControlFlow::Continue(());
                }
                SpeechEvent::Mark(m) => {
                    marks.push(m.clone());
                    return ControlFlow::Continue(());
                }
                _ => return ControlFlow::Continue(()),
            };
            samples += chunk.len();
            let f = as_f32(chunk);
            if raw.is_some() {
                raw_samples.extend_from_slice(f);
            }
            let mut b = Vec::with_capacity(f.len() * 2);
            for &x in f {
                let v = (x.clamp(-1.0, 1.0) * 32767.0) as i16;
                b.extend_from_slice(&v.to_le_bytes());
            }
            match out.write_all(&b).and_then(|_| out.flush()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|e| match (&e, failure.take()) {
            (Error::Cancelled, Some(f)) => io(f),
            _ => e,
        })?;
    if let Some(r) = raw {
        write_raw(r, &raw_samples)?;
    }
    Ok((samples, words, marks))
}

fn phonemize(a: PhonemizeArgs) -> Result<(), Error> {
    let text = match a.text {
        Some(t) => t,
        None => read_stdin()?,
    };
    let espeak_voice = match (&a.voice, a.phonemizer) {
        (Some(v), voxide::text::Phonemizer::Espeak) => {
            VoiceConfig::load(Path::new(&format!("{}.json", v.display())))?.espeak_voice
        }
        _ => None,
    };
    let sentences = voxide::text::phonemize_with(&text, a.phonemizer, espeak_voice.as_deref())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for s in sentences {
        writeln!(out, "{s}").map_err(|source| Error::Io {
            context: "cannot write to standard output".into(),
            source,
        })?;
    }
    Ok(())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Time one streamed request: (seconds of audio, wall seconds, ms to first chunk).
fn timed_request(
    engine: &Engine,
    text: &str,
    opts: &SpeakOptions,
    rate: f64,
) -> Result<(f64, f64, f64), Error> {
    let permit = engine.acquire_permit()?;
    let t0 = Instant::now();
    let mut first: Option<Duration> = None;
    let mut samples = 0usize;
    engine.speak_stream(text, None, opts, permit, |c| {
        if first.is_none() && !c.is_empty() {
            first = Some(t0.elapsed());
        }
        samples += c.len();
        ControlFlow::Continue(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    Ok((
        samples as f64 / rate,
        wall,
        first.map_or(wall, |d| d.as_secs_f64()) * 1e3,
    ))
}

fn bench(a: BenchArgs) -> Result<(), Error> {
    let text = std::fs::read_to_string(&a.text_file).map_err(|source| Error::Io {
        context: format!("cannot read {}", a.text_file.display()),
        source,
    })?;
    let input = match a.input.as_str() {
        "text" => Input::Text,
        "phonemes" => Input::Phonemes,
        "ids" => Input::Ids,
        o => {
            return Err(Error::InvalidArgument(format!(
                "--input {o:?}: expected text, phonemes or ids"
            )))
        }
    };
    let conc = a.concurrency.unwrap_or(1).max(1);
    // `--concurrency` goes through the scheduler unless `--direct`; without
    // it, `$VOXIDE_SCHEDULER` decides as for `speak`.
    let scheduled = if a.concurrency.is_some() {
        !a.direct
    } else {
        voxide::Settings::from_env()?.scheduler == Some(true)
    };
    let t0 = Instant::now();
    let engine = build_engine_with(&a.voice, conc, Some(scheduled))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rate = f64::from(engine.sample_rate(None)?.hz());
    let opts = SpeakOptions::default().input(input);
    // Time to first audio per sentence-sized request.
    let sentences: Vec<String> = match input {
        Input::Phonemes => phoneme_sentences(&text)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Input::Ids => vec![text.clone()],
        _ => voxide::text::phonemize(&text).map_err(|e| Error::InvalidArgument(e.to_string()))?,
    };
    let sent_opts = opts.clone().input(if input == Input::Ids {
        Input::Ids
    } else {
        Input::Phonemes
    });
    // Per sentence (the first 20), the median of `repeat` requests.
    let mut ttfa = Vec::new();
    for s in sentences.iter().take(20) {
        let mut each = Vec::new();
        for _ in 0..a.repeat.max(1) {
            each.push(timed_request(&engine, s, &sent_opts, rate)?.2);
        }
        ttfa.push(median(&mut each));
    }
    let ttfa_max = ttfa.iter().copied().fold(0.0f64, f64::max);
    // Warm-up, then timed repeats of the whole text.
    let (audio_s, _, _) = timed_request(&engine, &text, &opts, rate)?;
    let mut walls = Vec::new();
    let mut req_ttfa = Vec::new();
    let stages_before = engine.stage_times();
    for _ in 0..a.repeat.max(1) {
        if conc == 1 {
            let (_, w, f) = timed_request(&engine, &text, &opts, rate)?;
            walls.push(w);
            req_ttfa.push(f);
        } else {
            let start = Instant::now();
            let results: Vec<Result<(f64, f64, f64), Error>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..conc)
                    .map(|_| s.spawn(|| timed_request(&engine, &text, &opts, rate)))
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(Error::Panic("bench thread".into())))
                    })
                    .collect()
            });
            walls.push(start.elapsed().as_secs_f64());
            for r in results {
                req_ttfa.push(r?.2);
            }
        }
    }
    let st = engine.stage_times();
    // Whole-text mode (`speak_with`, what onnxruntime's sentence-by-sentence
    // runs compare with): long chunks, no first-chunk rush.
    let mut walls_whole = Vec::new();
    if conc == 1 {
        for _ in 0..a.repeat.max(1) {
            let permit = engine.acquire_permit()?;
            let t0 = Instant::now();
            engine.speak_with(&text, None, &opts, permit)?;
            walls_whole.push(t0.elapsed().as_secs_f64());
        }
    }
    let runs = (a.repeat.max(1) * conc) as f64;
    let per_run = |after: f64, before: f64| (after - before) / runs;
    let wall = median(&mut walls);
    let total_audio = audio_s * conc as f64;
    let xrt = if wall > 0.0 { total_audio / wall } else { 0.0 };
    let mut obj = serde_json::json!({
        "audio_s": audio_s,
        "wall_s": wall,
        "xrt": xrt,
        "ttfa_ms": median(&mut ttfa),
        "ttfa_max_ms": ttfa_max,
        "load_ms": load_ms,
        "peak_rss_mb": peak_rss_mb(),
        "device": engine.device_name(),
        "threads": engine.threads(),
        "precision": engine.precision().as_str(),
        "isa": engine.cpu_isa().map(|i| i.as_str()),
        "winograd": engine.cpu_winograd(),
        "sentences": sentences.len(),
        "repeat": a.repeat.max(1),
        "stage_s": {
            "encoder": per_run(st.encoder, stages_before.encoder),
            "duration": per_run(st.duration, stages_before.duration),
            "flow": per_run(st.flow, stages_before.flow),
            "decoder": per_run(st.decoder, stages_before.decoder),
        },
    });
    if let Some((used, total)) = engine.device_memory() {
        obj["gpu_mem_used_mb"] = (used as f64 / 1048576.0).into();
        obj["gpu_mem_total_mb"] = (total as f64 / 1048576.0).into();
    }
    if !walls_whole.is_empty() {
        let w = median(&mut walls_whole);
        obj["wall_whole_s"] = w.into();
        obj["xrt_whole"] = (if w > 0.0 { audio_s / w } else { 0.0 }).into();
    }
    if a.concurrency.is_some() {
        obj["concurrency"] = conc.into();
        obj["scheduler"] = scheduled.into();
        // Device memory in use: only on a GPU (null on the CPU backend).
        obj["gpu_mem_mb"] = serde_json::Value::Null;
        obj["ttfa_p50_ms"] = median(&mut req_ttfa.clone()).into();
        obj["ttfa_p99_ms"] = percentile(&mut req_ttfa, 0.99).into();
    }
    if a.json {
        println!("{obj}");
    } else {
        println!("{}", serde_json::to_string_pretty(&obj).unwrap_or_default());
    }
    Ok(())
}

fn voices(dir: Option<PathBuf>) -> Result<(), Error> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("voices"));
    let found = voxide::voice::voice_files_in(&dir)?;
    if found.is_empty() {
        eprintln!("voxide: no .onnx voices in {}", dir.display());
    }
    for p in found {
        let mut cfg = p.clone().into_os_string();
        cfg.push(".json");
        match VoiceConfig::load(Path::new(&cfg)) {
            Ok(c) => {
                let names: Vec<String> = c
                    .named_speakers()
                    .iter()
                    .map(|(id, n)| format!("{id}={n}"))
                    .collect();
                println!(
                    "{}\t{} Hz\t{} speaker(s){}\t{}\t{}",
                    p.display(),
                    c.sample_rate,
                    c.num_speakers,
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", names.join(", "))
                    },
                    c.language.as_deref().unwrap_or("?"),
                    c.phoneme_type
                )
            }
            Err(e) => println!("{}\t(unusable: {e})", p.display()),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("voxide: internal error: {}", msg.replace('\n', " "));
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let line = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!("voxide: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = std::panic::catch_unwind(|| match cli.cmd {
        Cmd::Speak(a) => speak(a),
        Cmd::Phonemize(a) => phonemize(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Voices { dir } => voices(dir),
        #[cfg(feature = "server")]
        Cmd::Serve(a) => serve(a),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("voxide: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}
