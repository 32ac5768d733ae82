//! Model instances: each holds the model's shared engine.

use std::ffi::CStr;
use std::sync::Arc;

use voxide::{Device, Engine};

use crate::error::{check, log, Error, Result};
use crate::model::ModelState;
use crate::sys;

/// Per-instance state, owned by Triton through
/// `TRITONBACKEND_ModelInstanceSetState`.
pub struct InstanceState {
    pub instance: *mut sys::TRITONBACKEND_ModelInstance,
    pub model_name: String,
    pub decoupled: bool,
    pub engine: Arc<Engine>,
}

impl InstanceState {
    pub fn new(
        instance: *mut sys::TRITONBACKEND_ModelInstance,
        model: &ModelState,
    ) -> Result<InstanceState> {
        let mut name = std::ptr::null();
        // SAFETY: `instance` is the live instance Triton passed us; the name
        // is owned by it and copied.
        check(
            unsafe { sys::TRITONBACKEND_ModelInstanceName(instance, &mut name) },
            "instance name",
        )?;
        let name = if name.is_null() {
            String::new()
        } else {
            // SAFETY: non-null and NUL-terminated per the API.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut kind = 0;
        let mut device_id = 0i32;
        // SAFETY: as above; valid out-pointers.
        check(
            unsafe { sys::TRITONBACKEND_ModelInstanceKind(instance, &mut kind) },
            "instance kind",
        )?;
        // SAFETY: as above.
        check(
            unsafe { sys::TRITONBACKEND_ModelInstanceDeviceId(instance, &mut device_id) },
            "instance device",
        )?;
        let device = match model.config.device {
            Some(d) => d,
            None if kind == sys::INSTANCEGROUPKIND_GPU => {
                Device::Cuda(usize::try_from(device_id).map_err(|_| {
                    Error::invalid(format!("instance {name:?}: GPU id {device_id}"))
                })?)
            }
            None => Device::Cpu,
        };
        let engine = model.engine(device)?;
        log(
            sys::LOG_INFO,
            &format!(
                "instance {name:?} (asked for {device:?}) uses the model's engine on {}",
                engine.device_name()
            ),
        );
        Ok(InstanceState {
            instance,
            model_name: model.name.clone(),
            decoupled: model.config.decoupled,
            engine,
        })
    }
}
