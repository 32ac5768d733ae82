//! The whole VITS forward pass over a [`Backend`]: stages 1–5 per sentence
//! ([`Vits::prepare`]), stages 6–9 on frame ranges with a halo ([`Vits::render`]).

use super::arena::Arena;
use super::decoder::DecoderW;
use super::duration::DurationW;
use super::encoder::EncoderW;
use super::flow::{FlowW, SpeakerCols};
use super::noise::{Noise, STREAM_Z};
use super::pool::{Lease, Pool, Work};
use crate::backend::{Backend, Mat};
use crate::error::{Error, Result};
use crate::voice::weights::Weights;
use crate::voice::Scales;
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
    /// Per id, a factor on `length_scale` (SSML rates); `None`: 1 for all.
    pub rates: Option<Arc<[f32]>>,
    /// Speaker of a multi-speaker voice (`0..speakers`; 0 for a
    /// single-speaker voice).
    pub speaker: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            scales: Scales::default(),
            noise: Noise::Seeded(0),
            max_frames: DEFAULT_MAX_FRAMES,
            rates: None,
            speaker: 0,
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
    ids: usize,
    hidden: usize,
    /// Log-durations per id (`logw`): of the first ids only while the
    /// durations are not complete ([`Vits::prepare_first`]).
    pub logw: Vec<f32>,
    /// Frames per id (as `logw`).
    pub durations: Vec<u32>,
    owner: Vec<u32>,
    /// Set while the duration predictor has run on a prefix only.
    pending: Option<Pending>,
    noise: Noise,
    noise_scale: f32,
    /// Speaker (conditions duration predictor, flow and decoder).
    speaker: usize,
    /// Seconds spent per stage on this sentence so far.
    pub times: StageTimes,
    /// Frames `0..z_ready` of the flow output (`work.z`) are final.
    z_ready: usize,
    /// The sentence's buffers (encoder output, flow output) and the flow and
    /// decoder scratch, reused from chunk to chunk and, through the voice's
    /// pool, from sentence to sentence (no allocation, no page faults, flat
    /// memory once warm).
    work: Lease<B>,
}

/// Index of `m_p ‖ logs_p` in [`Work::prep`] (the encoder's second buffer).
const ML: usize = 1;

/// Buffer `i` of an utterance's arena (`what` names it in the error).
fn held<'a, B: Backend>(a: &'a Arena<B>, i: usize, what: &str) -> Result<&'a B::Buf> {
    a.get(i)
        .ok_or_else(|| Error::InvalidArgument(format!("{what} missing")))
}

/// [`held`], mutable.
fn held_mut<'a, B: Backend>(a: &'a mut Arena<B>, i: usize, what: &str) -> Result<&'a mut B::Buf> {
    a.get_mut(i)
        .ok_or_else(|| Error::InvalidArgument(format!("{what} missing")))
}

/// Frames per id from log-durations (`ceil(exp(logw) · length_scale ·
/// rate)`, `rates` per id, 1 when `None`) and their total.
///
/// # Errors
/// An id or the total over `max_frames`.
fn frames_of(
    logw: &[f32],
    length_scale: f32,
    rates: Option<&[f32]>,
    max_frames: usize,
) -> Result<(Vec<u32>, u64)> {
    let mut durations = Vec::with_capacity(logw.len());
    let mut total: u64 = 0;
    for (i, &lw) in logw.iter().enumerate() {
        let ls = match rates.and_then(|r| r.get(i)) {
            Some(&r) => length_scale * r,
            None => length_scale,
        };
        let d = (libm::expf(lw) * ls).ceil(); // libm: the same frames on every OS
        if !d.is_finite() || d > max_frames as f32 || d > u32::MAX as f32 {
            return Err(Error::InvalidArgument(format!(
                "id #{} would last {d} frames, over the cap of {max_frames} frames per sentence (lower noise_w or length_scale)",
                i + 1,
            )));
        }
        let d = d.max(0.0) as u32;
        total += u64::from(d);
        durations.push(d);
    }
    if total > max_frames as u64 {
        return Err(Error::InvalidArgument(format!(
            "the sentence would need {total} frames, over the cap of {max_frames} (lower noise_w or length_scale, or split the text)",
        )));
    }
    Ok((durations, total))
}

