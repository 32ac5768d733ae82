//! Recorded CUDA graphs: the host-side bookkeeping of which (stage, shape,
//! buffers) keys have a graph, which could not be recorded, and eviction
//! ([`GraphCache`], generic over the graph type so the logic is tested
//! without a GPU); and the recording itself (`Graphs::run`): replay, run
//! eagerly, or capture the stream while the ops run and launch the capture.
//!
//! A key is everything a recording depends on: the stage, its shape bucket,
//! the device addresses and capacities of every buffer the ops touch, and the
//! generation of the backend's shared scratch (bumped whenever a scratch
//! buffer is reallocated, so no graph replays on freed memory).

use cudarc::driver::{sys, CudaGraph, CudaStream};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What to do for a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// A graph exists: launch it.
    Replay,
    /// First sighting, or recording failed before: run the ops eagerly.
    Eager,
    /// Seen once before: record it now (then launch). Shapes seen only once
    /// (a sentence's last chunk) never pay for a recording.
    Record,
}

enum Entry<G> {
    Seen,
    Graph(G),
    Failed,
}

/// A bounded map from keys to recorded graphs.
pub struct GraphCache<G> {
    map: HashMap<Vec<u64>, (Entry<G>, u64)>,
    clock: u64,
    cap: usize,
    /// Graphs launched from the cache.
    pub replays: u64,
    /// Graphs recorded.
    pub recorded: u64,
}

impl<G> GraphCache<G> {
    /// A cache holding at most `cap` keys (least recently used evicted first).
    pub fn new(cap: usize) -> Self {
        GraphCache {
            map: HashMap::new(),
            clock: 0,
            cap: cap.max(1),
            replays: 0,
            recorded: 0,
        }
    }

    /// The full key: scratch generation first, then the caller's parts.
    pub fn key(generation: u64, parts: &[u64]) -> Vec<u64> {
        let mut k = Vec::with_capacity(parts.len() + 1);
        k.push(generation);
        k.extend_from_slice(parts);
        k
    }

    /// What to do for `key`; marks it used (a first sighting is remembered).
    pub fn plan(&mut self, key: &[u64]) -> Plan {
        self.clock += 1;
        match self.map.get_mut(key) {
            Some((e, used)) => {
                *used = self.clock;
                match e {
                    Entry::Graph(_) => Plan::Replay,
                    Entry::Seen => Plan::Record,
                    Entry::Failed => Plan::Eager,
                }
            }
            None => {
                self.put(key.to_vec(), Entry::Seen);
                Plan::Eager
            }
        }
    }

    /// The graph of `key`, if one was recorded.
    pub fn get(&self, key: &[u64]) -> Option<&G> {
        match self.map.get(key) {
            Some((Entry::Graph(g), _)) => Some(g),
            _ => None,
        }
    }

    /// Store the result of recording `key` (`None`: it failed), evicting the
    /// least recently used entries beyond the capacity, and every entry of an
    /// older scratch generation than `key`'s (its buffers may be gone).
    pub fn insert(&mut self, key: Vec<u64>, graph: Option<G>) {
        let entry = match graph {
            Some(g) => {
                self.recorded += 1;
                Entry::Graph(g)
            }
            None => Entry::Failed,
        };
        self.put(key, entry);
    }

    fn put(&mut self, key: Vec<u64>, entry: Entry<G>) {
        self.clock += 1;
        let generation = key.first().copied().unwrap_or(0);
        self.map
            .retain(|k, _| k.first().copied().unwrap_or(0) >= generation);
        while self.map.len() >= self.cap {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.map.remove(&oldest);
        }
        self.map.insert(key, (entry, self.clock));
    }

