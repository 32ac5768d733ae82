//! Streaming on several CPU threads: a request's sentences are rendered
//! side by side by up to `lanes` tasks in the backend's thread pool, each
//! taking a sentence and rendering its chunks into that sentence's bounded
//! queue, while the caller's thread delivers the queues in sentence order.
//!
//! Why: one sentence's ops split over the backend's threads only as far as
//! each op is wide enough, so streaming one sentence at a time leaves threads
//! idle (small ops, the encoder, the serial parts between ops); independent
//! sentences keep them busy, as whole-audio requests already do.
//!
//! - **Same samples.** A sentence is rendered with the same [`Cursor`] steps
//!   as on the sequential path (same seed, same chunk sizes), so every chunk,
//!   and the order of chunks and sentence ends, is the sequential one.
//! - **First audio first.** The first sentence's small first chunks run on
//!   the caller's thread exactly as on the sequential path (every thread serves
//!   them, no thread is started before them); the lanes take over once its
//!   chunks have reached full size (or it has ended).
//! - **Bounded.** At most `lanes` sentences in flight (each holds its scratch),
//!   and a sentence is rendered further only while fewer than [`QUEUE_FRAMES`]
//!   of its frames wait for the caller.
//! - **Nothing blocks inside the pool.** A lane renders one chunk at a time
//!   and then picks again (the due sentence first); with nothing it may do (a
//!   full queue, the first chunks not out yet) it ends instead of waiting, and
//!   its thread helps the other lanes' ops. Lanes are spawned by a lane between
//!   chunks, never from inside an op, so a thief takes a new lane before any op
//!   piece and no lane runs nested inside another's op. When no lane is left
//!   and there is work again (the caller took chunks), a helper thread, which
//!   waits outside the pool, starts the lanes again.
//! - **Cancellation.** When the caller stops (its sink breaks, an error, a
//!   panic), the lanes stop before their next chunk; the call returns once the
//!   chunks in flight (at most one per lane) are done, so no work outlives it.
//! - **Errors** reach the caller in sentence order, as on the sequential path
//!   (the sentences before a failing one are delivered first; none after it
//!   starts). A panic in a lane is resumed on the caller's thread.

use super::core::Core;
use super::script::{Event, Sink};
use super::speech::{Cursor, Plan, Step};
use crate::backend::Backend;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Frames a sentence may have rendered and not yet delivered before its
/// rendering pauses (about 12 s of audio; 1 MB of samples for a 256-sample
/// hop). A chunk larger than that still runs when the queue is empty.
pub(crate) const QUEUE_FRAMES: usize = 1024;

/// One sentence in flight: its chunks not yet delivered.
#[derive(Default)]
struct Slot {
    chunks: VecDeque<Vec<f32>>,
    /// Samples in `chunks`.
    samples: usize,
    /// Every chunk of the sentence is in `chunks`.
    ended: bool,
    /// The sentence failed (after the chunks in `chunks`).
    error: Option<Error>,
}

/// What the lanes, the helper and the caller share, under one lock.
struct State<B: Backend> {
    /// The next sentence to start.
    next: usize,
    /// Sentences from this one on are not started (the request has that many
    /// sentences, or an earlier one failed).
    limit: usize,
    /// The sentence the caller delivers.
    due: usize,
    /// The sentences started and not yet delivered.
    slots: BTreeMap<usize, Slot>,
    /// Sentences started whose rendering is not over, waiting for a lane
    /// (the others are in a lane's hands).
    parked: BTreeMap<usize, Cursor<B>>,
    /// Sentences started whose rendering is not over (parked or in a lane).
    in_flight: usize,
    /// Lanes alive.
    lanes: usize,
    /// The caller has stopped: the lanes end before their next chunk.
    stop: bool,
    /// A lane panicked: its payload, resumed on the caller's thread.
    panic: Option<Box<dyn Any + Send>>,
}

struct Shared<B: Backend> {
    state: Mutex<State<B>>,
    /// Rung on every change: the helper and the caller re-check what they wait for.
    changed: Condvar,
    /// Most lanes (and sentences in flight).
    max_lanes: usize,
    /// Samples a sentence may have waiting for the caller before it pauses.
    room: usize,
}

/// Sets `stop` when the caller leaves, however it leaves (returns, errors,
/// unwinds), so that the helper stops too.
struct StopOnDrop<'a, B: Backend>(&'a Shared<B>);

impl<B: Backend> Drop for StopOnDrop<'_, B> {
    fn drop(&mut self) {
        self.0.state.lock().stop = true;
        self.0.changed.notify_all();
    }
}

/// What the caller delivers next.
enum Delivery {
    Samples(Vec<f32>),
    SentenceEnd,
    Done,
    Failed(Error),
    Panicked,
}