/// The id each of `total` frames belongs to (one placeholder frame if none).
///
/// # Errors
/// [`Error::OutOfMemory`] when the index cannot be allocated.
fn owners(durations: &[u32], total: u64) -> Result<Vec<u32>> {
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
    Ok(owner)
}

/// The encoder's six buffers and the duration predictor's six.
type PrepBufs<'w, B> = (
    &'w mut [<B as Backend>::Buf; 6],
    &'w mut [<B as Backend>::Buf; 6],
);

/// What [`Vits::finish`] needs to run the duration predictor on the rest of
/// a sentence.
struct Pending {
    length_scale: f32,
    rates: Option<Arc<[f32]>>,
    noise_w: f32,
    max_frames: usize,
}

impl<B: Backend> Utterance<B> {
    /// Total frames `F`; while the durations are not complete, the frames
    /// known so far (fewer).
    pub fn frames(&self) -> usize {
        self.owner.len()
    }

    /// Whether the durations of every id are known (always after
    /// [`Vits::prepare`] and [`Vits::finish`]).
    pub fn durations_complete(&self) -> bool {
        self.pending.is_none()
    }

    /// The speaker it is rendered for.
    pub fn speaker(&self) -> usize {
        self.speaker
    }

    /// `m_p ‖ logs_p` `[2H, T]` on the host, for checks.
    pub fn encoded(&self, be: &B) -> Vec<f32> {
        let m = Mat::new(2 * self.hidden, self.ids);
        let mut out = vec![0.0; m.rows() * m.cols()];
        if let Ok(ml) = held(&self.work.prep, ML, "encoder output") {
            be.read(ml, m, &mut out);
        }
        out
    }
}

/// One utterance's share of a [`Vits::render_batch`]: output frames `a..b`,
/// whose samples are appended to `out`.
pub struct BatchItem<'a, B: Backend> {
    /// The sentence.
    pub utt: &'a mut Utterance<B>,
    /// First output frame.
    pub a: usize,
    /// One past the last output frame (clipped to the sentence).
    pub b: usize,
    /// Where the samples go.
    pub out: &'a mut Vec<f32>,
}

/// Scratch of batched renders (one set per voice; the device's actor is its
/// only user, so the lock is uncontended).
struct BatchWork<B: Backend> {
    flow: Arena<B>,
    z: Arena<B>,
    dec: Arena<B>,
}

/// Decoder columns (windows, halos and gaps) of one batched launch: bounds the
/// batch scratch (about 230 KB per column for Piper medium voices, so about
/// 235 MB); more ready work runs as several launches.
pub const BATCH_DECODER_FRAMES: usize = 1024;
/// Flow columns of one batched launch (about 7 KB per column: about 30 MB).
pub const BATCH_FLOW_FRAMES: usize = 4096;

/// Where one item's window sits in a batched launch.
struct Slot {
    item: usize,
    off: usize,
    s: usize,
    e: usize,
}

/// One launch of a batched stage: its windows, total columns, gap ranges.
#[derive(Default)]
struct Launch {
    slots: Vec<Slot>,
    total: usize,
    gaps: Vec<(usize, usize)>,
}

