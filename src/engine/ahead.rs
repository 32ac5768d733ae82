//! Streaming on several CPU threads: a request's sentences are rendered by
//! `lanes` helper threads at once, each taking the next sentence and
//! rendering its chunks into that sentence's bounded queue, while the
//! caller's thread delivers the queues in sentence order.
//!
//! Why: one sentence's ops split over the backend's threads only as far as
//! each op is wide enough, so streaming one sentence at a time leaves threads
//! idle (small ops, the encoder, the serial parts between ops); independent
//! sentences keep them busy, as whole-audio requests already do. A lane that
//! waits (its queue full, or at the gate) leaves its pool thread to the other
//! lanes' ops, so nothing is lost when there is only one sentence to work on.
//!
//! - **Same samples.** A lane renders a sentence with the same [`Cursor`]
//!   steps as the sequential path (same seed, same chunk sizes), so every
//!   chunk, and the order of chunks and sentence ends, is the sequential one.
//! - **First audio first.** The other lanes start only once the first
//!   sentence's small first chunks are out (its chunks have reached full size)
//!   or it has ended: until then every thread serves the first chunks.
//! - **Bounded.** A lane renders a chunk only while its sentence has fewer than
//!   [`QUEUE_FRAMES`] frames queued (or, for a chunk size above that, nothing
//!   queued): at most `lanes` sentences in flight, each holding its scratch and
//!   at most about that much audio.
//! - **Cancellation.** When the caller stops (its sink breaks, an error, a
//!   panic), the lanes stop before their next chunk; the call returns once the
//!   chunks in flight (at most one per lane) are done, so no work outlives it.
//! - **Errors** reach the caller in sentence order, as on the sequential path
//!   (the sentences before a failing one are delivered first; none after it
//!   starts). A panic on a lane is resumed on the caller's thread.

use super::core::Core;
use super::runtime::{Event, Sink};
use super::speech::{Cursor, Plan, Step};
use crate::backend::Backend;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Frames a sentence may have rendered and not yet delivered before its lane
/// waits (about 12 s of audio; 1 MB of samples for a 256-sample hop).
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

/// What the lanes and the caller share, under one lock.
struct State {
    /// The next sentence a lane takes.
    next: usize,
    /// Sentences from this one on are not started (the request has that many
    /// sentences, or an earlier one failed).
    limit: usize,
    /// The sentence the caller delivers.
    due: usize,
    /// The sentences taken and not yet delivered.
    slots: BTreeMap<usize, Slot>,
    /// The lanes beyond the first may start (the first chunks are out).
    open: bool,
    /// The caller has stopped: the lanes end before their next chunk.
    stop: bool,
    /// A lane panicked: its payload, resumed on the caller's thread.
    panic: Option<Box<dyn Any + Send>>,
}

struct Shared {
    state: Mutex<State>,
    /// Rung on every change: lanes and caller re-check what they wait for.
    changed: Condvar,
}

/// Sets `stop` when the caller leaves, however it leaves (returns, errors,
/// unwinds), so that no lane waits forever.
struct StopOnDrop<'a>(&'a Shared);

impl Drop for StopOnDrop<'_> {
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

/// Run `plan` from its first sentence on `lanes` threads (at least 1),
/// delivering its events to `sink` in order.
///
/// # Errors
/// The first failing sentence's error (after the sentences before it are
/// delivered); [`Error::Cancelled`] when `sink` breaks; [`Error::Device`] when
/// no thread can be started.
pub(crate) fn stream<B: Backend>(
    core: &Core<B>,
    plan: &Plan<B>,
    lanes: usize,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let n = plan.sentences.len();
    let shared = Shared {
        state: Mutex::new(State {
            next: 0,
            limit: n,
            due: 0,
            slots: BTreeMap::new(),
            open: false,
            stop: false,
            panic: None,
        }),
        changed: Condvar::new(),
    };
    let result = std::thread::scope(|s| {
        // Declared first, so dropped last: stops the lanes whatever happens.
        let _stop = StopOnDrop(&shared);
        let mut started = 0;
        let mut spawn_error = None;
        for k in 0..lanes.clamp(1, n.max(1)) {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("voxide-lane-{k}"))
                .spawn_scoped(s, move || lane(core, plan, shared));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        if started == 0 {
            let e = spawn_error.map_or_else(String::new, |e| e.to_string());
            return Err(Error::Device(format!(
                "cannot start a streaming thread: {e}"
            )));
        }
        deliver(&shared, n, sink)
    });
    if let Some(payload) = shared.state.lock().panic.take() {
        resume_unwind(payload);
    }
    result
}

/// The caller's side: the due sentence's chunks and ends, in order, to `sink`.
fn deliver(shared: &Shared, n: usize, sink: &mut Sink<'_>) -> Result<()> {
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
            // `stream` resumes it once the lanes are joined.
            Delivery::Panicked => return Err(Error::Panic("a streaming lane panicked".into())),
        };
        if flow.is_break() {
            return Err(Error::Cancelled);
        }
    }
}

/// The next thing to deliver, if it is ready.
fn take_due(st: &mut State, n: usize) -> Option<Delivery> {
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

/// One lane: take the next sentence, render its chunks into its slot (while
/// the slot has room), repeat; end when the caller stops or no sentence is left.
fn lane<B: Backend>(core: &Core<B>, plan: &Plan<B>, shared: &Shared) {
    // The queue bound in samples.
    let room = QUEUE_FRAMES.saturating_mul(plan.voice.model.hop());
    let mut buf = Vec::new();
    loop {
        // Take a sentence: the first at once, the others once the gate is open.
        let i = {
            let mut st = shared.state.lock();
            loop {
                if st.stop || st.next >= st.limit {
                    return;
                }
                if st.next == 0 || st.open {
                    break;
                }
                shared.changed.wait(&mut st);
            }
            let i = st.next;
            st.next += 1;
            st.slots.insert(i, Slot::default());
            i
        };
        let mut cur = Cursor::at_sentence(i);
        loop {
            // Wait for room in the sentence's queue (always some when empty).
            {
                let mut st = shared.state.lock();
                loop {
                    if st.stop || i >= st.limit {
                        return;
                    }
                    match st.slots.get(&i) {
                        Some(slot) if slot.samples >= room && !slot.chunks.is_empty() => {}
                        _ => break,
                    }
                    shared.changed.wait(&mut st);
                }
            }
            let step = catch_unwind(AssertUnwindSafe(|| plan.step(core, &mut cur, &mut buf)));
            let mut st = shared.state.lock();
            let done = match step {
                Ok(Ok(Step::Samples)) => {
                    if let Some(slot) = st.slots.get_mut(&i) {
                        slot.samples += buf.len();
                        slot.chunks.push_back(std::mem::take(&mut buf));
                    }
                    if i == 0 && plan.ramped(&cur) {
                        st.open = true;
                    }
                    false
                }
                Ok(Ok(Step::SentenceEnd | Step::Done)) => {
                    if let Some(slot) = st.slots.get_mut(&i) {
                        slot.ended = true;
                    }
                    st.open = true;
                    true
                }
                Ok(Err(e)) => {
                    if let Some(slot) = st.slots.get_mut(&i) {
                        slot.error = Some(e);
                    }
                    // No later sentence starts; those in flight stop.
                    st.limit = st.limit.min(i + 1);
                    st.open = true;
                    true
                }
                Err(payload) => {
                    st.panic.get_or_insert(payload);
                    st.stop = true;
                    true
                }
            };
            drop(st);
            shared.changed.notify_all();
            if done {
                break;
            }
        }
    }
}
