//! Model state: the parsed model configuration and the one engine the
//! model's instances share.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use voxide::{Device, Engine, Precision};

use crate::error::{check, log, Error, Result};
use crate::sys;

/// What the model configuration asks for.
#[derive(Debug)]
pub struct Config {
    /// Voice model path (absolute, or relative to the model's directory).
    pub voice: PathBuf,
    /// `device` parameter; `None`: from the instance kind (KIND_GPU: CUDA
    /// on the instance's device, else CPU).
    pub device: Option<Device>,
    /// `threads` parameter (0: all cores).
    pub threads: usize,
    pub precision: Option<Precision>,
    /// Requests the engine runs at once: `max_concurrent`, else the number of
    /// instances the configuration declares.
    pub max_concurrent: usize,
    /// `scheduler` parameter: requests through the engine's batching
    /// scheduler (`None`: the engine's default, `$VOXIDE_SCHEDULER` else off).
    pub scheduler: Option<bool>,
    /// `model_transaction_policy { decoupled: true }`.
    pub decoupled: bool,
}

/// Per-model state, owned by Triton through `TRITONBACKEND_ModelSetState`.
pub struct ModelState {
    pub name: String,
    pub config: Config,
    /// Built by the first instance (whose kind and device pick the device),
    /// shared by the others.
    engine: Mutex<Option<Arc<Engine>>>,
}

impl ModelState {
    /// Read the model's name, repository and configuration.
    pub fn new(model: *mut sys::TRITONBACKEND_Model) -> Result<ModelState> {
        let name = model_name(model)?;
        let dir = model_dir(model, &name)?;
        let json = model_config_json(model)?;
        let config = parse_config(&json, dir.as_deref())
            .map_err(|e| Error::invalid(format!("model {name:?}: {e}")))?;
        log(
            sys::LOG_INFO,
            &format!(
                "model {name:?}: voice {}, decoupled {}, max_concurrent {}, scheduler {:?}",
                config.voice.display(),
                config.decoupled,
                config.max_concurrent,
                config.scheduler
            ),
        );
        Ok(ModelState {
            name,
            config,
            engine: Mutex::new(None),
        })
    }

    /// The model's engine, built on `device` by the first caller.
    pub fn engine(&self, device: Device) -> Result<Arc<Engine>> {
        let mut slot = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(engine) = slot.as_ref() {
            return Ok(Arc::clone(engine));
        }
        let c = &self.config;
        let mut b = Engine::builder()
            .voice(&c.voice)
            .device(device)
            .threads(c.threads)
            .max_concurrent(c.max_concurrent);
        if let Some(p) = c.precision {
            b = b.precision(p);
        }
        if let Some(on) = c.scheduler {
            b = b.scheduler(on);
        }
        let engine = Arc::new(b.build().map_err(|e| {
            Error::engine(&format!("model {:?}: loading the voice", self.name), &e)
        })?);
        log(
            sys::LOG_INFO,
            &format!(
                "model {:?}: engine on {} ({} threads, {} permits)",
                self.name,
                engine.device_name(),
                engine.threads(),
                engine.max_concurrent()
            ),
        );
        *slot = Some(Arc::clone(&engine));
        Ok(engine)
    }
}

fn model_name(model: *mut sys::TRITONBACKEND_Model) -> Result<String> {
    let mut name = std::ptr::null();
    // SAFETY: `model` is the live model Triton passed us; `name` receives a
    // string owned by the model, copied before we return.
    check(
        unsafe { sys::TRITONBACKEND_ModelName(model, &mut name) },
        "model name",
    )?;
    if name.is_null() {
        return Err(Error::internal("Triton gave no model name"));
    }
    // SAFETY: non-null and NUL-terminated per the API.
    Ok(unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned())
}

/// The model's directory in the repository (relative voice paths start
/// there); `None` when the repository is not a file system.
fn model_dir(model: *mut sys::TRITONBACKEND_Model, name: &str) -> Result<Option<PathBuf>> {
    let mut kind = 0;
    let mut location = std::ptr::null();
    // SAFETY: as in `model_name`; the location string is owned by the model.
    check(
        unsafe { sys::TRITONBACKEND_ModelRepository(model, &mut kind, &mut location) },
        &format!("model {name:?}: repository"),
    )?;
    if kind != sys::ARTIFACT_FILESYSTEM || location.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated per the API.
    let dir = unsafe { CStr::from_ptr(location) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(PathBuf::from(dir)))
}