/// Each slot's columns of a launch and its item's speaker.
fn slot_speakers<B: Backend>(slots: &[Slot], items: &[BatchItem<'_, B>]) -> Vec<SpeakerCols> {
    slots
        .iter()
        .map(|sl| (sl.off, sl.off + sl.e - sl.s, items[sl.item].utt.speaker))
        .collect()
}

/// Lay windows `(item, s, e)` side by side with at least `gap` zero columns
/// between them, each at a column that is a multiple of `align` (as its
/// `s` is), in launches of at most `budget` columns (a window wider than
/// that runs alone).
fn pack(
    windows: &[(usize, usize, usize)],
    gap: usize,
    align: usize,
    budget: usize,
) -> Vec<Launch> {
    let mut launches = Vec::new();
    let mut cur = Launch::default();
    for &(item, s, e) in windows {
        let len = e - s;
        let at = |total: usize| (total + gap).next_multiple_of(align);
        if !cur.slots.is_empty() && at(cur.total) + len > budget {
            launches.push(std::mem::take(&mut cur));
        }
        if !cur.slots.is_empty() {
            let off = at(cur.total);
            cur.gaps.push((cur.total, off));
            cur.total = off;
        }
        cur.slots.push(Slot {
            item,
            off: cur.total,
            s,
            e,
        });
        cur.total += len;
    }
    if !cur.slots.is_empty() {
        launches.push(cur);
    }
    launches
}

/// A VITS voice on a backend.
pub struct Vits<B: Backend> {
    enc: EncoderW<B>,
    dp: DurationW<B>,
    flow: FlowW<B>,
    dec: DecoderW<B>,
    hidden: usize,
    symbols: usize,
    /// Speakers of the voice (1 for a single-speaker voice).
    speakers: usize,
    pool: Arc<Pool<B>>,
    batch: Mutex<BatchWork<B>>,
}

impl<B: Backend> Vits<B> {
    /// Upload a voice's weights to the backend.
    ///
    /// # Errors
    /// Allocation or device failure.
    pub fn new(be: &B, w: &Weights) -> Result<Self> {
        // A multi-speaker voice: each conditioning conv as one vector per
        // speaker (added after the conv it follows; the model is not copied).
        let sp = w.speakers.as_ref();
        let dp_cond = sp.map(|s| s.table(&s.dp));
        let flow_cond: Option<Vec<Vec<f32>>> =
            sp.map(|s| s.flow.iter().map(|c| s.table(c)).collect());
        let dec_cond = sp.map(|s| s.table(&s.dec));
        // The decoder holds most of the weights: prepare it beside the rest
        // (on the CPU the two halves run on two threads of the pool).
        let (front, dec) = rayon::join(
            || -> Result<_> {
                Ok((
                    EncoderW::new(be, &w.enc)?,
                    DurationW::new(be, &w.dp, dp_cond.as_deref())?,
                    FlowW::new(be, &w.flow, flow_cond.as_deref())?,
                ))
            },
            || DecoderW::new(be, &w.dec, dec_cond.as_deref()),
        );
        let (enc, dp, flow) = front?;
        let v = Vits {
            enc,
            dp,
            flow,
            dec: dec?,
            hidden: w.enc.hidden,
            symbols: w.enc.symbols,
            speakers: sp.map_or(1, |s| s.count),
            pool: Arc::new(Pool::new()),
            batch: Mutex::new(BatchWork {
                flow: Arena::default(),
                z: Arena::default(),
                dec: Arena::default(),
            }),
        };
        be.check()?;
        Ok(v)
    }

    /// Samples per frame.
    pub fn hop(&self) -> usize {
        self.dec.hop()
    }

    /// Speakers of the voice (1 for a single-speaker voice).
    pub fn speakers(&self) -> usize {
        self.speakers
    }

    /// Context frames each side that flow + decoder need (43 for Piper medium voices).
    pub fn halo(&self) -> usize {
        self.flow.radius() + self.dec.radius()
    }

    /// Stages 1–5: ids -> encoder, durations, frame ownership.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for empty input, an id outside the voice, a
    /// speaker outside the voice, or a frame count over `opts.max_frames`.
    pub fn prepare(&self, be: &B, ids: &[i64], opts: &SynthOptions) -> Result<Utterance<B>> {
        self.prepare_first(be, ids, opts, usize::MAX)
    }

    /// [`Vits::prepare`] for streaming: when only output frames
    /// `0..first_frames` are wanted soon and the sentence is long, the
    /// duration predictor runs on a prefix of the ids that fixes the frames
    /// those need (its receptive field is [`DurationW::radius`] ids), and the
    /// rest at [`Vits::finish`] (or the first [`Vits::render`] that needs
    /// it). The samples are the same as [`Vits::prepare`]'s (backends whose
    /// columns are computed alone, [`Backend::columns_exact`]; others always
    /// run all ids); until then [`Utterance::frames`] counts the frames known.
    /// A total over `opts.max_frames` may then be found only at `finish`.
    ///
    /// # Errors
    /// As [`Vits::prepare`].
    pub fn prepare_first(
        &self,
        be: &B,
        ids: &[i64],
        opts: &SynthOptions,
        first_frames: usize,
    ) -> Result<Utterance<B>> {
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
        if opts.speaker >= self.speakers {
            return Err(Error::InvalidArgument(format!(
                "speaker {} is outside the voice's speakers 0..{}",
                opts.speaker, self.speakers
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
        // Given back to the pool when the utterance (or this function, on an
        // error) drops it.
        let mut work = Lease::new(&self.pool);
        let (enc, dp) = self.prep_bufs(be, &mut work, t)?;
        self.enc.run(be, ids, enc);
        let t1 = Instant::now();
        // Ids whose durations are run: all, or (streaming a long sentence) a
        // prefix long enough for the first frames, doubled until it is.
        let r = self.dp.radius();
        let need = first_frames.saturating_add(self.halo());
        let mut p = if be.columns_exact() && need < t {
            r + 40
        } else {
            t
        };
        let (logw, durations, total) = loop {
            // Most of the sentence anyway: run all of it.
            if p.saturating_mul(3) >= t.saturating_mul(2) {
                p = t;
            }
            let mut logw = self.dp.run(
                be,
                &enc[0],
                Mat::new(self.hidden, t).sub_cols(0, p),
                dp,
                &opts.noise,
                sc.noise_w,
                opts.speaker,
            )?;
            // A device failure makes the durations meaningless: stop here.
            be.check()?;
            logw.truncate(if p == t { t } else { p - r });
            let (durations, total) = frames_of(&logw, sc.length_scale, opts.rates.as_deref(), opts.max_frames)?;
            if p == t || total > need as u64 {
                break (logw, durations, total);
            }
            p *= 2;
        };
        let t2 = Instant::now();
        let pending = (logw.len() < t).then_some(Pending {
            length_scale: sc.length_scale,
            rates: opts.rates.clone(),
            noise_w: sc.noise_w,
            max_frames: opts.max_frames,
        });
        let owner = owners(&durations, total)?;
        work.z
            .bufs(be, &[self.hidden * owner.len()], "flow output")?;
        Ok(Utterance {
            ids: t,
            hidden: self.hidden,
            logw,
            durations,
            owner,
            pending,
            noise: opts.noise.clone(),
            noise_scale: sc.noise_scale,
            speaker: opts.speaker,
            times: StageTimes {
                encoder: (t1 - t0).as_secs_f64(),
                duration: (t2 - t1).as_secs_f64(),
                ..StageTimes::default()
            },
            z_ready: 0,
            work,
        })
    }

    /// The encoder's and the duration predictor's scratch for `t` ids (the
    /// same sizes every time: later calls keep what earlier ones left).
    fn prep_bufs<'w>(&self, be: &B, work: &'w mut Work<B>, t: usize) -> Result<PrepBufs<'w, B>> {
        let lens: Vec<usize> = self
            .enc
            .lens(t)
            .into_iter()
            .chain(self.dp.lens(t))
            .collect();
        let bufs = work.prep.bufs(be, &lens, "encoder and duration scratch")?;
        let (enc, dp) = bufs.split_at_mut(6);
        match (
            <&mut [B::Buf; 6]>::try_from(enc),
            <&mut [B::Buf; 6]>::try_from(dp),
        ) {
            (Ok(enc), Ok(dp)) => Ok((enc, dp)),
            _ => Err(Error::InvalidArgument(
                "scratch set of the wrong size".into(),
            )),
        }
    }

    /// Run the duration predictor on the rest of a sentence that
    /// [`Vits::prepare_first`] started on a prefix: afterwards
    /// [`Utterance::frames`] is the sentence's total. Nothing to do when the
    /// durations are complete. [`Vits::render`] calls it when a range needs
    /// it; calling it first makes a frame-cap error this request's alone.
    ///
    /// # Errors
    /// As [`Vits::prepare`] for the frame cap, allocation or the device.
    pub fn finish(&self, be: &B, u: &mut Utterance<B>) -> Result<()> {
        let Some(pend) = u.pending.take() else {
            return Ok(());
        };
        let t1 = Instant::now();
        let t = u.ids;
        let work = &mut *u.work;
        let (x, dp) = self.prep_bufs(be, work, t)?;
        let logw = self.dp.run(
            be,
            &x[0],
            Mat::new(self.hidden, t),
            dp,
            &u.noise,
            pend.noise_w,
            u.speaker,
        )?;
        be.check()?;
        let (durations, total) = frames_of(
            &logw,
            pend.length_scale,
            pend.rates.as_deref(),
            pend.max_frames,
        )?;
        let owner = owners(&durations, total)?;
        let c = self.hidden;
        let (old, f) = (u.owner.len(), owner.len());
        // Flow output already final moves to the layout of the whole sentence
        // (through the host: a first chunk's worth).
        let mut kept = Vec::new();
        let same = durations[..u.durations.len()] == u.durations[..];
        debug_assert!(same, "prefix durations differ from the whole sentence's");
        if same && u.z_ready > 0 {
            kept.resize(c * u.z_ready, 0.0);
            let z = held(&work.z, 0, "flow output")?;
            be.read(z, Mat::new(c, old).sub_cols(0, u.z_ready), &mut kept);
        } else {
            // (Only if a backend claimed exact columns wrongly.) The flow
            // restarts from the sentence's complete durations.
            u.z_ready = 0;
        }
        let z = &mut work.z.bufs(be, &[c * f], "flow output")?[0];
        if u.z_ready > 0 {
            be.write(z, Mat::new(c, f).sub_cols(0, u.z_ready), &kept);
        }
        u.logw = logw;
        u.durations = durations;
        u.owner = owner;
        u.times.duration += t1.elapsed().as_secs_f64();
        Ok(())
    }

    /// z_p for frames `s..e` -> flow; the result `[C, e − s]` is left in the
    /// first buffer of the utterance's flow arena.
    fn latent_window(&self, be: &B, u: &mut Utterance<B>, s: usize, e: usize) -> Result<()> {
        let (c, l) = (self.hidden, e - s);
        // Ends of the window inside the sentence (their halo is not computed).
        let cut = (s > 0, e < u.frames());
        let mut noise = Vec::new();
        u.noise
            .fill(STREAM_Z, c, s, e, &mut noise)
            .map_err(Error::InvalidArgument)?;
        let work = &mut *u.work;
        let bufs = work.flow.bufs(be, &self.flow.lens(l), "flow")?;
        be.expand_prior(
            held(&work.prep, ML, "encoder output")?,
            Mat::new(2 * c, u.ids),
            &u.owner[s..e],
            &noise,
            u.noise_scale,
            &mut bufs[0],
            Mat::new(c, l),
        );
        self.flow.run(be, bufs, l, cut, u.speaker)?;
        Ok(())
    }

    /// The flow output z `[C, F]` for the whole sentence (host), for checks.
    ///
    /// # Errors
    /// Allocation failure or short fixed noise.
    pub fn latent(&self, be: &B, u: &mut Utterance<B>) -> Result<Vec<f32>> {
        self.finish(be, u)?;
        let f = u.frames();
        self.latent_window(be, u, 0, f)?;
        let mut out = vec![0.0; self.hidden * f];
        let z = u.work.flow.bufs(be, &[0], "flow")?;
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
        let src = Mat::new(c, e - s).sub_cols(r - s, r2 - s);
        let dst = Mat::new(c, f).sub_cols(r, r2);
        let work = &mut *u.work;
        let seg = work.flow.bufs(be, &[0], "flow")?;
        be.copy(&seg[0], src, held_mut(&mut work.z, 0, "flow output")?, dst);
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
        self.settle(be, u, b)?;
        let f = u.frames();
        let b = b.min(f);
        if a >= b {
            return Ok(());
        }
        let rd = self.dec.radius();
        let (s2, e2) = (self.window_start(a), (b + rd).min(f));
        // After the first chunk, run the flow ahead in segments that double
        // (at least 4 halos, at most 1024 frames) to amortise its halo.
        let step = if u.z_ready == 0 {
            0
        } else {
            u.z_ready.clamp(4 * self.flow.radius(), 1024)
        };
        self.advance_latent(be, u, e2, step)?;
        let zm = Mat::new(self.hidden, f).sub_cols(s2, e2);
        let t0 = Instant::now();
        let work = &mut *u.work;
        let z = held(&work.z, 0, "flow output")?;
        let cut = (s2 > 0, e2 < f);
        let (audio, am) = self.dec.run(be, z, zm, cut, u.speaker, &mut work.dec)?;
        let hop = self.hop();
        let keep = am.sub_cols((a - s2) * hop, (b - s2) * hop);
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

    /// The first frame of the decoder window for output frames from `a`:
    /// its halo back, down to a multiple of [`DecoderW::align`] frames.
    fn window_start(&self, a: usize) -> usize {
        let al = self.dec.align();
        a.saturating_sub(self.dec.radius()) / al * al
    }

    /// Before rendering up to frame `b`: complete the durations unless this is
    /// the first range and its frames with their halo are already known (the
    /// flow output kept so far has the layout of the known frames).
    fn settle(&self, be: &B, u: &mut Utterance<B>, b: usize) -> Result<()> {
        if u.pending.is_some() && (u.z_ready > 0 || b.saturating_add(self.halo()) >= u.frames()) {
            self.finish(be, u)?;
        }
        Ok(())
    }

    /// Zero columns kept between the windows of a batched render (the widest
    /// conv padding of flow and decoder, in frames).
    pub fn batch_gap(&self) -> usize {
        self.flow.gap().max(self.dec.gap())
    }

    /// Bytes of scratch a batched render may hold at most (flow, gathered z
    /// and decoder, for launches of [`BATCH_FLOW_FRAMES`] and
    /// [`BATCH_DECODER_FRAMES`] columns; a single window wider than that
    /// needs as much as [`Vits::render`] would for it).
    pub fn batch_scratch_bytes(&self) -> usize {
        let flow: usize = self.flow.lens(BATCH_FLOW_FRAMES).iter().sum();
        let z = self.hidden * BATCH_DECODER_FRAMES;
        let dec = self.dec.floats_per_frame() * BATCH_DECODER_FRAMES;
        // Arena headroom: up to 1/4 over the largest request.
        (flow + z + dec) * std::mem::size_of::<f32>() * 5 / 4
    }

    /// Bytes of batch scratch held now (at most [`Vits::batch_scratch_bytes`]
    /// unless one window alone was wider than a launch).
    pub fn batch_scratch_held_bytes(&self) -> usize {
        let w = self.batch.lock();
        (w.flow.held() + w.z.held() + w.dec.held()) * std::mem::size_of::<f32>()
    }

    /// [`Vits::render`] for several utterances at once, as ONE sequence of
    /// ops per stage: their flow windows, then their decoder windows, laid
    /// side by side along the columns of shared buffers with
    /// [`Vits::batch_gap`] zero columns between them (re-zeroed before every
    /// conv: the decoder has no masks, and the gaps give each window exactly
    /// the zero padding it sees alone). Every item gets the samples
    /// [`Vits::render`] would give it (bit-identical on the CPU backend, whose
    /// conv columns do not depend on the view). Work beyond
    /// [`BATCH_DECODER_FRAMES`] / [`BATCH_FLOW_FRAMES`] columns runs as
    /// several launches.
    ///
    /// # Errors
    /// Allocation failure or short fixed noise; the items' outputs are then
    /// unspecified.
    pub fn render_batch(&self, be: &B, items: &mut [BatchItem<'_, B>]) -> Result<()> {
        let (c, rf, rd, hop) = (
            self.hidden,
            self.flow.radius(),
            self.dec.radius(),
            self.hop(),
        );
        let gap = self.batch_gap();
        // Plan: per item, the flow segment to compute (as `render` would) and
        // the decoder window.
        let mut flow_win = Vec::new();
        let mut dec_win = Vec::new();
        let mut seg = vec![(0usize, 0usize); items.len()];
        for (i, it) in items.iter_mut().enumerate() {
            let u = &mut *it.utt;
            self.settle(be, u, it.b)?;
            let f = u.frames();
            it.b = it.b.min(f);
            if it.a >= it.b {
                continue;
            }
            let (s2, e2) = (self.window_start(it.a), (it.b + rd).min(f));
            dec_win.push((i, s2, e2));
            let min_step = if u.z_ready == 0 {
                0
            } else {
                u.z_ready.clamp(4 * rf, 1024)
            };
            let upto = e2.min(f);
            if upto > u.z_ready {
                let r = u.z_ready;
                let r2 = upto.max((r + min_step).min(f));
                seg[i] = (r, r2);
                flow_win.push((i, r.saturating_sub(rf), (r2 + rf).min(f)));
            }
        }
        // Never block on the lock: a caller waiting inside the backend's
        // thread pool could run another batch on this very thread (work
        // stealing) and deadlock. A concurrent caller (the engine has one
        // actor per device, so only tests) gets its own scratch instead.
        let mut own = None;
        let mut guard = self.batch.try_lock();
        let work = match guard.as_deref_mut() {
            Some(w) => w,
            None => own.insert(BatchWork {
                flow: Arena::default(),
                z: Arena::default(),
                dec: Arena::default(),
            }),
        };
        let mut noise = Vec::new();
        for Launch { slots, total, gaps } in pack(&flow_win, gap, 1, BATCH_FLOW_FRAMES) {
            let t0 = Instant::now();
            let bufs = work.flow.bufs(be, &self.flow.lens(total), "batched flow")?;
            let whole = Mat::new(c, total);
            for sl in &slots {
                let u = &mut *items[sl.item].utt;
                u.noise
                    .fill(STREAM_Z, c, sl.s, sl.e, &mut noise)
                    .map_err(Error::InvalidArgument)?;
                be.expand_prior(
                    held(&u.work.prep, ML, "encoder output")?,
                    Mat::new(2 * c, u.ids),
                    &u.owner[sl.s..sl.e],
                    &noise,
                    u.noise_scale,
                    &mut bufs[0],
                    whole.sub_cols(sl.off, sl.off + sl.e - sl.s),
                );
            }
            if !gaps.is_empty() {
                be.zero_cols(&mut bufs[0], whole, &gaps);
            }
            let speakers = slot_speakers(&slots, items);
            self.flow.run_gapped(be, bufs, total, &gaps, &speakers)?;
            for sl in &slots {
                let u = &mut *items[sl.item].utt;
                let (r, r2) = seg[sl.item];
                let f = u.frames();
                let src = whole.sub_cols(sl.off + r - sl.s, sl.off + r2 - sl.s);
                be.copy(
                    &bufs[0],
                    src,
                    held_mut(&mut u.work.z, 0, "flow output")?,
                    Mat::new(c, f).sub_cols(r, r2),
                );
                u.z_ready = r2;
            }
            let dt = t0.elapsed().as_secs_f64();
            for sl in &slots {
                items[sl.item].utt.times.flow += dt * (sl.e - sl.s) as f64 / total as f64;
            }
        }
        for Launch { slots, total, gaps } in pack(&dec_win, gap, self.dec.align(), BATCH_DECODER_FRAMES) {
            let t0 = Instant::now();
            let zb = &mut work.z.bufs(be, &[c * total], "batched decoder input")?[0];
            let whole = Mat::new(c, total);
            for sl in &slots {
                let u = &*items[sl.item].utt;
                let z = held(&u.work.z, 0, "flow output")?;
                let src = Mat::new(c, u.frames()).sub_cols(sl.s, sl.e);
                be.copy(z, src, zb, whole.sub_cols(sl.off, sl.off + sl.e - sl.s));
            }
            if !gaps.is_empty() {
                be.zero_cols(zb, whole, &gaps);
            }
            let speakers = slot_speakers(&slots, items);
            let (audio, am) = self.dec.run_gapped(be, zb, whole, &gaps, &speakers, &mut work.dec)?;
            for sl in &slots {
                let it = &mut items[sl.item];
                let (a, b) = (it.a, it.b);
                let keep = am.sub_cols((sl.off + a - sl.s) * hop, (sl.off + b - sl.s) * hop);
                let start = it.out.len();
                it.out.resize(start + (b - a) * hop, 0.0);
                be.read(audio, keep, &mut it.out[start..]);
            }
            let dt = t0.elapsed().as_secs_f64();
            for sl in &slots {
                items[sl.item].utt.times.decoder += dt * (sl.e - sl.s) as f64 / total as f64;
            }
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