impl<B: Backend> State<B> {
    /// Whether sentence `i` may be rendered further now (room in its queue).
    fn has_room(&self, i: usize, room: usize) -> bool {
        self.slots.get(&i).is_none_or(|s| s.samples < room)
    }

    /// Whether a new sentence may start now.
    fn may_start(&self, max_lanes: usize) -> bool {
        self.next < self.limit && self.in_flight < max_lanes
    }

    /// The most urgent sentence a lane may render now (the lowest first),
    /// taken: a started one, or a new one.
    fn pick(&mut self, sh: &Shared<B>) -> Option<(usize, Cursor<B>)> {
        if self.stop {
            return None;
        }
        // A started sentence with room first (the lowest: the due one first),
        // else a new sentence.
        let parked = self
            .parked
            .keys()
            .copied()
            .find(|&i| self.has_room(i, sh.room));
        if let Some(i) = parked {
            let cur = self.parked.remove(&i)?;
            return Some((i, cur));
        }
        if !self.may_start(sh.max_lanes) {
            return None;
        }
        let i = self.next;
        self.next += 1;
        self.in_flight += 1;
        self.slots.insert(i, Slot::default());
        Some((i, Cursor::at_sentence(i)))
    }

    /// Jobs a lane could take now.
    fn runnable(&self, sh: &Shared<B>) -> usize {
        if self.stop {
            return 0;
        }
        let parked = self
            .parked
            .keys()
            .filter(|&&i| self.has_room(i, sh.room))
            .count();
        parked + usize::from(self.may_start(sh.max_lanes))
    }
}

/// Run `plan` from its first sentence on up to `lanes` lanes (at least 1),
/// delivering its events to `sink` in order.
///
/// # Errors
/// The first failing sentence's error (after the sentences before it are
/// delivered); [`Error::Cancelled`] when `sink` breaks. (Without a thread for
/// the lanes, the rest runs sentence after sentence on the calling thread.)
pub(crate) fn stream<B: Backend>(
    core: &Core<B>,
    plan: &Plan<B>,
    lanes: usize,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let n = plan.sentences.len();
    // The first chunks on the caller's thread, exactly as on the sequential
    // path (the first audio as soon as before), until they reach full size.
    let mut cur = Cursor::at_sentence(0);
    let mut buf = Vec::new();
    loop {
        let ev = match plan.step(core, &mut cur, &mut buf)? {
            Step::Samples => Event::Samples(&buf),
            Step::SentenceEnd => Event::SentenceEnd,
            Step::Done => return Ok(()),
        };
        if sink(ev).is_break() {
            return Err(Error::Cancelled);
        }
        if cur.sentence() > 0 || plan.ramped(&cur) {
            break;
        }
    }
    // Then the lanes, from there on.
    let mut slots = BTreeMap::new();
    let mut parked = BTreeMap::new();
    let at = cur.sentence();
    if at == 0 {
        slots.insert(0, Slot::default());
        parked.insert(0, cur);
    }
    let shared = Shared {
        state: Mutex::new(State {
            next: at.max(1),
            limit: n,
            due: at,
            slots,
            in_flight: parked.len(),
            parked,
            lanes: 0,
            stop: false,
            panic: None,
        }),
        changed: Condvar::new(),
        max_lanes: lanes.max(1),
        room: QUEUE_FRAMES.saturating_mul(plan.voice.model.hop()),
    };
    let result = std::thread::scope(|s| {
        let stop = StopOnDrop(&shared);
        let sh = &shared;
        let helper = std::thread::Builder::new()
            .name("voxide-lanes".into())
            .spawn_scoped(s, move || helper(core, plan, sh));
        let Ok(helper) = helper else {
            // No thread to be had: the rest on this thread, sentence after sentence.
            let cur = sh.state.lock().parked.remove(&at);
            return sequential(
                core,
                plan,
                cur.unwrap_or_else(|| Cursor::at_sentence(at)),
                sink,
            );
        };
        let r = deliver(sh, n, sink);
        // Stop the lanes, and wait until the helper has returned: nothing of
        // this request runs after the call.
        drop(stop);
        // A panic in a lane is caught there and resumed below; the helper's
        // own code does not panic.
        let _ = helper.join();
        r
    });
    if let Some(payload) = shared.state.lock().panic.take() {
        resume_unwind(payload);
    }
    result
}

/// The rest of a request from `cur` on the calling thread, as on the
/// sequential path.
fn sequential<B: Backend>(
    core: &Core<B>,
    plan: &Plan<B>,
    mut cur: Cursor<B>,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let mut buf = Vec::new();
    loop {
        let ev = match plan.step(core, &mut cur, &mut buf)? {
            Step::Samples => Event::Samples(&buf),
            Step::SentenceEnd => Event::SentenceEnd,
            Step::Done => return Ok(()),
        };
        if sink(ev).is_break() {
            return Err(Error::Cancelled);
        }
    }
}