fn model_config_json(model: *mut sys::TRITONBACKEND_Model) -> Result<Value> {
    let mut message = std::ptr::null_mut();
    // SAFETY: `model` is live; on success we own `message` and delete it
    // below after copying its JSON.
    check(
        unsafe { sys::TRITONBACKEND_ModelConfig(model, 1, &mut message) },
        "model config",
    )?;
    let mut base = std::ptr::null();
    let mut size = 0usize;
    // SAFETY: `message` is the live message from above; `base`/`size`
    // describe a buffer it owns, read before the message is deleted.
    let json = unsafe {
        let r = check(
            sys::TRITONSERVER_MessageSerializeToJson(message, &mut base, &mut size),
            "model config as JSON",
        )
        .map(|()| {
            if base.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(base.cast::<u8>(), size).to_vec()
            }
        });
        let _ = check(
            sys::TRITONSERVER_MessageDelete(message),
            "deleting the config message",
        );
        r?
    };
    serde_json::from_slice(&json).map_err(|e| Error::internal(format!("model config JSON: {e}")))
}

/// A `parameters { key: K value { string_value: V } }` entry.
fn parameter<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get("parameters")?
        .get(key)?
        .get("string_value")?
        .as_str()
        .map(str::trim)
}

fn count_parameter(config: &Value, key: &str) -> std::result::Result<Option<usize>, String> {
    match parameter(config, key) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("parameter {key}: {v:?} is not a whole number")),
    }
}

/// The instances the configuration declares: each group's `count`, times
/// its listed GPUs for KIND_GPU groups that list them.
fn declared_instances(config: &Value) -> usize {
    let groups = config.get("instance_group").and_then(Value::as_array);
    let total: u64 = groups
        .into_iter()
        .flatten()
        .map(|g| {
            let count = g.get("count").and_then(Value::as_u64).unwrap_or(1);
            let gpus = g.get("gpus").and_then(Value::as_array).map_or(0, Vec::len) as u64;
            let kind = g.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == "KIND_GPU" && gpus > 0 {
                count * gpus
            } else {
                count
            }
        })
        .sum();
    usize::try_from(total).unwrap_or(usize::MAX).max(1)
}

pub fn parse_config(config: &Value, dir: Option<&Path>) -> std::result::Result<Config, String> {
    let voice = parameter(config, "voice")
        .filter(|v| !v.is_empty())
        .ok_or("parameter \"voice\" (the voice's .onnx path) is missing")?;
    let mut voice = PathBuf::from(voice);
    if voice.is_relative() {
        if let Some(dir) = dir {
            voice = dir.join(voice);
        }
    }
    let device = match parameter(config, "device") {
        None | Some("") => None,
        Some(d) => Some(Device::parse(d).map_err(|e| format!("parameter device: {e}"))?),
    };
    let precision = match parameter(config, "precision") {
        None | Some("") => None,
        Some(p) => Some(Precision::parse(p).map_err(|e| format!("parameter precision: {e}"))?),
    };
    let threads = count_parameter(config, "threads")?.unwrap_or(0);
    let max_concurrent = match count_parameter(config, "max_concurrent")? {
        Some(0) => return Err("parameter max_concurrent must be at least 1".into()),
        Some(n) => n,
        None => declared_instances(config),
    };
    let scheduler = match parameter(config, "scheduler")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") => None,
        Some("1" | "on" | "true" | "yes") => Some(true),
        Some("0" | "off" | "false" | "no") => Some(false),
        Some(other) => return Err(format!("parameter scheduler: {other:?} is not on or off")),
    };
    let decoupled = config
        .get("model_transaction_policy")
        .and_then(|p| p.get("decoupled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Config {
        voice,
        device,
        threads,
        precision,
        max_concurrent,
        scheduler,
        decoupled,
    })
}
