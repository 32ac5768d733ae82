//! The HTTP routes over the engine's public API.

use super::codecs;
use super::config::{key_matches, resolve_voice, ServerConfig, VoiceInfo};
use super::encode::Encoder;
use super::error::ApiError;
use super::metrics::Metrics;
use super::request::{parse_speech_request, Format, Limits, Speaker, SpeechRequest, MODELS};
use crate::audio::as_f32;
use crate::{Engine, Error, Permit, SpeakOptions, SpeechEvent};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};

/// What every request handler shares.
pub struct AppState {
    pub(super) engine: Engine,
    pub(super) voices: Vec<VoiceInfo>,
    pub(super) keys: Option<Vec<String>>,
    pub(super) cfg: ServerConfig,
    pub(super) metrics: Metrics,
    /// Signalled when a permit is given back.
    released: Notify,
    queued: AtomicUsize,
    pub(super) draining: AtomicBool,
    formats: Vec<Format>,
}

impl AppState {
    /// The state of a server over `engine`.
    pub fn new(
        engine: Engine,
        voices: Vec<VoiceInfo>,
        keys: Option<Vec<String>>,
        cfg: ServerConfig,
    ) -> AppState {
        let formats = Format::ALL
            .into_iter()
            .filter(|f| match f {
                Format::Mp3 => codecs::mp3_available(),
                Format::Opus => codecs::opus_available(),
                _ => true,
            })
            .collect();
        AppState {
            metrics: Metrics::new(engine.max_concurrent()),
            engine,
            voices,
            keys,
            cfg,
            released: Notify::new(),
            queued: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            formats,
        }
    }

    /// The formats this server can encode.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }
}

type St = State<Arc<AppState>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The router of every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/audio/speech", post(speech))
        .route("/v1/models", get(models))
        .route("/v1/audio/voices", get(voices))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), outer))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}

/// Around every route: CORS (opt-in), the API key, the status counter.
async fn outer(State(st): St, req: Request, next: Next) -> Response {
    let cors = st.cfg.cors.as_deref().and_then(|allowed| {
        let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
        (allowed == "*" || allowed == origin).then(|| HeaderValue::from_str(origin).ok())?
    });
    let mut resp = if cors.is_some() && req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(600));
        r
    } else if !authorized(&st, &req) {
        ApiError::unauthorized(
            "missing or wrong API key: send the header 'Authorization: Bearer KEY'",
        )
        .into_response()
    } else {
        next.run(req).await
    };
    if let Some(o) = cors {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    st.metrics.count(resp.status().as_u16());
    resp
}

fn authorized(st: &AppState, req: &Request) -> bool {
    let Some(keys) = &st.keys else { return true };
    let path = req.uri().path();
    if !(path.starts_with("/v1/") || path == "/metrics") {
        return true;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|p| key_matches(keys, p))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        super::PAGE,
    )
        .into_response()
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(State(st): St) -> Response {
    if st.draining.load(Ordering::SeqCst) {
        return ApiError::draining().into_response();
    }
    axum::Json(serde_json::json!({
        "status": "ready",
        "permits_total": st.engine.max_concurrent(),
        "permits_in_use": st.metrics.permits_in_use.get(),
        "queue_depth": st.metrics.queue_depth.get(),
    }))
    .into_response()
}

async fn metrics(State(st): St) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

async fn models(State(st): St) -> Response {
    let mut data: Vec<serde_json::Value> = MODELS
        .iter()
        .map(
            |m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": "voxide"}),
        )
        .collect();
    data.extend(st.voices.iter().map(|v| {
        serde_json::json!({"id": v.name, "object": "model", "created": 0, "owned_by": "voxide"})
    }));
    let formats: Vec<&str> = st.formats.iter().map(|f| f.name()).collect();
    axum::Json(serde_json::json!({"object": "list", "data": data, "formats": formats}))
        .into_response()
}

async fn voices(State(st): St) -> Response {
    let list: Vec<serde_json::Value> = st
        .voices
        .iter()
        .map(|v| {
            let speakers: Vec<serde_json::Value> = v
                .speakers
                .iter()
                .map(|(n, id)| serde_json::json!({"id": id, "name": n}))
                .collect();
            serde_json::json!({
                "id": v.name,
                "name": v.name,
                "language": v.language,
                "sample_rate": v.sample_rate,
                "num_speakers": v.num_speakers,
                "speakers": speakers,
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "voices": list,
        "default": st.voices[0].name,
        "aliases": super::request::OPENAI_VOICES,
        "formats": st.formats.iter().map(|f| f.name()).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// Read the whole body within the size and time limits.
async fn read_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let max = st.cfg.max_body_bytes;
    let too_large = || ApiError::too_large(format!("the request body is over {max} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(st.cfg.body_timeout, axum::body::to_bytes(body, max)).await {
        Err(_) => Err(ApiError::timeout(format!(
            "the request body was not received within {} s",
            st.cfg.body_timeout.as_secs_f32()
        ))),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = src {
                if s.to_string().contains("length limit") {
                    return Err(too_large());
                }
                src = s.source();
            }
            Err(ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            )))
        }
    }
}

/// Counts a queued request while it waits.
struct Queued<'a>(&'a AppState);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.queue_depth.dec();
    }
}

