//! The whole VITS forward pass over a [`Backend`]: stages 1–5 per sentence
//! ([`Vits::prepare`]), stages 6–9 on frame ranges with a halo ([`Vits::render`]).

use super::arena::{Arena, Sizes};
use super::decoder::DecoderW;
use super::duration::DurationW;
use super::encoder::EncoderW;
use super::flow::FlowW;
use super::noise::{Noise, STREAM_Z};
use crate::backend::{Backend, Mat};
use crate::error::{Error, Result};
use crate::voice::{Scales, Weights};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;

/// Default cap on frames per sentence (about 9.7 minutes of audio at 86 frames/s).
pub const DEFAULT_MAX_FRAMES: usize = 50_000;

/// Options of one synthesis.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Noise and length scales.
    pub scales: Scales,
    /// Noise source.
    pub noise: Noise,
    /// Cap on the frames of one sentence; more is an error.
    pub max_frames: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            scales: Scales::default(),
            noise: Noise::Seeded(0),
            max_frames: DEFAULT_MAX_FRAMES,
        }
    }
}

/// Wall time per model stage, in seconds (the backend's work is synchronous).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Text encoder and projection.
    pub encoder: f64,
    /// Duration predictor.
    pub duration: f64,
    /// Prior sample and flow.
    pub flow: f64,
    /// HiFi-GAN decoder.
    pub decoder: f64,
}

impl std::ops::AddAssign for StageTimes {
    fn add_assign(&mut self, o: StageTimes) {
        self.encoder += o.encoder;
        self.duration += o.duration;
        self.flow += o.flow;
        self.decoder += o.decoder;
    }
}

/// A sentence after the encoder and duration predictor: ready to render frames.
pub struct Utterance<B: Backend> {
    ml: B::Buf,
    ids: usize,
    hidden: usize,
    /// Log-durations per id (`logw`).
    pub logw: Vec<f32>,
    /// Frames per id.
    pub durations: Vec<u32>,
    owner: Vec<u32>,
    noise: Noise,
    noise_scale: f32,
    /// Seconds spent per stage on this sentence so far.
    pub times: StageTimes,
    /// Flow output `[C, F]`, computed progressively by `render`.
    z: Option<B::Buf>,
    /// Frames `0..z_ready` of `z` are final.
    z_ready: usize,
    /// Flow and decoder scratch, reused from chunk to chunk and, through the
    /// voice's pool, from sentence to sentence (no allocation, no page faults,
    /// flat memory once warm).
    work: Option<Work<B>>,
    pool: Arc<Pool<B>>,
}

/// Scratch of one utterance in flight.
struct Work<B: Backend> {
    flow: Arena<B>,
    dec: Arena<B>,
}

/// A voice's scratch sets not in use, and the sizes all of them share (see
/// [`super::arena`]: every set is allocated at the largest size needed so far,
/// so the pool reaches its steady state as soon as the largest chunk and the
/// most concurrent sentences have been seen once).
struct Pool<B: Backend> {
    free: Mutex<Vec<Work<B>>>,
    flow: Arc<Sizes>,
    dec: Arc<Sizes>,
}

impl<B: Backend> Pool<B> {
    fn new() -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            flow: Arc::default(),
            dec: Arc::default(),
        }
    }

    /// A free scratch set, or a new one of the pool's family.
    fn take(&self) -> Work<B> {
        self.free.lock().pop().unwrap_or_else(|| Work {
            flow: Arena::shared(Arc::clone(&self.flow)),
            dec: Arena::shared(Arc::clone(&self.dec)),
        })
    }
}

/// Scratch sets kept for reuse per voice (one per concurrent utterance, up to this).
const POOL_MAX: usize = 16;

impl<B: Backend> Drop for Utterance<B> {
    fn drop(&mut self) {
        if let Some(w) = self.work.take() {
            let mut free = self.pool.free.lock();
            if free.len() < POOL_MAX {
                free.push(w);
            }
        }
    }
}

impl<B: Backend> Utterance<B> {
    /// Total frames `F`.
    pub fn frames(&self) -> usize {
        self.owner.len()
    }

    /// `m_p ‖ logs_p` `[2H, T]` on the host, for checks.
    pub fn encoded(&self, be: &B) -> Vec<f32> {
        let m = Mat::new(2 * self.hidden, self.ids);
        let mut out = vec![0.0; m.rows * m.cols];
        be.read(&self.ml, m, &mut out);
        out
    }
}

/// A VITS voice on a backend.
pub struct Vits<B: Backend> {
    enc: EncoderW<B>,
    dp: DurationW<B>,
    flow: FlowW<B>,
    dec: DecoderW<B>,
    hidden: usize,
    symbols: usize,
    pool: Arc<Pool<B>>,
}

