//! Text encoder: embedding, post-norm transformer with relative attention, projection.

use crate::backend::{Backend, Mat, Out};
use crate::error::BackendError;
use crate::backend::Conv;
use crate::voice::weights::Encoder;

struct Layer<B: Backend> {
    qkv: B::Conv,
    o: B::Conv,
    rel_k: B::Vector,
    rel_v: B::Vector,
    n1: (B::Vector, B::Vector),
    ffn1: B::Conv,
    ffn2: B::Conv,
    n2: (B::Vector, B::Vector),
    ffn_ch: usize,
}

/// Encoder weights on a backend.
pub(crate) struct EncoderW<B: Backend> {
    emb: B::Vector,
    hidden: usize,
    heads: usize,
    layers: Vec<Layer<B>>,
    proj: B::Conv,
}

fn concat_rows(parts: &[&Conv]) -> Conv {
    let mut w = Vec::new();
    let mut b = Vec::new();
    for p in parts {
        w.extend_from_slice(&p.w);
        b.extend(p.b.clone().unwrap_or_else(|| vec![0.0; p.cout]));
    }
    Conv {
        w,
        b: Some(b),
        cout: parts.iter().map(|p| p.cout).sum(),
        cin: parts[0].cin,
        k: parts[0].k,
        dilation: 1,
    }
}

impl<B: Backend> EncoderW<B> {
    pub(crate) fn new(be: &B, e: &Encoder) -> Result<Self, BackendError> {
        let mut layers = Vec::with_capacity(e.layers.len());
        for l in &e.layers {
            layers.push(Layer {
                qkv: be.prepare_conv(&concat_rows(&[&l.q, &l.k, &l.v]))?,
                o: be.prepare_conv(&l.o)?,
                rel_k: be.prepare_vector(&l.rel_k)?,
                rel_v: be.prepare_vector(&l.rel_v)?,
                n1: (
                    be.prepare_vector(&l.norm1.gamma)?,
                    be.prepare_vector(&l.norm1.beta)?,
                ),
                // The feed-forward convs (~70 % of the encoder's FLOPs) may
                // run in tiles (Winograd on the CPU's `avx2` family): the
                // encoder always runs whole sentences from column 0, so no
                // halo or alignment is needed for the same bits every time.
                ffn1: be.prepare_conv_tiled(&l.ffn1, false)?,
                ffn2: be.prepare_conv_tiled(&l.ffn2, false)?,
                n2: (
                    be.prepare_vector(&l.norm2.gamma)?,
                    be.prepare_vector(&l.norm2.beta)?,
                ),
                ffn_ch: l.ffn1.cout,
            });
        }
        Ok(EncoderW {
            emb: be.prepare_vector(&e.emb)?,
            hidden: e.hidden,
            heads: e.heads,
            layers,
            proj: be.prepare_conv(&e.proj)?,
        })
    }

    /// Floats of the scratch buffers [`EncoderW::run`] takes for `t` ids, in
    /// its order: `x`, `m_p ‖ logs_p`, q/k/v, attention, residual, FFN.
    pub(crate) fn lens(&self, t: usize) -> [usize; 6] {
        let h = self.hidden;
        let ffn_ch = self.layers.iter().map(|l| l.ffn_ch).max().unwrap_or(0);
        [h * t, 2 * h * t, 3 * h * t, h * t, h * t, ffn_ch * t]
    }

    /// ids -> `x` `[H, T]` in `bufs[0]`, `m_p ‖ logs_p` `[2H, T]` in `bufs[1]`;
    /// `bufs` as [`EncoderW::lens`] (at least those lengths).
    pub(crate) fn run(&self, be: &B, ids: &[i64], bufs: &mut [B::Buf; 6]) {
        let (h, t) = (self.hidden, ids.len());
        let xm = Mat::new(h, t);
        let qkvm = Mat::new(3 * h, t);
        let [x, ml, qkv, att, r, ffn] = bufs;
        be.embed(&self.emb, ids, (h as f32).sqrt(), x, xm);
        for l in &self.layers {
            be.conv1d(&l.qkv, x, xm, qkv, qkvm, Out::Set);
            be.rel_attention(
                qkv,
                qkvm.sub_rows(0, h),
                qkvm.sub_rows(h, 2 * h),
                qkvm.sub_rows(2 * h, 3 * h),
                &l.rel_k,
                &l.rel_v,
                self.heads,
                att,
                xm,
            );
            be.conv1d(&l.o, att, xm, r, xm, Out::Set);
            be.add_layer_norm(x, xm, r, xm, &l.n1.0, &l.n1.1);
            let fm = Mat::new(l.ffn_ch, t);
            be.conv1d(&l.ffn1, x, xm, ffn, fm, Out::SetRelu);
            be.conv1d(&l.ffn2, ffn, fm, r, xm, Out::Set);
            be.add_layer_norm(x, xm, r, xm, &l.n2.0, &l.n2.1);
        }
        be.conv1d(&self.proj, x, xm, ml, Mat::new(2 * h, t), Out::Set);
    }
}
