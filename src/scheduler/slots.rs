//! The actor's batch arena: a fixed number of request slots, addressed by an
//! opaque [`State`] (slot index + generation) so that a stale handle never
//! reaches a slot that was released and reused.

use std::fmt;

/// Bits of a [`State`] that hold the slot index (the low 32).
const INDEX_BITS: u32 = 32;
const INDEX_MASK: i64 = (1 << INDEX_BITS) - 1;
/// Generations wrap within 31 bits, so a live `State` is never negative and
/// never equal to [`State::EMPTY`].
const GENERATION_MASK: u32 = u32::MAX >> 1;

/// The slot of a request in the actor's batch arena; [`State::EMPTY`] when none.
///
/// Opaque: the low 32 bits hold the slot index, the bits above it the slot's
/// generation, which is bumped every time the slot is released. A `State`
/// kept after its slot was released (and perhaps reused) therefore addresses
/// nothing: [`SlotArena::get_mut`] and [`SlotArena::release`] return `None`
/// for it. (A generation wraps after 2^31 reuses of the same slot.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(i64);

impl State {
    /// No slot: the value of a request that holds none, and the start of a
    /// walk over the taken slots ([`SlotArena::next_after`]).
    pub const EMPTY: State = State(-1);

    fn new(index: u32, generation: u32) -> State {
        State((i64::from(generation & GENERATION_MASK) << INDEX_BITS) | i64::from(index))
    }

    /// The slot index, `None` for [`State::EMPTY`].
    pub fn index(self) -> Option<usize> {
        if self.0 < 0 {
            return None;
        }
        usize::try_from(self.0 & INDEX_MASK).ok()
    }

    /// The slot's generation when this `State` was handed out; `None` for
    /// [`State::EMPTY`].
    fn generation(self) -> Option<u32> {
        if self.0 < 0 {
            return None;
        }
        u32::try_from(self.0 >> INDEX_BITS).ok()
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index(), self.generation()) {
            (Some(i), Some(g)) => write!(f, "State(slot {i}, generation {g})"),
            _ => f.write_str("State::EMPTY"),
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A fixed-capacity arena of slots with a free list: allocation and release are O(1).
#[derive(Debug)]
pub struct SlotArena<T> {
    slots: Vec<Slot<T>>,
    /// Free slot indices; the last one is handed out next.
    free: Vec<u32>,
}

impl<T> SlotArena<T> {
    /// An arena of `capacity` slots (at least one, at most 2^32 − 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        SlotArena {
            slots: (0..capacity)
                .map(|_| Slot {
                    generation: 0,
                    value: None,
                })
                .collect(),
            free: (0..capacity).rev().collect(),
        }
    }

    /// Put `value` in a free slot; `None` when all slots are taken.
    pub fn alloc(&mut self, value: T) -> Option<State> {
        let i = self.free.pop()?;
        let slot = &mut self.slots[i as usize];
        slot.value = Some(value);
        Some(State::new(i, slot.generation))
    }

    /// The slot `s` addresses, if it is still the one `s` was handed out for.
    fn slot_mut(&mut self, s: State) -> Option<&mut Slot<T>> {
        let generation = s.generation()?;
        self.slots
            .get_mut(s.index()?)
            .filter(|slot| slot.generation == generation)
    }