/// The helper thread: whenever no lane is alive and there is work, start the
/// lanes in the pool (and wait there until they have all ended); between
/// times wait, outside the pool, for the caller to make room.
fn helper<B: Backend>(core: &Core<B>, plan: &Plan<B>, sh: &Shared<B>) {
    loop {
        {
            let mut st = sh.state.lock();
            loop {
                if st.stop || (st.next >= st.limit && st.in_flight == 0) {
                    return;
                }
                if st.runnable(sh) > 0 {
                    break;
                }
                sh.changed.wait(&mut st);
            }
            st.lanes = 1;
        }
        core.be
            .install(|| rayon::scope(|s| lane(s, core, plan, sh)));
    }
}

/// One lane: pick the most urgent job, render one chunk, put the sentence
/// back; spawn another lane between chunks while there is more work than
/// lanes; end when there is nothing to do now.
fn lane<'s, B: Backend>(
    s: &rayon::Scope<'s>,
    core: &'s Core<B>,
    plan: &'s Plan<B>,
    sh: &'s Shared<B>,
) {
    let mut buf = Vec::new();
    loop {
        let (i, mut cur, more) = {
            let mut st = sh.state.lock();
            let Some((i, cur)) = st.pick(sh) else {
                st.lanes -= 1;
                drop(st);
                sh.changed.notify_all();
                return;
            };
            // Between chunks, never inside an op: a thief takes the new lane
            // before any op piece (see the module doc).
            let more = st.lanes < sh.max_lanes && st.runnable(sh) > 0;
            if more {
                st.lanes += 1;
            }
            (i, cur, more)
        };
        if more {
            s.spawn(move |s| lane(s, core, plan, sh));
        }
        let step = catch_unwind(AssertUnwindSafe(|| plan.step(core, &mut cur, &mut buf)));
        let mut st = sh.state.lock();
        match step {
            Ok(Ok(Step::Samples)) => {
                if let Some(slot) = st.slots.get_mut(&i) {
                    slot.samples += buf.len();
                    slot.chunks.push_back(std::mem::take(&mut buf));
                }
                if i < st.limit {
                    st.parked.insert(i, cur);
                } else {
                    // An earlier sentence failed: this one is not delivered.
                    st.in_flight -= 1;
                }
            }
            Ok(Ok(Step::SentenceEnd | Step::Done)) => {
                if let Some(slot) = st.slots.get_mut(&i) {
                    slot.ended = true;
                }
                st.in_flight -= 1;
            }
            Ok(Err(e)) => {
                if let Some(slot) = st.slots.get_mut(&i) {
                    slot.error = Some(e);
                }
                // No later sentence starts; those in flight stop.
                st.limit = st.limit.min(i + 1);
                let later: Vec<usize> = st.parked.range(i + 1..).map(|(&k, _)| k).collect();
                for k in later {
                    st.parked.remove(&k);
                    st.in_flight -= 1;
                }
                st.in_flight -= 1;
            }
            Err(payload) => {
                st.panic.get_or_insert(payload);
                st.stop = true;
                st.in_flight -= 1;
            }
        }
        drop(st);
        sh.changed.notify_all();
    }
}

/// The caller's side: the due sentence's chunks and ends, in order, to `sink`.
fn deliver<B: Backend>(shared: &Shared<B>, n: usize, sink: &mut Sink<'_>) -> Result<()> {
    loop {
        let next = {
            let mut st = shared.state.lock();
            loop {
                if let Some(d) = take_due(&mut st, n) {
                    break d;
                }
                shared.changed.wait(&mut st);
            }
        };
        // Room in a queue, or a new due sentence: the lanes may go on.
        shared.changed.notify_all();
        let flow = match next {
            Delivery::Samples(chunk) => sink(Event::Samples(&chunk)),
            Delivery::SentenceEnd => sink(Event::SentenceEnd),
            Delivery::Done => return Ok(()),
            Delivery::Failed(e) => return Err(e),
            // `stream` resumes it once the helper is joined.
            Delivery::Panicked => return Err(Error::Panic("a streaming lane panicked".into())),
        };
        if flow.is_break() {
            return Err(Error::Cancelled);
        }
    }
}

/// The next thing to deliver, if it is ready.
fn take_due<B: Backend>(st: &mut State<B>, n: usize) -> Option<Delivery> {
    if st.panic.is_some() {
        return Some(Delivery::Panicked);
    }
    if st.due >= n {
        return Some(Delivery::Done);
    }
    let due = st.due;
    let slot = st.slots.get_mut(&due)?;
    if let Some(chunk) = slot.chunks.pop_front() {
        slot.samples -= chunk.len();
        return Some(Delivery::Samples(chunk));
    }
    if let Some(e) = slot.error.take() {
        return Some(Delivery::Failed(e));
    }
    if slot.ended {
        st.slots.remove(&due);
        st.due += 1;
        return Some(Delivery::SentenceEnd);
    }
    None
}
