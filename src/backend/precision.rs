//! [`Precision`]: the arithmetic a request's convs and products run in. One
//! enum for every device; each backend resolves [`Precision::Auto`] to what
//! it runs best and refuses a precision it cannot run.

/// Arithmetic of the model's convs and matrix products.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// The device's default: [`Precision::Bf16x3`] on CPUs with AMX tiles
    /// (f32 parity with onnxruntime kept, faster), else [`Precision::F32`].
    #[default]
    Auto,
    /// f32 weights and activations, f32 accumulation (the reference).
    F32,
    /// Reduced precision for the flow and decoder: bf16 weights and conv
    /// inputs with f32 accumulation on CPUs with AVX-512 BF16 (about twice the
    /// f32 throughput, lower fidelity); TF32 tensor-core GEMMs on CUDA.
    Bf16,
    /// f32-grade arithmetic on AMX tiles: each value split into two bf16
    /// halves, three bf16 products per multiply, f32 accumulation. Needs
    /// AMX-BF16 (Intel Xeon 4th generation and later).
    Bf16x3,
}

impl Precision {
    /// Parse `auto` / `f32` / `bf16x3` / `bf16`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "bf16x3" => Ok(Precision::Bf16x3),
            other => Err(format!(
                "unknown precision '{other}' (expected auto, f32, bf16x3 or bf16)"
            )),
        }
    }

    /// `auto` / `f32` / `bf16` / `bf16x3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Bf16x3 => "bf16x3",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            Precision::Auto,
            Precision::F32,
            Precision::Bf16,
            Precision::Bf16x3,
        ] {
            assert_eq!(Precision::parse(p.as_str()), Ok(p));
        }
        assert!(Precision::parse("f16")
            .unwrap_err()
            .contains("expected auto"));
    }
}
