//! The one place the library reads the environment. Each variable is the
//! default of an [`crate::EngineBuilder`] setting (and of a field of the C
//! ABI's `VoxideEngineOptions`); a value set in code always wins.
//!
//! | variable | setting | values |
//! |---|---|---|
//! | `VOXIDE_DEVICE` | [`crate::EngineBuilder::device`] | `auto`, `cpu`, `cuda`, `cuda:N` |
//! | `VOXIDE_PRECISION` | [`crate::EngineBuilder::precision`] | `auto`, `f32`, `bf16x3`, `bf16` |
//! | `VOXIDE_CPU_ISA` | [`crate::EngineBuilder::cpu_isa`] | `auto`, `avx512`, `portable` |
//! | `VOXIDE_CPU_KERNELS` | the same (older name) | `gemm` = `portable` |
//! | `VOXIDE_CPU_WINOGRAD` | [`crate::EngineBuilder::cpu_winograd`] | `1`/`on`/`true`, `0`/`off`/`false` |
//! | `VOXIDE_SCHEDULER` | [`crate::EngineBuilder::scheduler`] | `1`/`on`/`true`, `0`/`off`/`false` |
//! | `VOXIDE_CUDA_GRAPHS` | [`crate::EngineBuilder::cuda_graphs`] | `1`/`on`/`true`, `0`/`off`/`false` |
//!
//! An unset or empty variable means "no preference"; a value outside its list
//! is an [`Error::InvalidArgument`] naming the variable.

use super::options::Device;
use crate::backend::cpu::Isa;
use crate::backend::Precision;
use crate::error::{Error, Result};

/// The engine settings found in the environment (`None`: not set).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `VOXIDE_DEVICE`.
    pub device: Option<Device>,
    /// `VOXIDE_PRECISION`.
    pub precision: Option<Precision>,
    /// `VOXIDE_CPU_ISA` (or `VOXIDE_CPU_KERNELS=gemm`).
    pub cpu_isa: Option<Isa>,
    /// `VOXIDE_CPU_WINOGRAD`.
    pub cpu_winograd: Option<bool>,
    /// `VOXIDE_SCHEDULER`.
    pub scheduler: Option<bool>,
    /// `VOXIDE_CUDA_GRAPHS`.
    pub cuda_graphs: Option<bool>,
}

impl Settings {
    /// Read the variables of the table above.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the variable whose value is not one
    /// of its accepted values.
    pub fn from_env() -> Result<Settings> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Settings::from_env`], with the values from `get` (for tests).
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &str, e: String| Error::InvalidArgument(format!("{name}: {e}"));
        let cpu_isa = match var("VOXIDE_CPU_ISA") {
            Some(v) => Some(Isa::parse(&v).map_err(|e| bad("VOXIDE_CPU_ISA", e))?),
            None => match var("VOXIDE_CPU_KERNELS").as_deref().map(str::trim) {
                Some("gemm") => Some(Isa::Portable),
                Some(other) => {
                    return Err(bad(
                        "VOXIDE_CPU_KERNELS",
                        format!("unknown value '{other}' (expected gemm; see VOXIDE_CPU_ISA)"),
                    ))
                }
                None => None,
            },
        };
        Ok(Settings {
            device: var("VOXIDE_DEVICE")
                .map(|v| Device::parse(&v).map_err(|e| bad("VOXIDE_DEVICE", e.to_string())))
                .transpose()?,
            precision: var("VOXIDE_PRECISION")
                .map(|v| Precision::parse(&v).map_err(|e| bad("VOXIDE_PRECISION", e)))
                .transpose()?,
            cpu_isa,
            cpu_winograd: var("VOXIDE_CPU_WINOGRAD")
                .map(|v| parse_switch(&v).map_err(|e| bad("VOXIDE_CPU_WINOGRAD", e)))
                .transpose()?,
            scheduler: var("VOXIDE_SCHEDULER")
                .map(|v| parse_switch(&v).map_err(|e| bad("VOXIDE_SCHEDULER", e)))
                .transpose()?,
            cuda_graphs: var("VOXIDE_CUDA_GRAPHS")
                .map(|v| parse_switch(&v).map_err(|e| bad("VOXIDE_CUDA_GRAPHS", e)))
                .transpose()?,
        })
    }
}

/// `1`/`on`/`true`/`yes` or `0`/`off`/`false`/`no`.
fn parse_switch(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Ok(true),
        "0" | "off" | "false" | "no" => Ok(false),
        other => Err(format!(
            "unknown value '{other}' (expected 1/on/true or 0/off/false)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| pairs.iter().find(|p| p.0 == name).map(|p| p.1.clone()))
    }

    #[test]
    fn every_variable_is_read_and_checked() {
        assert_eq!(from(&[]).unwrap(), Settings::default());
        let s = from(&[
            ("VOXIDE_DEVICE", "cuda:1"),
            ("VOXIDE_PRECISION", "f32"),
            ("VOXIDE_CPU_KERNELS", "gemm"),
            ("VOXIDE_SCHEDULER", "on"),
            ("VOXIDE_CUDA_GRAPHS", "0"),
            ("VOXIDE_CPU_WINOGRAD", "off"),
        ])
        .unwrap();
        assert_eq!(s.cpu_winograd, Some(false));
        assert_eq!(s.device, Some(Device::Cuda(1)));
        assert_eq!(s.precision, Some(Precision::F32));
        assert_eq!(s.cpu_isa, Some(Isa::Portable));
        assert_eq!((s.scheduler, s.cuda_graphs), (Some(true), Some(false)));
        // The newer name wins over the older one.
        let s = from(&[("VOXIDE_CPU_ISA", "auto"), ("VOXIDE_CPU_KERNELS", "gemm")]).unwrap();
        assert_eq!(s.cpu_isa, Some(Isa::Auto));
        // Empty means unset.
        assert_eq!(from(&[("VOXIDE_DEVICE", " ")]).unwrap().device, None);
        for (name, value) in [
            ("VOXIDE_DEVICE", "tpu"),
            ("VOXIDE_PRECISION", "int8"),
            ("VOXIDE_CPU_ISA", "sse2"),
            ("VOXIDE_CPU_KERNELS", "fast"),
            ("VOXIDE_SCHEDULER", "maybe"),
            ("VOXIDE_CUDA_GRAPHS", "2"),
            ("VOXIDE_CPU_WINOGRAD", "fast"),
        ] {
            let e = from(&[(name, value)]).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
