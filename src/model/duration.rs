//! Stochastic duration predictor, reverse direction: encoder output + noise -> logw.

use super::noise::{Noise, STREAM_DP};
use crate::backend::{Backend, Mat, Out};
use crate::error::{BackendError, Error};
use crate::backend::Conv;
use crate::voice::weights::{DdsConv, DurationPredictor};

/// Columns each side one conv reads.
fn conv_radius(c: &Conv) -> usize {
    c.dilation * c.k.saturating_sub(1) / 2
}

/// Columns each side a DDSConv stack reads.
fn dds_radius(d: &DdsConv) -> usize {
    d.layers
        .iter()
        .map(|(sep, _, c1, _)| conv_radius(sep) + conv_radius(c1))
        .sum()
}

/// LayerNorm gamma and beta.
type NormW<B> = (<B as Backend>::Vector, <B as Backend>::Vector);

/// One DDSConv layer: depthwise conv, norm, 1x1 conv, norm.
struct DdsLayer<B: Backend> {
    sep: B::Conv,
    n1: NormW<B>,
    c1: B::Conv,
    n2: NormW<B>,
}

struct Dds<B: Backend> {
    layers: Vec<DdsLayer<B>>,
}
impl<B: Backend> Dds<B> {
    fn new(be: &B, d: &DdsConv) -> Result<Self, BackendError> {
        let mut layers = Vec::new();
        for (sep, n1, c1, n2) in &d.layers {
            layers.push(DdsLayer {
                sep: be.prepare_conv(sep)?,
                n1: (be.prepare_vector(&n1.gamma)?, be.prepare_vector(&n1.beta)?),
                c1: be.prepare_conv(c1)?,
                n2: (be.prepare_vector(&n2.gamma)?, be.prepare_vector(&n2.beta)?),
            });
        }
        Ok(Dds { layers })
    }

    /// `h += GELU(LN(1x1(GELU(LN(sep(h))))))` per layer; `y1`, `y2` are scratch.
    fn run(&self, be: &B, h: &mut B::Buf, m: Mat, y1: &mut B::Buf, y2: &mut B::Buf) {
        for DdsLayer { sep, n1, c1, n2 } in &self.layers {
            be.conv1d(sep, h, m, y1, m, Out::Set);
            be.layer_norm_gelu(y1, m, &n1.0, &n1.1);
            be.conv1d(c1, y1, m, y2, m, Out::Set);
            be.layer_norm_gelu(y2, m, &n2.0, &n2.1);
            be.axpy(1.0, y2, m, h, m);
        }
    }
}

struct Flow<B: Backend> {
    pre: B::Conv,
    convs: Dds<B>,
    proj: B::Conv,
    proj_rows: usize,
}

/// Duration predictor weights on a backend.
pub(crate) struct DurationW<B: Backend> {
    pre: B::Conv,
    convs: Dds<B>,
    proj: B::Conv,
    flows: Vec<Flow<B>>,
    ch: usize,
    bins: usize,
    affine_m: [f32; 2],
    affine_e: [f32; 2],
    radius: usize,
    /// Per speaker, the conditioning added after `pre` (`[speakers, ch]`).
    cond: Option<B::Vector>,
}

impl<B: Backend> DurationW<B> {
    /// `cond`: the per-speaker conditioning table of a multi-speaker voice.
    pub(crate) fn new(
        be: &B,
        d: &DurationPredictor,
        cond: Option<&[f32]>,
    ) -> Result<Self, BackendError> {
        let mut flows = Vec::new();
        for f in &d.flows {
            flows.push(Flow {
                pre: be.prepare_conv(&f.pre)?,
                convs: Dds::new(be, &f.convs)?,
                proj: be.prepare_conv(&f.proj)?,
                proj_rows: f.proj.cout,
            });
        }
        // The conditioning stack, then each flow's stack on top of it (a
        // flow reads its conditioning and the previous flow's output).
        let radius = [&d.pre, &d.proj]
            .into_iter()
            .chain(d.flows.iter().flat_map(|f| [&f.pre, &f.proj]))
            .map(conv_radius)
            .sum::<usize>()
            + dds_radius(&d.convs)
            + d.flows.iter().map(|f| dds_radius(&f.convs)).sum::<usize>();
        Ok(DurationW {
            radius,
            pre: be.prepare_conv(&d.pre)?,
            convs: Dds::new(be, &d.convs)?,
            proj: be.prepare_conv(&d.proj)?,
            flows,
            ch: d.pre.cout,
            bins: d.bins,
            affine_m: d.affine_m,
            affine_e: d.affine_e,
            cond: cond.map(|c| be.prepare_vector(c)).transpose()?,
        })
    }

    /// Ids each side that one id's log-duration depends on (65 for Piper
    /// voices): [`DurationW::run`] on the first `p` ids gives the log-durations
    /// of the whole sentence for ids `0..p − radius` (each column of every op
    /// is computed alone and the noise is addressed by id).
    pub(crate) fn radius(&self) -> usize {
        self.radius
    }

    /// Floats of the scratch buffers [`DurationW::run`] takes for `t` ids, in
    /// its order: conditioning, state, two scratch, flow state, spline parameters.
    pub(crate) fn lens(&self, t: usize) -> [usize; 6] {
        let ch = self.ch * t;
        let max_rows = self.flows.iter().map(|f| f.proj_rows).max().unwrap_or(0);
        [ch, ch, ch, ch, 2 * t, max_rows * t]
    }

    /// `x` `[H, T]` -> logw `[T]` (host); `bufs` as [`DurationW::lens`].
    /// `xm` may be the first columns of the encoder output (a prefix).
    /// `speaker` picks the conditioning of a multi-speaker voice.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        be: &B,
        x: &B::Buf,
        xm: Mat,
        bufs: &mut [B::Buf; 6],
        noise: &Noise,
        noise_w: f32,
        speaker: usize,
    ) -> Result<Vec<f32>, Error> {
        let t = xm.cols();
        let m = Mat::new(self.ch, t);
        let [cond, h, y1, y2, z, theta] = bufs;
        be.conv1d(&self.pre, x, xm, h, m, Out::Set);
        if let Some(c) = &self.cond {
            be.add_rows(c, speaker * self.ch, h, m);
        }
        self.convs.run(be, h, m, y1, y2);
        be.conv1d(&self.proj, h, m, cond, m, Out::Set);

        let mut host = Vec::new();
        noise
            .fill(STREAM_DP, 2, 0, t, &mut host)
            .map_err(Error::InvalidArgument)?;
        for v in &mut host {
            *v *= noise_w;
        }
        let zm = Mat::new(2, t);
        be.write(z, zm, &host);
        // Rows of z playing channel 0 and 1; a Flip swaps the roles.
        let (mut c0, mut c1) = (zm.sub_rows(0, 1), zm.sub_rows(1, 2));
        let wh_scale = (self.ch as f32).sqrt();
        for f in &self.flows {
            std::mem::swap(&mut c0, &mut c1);
            be.conv1d(&f.pre, z, c0, h, m, Out::Set);
            be.axpy(1.0, cond, m, h, m);
            f.convs.run(be, h, m, y1, y2);
            let thm = Mat::new(f.proj_rows, t);
            be.conv1d(&f.proj, h, m, theta, thm, Out::Set);
            be.spline_inverse(z, c1, theta, thm, self.bins, wh_scale);
        }
        std::mem::swap(&mut c0, &mut c1);
        let mut logw = vec![0.0f32; t];
        be.read(z, c0, &mut logw);
        for v in &mut logw {
            *v = (*v - self.affine_m[0]) * self.affine_e[0];
        }
        Ok(logw)
    }
}
