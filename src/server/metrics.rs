//! `/metrics`: Prometheus text exposition (prometheus-client).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A request's label: its final HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HTTP status code.
    pub status: u16,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Responses by status (every route).
    pub requests: Family<StatusLabel, Counter>,
    /// Seconds from a speech request's admission to its first audio bytes.
    pub ttfa: Histogram,
    /// Seconds a speech request took, admission to last byte.
    pub duration: Histogram,
    /// Engine permits held by requests now.
    pub permits_in_use: Gauge,
    /// Requests waiting for a permit now.
    pub queue_depth: Gauge,
    /// Seconds of audio produced.
    pub audio_seconds: Counter<f64, AtomicU64>,
}

impl Metrics {
    /// Registered metrics; `permits` is the engine's total.
    pub fn new(permits: usize) -> Metrics {
        let mut registry = Registry::with_prefix("voxide");
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP responses by status",
            requests.clone(),
        );
        let ttfa = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "speech_ttfa_seconds",
            "Time from admission to the first audio bytes of a speech request",
            ttfa.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "speech_duration_seconds",
            "Time from admission to the end of a speech request",
            duration.clone(),
        );
        let permits_in_use = Gauge::default();
        registry.register(
            "permits_in_use",
            "Engine permits held by requests",
            permits_in_use.clone(),
        );
        let total: Gauge = Gauge::default();
        total.set(permits as i64);
        registry.register("permits_total", "Engine permits in all", total);
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Speech requests waiting for a permit",
            queue_depth.clone(),
        );
        let audio_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "audio_seconds",
            "Seconds of audio synthesized",
            audio_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            ttfa,
            duration,
            permits_in_use,
            queue_depth,
            audio_seconds,
        }
    }

    /// Count a response.
    pub fn count(&self, status: u16) {
        self.requests.get_or_create(&StatusLabel { status }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
