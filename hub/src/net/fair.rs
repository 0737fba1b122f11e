//! The serving loop's round robin: each peer's requests wait in its own
//! FIFO, and peers take turns, one job per turn. A peer whose job is at the
//! worker is out of the ring until it is done, so one peer never has two
//! jobs in flight and its requests keep their order; a long push comes back
//! as a continuation at the front of its peer's queue while the peer goes to
//! the back of the ring.
//!
//! Bounded: at most `max_per_peer` waiting items per peer and `max_bytes`
//! of waiting request bytes in all; past either, [`FairQueue::push`]
//! refuses and the loop answers "busy" at once. Pure: no I/O, no clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This peer has `max_per_peer` items waiting.
    Peer,
    /// Waiting requests hold `max_bytes` already.
    Memory,
}

/// Per-peer FIFOs served round robin; see the module docs.
#[derive(Debug)]
pub struct FairQueue<K, T> {
    queues: HashMap<K, VecDeque<(T, usize)>>,
    /// Peers with waiting items and no job in flight, in turn order.
    ring: VecDeque<K>,
    busy: HashSet<K>,
    bytes: usize,
    max_bytes: usize,
    max_per_peer: usize,
}

impl<K: Copy + Eq + Hash, T> FairQueue<K, T> {
    /// An empty queue with these bounds.
    pub fn new(max_per_peer: usize, max_bytes: usize) -> Self {
        FairQueue {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            busy: HashSet::new(),
            bytes: 0,
            max_bytes,
            max_per_peer: max_per_peer.max(1),
        }
    }

    /// Queues `item` (holding `bytes`) behind `peer`'s other items.
    pub fn push(&mut self, peer: K, item: T, bytes: usize) -> Result<(), (Full, T)> {
        let q = self.queues.entry(peer).or_default();
        if q.len() >= self.max_per_peer {
            return Err((Full::Peer, item));
        }
        if self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err((Full::Memory, item));
        }
        let was_idle = q.is_empty();
        q.push_back((item, bytes));
        self.bytes += bytes;
        if was_idle && !self.busy.contains(&peer) {
            self.ring.push_back(peer);
        }
        Ok(())
    }

    /// Puts `item` first in `peer`'s queue, within no bound (the rest of a
    /// job the peer already had a turn for). Call before [`FairQueue::done`].
    pub fn push_front(&mut self, peer: K, item: T) {
        self.queues.entry(peer).or_default().push_front((item, 0));
    }

    /// The next peer's first item; the peer is busy until [`FairQueue::done`].
    pub fn pop(&mut self) -> Option<(K, T)> {
        while let Some(peer) = self.ring.pop_front() {
            let Some((item, bytes)) = self.queues.get_mut(&peer).and_then(VecDeque::pop_front)
            else {
                continue;
            };
            self.bytes -= bytes;
            self.busy.insert(peer);
            return Some((peer, item));
        }
        None
    }

    /// `peer`'s job is finished: it takes its place at the back of the ring
    /// if it has more waiting.
    pub fn done(&mut self, peer: K) {
        self.busy.remove(&peer);
        match self.queues.get(&peer) {
            Some(q) if !q.is_empty() => self.ring.push_back(peer),
            Some(_) => {
                self.queues.remove(&peer);
            }
            None => {}
        }
    }

    /// Forgets `peer` (it left); returns its waiting items.
    pub fn remove(&mut self, peer: K) -> Vec<T> {
        self.busy.remove(&peer);
        self.ring.retain(|p| *p != peer);
        let items = self.queues.remove(&peer).unwrap_or_default();
        items
            .into_iter()
            .map(|(item, bytes)| {
                self.bytes -= bytes;
                item
            })
            .collect()
    }

    /// Request bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Items waiting, every peer.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_take_turns_and_a_continuation_goes_to_the_back_of_the_ring() {
        let mut q: FairQueue<char, &str> = FairQueue::new(8, 1000);
        q.push('h', "heavy-1", 10).unwrap();
        q.push('h', "heavy-2", 10).unwrap();
        q.push('s', "small", 1).unwrap();
        let (p, item) = q.pop().unwrap();
        assert_eq!((p, item), ('h', "heavy-1"));
        // While h is at the worker, only s can be served.
        assert_eq!(q.pop(), Some(('s', "small")));
        assert_eq!(q.pop(), None);
        // h's push was cut: its rest goes first in h's queue, h to the back.
        q.push_front('h', "heavy-1 (rest)");
        q.done('h');
        q.push('t', "third", 1).unwrap();
        q.done('s');
        assert_eq!(q.pop(), Some(('h', "heavy-1 (rest)")));
        assert_eq!(q.pop(), Some(('t', "third")));
        q.done('h');
        q.done('t');
        assert_eq!(q.pop(), Some(('h', "heavy-2")));
        q.done('h');
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn bounds_per_peer_and_in_bytes() {
        let mut q: FairQueue<u8, u32> = FairQueue::new(2, 100);
        q.push(1, 1, 40).unwrap();
        q.push(1, 2, 40).unwrap();
        assert_eq!(q.push(1, 3, 1), Err((Full::Peer, 3)));
        assert_eq!(q.push(2, 4, 30), Err((Full::Memory, 4)));
        q.push(2, 5, 20).unwrap();
        assert_eq!(q.bytes(), 100);
        assert_eq!(q.remove(1), vec![1, 2]);
        assert_eq!(q.bytes(), 20);
        assert_eq!(q.pop(), Some((2, 5)));
        assert_eq!(q.bytes(), 0);
    }
}
