//! HiFi-GAN generator: z -> audio.

use super::arena::Arena;
use super::flow::SpeakerCols;
use super::span::Span;
use crate::backend::{Backend, Mat, Out};
use crate::error::BackendError;
use crate::voice::weights::{Conv, Decoder, ResBlock};

enum Block<B: Backend> {
    One(Vec<(B::Conv, B::Conv)>),
    Two(Vec<B::Conv>),
}

struct Stage<B: Backend> {
    up: B::ConvT,
    stride: usize,
    ch: usize,
    blocks: Vec<Block<B>>,
    /// Per block, the padding radius of each conv in the order they run.
    radii: Vec<Vec<usize>>,
}

/// Decoder weights on a backend.
pub(crate) struct DecoderW<B: Backend> {
    conv_pre: B::Conv,
    pre_ch: usize,
    pre_radius: usize,
    stages: Vec<Stage<B>>,
    conv_post: B::Conv,
    radius: usize,
    /// Identity in recording keys.
    id: u64,
    gap: usize,
    /// Every window starts at a multiple of this many frames (of the
    /// sentence, and of a batched launch's columns): then the tiles of
    /// tiled convs ([`crate::backend::ConvTiling`]) fall on the same columns
    /// as in a whole-sentence run.
    align: usize,
    /// Per speaker, the conditioning added after `conv_pre`
    /// (`[speakers, pre_ch]`).
    cond: Option<B::Vector>,
}

/// First part of the decoder's recording keys.
const DECODER_KEY: u64 = 0xdec0;