impl<B: Backend> Vits<B> {
    /// Upload a voice's weights to the backend.
    ///
    /// # Errors
    /// Allocation or device failure.
    pub fn new(be: &B, w: &Weights) -> Result<Self> {
        // The decoder holds most of the weights: prepare it beside the rest
        // (on the CPU the two halves run on two threads of the pool).
        let (front, dec) = rayon::join(
            || -> Result<_> {
                Ok((
                    EncoderW::new(be, &w.enc)?,
                    DurationW::new(be, &w.dp)?,
                    FlowW::new(be, &w.flow)?,
                ))
            },
            || DecoderW::new(be, &w.dec),
        );
        let (enc, dp, flow) = front?;
        let v = Vits {
            enc,
            dp,
            flow,
            dec: dec?,
            hidden: w.enc.hidden,
            symbols: w.enc.symbols,
            pool: Arc::new(Pool::new()),
        };
        be.check()?;
        Ok(v)
    }

    /// Samples per frame.
    pub fn hop(&self) -> usize {
        self.dec.hop()
    }

    /// Context frames each side that flow + decoder need (43 for Piper medium voices).
    pub fn halo(&self) -> usize {
        self.flow.radius() + self.dec.radius()
    }

    /// Stages 1–5: ids -> encoder, durations, frame ownership.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for empty input, an id outside the voice, or a
    /// frame count over `opts.max_frames`.
    pub fn prepare(&self, be: &B, ids: &[i64], opts: &SynthOptions) -> Result<Utterance<B>> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "no phoneme ids to synthesize".into(),
            ));
        }
        if let Some((i, id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id < 0 || id as u64 >= self.symbols as u64)
        {
            return Err(Error::InvalidArgument(format!(
                "id #{} = {id} is outside the voice's symbols 0..{}",
                i + 1,
                self.symbols
            )));
        }
        let sc = opts.scales;
        for (name, v) in [
            ("noise_scale", sc.noise_scale),
            ("length_scale", sc.length_scale),
            ("noise_w", sc.noise_w),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} = {v} must be a finite value >= 0"
                )));
            }
        }
        let t = ids.len();
        let t0 = Instant::now();
        let (x, ml) = self.enc.run(be, ids)?;
        let t1 = Instant::now();
        let logw = self
            .dp
            .run(be, &x, Mat::new(self.hidden, t), &opts.noise, sc.noise_w)?;
        // A device failure makes the durations meaningless: stop here.
        be.check()?;
        let t2 = Instant::now();
        let mut durations = Vec::with_capacity(t);
        let mut total: u64 = 0;
        for (i, &lw) in logw.iter().enumerate() {
            let w = lw.exp() * sc.length_scale;
            let d = w.ceil();
            if !d.is_finite() || d > opts.max_frames as f32 || d > u32::MAX as f32 {
                return Err(Error::InvalidArgument(format!(
                    "id #{} would last {d} frames, over the cap of {} frames per sentence (lower noise_w or length_scale)",
                    i + 1,
                    opts.max_frames
                )));
            }
            let d = d.max(0.0) as u32;
            total += u64::from(d);
            durations.push(d);
        }
        if total > opts.max_frames as u64 {
            return Err(Error::InvalidArgument(format!(
                "the sentence would need {total} frames, over the cap of {} (lower noise_w or length_scale, or split the text)",
                opts.max_frames
            )));
        }
        // The frame count comes from the input (scales, max_frames): allocate
        // fallibly so an absurd size is an error, not an abort.
        let frames = usize::try_from(total.max(1)).unwrap_or(usize::MAX);
        let mut owner: Vec<u32> = Vec::new();
        owner.try_reserve_exact(frames).map_err(|_| {
            Error::OutOfMemory(format!(
                "the sentence needs {total} frames; their index ({} bytes) cannot be allocated",
                frames.saturating_mul(4)
            ))
        })?;
        for (i, &d) in durations.iter().enumerate() {
            owner.extend(std::iter::repeat_n(i as u32, d as usize));
        }
        if owner.is_empty() {
            owner.push(u32::MAX);
        }
        Ok(Utterance {
            ml,
            ids: t,
            hidden: self.hidden,
            logw,
            durations,
            owner,
            noise: opts.noise.clone(),
            noise_scale: sc.noise_scale,
            times: StageTimes {
                encoder: (t1 - t0).as_secs_f64(),
                duration: (t2 - t1).as_secs_f64(),
                ..StageTimes::default()
            },
            z: None,
            z_ready: 0,
            work: Some(self.pool.take()),
            pool: Arc::clone(&self.pool),
        })
    }

    /// z_p for frames `s..e` -> flow; the result `[C, e − s]` is left in the
    /// first buffer of the utterance's flow arena.
    fn latent_window(&self, be: &B, u: &mut Utterance<B>, s: usize, e: usize) -> Result<()> {
        let (c, l) = (self.hidden, e - s);
        let mut noise = Vec::new();
        u.noise
            .fill(STREAM_Z, c, s, e, &mut noise)
            .map_err(Error::InvalidArgument)?;
        let work = u.work.get_or_insert_with(|| u.pool.take());
        let bufs = work.flow.bufs(be, &self.flow.lens(l), "flow")?;
        be.expand_prior(
            &u.ml,
            Mat::new(2 * c, u.ids),
            &u.owner[s..e],
            &noise,
            u.noise_scale,
            &mut bufs[0],
            Mat::new(c, l),
        );
        self.flow.run(be, bufs, l)?;
        Ok(())
    }

    /// The flow output z `[C, F]` for the whole sentence (host), for checks.
    ///
    /// # Errors
    /// Allocation failure or short fixed noise.
    pub fn latent(&self, be: &B, u: &mut Utterance<B>) -> Result<Vec<f32>> {
        let f = u.frames();
        self.latent_window(be, u, 0, f)?;
        let mut out = vec![0.0; self.hidden * f];
        let work = u.work.get_or_insert_with(|| u.pool.take());
        let z = work.flow.bufs(be, &[0], "flow")?;
        be.read(&z[0], Mat::new(self.hidden, f), &mut out);
        Ok(out)
    }

    /// Make flow-output frames `0..upto` of `u` final. The flow runs on
    /// segments of at least `min_step` frames with its own halo only, so every
    /// frame of z is computed once (plus the halo of each segment).
    fn advance_latent(
        &self,
        be: &B,
        u: &mut Utterance<B>,
        upto: usize,
        min_step: usize,
    ) -> Result<()> {
        let f = u.frames();
        let c = self.hidden;
        if u.z.is_none() {
            u.z = Some(be.alloc(c * f, "flow output")?);
        }
        let upto = upto.min(f);
        if upto <= u.z_ready {
            return Ok(());
        }
        let r = u.z_ready;
        let r2 = upto.max((r + min_step).min(f));
        let rf = self.flow.radius();
        let (s, e) = (r.saturating_sub(rf), (r2 + rf).min(f));
        let t0 = Instant::now();
        self.latent_window(be, u, s, e)?;
        let src = Mat::new(c, e - s).cols(r - s, r2 - s);
        let dst = Mat::new(c, f).cols(r, r2);
        let work = u.work.get_or_insert_with(|| u.pool.take());
        let seg = work.flow.bufs(be, &[0], "flow")?;
        if let Some(z) = u.z.as_mut() {
            be.copy(&seg[0], src, z, dst);
        }
        u.z_ready = r2;
        u.times.flow += t0.elapsed().as_secs_f64();
        Ok(())
    }

    /// Stages 6–9 for output frames `a..b`: appends `(b − a) · hop` samples to
    /// `out`. Equal to the same samples of a whole-sentence run (halo context).
    /// Cheapest when called with increasing ranges (the flow output is kept).
    ///
    /// # Errors
    /// Allocation failure or short fixed noise.
    pub fn render(
        &self,
        be: &B,
        u: &mut Utterance<B>,
        a: usize,
        b: usize,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let f = u.frames();
        let b = b.min(f);
        if a >= b {
            return Ok(());
        }
        let rd = self.dec.radius();
        let (s2, e2) = (a.saturating_sub(rd), (b + rd).min(f));
        // After the first chunk, run the flow ahead in segments that double
        // (at least 4 halos, at most 1024 frames) to amortise its halo.
        let step = if u.z_ready == 0 {
            0
        } else {
            u.z_ready.clamp(4 * self.flow.radius(), 1024)
        };
        self.advance_latent(be, u, e2, step)?;
        let z =
            u.z.as_ref()
                .ok_or_else(|| Error::InvalidArgument("flow output missing".into()))?;
        let zm = Mat::new(self.hidden, f).cols(s2, e2);
        let t0 = Instant::now();
        let work = u.work.get_or_insert_with(|| u.pool.take());
        let (audio, am) = self.dec.run(be, z, zm, &mut work.dec)?;
        let hop = self.hop();
        let keep = am.cols((a - s2) * hop, (b - s2) * hop);
        let start = out.len();
        out.resize(start + (b - a) * hop, 0.0);
        be.read(audio, keep, &mut out[start..]);
        u.times.decoder += t0.elapsed().as_secs_f64();
        if let Err(e) = be.check() {
            out.truncate(start);
            return Err(e.into());
        }
        Ok(())
    }

    /// Whole-sentence synthesis: ids -> raw samples.
    ///
    /// # Errors
    /// As [`Vits::prepare`] and [`Vits::render`].
    pub fn synthesize(&self, be: &B, ids: &[i64], opts: &SynthOptions) -> Result<Vec<f32>> {
        let mut u = self.prepare(be, ids, opts)?;
        let f = u.frames();
        let mut out = Vec::with_capacity(f * self.hop());
        let chunk = 1024;
        let mut a = 0;
        while a < f {
            let b = (a + chunk).min(f);
            self.render(be, &mut u, a, b, &mut out)?;
            a = b;
        }
        Ok(out)
    }
}