    /// Remember `key` as seen once (if unknown): a first sighting that ran
    /// eagerly and grew the scratch (a new generation) is noted under the
    /// generation it leaves behind, so the same work next time is recorded.
    pub fn seen(&mut self, key: &[u64]) {
        if !self.map.contains_key(key) {
            self.put(key.to_vec(), Entry::Seen);
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop every graph.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// Whether a recording is under way on the stream, and whether something
/// broke it (a scratch buffer that had to grow, host data, a failed call):
/// a broken recording is thrown away and its key runs eagerly from then on.
#[derive(Default)]
pub(super) struct Capture {
    on: AtomicBool,
    broken: AtomicBool,
}

impl Capture {
    /// Whether a recording is under way.
    pub(super) fn active(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Mark the recording under way as broken.
    pub(super) fn spoil(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    fn start(&self) {
        self.broken.store(false, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
    }

    fn stop(&self) {
        self.on.store(false, Ordering::Relaxed);
    }

    /// Whether the last recording broke (and forget it).
    fn take_broken(&self) -> bool {
        self.broken.swap(false, Ordering::Relaxed)
    }
}

/// A recorded graph; only touched under the cache's lock.
pub(super) struct Graph(CudaGraph);
// SAFETY: a CUDA graph may be used from any thread as long as calls on it are
// serialised; `Graph`s live only inside `Mutex<GraphCache<Graph>>`.
unsafe impl Send for Graph {}

/// Records a failed CUDA call: `(what, error)`.
pub(super) type Note<'a> = &'a dyn Fn(&str, &dyn std::fmt::Debug);

/// The recorded graphs of one stream.
pub(super) struct Graphs(Mutex<GraphCache<Graph>>);

impl Graphs {
    /// An empty cache of at most 256 graphs.
    pub(super) fn new() -> Self {
        Graphs(Mutex::new(GraphCache::new(256)))
    }

    /// `(recorded, replayed)` graph counts so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        let g = self.0.lock();
        (g.recorded, g.replays)
    }

    /// Run `f`, the ops of `key` under the scratch generation that
    /// `generation` reads, on `stream`:
    /// launch its graph if one was recorded; else record it on its second
    /// sighting (`capture` on while `f` runs) and launch the recording; else
    /// (first sighting, or recording failed) run `f` eagerly. `note` records
    /// a failed capture start or graph launch. The caller holds the device
    /// lock.
    pub(super) fn run(
        &self,
        stream: &Arc<CudaStream>,
        capture: &Capture,
        (generation, key): (&dyn Fn() -> u64, &[u64]),
        f: &mut dyn FnMut(),
        note: Note,
    ) {
        let before = generation();
        let full = GraphCache::<Graph>::key(before, key);
        let mut c = self.0.lock();
        match c.plan(&full) {
            Plan::Replay => {
                if !replay(&mut c, &full, note) {
                    f();
                }
                return;
            }
            Plan::Eager => {
                f();
                // A first run that grew the scratch leaves a new generation:
                // the same work next time carries that one in its key.
                let after = generation();
                if after != before {
                    c.seen(&GraphCache::<Graph>::key(after, key));
                }
                return;
            }
            Plan::Record => {}
        }
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        if let Err(e) = stream.begin_capture(mode) {
            note("graph capture", &e);
            c.insert(full, None);
            f();
            return;
        }
        capture.start();
        f();
        capture.stop();
        let ended = stream.end_capture(sys::CUgraphInstantiate_flags(0));
        let broken = capture.take_broken();
        match ended {
            Ok(Some(g)) if !broken => {
                c.insert(full.clone(), Some(Graph(g)));
                if !replay(&mut c, &full, note) {
                    f();
                }
            }
            _ => {
                // Not recordable (a scratch buffer had to grow, host data, …):
                // run it eagerly, now and for this key from now on.
                c.insert(full, None);
                f();
            }
        }
    }
}

/// Launch the recorded graph of `key`; whether it was launched.
fn replay(cache: &mut GraphCache<Graph>, key: &[u64], note: Note) -> bool {
    let Some(launched) = cache.get(key).map(|g| g.0.launch()) else {
        return false;
    };
    cache.replays += 1;
    match launched {
        Ok(()) => true,
        Err(e) => {
            note("graph launch", &e);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_then_replay_then_eager_after_failure() {
        let mut c: GraphCache<u32> = GraphCache::new(4);
        let k = GraphCache::<u32>::key(0, &[1, 64, 0xdead]);
        assert_eq!(c.plan(&k), Plan::Eager, "first sighting runs eagerly");
        assert_eq!(c.plan(&k), Plan::Record, "second sighting records");
        c.insert(k.clone(), Some(7));
        assert_eq!(c.plan(&k), Plan::Replay);
        assert_eq!(c.get(&k), Some(&7));
        let bad = GraphCache::<u32>::key(0, &[2, 64, 0xbeef]);
        assert_eq!(c.plan(&bad), Plan::Eager);
        assert_eq!(c.plan(&bad), Plan::Record);
        c.insert(bad.clone(), None);
        assert_eq!(c.plan(&bad), Plan::Eager);
        assert_eq!(c.recorded, 1);
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c: GraphCache<usize> = GraphCache::new(2);
        let (a, b, d) = (vec![0, 1], vec![0, 2], vec![0, 3]);
        c.insert(a.clone(), Some(1));
        c.insert(b.clone(), Some(2));
        assert_eq!(c.plan(&a), Plan::Replay); // a is now newer than b
        c.insert(d.clone(), Some(3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.plan(&d), Plan::Replay);
        assert_eq!(c.plan(&a), Plan::Replay);
        assert_eq!(
            c.plan(&b),
            Plan::Eager,
            "b was evicted: a first sighting again"
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.plan(&a), Plan::Replay, "the newest graph stays");
    }

    #[test]
    fn a_new_scratch_generation_drops_older_graphs() {
        let mut c: GraphCache<usize> = GraphCache::new(8);
        c.insert(GraphCache::<usize>::key(0, &[1]), Some(1));
        c.insert(GraphCache::<usize>::key(0, &[2]), Some(2));
        c.insert(GraphCache::<usize>::key(1, &[1]), Some(3));
        assert_eq!(c.len(), 1);
        assert_eq!(c.plan(&GraphCache::<usize>::key(0, &[2])), Plan::Eager);
        assert_eq!(c.plan(&GraphCache::<usize>::key(1, &[1])), Plan::Replay);
    }

    /// Found by the CUDA emulator: a first run that grows the shared scratch
    /// bumps the generation, so the identical second request carried a key
    /// never seen and ran eagerly again (graphs only from the third request
    /// on). Noting the key under the generation the run leaves makes the
    /// second request record.
    #[test]
    fn a_first_run_that_grows_scratch_records_on_the_second() {
        let mut c: GraphCache<u32> = GraphCache::new(8);
        let parts = [7, 64];
        let first = GraphCache::<u32>::key(3, &parts);
        assert_eq!(c.plan(&first), Plan::Eager);
        // The eager run grew the scratch: generation 3 -> 5.
        c.seen(&GraphCache::<u32>::key(5, &parts));
        let second = GraphCache::<u32>::key(5, &parts);
        assert_eq!(c.plan(&second), Plan::Record, "the second request records");
        c.insert(second.clone(), Some(1));
        assert_eq!(c.plan(&second), Plan::Replay);
        c.seen(&second);
        assert_eq!(c.plan(&second), Plan::Replay, "seen keeps a recorded graph");
    }

    #[test]
    fn a_spoiled_recording_is_reported_once() {
        let c = Capture::default();
        assert!(!c.active());
        c.start();
        assert!(c.active());
        c.spoil();
        c.stop();
        assert!(!c.active());
        assert!(c.take_broken(), "the recording broke");
        c.start();
        c.stop();
        assert!(!c.take_broken(), "a new recording starts whole");
    }
}
