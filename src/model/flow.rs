//! Main normalising flow, reverse direction: z_p -> z (mean-only couplings and flips).

use super::span::Span;
use crate::backend::{Backend, Mat, Out};
use crate::error::BackendError;
use crate::backend::Conv;
use crate::voice::weights::Coupling;

/// First part of the flow's recording keys.
const FLOW_KEY: u64 = 0xf10;

struct CouplingW<B: Backend> {
    pre: B::Conv,
    in_layers: Vec<B::Conv>,
    /// Per layer, the res_skip conv split by output rows: the residual half
    /// (added straight into h; none for the last layer) and the skip half.
    res_skip: Vec<(Option<B::Conv>, B::Conv)>,
    post: B::Conv,
    /// Padding radius of each in-layer conv.
    radii: Vec<usize>,
    /// Per speaker, the conditioning of every in-layer
    /// (`[speakers, 2·wn·layers]`; layer `l` adds rows `2·wn·l ..`).
    cond: Option<B::Vector>,
}

/// Columns `c0..c1` of a (batched) window belong to speaker `s`.
pub(crate) type SpeakerCols = (usize, usize, usize);

/// Flow weights on a backend.
pub(crate) struct FlowW<B: Backend> {
    couplings: Vec<CouplingW<B>>,
    channels: usize,
    wn: usize,
    radius: usize,
    /// Identity in recording keys.
    id: u64,
    gap: usize,
}