    /// Take the value out of slot `s` and free the slot. `None` for
    /// [`State::EMPTY`], a free slot, or a stale `s` (its slot was released since).
    pub fn release(&mut self, s: State) -> Option<T> {
        let i = u32::try_from(s.index()?).ok()?;
        let slot = self.slot_mut(s)?;
        let v = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1) & GENERATION_MASK;
        self.free.push(i);
        Some(v)
    }

    /// The value in slot `s`; `None` for [`State::EMPTY`], a free slot or a stale `s`.
    pub fn get_mut(&mut self, s: State) -> Option<&mut T> {
        self.slot_mut(s)?.value.as_mut()
    }

    /// Slots in use.
    pub fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Whether every slot is taken.
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// The first taken slot after `s` in index order ([`State::EMPTY`]: from
    /// the start); `None` past the last. Slots may be released during the walk.
    pub fn next_after(&self, s: State) -> Option<State> {
        let start = s.index().map_or(0, |i| i + 1);
        let (k, slot) = self
            .slots
            .get(start..)?
            .iter()
            .enumerate()
            .find(|(_, slot)| slot.value.is_some())?;
        Some(State::new(u32::try_from(start + k).ok()?, slot.generation))
    }

    /// The taken slots and their values, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (State, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, slot)| {
            let generation = slot.generation;
            let v = slot.value.as_mut()?;
            Some((State::new(u32::try_from(i).ok()?, generation), v))
        })
    }

    /// The values of the slots in `states`, in that order (each with its
    /// state); stale, empty and repeated states are left out.
    pub fn select_mut(&mut self, states: &[State]) -> Vec<(State, &mut T)> {
        let mut chosen: Vec<(usize, State, &mut T)> = self
            .iter_mut()
            .filter_map(|(st, v)| states.iter().position(|&b| b == st).map(|k| (k, st, v)))
            .collect();
        chosen.sort_by_key(|c| c.0);
        chosen.into_iter().map(|(_, st, v)| (st, v)).collect()
    }

    /// The taken slots, in index order.
    pub fn states(&self) -> Vec<State> {
        let mut out = Vec::with_capacity(self.live());
        let mut s = State::EMPTY;
        while let Some(next) = self.next_after(s) {
            out.push(next);
            s = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_state_is_minus_one() {
        assert_eq!(State::EMPTY.0, -1);
        assert_eq!(State::EMPTY.index(), None);
        assert_eq!(format!("{:?}", State::EMPTY), "State::EMPTY");
    }

    #[test]
    fn arena_reuses_slots() {
        let mut a = SlotArena::new(2);
        let x = a.alloc(1).unwrap();
        let y = a.alloc(2).unwrap();
        assert!(a.alloc(3).is_none());
        assert_eq!(a.release(x), Some(1));
        assert_eq!(a.release(x), None);
        assert_eq!(a.live(), 1);
        let z = a.alloc(4).unwrap();
        // The same slot, a new generation.
        assert_eq!(z.index(), x.index());
        assert_ne!(z, x);
        assert_ne!(y, z);
        assert_eq!(a.release(State::EMPTY), None);
    }

    #[test]
    fn stale_state_after_reuse_addresses_nothing() {
        let mut a = SlotArena::new(1);
        let old = a.alloc("first").unwrap();
        assert_eq!(a.release(old), Some("first"));
        let new = a.alloc("second").unwrap();
        assert_eq!(old.index(), new.index());
        assert_eq!(a.get_mut(old), None);
        assert_eq!(a.release(old), None);
        // The reused slot still holds its own value.
        assert_eq!(a.get_mut(new).copied(), Some("second"));
        assert_eq!(a.live(), 1);
        assert_eq!(a.release(new), Some("second"));
        // Many reuses later the first handle is still stale.
        for k in 0..1000 {
            let s = a.alloc("again").unwrap();
            assert_ne!(s, old, "reuse {k}");
            assert_eq!(a.release(s), Some("again"));
        }
        assert_eq!(a.get_mut(old), None);
    }

    #[test]
    fn generation_wraps_without_going_negative() {
        let mut a = SlotArena::new(1);
        a.slots[0].generation = GENERATION_MASK;
        let s = a.alloc(1).unwrap();
        assert!(s.0 >= 0 && s != State::EMPTY);
        assert_eq!(a.release(s), Some(1));
        assert_eq!(a.slots[0].generation, 0);
        assert_eq!(a.get_mut(s), None);
    }

    #[test]
    fn empty_never_addresses_a_slot() {
        let mut a = SlotArena::new(4);
        let taken: Vec<State> = (0..4).map(|v| a.alloc(v).unwrap()).collect();
        assert!(a.is_full());
        assert!(!taken.contains(&State::EMPTY));
        assert_eq!(a.get_mut(State::EMPTY), None);
        assert_eq!(a.release(State::EMPTY), None);
        assert_eq!(a.live(), 4);
        assert!(a.select_mut(&[State::EMPTY]).is_empty());
        // The walk from EMPTY visits every taken slot, in order.
        assert_eq!(a.states(), taken);
    }

    #[test]
    fn alloc_and_release_use_the_free_list() {
        let mut a = SlotArena::new(1 << 12);
        assert_eq!(a.capacity(), 1 << 12);
        let all: Vec<State> = (0..1 << 12).map(|v| a.alloc(v).unwrap()).collect();
        assert!(a.free.is_empty());
        // Release pushes on the free list; alloc pops the slot freed last,
        // without a scan.
        for &s in all.iter().step_by(7) {
            a.release(s).unwrap();
            assert_eq!(a.free.last().map(|&i| i as usize), s.index());
        }
        let freed = a.free.len();
        let last = *a.free.last().unwrap();
        let s = a.alloc(99_999).unwrap();
        assert_eq!(s.index(), Some(last as usize));
        assert_eq!(a.free.len(), freed - 1);
        assert_eq!(a.live() + a.free.len(), a.capacity());
    }

    #[test]
    fn select_mut_keeps_the_given_order() {
        let mut a = SlotArena::new(4);
        let s: Vec<State> = (0..4).map(|v| a.alloc(v * 10).unwrap()).collect();
        let stale = s[1];
        a.release(stale).unwrap();
        let got: Vec<(State, i32)> = a
            .select_mut(&[s[3], stale, s[0], State::EMPTY])
            .into_iter()
            .map(|(st, v)| (st, *v))
            .collect();
        assert_eq!(got, vec![(s[3], 30), (s[0], 0)]);
    }
}
