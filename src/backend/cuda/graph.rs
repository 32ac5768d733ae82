//! Host-side bookkeeping of recorded CUDA graphs: which (stage, shape,
//! buffers) keys have a graph, which could not be recorded, and eviction.
//! Generic over the graph type so the logic is tested without a GPU.
//!
//! A key is everything a recording depends on: the stage, its shape bucket,
//! the device addresses and capacities of every buffer the ops touch, and the
//! generation of the backend's shared scratch (bumped whenever a scratch
//! buffer is reallocated, so no graph replays on freed memory).

use std::collections::HashMap;

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

/// Whether a `VOXIDE_CUDA_GRAPHS` value leaves graphs on: `0`/`off`/`false`/
/// `no` turns them off, anything else (or no value) leaves them on. The
/// backend reads no environment: the engine's settings parse the variable
/// with this and pass the result to `CudaBackend::with_options`.
pub fn graphs_enabled(var: Option<&str>) -> bool {
    !matches!(
        var.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("0") | Some("off") | Some("false") | Some("no")
    )
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

    #[test]
    fn env_switch() {
        assert!(graphs_enabled(None));
        assert!(graphs_enabled(Some("1")));
        assert!(!graphs_enabled(Some("0")));
        assert!(!graphs_enabled(Some(" OFF ")));
    }
}