impl<B: Backend> FlowW<B> {
    /// `cond`: per coupling, the per-speaker conditioning table of a
    /// multi-speaker voice.
    pub(crate) fn new(
        be: &B,
        c: &[Coupling],
        cond: Option<&[Vec<f32>]>,
    ) -> Result<Self, BackendError> {
        let mut couplings = Vec::with_capacity(c.len());
        let mut radius = 0;
        let mut gap = 0;
        for (ci, cp) in c.iter().enumerate() {
            for l in cp
                .in_layers
                .iter()
                .chain(&cp.res_skip)
                .chain([&cp.pre, &cp.post])
            {
                gap = gap.max(l.dilation * (l.k - 1) / 2);
            }
            radius += cp
                .in_layers
                .iter()
                .map(|l| l.dilation * (l.k - 1) / 2)
                .sum::<usize>();
            couplings.push(CouplingW {
                pre: be.prepare_conv(&cp.pre)?,
                in_layers: cp
                    .in_layers
                    .iter()
                    .map(|l| be.prepare_conv(l))
                    .collect::<Result<_, _>>()?,
                res_skip: cp
                    .res_skip
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        if i + 1 == cp.res_skip.len() {
                            return Ok((None, be.prepare_conv(l)?));
                        }
                        let half = l.cout / 2;
                        Ok((
                            Some(be.prepare_conv(&out_rows(l, 0, half))?),
                            be.prepare_conv(&out_rows(l, half, l.cout))?,
                        ))
                    })
                    .collect::<Result<_, BackendError>>()?,
                post: be.prepare_conv(&cp.post)?,
                radii: cp
                    .in_layers
                    .iter()
                    .map(|l| l.dilation * (l.k - 1) / 2)
                    .collect(),
                cond: cond
                    .and_then(|t| t.get(ci))
                    .map(|t| be.prepare_vector(t))
                    .transpose()?,
            });
        }
        Ok(FlowW {
            couplings,
            channels: c.first().map_or(0, |c| 2 * c.pre.cin),
            wn: c.first().map_or(0, |c| c.pre.cout),
            radius,
            id: super::arena::unique_id(),
            gap,
        })
    }

    /// Frames of context needed on each side of an output frame.
    pub(crate) fn radius(&self) -> usize {
        self.radius
    }

    /// Buffer lengths [`FlowW::run`] needs for `l` frames.
    pub(crate) fn lens(&self, l: usize) -> [usize; 7] {
        let (c, wn) = (self.channels, self.wn);
        [c * l, c * l, wn * l, 2 * wn * l, wn * l, wn * l, c / 2 * l]
    }

    /// Zero columns each side of a window that keep batched windows apart:
    /// the widest conv padding of the flow.
    pub(crate) fn gap(&self) -> usize {
        self.gap
    }

    /// Reverse flow over `[C, L]`: `bufs[0]` in, result left in `bufs[0]`;
    /// the others (lengths from [`FlowW::lens`]) are scratch. `cut` says
    /// which ends of the window are cuts inside a longer sentence: there the
    /// columns within [`FlowW::radius`] of the end are not computed (they
    /// would be discarded); every other column is as with the whole sentence.
    /// `speaker` picks the conditioning of a multi-speaker voice.
    pub(crate) fn run(
        &self,
        be: &B,
        bufs: &mut [B::Buf],
        l: usize,
        cut: (bool, bool),
        speaker: usize,
    ) -> Result<(), BackendError> {
        self.run_with(be, bufs, l, &[], &[(0, l, speaker)], cut)
    }

    /// [`FlowW::run`] over several windows laid side by side along the
    /// columns, with the column ranges `gaps` (each at least [`FlowW::gap`]
    /// wide) between them: the gaps are zeroed before every conv, so each
    /// window's columns come out exactly as when it runs alone. Gap columns
    /// of the result hold garbage. `speakers` gives each window's speaker.
    pub(crate) fn run_gapped(
        &self,
        be: &B,
        bufs: &mut [B::Buf],
        l: usize,
        gaps: &[(usize, usize)],
        speakers: &[SpeakerCols],
    ) -> Result<(), BackendError> {
        self.run_with(be, bufs, l, gaps, speakers, (false, false))
    }

    /// [`FlowW::run`] or [`FlowW::run_gapped`] (gaps and cuts exclusive).
    fn run_with(
        &self,
        be: &B,
        bufs: &mut [B::Buf],
        l: usize,
        gaps: &[(usize, usize)],
        speakers: &[SpeakerCols],
        cut: (bool, bool),
    ) -> Result<(), BackendError> {
        let cut = if gaps.is_empty() { cut } else { (false, false) };
        let zero = |b: &mut B::Buf, m: Mat| {
            if !gaps.is_empty() {
                be.zero_cols(b, m, gaps);
            }
        };
        let (c, wn) = (self.channels, self.wn);
        let half = c / 2;
        let mut key = vec![FLOW_KEY, self.id, l as u64];
        key.push(u64::from(cut.0) | u64::from(cut.1) << 1);
        key.extend(bufs.iter().map(|b| be.buf_key(b)));
        key.extend(gaps.iter().flat_map(|&(a, b)| [a as u64, b as u64]));
        if self.couplings.iter().any(|c| c.cond.is_some()) {
            key.extend(
                speakers
                    .iter()
                    .flat_map(|&(a, b, s)| [a as u64, b as u64, s as u64]),
            );
        }
        let [z, tmp, h, a, g, skip, mu] = bufs else {
            return Err(BackendError::Device("flow needs 7 buffers".into()));
        };
        // Arena buffers only: a device backend records this once per
        // (length, arena, gaps) and replays it.
        be.recorded(&key, &mut || {
            // The flips ping-pong between the two buffers by reference (the
            // buffers themselves never move, so a recording stays valid).
            let (out, spare) = (&mut *z, &mut *tmp);
            let (mut z, mut tmp) = (&mut *out, &mut *spare);
            let (h, a, g, skip, mu) = (&mut *h, &mut *a, &mut *g, &mut *skip, &mut *mu);
            let mut sp = Span::new(l, cut);
            for cp in &self.couplings {
                let zm = sp.view(c);
                be.flip_rows(z, zm, tmp, zm);
                std::mem::swap(&mut z, &mut tmp);
                zero(z, zm.sub_rows(0, half));
                be.conv1d(
                    &cp.pre,
                    z,
                    zm.sub_rows(0, half),
                    &mut *h,
                    sp.view(wn),
                    Out::Set,
                );
                let layers = cp.in_layers.iter().zip(&cp.res_skip).zip(&cp.radii);
                for (i, ((inl, (res, skl)), &radius)) in layers.enumerate() {
                    let hm = sp.view(wn);
                    zero(h, hm);
                    be.conv1d(inl, &*h, hm, &mut *a, sp.view(2 * wn), Out::Set);
                    if let Some(cond) = &cp.cond {
                        let rows = 2 * wn * cp.in_layers.len();
                        let (lo, hi) = sp.range();
                        for &(c0, c1, s) in speakers {
                            let (c0, c1) = (c0.max(lo), c1.min(hi));
                            if c0 < c1 {
                                let am = Mat::new(2 * wn, sp.len()).sub_cols(c0, c1);
                                be.add_rows(cond, s * rows + i * 2 * wn, &mut *a, am);
                            }
                        }
                    }
                    sp.grow(radius);
                    let (hm, am) = (sp.view(wn), sp.view(2 * wn));
                    be.gate_tanh_sigmoid(&*a, am, &mut *g, hm);
                    zero(g, hm);
                    // h += res(g), skip (+)= skip(g): each output adds the
                    // conv's sum (bias first) to what is there, as adding a
                    // separate res_skip result did.
                    if let Some(res) = res {
                        be.conv1d(res, &*g, hm, &mut *h, hm, Out::Add);
                    }
                    let out = if i == 0 { Out::Set } else { Out::Add };
                    be.conv1d(skl, &*g, hm, &mut *skip, hm, out);
                }
                let hm = sp.view(wn);
                zero(skip, hm);
                let mm = sp.view(half);
                be.conv1d(&cp.post, &*skip, hm, &mut *mu, mm, Out::Set);
                be.axpy(-1.0, &*mu, mm, z, sp.view(c).sub_rows(half, c));
            }
            if self.couplings.len() % 2 == 1 {
                // The result is in the spare buffer: bring it home.
                let zm = sp.view(c);
                be.copy(&*z, zm, &mut *tmp, zm);
            }
        });
        Ok(())
    }
}

/// Output rows `r0..r1` of a conv (weights and bias) as a conv of its own.
fn out_rows(c: &Conv, r0: usize, r1: usize) -> Conv {
    let per = c.cin * c.k;
    Conv {
        w: c.w[r0 * per..r1 * per].to_vec(),
        b: c.b.as_ref().map(|b| b[r0..r1].to_vec()),
        cout: r1 - r0,
        cin: c.cin,
        k: c.k,
        dilation: c.dilation,
    }
}
