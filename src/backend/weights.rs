//! Host weights of the layers the ops take ([`Conv`], [`ConvTranspose`]):
//! plain arrays and their shapes, independent of any file format. The voice
//! loader fills them; each backend packs them its own way
//! ([`super::Backend::prepare_conv`]).

/// A 1-D convolution: weight `[cout, cin/groups, k]`, optional bias `[cout]`.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Weight, `[cout, cin/groups, k]` row-major.
    pub w: Vec<f32>,
    /// Bias or none.
    pub b: Option<Vec<f32>>,
    /// Output channels.
    pub cout: usize,
    /// Input channels (per group).
    pub cin: usize,
    /// Kernel size.
    pub k: usize,
    /// Dilation.
    pub dilation: usize,
}

/// A transposed convolution: weight `[cin, cout, k]`, bias `[cout]`, stride.
#[derive(Clone, Debug)]
pub struct ConvTranspose {
    /// Weight `[cin, cout, k]`.
    pub w: Vec<f32>,
    /// Bias `[cout]`.
    pub b: Vec<f32>,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size (2 × stride).
    pub k: usize,
    /// Upsampling factor.
    pub stride: usize,
}
