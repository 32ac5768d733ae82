//! `voxide serve`: an OpenAI-compatible speech server over [`Engine`]
//! (feature `server`, on by default).
//!
//! `POST /v1/audio/speech` takes OpenAI's request (and voxide's extensions,
//! see [`request`]) and streams wav, pcm, flac, mp3 or opus, or OpenAI's
//! server-sent events; `GET /v1/models`, `GET /v1/audio/voices`,
//! `/healthz`, `/readyz`, `/metrics` (Prometheus) and `GET /` (a web page)
//! complete it. The engine's permits are the admission control: a request
//! takes one, or waits in a bounded queue, or gets 429 with `Retry-After`.
//!
//! The rooms: [`config`] (settings, voices, keys), [`request`] (parsing and
//! checks, pure), [`error`] (OpenAI's error body), `encode` with `codecs`,
//! `resample` and `ogg` (the formats), `metrics`, `routes` (the handlers)
//! and this file (the listener: timeouts, graceful shutdown). The server
//! uses the engine's public API only.
//!
//! ```no_run
//! let config = voxide::server::ServerConfig {
//!     voices: vec!["voices/en_US-joe-medium.onnx".into()],
//!     ..Default::default()
//! };
//! voxide::server::run(config)?;
//! # Ok::<(), voxide::Error>(())
//! ```

mod codecs;
pub mod config;
mod encode;
pub mod error;
mod metrics;
mod ogg;
pub mod request;
mod resample;
mod routes;

pub use config::ServerConfig;
pub use error::ApiError;
pub use request::{parse_speech_request, Format, Limits, SpeechRequest};

use crate::{Engine, Error};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The web page served at `/`.
const PAGE: &str = include_str!("page.html");

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Load the voices, listen on `config.bind`, print `listening on
/// http://ADDR:PORT` to stderr, and serve until SIGINT or SIGTERM; then
/// stop accepting, finish the requests in flight and return.
///
/// # Errors
/// A voice that cannot be loaded, an unreadable key file, an address that
/// cannot be bound.
pub fn run(config: ServerConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(io_err("cannot start the async runtime".into()))?;
    rt.block_on(async move {
        let (engine, voices) = config::build(&config)?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(io_err(format!("cannot listen on {}", config.bind)))?;
        serve(listener, config, engine, voices, shutdown_signal()).await
    })
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a signal handler the server runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Serve on `listener` with a built engine until `shutdown` resolves; then
/// drain (up to `config.drain_timeout`).
///
/// # Errors
/// An unreadable key file.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    engine: Engine,
    voices: Vec<config::VoiceInfo>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let keys = match &config.api_key_file {
        Some(p) => Some(config::load_keys(p)?),
        None => None,
    };
    let state = Arc::new(routes::AppState::new(engine, voices, keys, config.clone()));
    let app = routes::router(state.clone());
    let addr = listener
        .local_addr()
        .map_err(io_err("cannot read the listening address".into()))?;
    let formats: Vec<&str> = state.formats().iter().map(|f| f.name()).collect();
    eprintln!(
        "voxide: {} voice(s), {} permit(s), queue {}, formats {}{}",
        state.voices.len(),
        state.engine.max_concurrent(),
        config.queue,
        formats.join(" "),
        if state.formats().len() < request::Format::ALL.len() {
            " (mp3 needs libmp3lame.so.0, opus libopus.so.0)"
        } else {
            ""
        }
    );
    eprintln!("listening on http://{addr}");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let (stream, _) = match conn {
                    Ok(c) => c,
                    // Out of descriptors and the like: wait a little.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = http.serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A connection's errors (a client that left) end it only.
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    state.draining.store(true, Ordering::SeqCst);
    eprintln!("voxide: shutting down, finishing the requests in flight");
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("voxide: requests still in flight after the drain timeout; leaving");
    }
    Ok(())
}