/// A permit, or a place in the bounded queue until one is free.
async fn admit(st: &AppState) -> Result<Permit, ApiError> {
    if let Some(p) = st.engine.try_acquire_permit() {
        return Ok(p);
    }
    let busy = || {
        ApiError::busy(
            format!(
                "all {} permits are busy and {} requests wait: retry later",
                st.engine.max_concurrent(),
                st.cfg.queue
            ),
            1,
        )
    };
    if st.queued.fetch_add(1, Ordering::SeqCst) >= st.cfg.queue {
        st.queued.fetch_sub(1, Ordering::SeqCst);
        return Err(busy());
    }
    st.metrics.queue_depth.inc();
    let _queued = Queued(st);
    let deadline = tokio::time::Instant::now() + st.cfg.queue_timeout;
    loop {
        let released = st.released.notified();
        tokio::pin!(released);
        // Registered before trying, so a release in between is not missed.
        released.as_mut().enable();
        if let Some(p) = st.engine.try_acquire_permit() {
            return Ok(p);
        }
        if tokio::time::timeout_at(deadline, released).await.is_err() {
            return Err(busy());
        }
    }
}

/// Held by a synthesis: gives the permit count back and wakes the queue.
struct InUse(Arc<AppState>);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.metrics.permits_in_use.dec();
        self.0.released.notify_waiters();
    }
}

/// What the synthesis thread sends the response.
enum Msg {
    Data(Bytes),
    Error(ApiError),
}

/// The response body: the first chunk, then the channel.
struct BodyStream {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Msg>,
}