fn conv_radius(k: usize, d: usize) -> usize {
    d * (k - 1) / 2
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

impl<B: Backend> DecoderW<B> {
    /// `cond`: the per-speaker conditioning table of a multi-speaker voice.
    pub(crate) fn new(be: &B, d: &Decoder, cond: Option<&[f32]>) -> Result<Self, BackendError> {
        let mut stages = Vec::new();
        // Receptive radius in output samples, walked from the output back to frames.
        let mut rate = 1usize; // samples per frame at the current stage
        let mut radius_frames = conv_radius(d.conv_pre.k, d.conv_pre.dilation) as f64;
        // Gap (frames) between batched windows: at every stage the gap, times
        // the samples per frame there, must cover the widest conv padding; the
        // transposed convs reach one input column back.
        let mut gap = conv_radius(d.conv_pre.k, d.conv_pre.dilation).max(1);
        // Frames whose multiples every window starts at (tiled convs).
        let mut align = 1usize;
        for (up, blocks) in d.ups.iter().zip(&d.resblocks) {
            // The transposed conv reaches one input step back (taps t and t−1).
            radius_frames += 1.0 / rate as f64;
            rate *= up.stride;
            let mut bl = Vec::new();
            for b in blocks {
                bl.push(match b {
                    ResBlock::One(v) => Block::One(
                        v.iter()
                            .map(|(a, c)| Ok((be.prepare_conv_tiled(a, true)?, be.prepare_conv_tiled(c, true)?)))
                            .collect::<Result<_, BackendError>>()?,
                    ),
                    ResBlock::Two(v) => Block::Two(
                        v.iter()
                            .map(|c| be.prepare_conv_tiled(c, true))
                            .collect::<Result<_, _>>()?,
                    ),
                });
            }
            // Per block, each conv's reach in the order they run: its padding
            // radius widened by its tiles' margin (`ConvTiling`).
            let mut reach = |w: &B::Conv, c: &Conv| {
                let t = be.conv_tiling(w);
                // Window starts at multiples of `align` frames put every
                // tile grid at the same place (the whole sentence's).
                let p = t.period.max(1);
                align = lcm(align, p / gcd(p, rate));
                conv_radius(c.k, c.dilation) + t.margin
            };
            let radii: Vec<Vec<usize>> = blocks
                .iter()
                .zip(&bl)
                .map(|(b, w)| match (b, w) {
                    (ResBlock::One(v), Block::One(ws)) => v
                        .iter()
                        .zip(ws)
                        .flat_map(|((a, c), (wa, wc))| [reach(wa, a), reach(wc, c)])
                        .collect(),
                    (ResBlock::Two(v), Block::Two(ws)) => {
                        v.iter().zip(ws).map(|(c, w)| reach(w, c)).collect()
                    }
                    _ => unreachable!("blocks prepared from these"),
                })
                .collect();
            let mrf = radii.iter().map(|r| r.iter().sum::<usize>()).max().unwrap_or(0);
            radius_frames += mrf as f64 / rate as f64;
            let widest = radii.iter().flatten().copied().max().unwrap_or(0);
            gap = gap.max(widest.div_ceil(rate));
            stages.push(Stage {
                up: be.prepare_conv_t(up)?,
                stride: up.stride,
                ch: up.cout,
                blocks: bl,
                radii,
            });
        }
        radius_frames += conv_radius(d.conv_post.k, d.conv_post.dilation) as f64 / rate as f64;
        gap = gap.max(conv_radius(d.conv_post.k, d.conv_post.dilation).div_ceil(rate));
        Ok(DecoderW {
            conv_pre: be.prepare_conv_lowp(&d.conv_pre)?,
            pre_ch: d.conv_pre.cout,
            pre_radius: conv_radius(d.conv_pre.k, d.conv_pre.dilation),
            stages,
            conv_post: be.prepare_conv_lowp(&d.conv_post)?,
            radius: radius_frames.ceil() as usize,
            id: super::arena::unique_id(),
            gap,
            align,
            cond: cond.map(|c| be.prepare_vector(c)).transpose()?,
        })
    }

    /// Frames of context needed on each side of an output frame.
    pub(crate) fn radius(&self) -> usize {
        self.radius
    }

    /// Zero frames each side of a window that keep batched windows apart.
    pub(crate) fn gap(&self) -> usize {
        self.gap
    }

    /// Frames whose multiples every window (sentence frame and column of a
    /// batched launch) must start at (1 without tiled convs).
    pub(crate) fn align(&self) -> usize {
        self.align
    }

    /// Floats of scratch [`DecoderW::run`] needs per input column (all buffers).
    pub(crate) fn floats_per_frame(&self) -> usize {
        let mut per = self.pre_ch;
        let mut rate = 1;
        for s in &self.stages {
            rate *= s.stride;
            per = per.max(s.ch * rate);
        }
        7 * per
    }

    /// Samples per frame.
    pub(crate) fn hop(&self) -> usize {
        self.stages.iter().map(|s| s.stride).product()
    }

    /// `z` view `[C, L]` -> audio `[1, L·hop]` in the arena's output buffer.
    /// `cut` says which ends of the window are cuts inside a longer sentence
    /// (not its start or end): there the samples within [`DecoderW::radius`]
    /// frames of the end are not computed (they would be discarded anyway).
    /// Every other sample is the same as with the whole sentence. `speaker`
    /// picks the conditioning of a multi-speaker voice.
    pub(crate) fn run<'a>(
        &self,
        be: &B,
        z: &B::Buf,
        zm: Mat,
        cut: (bool, bool),
        speaker: usize,
        arena: &'a mut Arena<B>,
    ) -> Result<(&'a B::Buf, Mat), BackendError> {
        self.run_with(be, z, zm, &[], &[(0, zm.cols(), speaker)], cut, arena)
    }

    /// [`DecoderW::run`] over several windows laid side by side along the
    /// columns of `z`, with the frame ranges `gaps` (each at least
    /// [`DecoderW::gap`] wide, zero in `z`) between them.
    /// The decoder has no masks: the gaps, scaled by every upsampling, are
    /// zeroed before every conv, so each window sees exactly the zero padding
    /// it sees alone and its samples come out the same. Gap samples of the
    /// result hold garbage. `speakers` gives each window's speaker.
    pub(crate) fn run_gapped<'a>(
        &self,
        be: &B,
        z: &B::Buf,
        zm: Mat,
        gaps: &[(usize, usize)],
        speakers: &[SpeakerCols],
        arena: &'a mut Arena<B>,
    ) -> Result<(&'a B::Buf, Mat), BackendError> {
        self.run_with(be, z, zm, gaps, speakers, (false, false), arena)
    }

    /// [`DecoderW::run`] or [`DecoderW::run_gapped`] (gaps and cuts exclusive).
    #[allow(clippy::too_many_arguments)]
    fn run_with<'a>(
        &self,
        be: &B,
        z: &B::Buf,
        zm: Mat,
        gaps: &[(usize, usize)],
        speakers: &[SpeakerCols],
        cut: (bool, bool),
        arena: &'a mut Arena<B>,
    ) -> Result<(&'a B::Buf, Mat), BackendError> {
        let cut = if gaps.is_empty() { cut } else { (false, false) };
        let l = zm.cols();
        let mut max_len = self.pre_ch * l;
        let mut len = l;
        for s in &self.stages {
            len *= s.stride;
            max_len = max_len.max(s.ch * len);
        }
        // t2 is only used by type-1 ResBlocks; the output is one row.
        let one = self
            .stages
            .iter()
            .any(|s| s.blocks.iter().any(|b| matches!(b, Block::One(_))));
        let t2_len = if one { max_len } else { 0 };
        // The window is copied into the arena first, so the layers read and
        // write arena buffers only: a fixed op sequence per (length, arena),
        // which a device backend records once and then replays.
        let zinm = Mat::new(zm.rows(), l);
        let lens = [
            max_len,
            max_len,
            max_len,
            max_len,
            max_len,
            t2_len,
            len,
            zm.rows() * l,
        ];
        let bufs = arena.bufs(be, &lens, "decoder")?;
        let mut key = vec![DECODER_KEY, self.id, l as u64, zm.rows() as u64];
        key.extend(bufs.iter().map(|b| be.buf_key(b)));
        key.push(u64::from(cut.0) | u64::from(cut.1) << 1);
        key.extend(gaps.iter().flat_map(|&(a, b)| [a as u64, b as u64]));
        if self.cond.is_some() {
            key.extend(
                speakers
                    .iter()
                    .flat_map(|&(a, b, s)| [a as u64, b as u64, s as u64]),
            );
        }
        let [x, act, y, acc, t1, t2, out, zin] = bufs else {
            return Err(BackendError::Device("decoder arena".into()));
        };
        be.copy(z, zm, zin, zinm);
        be.recorded(&key, &mut || {
            self.layers(
                be,
                zin,
                zinm,
                [&mut *x, &mut *act, &mut *y, &mut *acc, &mut *t1, &mut *t2],
                out,
                gaps,
                speakers,
                cut,
            )
        });
        Ok((&*out, Mat::new(1, len)))
    }

    /// The generator's layers from `z` (`zm`) to the audio row in `out`;
    /// `gaps` (input frames) are re-zeroed, at every stage's rate, before
    /// every conv. At a `cut` end, each op skips the columns that are already
    /// wrong there (they saw zeros for the unknown input beyond the cut), so
    /// the rest is computed exactly as without skipping.
    #[allow(clippy::too_many_arguments)]
    fn layers(
        &self,
        be: &B,
        z: &B::Buf,
        zm: Mat,
        bufs: [&mut B::Buf; 6],
        out: &mut B::Buf,
        gaps: &[(usize, usize)],
        speakers: &[SpeakerCols],
        cut: (bool, bool),
    ) {
        let [mut x, act, mut y, mut acc, t1, t2] = bufs;
        let mut rate = 1;
        let mut scaled: Vec<(usize, usize)> = gaps.to_vec();
        let zero = |b: &mut B::Buf, m: Mat, g: &[(usize, usize)]| {
            if !g.is_empty() {
                be.zero_cols(b, m, g);
            }
        };
        let mut sp = Span::new(zm.cols(), cut);
        let xm = sp.view(self.pre_ch);
        be.conv1d(&self.conv_pre, z, zm, x, xm, Out::Set);
        if let Some(cond) = &self.cond {
            let (lo, hi) = sp.range();
            for &(c0, c1, s) in speakers {
                let (c0, c1) = (c0.max(lo), c1.min(hi));
                if c0 < c1 {
                    let m = Mat::new(self.pre_ch, sp.len()).sub_cols(c0, c1);
                    be.add_rows(cond, s * self.pre_ch, x, m);
                }
            }
        }
        sp.grow(self.pre_radius);
        let mut rows = self.pre_ch;
        for s in &self.stages {
            let xm = sp.view(rows);
            rows = s.ch;
            be.leaky_relu(0.1, x, xm, act, xm);
            zero(act, xm, &scaled);
            // The transposed conv writes `stride` columns per input column;
            // the first and last `stride/2` of them read beyond the view.
            let (lo, hi) = sp.range();
            let um = Mat::new(s.ch, sp.len() * s.stride).sub_cols(lo * s.stride, hi * s.stride);
            be.conv_transpose(&s.up, act, xm, x, um);
            sp.up(s.stride);
            let um = sp.view(s.ch);
            rate *= s.stride;
            for (g, &(a, b)) in scaled.iter_mut().zip(gaps) {
                *g = (a * rate, b * rate);
            }
            // The first activation of every block is the same: compute it once.
            be.leaky_relu(0.1, x, um, act, um);
            zero(act, um, &scaled);
            // Columns wrong at the end of the stage: the widest block's.
            let mut end = sp;
            let n_blocks = s.blocks.len();
            for (bi, (b, radii)) in s.blocks.iter().zip(&s.radii).enumerate() {
                let mut bs = sp;
                let mut radius = radii.iter().copied();
                // Each block starts from the stage input x; the last one (of
                // several) may work on x itself, no longer needed after it.
                let last = bi > 0 && bi + 1 == n_blocks;
                let yb: &mut B::Buf = if last {
                    &mut *x
                } else {
                    be.copy(x, um, y, um);
                    &mut *y
                };
                match b {
                    Block::Two(convs) => {
                        for (ci, c) in convs.iter().enumerate() {
                            let m = bs.view(s.ch);
                            if ci == 0 {
                                be.conv1d(c, act, m, yb, m, Out::Add);
                            } else {
                                be.conv1d_lrelu_add_inplace(c, 0.1, yb, m, t1, &scaled);
                            }
                            bs.grow(radius.next().unwrap_or(0));
                        }
                    }
                    Block::One(pairs) => {
                        for (ci, (c1, c2)) in pairs.iter().enumerate() {
                            let m = bs.view(s.ch);
                            if ci == 0 {
                                be.conv1d(c1, act, m, t2, m, Out::Set);
                            } else {
                                be.conv1d_lrelu(c1, 0.1, yb, m, t1, &scaled, t2, m, Out::Set);
                            }
                            bs.grow(radius.next().unwrap_or(0));
                            let m = bs.view(s.ch);
                            be.conv1d_lrelu(c2, 0.1, t2, m, t1, &scaled, yb, m, Out::Add);
                            bs.grow(radius.next().unwrap_or(0));
                        }
                    }
                }
                let m = bs.view(s.ch);
                if bi == 0 {
                    // Swap which buffer the names point at (never the buffers'
                    // contents: a recorded device graph keeps their addresses).
                    std::mem::swap(&mut y, &mut acc);
                } else {
                    be.axpy(1.0, yb, m, acc, m);
                }
                end = end.widest(bs);
            }
            sp = end;
            be.scale(1.0 / s.blocks.len().max(1) as f32, acc, sp.view(s.ch));
            std::mem::swap(&mut x, &mut acc);
        }
        let xm = sp.view(rows);
        let om = sp.view(1);
        be.conv1d_lrelu(
            &self.conv_post,
            0.01,
            x,
            xm,
            act,
            &scaled,
            out,
            om,
            Out::Set,
        );
        be.tanh(out, om);
    }
}
