//! The domain layer: [`Engine`] (voices, a device, admission), built by
//! [`EngineBuilder`]; requests take a [`Permit`] and run through the one
//! generic runtime of the engine's backend. Coordination only: no model math
//! and no device code here.
//!
//! - `handle.rs`: [`Engine`], the handle callers hold and clone;
//! - `options.rs`: [`Device`], [`Input`], [`SpeakOptions`];
//! - `settings.rs`: [`Settings`], the environment read in one place;
//! - `builder.rs`: [`EngineBuilder`], which picks the backend once;
//! - `permit.rs`: admission (a counting semaphore) and [`Permit`];
//! - `runtime.rs`: `Runtime<B>` over a backend and the object-safe `Serve`
//!   trait the engine dispatches through;
//! - `speech.rs`: one request in flight, one chunk per step;
//! - `ahead.rs`: streaming on several CPU threads (sentences side by side,
//!   delivered in order);
//! - `job.rs`: a request as the scheduler's actor runs it (batching).

mod ahead;
mod builder;
mod core;
mod handle;
mod job;
mod options;
mod permit;
mod runtime;
mod script;
mod settings;
mod speech;

pub use builder::EngineBuilder;
pub use handle::Engine;
pub use options::{Device, Input, SpeakOptions};
pub use permit::Permit;
pub use settings::Settings;