impl futures_core::Stream for BodyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(b)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Data(b))) => Poll::Ready(Some(Ok(b))),
            // An error after the head is sent: abort the response, so the
            // client sees a truncated body, not a complete one.
            Poll::Ready(Some(Msg::Error(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.message))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn sse(event: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

/// The checked request, resolved against the loaded voices.
struct Job {
    req: SpeechRequest,
    voice: String,
    rate: u32,
    opts: SpeakOptions,
}

fn resolve(st: &AppState, req: SpeechRequest) -> Result<Job, ApiError> {
    let model_voice = st.voices.iter().find(|v| v.name == req.model);
    if model_voice.is_none() && !MODELS.contains(&req.model.as_str()) {
        return Err(ApiError::invalid(
            "model",
            format!(
                "unknown model {:?}: use tts-1, tts-1-hd, gpt-4o-mini-tts, voxide or a voice name",
                req.model
            ),
        )
        .code("model_not_found"));
    }
    // A voice named by `model` wins over an OpenAI alias (or no voice).
    let named = req
        .voice
        .as_deref()
        .filter(|v| st.voices.iter().any(|x| x.name == *v));
    let info = match (named, model_voice) {
        (None, Some(m)) => {
            resolve_voice(&st.voices, req.voice.as_deref())?;
            m
        }
        _ => resolve_voice(&st.voices, req.voice.as_deref())?,
    };
    let mut opts = SpeakOptions::default()
        .seed(req.seed)
        .speed(req.speed)
        .input(req.input_type);
    opts.noise_scale = req.noise_scale;
    opts.noise_w = req.noise_w;
    opts.length_scale = req.length_scale;
    opts.speaker = match &req.speaker {
        None => None,
        Some(s) => {
            let name = match s {
                Speaker::Name(n) => n.clone(),
                Speaker::Id(i) => i.to_string(),
            };
            Some(
                st.engine
                    .speaker_id(Some(&info.name), &name)
                    .map_err(|e| ApiError::invalid("speaker", e.to_string()))?,
            )
        }
    };
    if !st.formats.contains(&req.format) {
        // Names the missing library.
        Encoder::new(req.format, crate::SampleRate(info.sample_rate))?;
    }
    Ok(Job {
        voice: info.name.clone(),
        rate: info.sample_rate,
        opts,
        req,
    })
}

async fn speech(State(st): St, headers: HeaderMap, body: Body) -> Response {
    match speech_inner(st, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn speech_inner(
    st: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if st.draining.load(Ordering::SeqCst) {
        return Err(ApiError::draining());
    }
    let bytes = read_body(&st, &headers, body).await?;
    let limits = Limits {
        max_input_chars: st.cfg.max_input_chars,
    };
    let job = resolve(&st, parse_speech_request(&bytes, &limits)?)?;
    let encoder = Encoder::new(job.req.format, crate::SampleRate(job.rate))?;
    // No permit until the whole body is read and checked.
    let permit = admit(&st).await?;
    st.metrics.permits_in_use.inc();
    let in_use = InUse(st.clone());
    let (tx, mut rx) = mpsc::channel::<Msg>(16);
    let (format, sse_mode) = (job.req.format, job.req.sse);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || synthesize(in_use, rt, tx, job, encoder, permit));
    // The head waits for the first bytes, so errors found before any audio
    // (bad SSML, a sentence over the cap) still get their status.
    let first = match rx.recv().await {
        Some(Msg::Data(b)) => Some(b),
        Some(Msg::Error(e)) => return Err(e),
        None => None,
    };
    let content_type = if sse_mode {
        "text/event-stream"
    } else {
        format.mime()
    };
    let mut resp = Response::new(Body::from_stream(BodyStream { first, rx }));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// The blocking side of a speech request: the engine's events, encoded,
/// through the channel. A closed channel (the client left) or a client
/// that takes no chunk for `send_timeout` cancels the synthesis, which
/// frees the permit at once.
fn synthesize(
    in_use: InUse,
    rt: tokio::runtime::Handle,
    tx: mpsc::Sender<Msg>,
    job: Job,
    mut encoder: Encoder,
    permit: Permit,
) {
    let st = in_use.0.clone();
    let t0 = Instant::now();
    let send_timeout = st.cfg.send_timeout;
    let send = |m: Msg| -> bool {
        matches!(
            rt.block_on(tokio::time::timeout(send_timeout, tx.send(m))),
            Ok(Ok(()))
        )
    };
    let sse_mode = job.req.sse;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let wrap = |b: Vec<u8>| -> Bytes {
        if sse_mode {
            sse(&serde_json::json!({"type": "speech.audio.delta", "audio": b64(&b)}))
        } else {
            Bytes::from(b)
        }
    };
    let mut samples = 0usize;
    let mut first = true;
    let mut failure: Option<ApiError> = None;
    let mut client_gone = false;
    let result =
        st.engine
            .speak_events(&job.req.input, Some(&job.voice), &job.opts, permit, |ev| {
                let msg = match ev {
                    SpeechEvent::Audio(c) => {
                        samples += c.len();
                        match encoder.push(as_f32(c)) {
                            Err(e) => {
                                failure = Some(e);
                                return ControlFlow::Break(());
                            }
                            Ok(b) if b.is_empty() => return ControlFlow::Continue(()),
                            Ok(b) => {
                                if first {
                                    first = false;
                                    st.metrics.ttfa.observe(t0.elapsed().as_secs_f64());
                                }
                                wrap(b)
                            }
                        }
                    }
                    SpeechEvent::Word(w) if job.req.timestamps => sse(&serde_json::json!({
                        "type": "speech.word",
                        "text": w.text,
                        "char_start": w.char_start,
                        "char_end": w.char_end,
                        "start": w.start,
                        "end": w.end,
                    })),
                    _ => return ControlFlow::Continue(()),
                };
                if send(Msg::Data(msg)) {
                    ControlFlow::Continue(())
                } else {
                    client_gone = true;
                    ControlFlow::Break(())
                }
            });
    st.metrics
        .audio_seconds
        .inc_by(samples as f64 / f64::from(job.rate.max(1)));
    let outcome = match (result, failure) {
        (_, Some(e)) => Err(e),
        (Err(Error::Cancelled), None) if client_gone => return,
        (Err(e), None) => Err(ApiError::from_engine(&e, Some("input"))),
        (Ok(()), None) => encoder.finish(),
    };
    // The permit is back; the rest is bookkeeping and the last bytes.
    drop(in_use);
    match outcome {
        Ok(tail) => {
            if first && !tail.is_empty() {
                st.metrics.ttfa.observe(t0.elapsed().as_secs_f64());
            }
            if !tail.is_empty() && !send(Msg::Data(wrap(tail))) {
                return;
            }
            if sse_mode {
                let chars = job.req.input.chars().count();
                send(Msg::Data(sse(&serde_json::json!({
                    "type": "speech.audio.done",
                    "usage": {
                        "input_tokens": chars,
                        "output_tokens": samples,
                        "total_tokens": chars + samples,
                    },
                }))));
            }
        }
        Err(e) if sse_mode && !first => {
            send(Msg::Data(sse(
                &serde_json::json!({"type": "error", "error": e.body()["error"]}),
            )));
        }
        Err(e) => {
            send(Msg::Error(e));
        }
    }
    st.metrics.duration.observe(t0.elapsed().as_secs_f64());
}
