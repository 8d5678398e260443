//! The models' queue of pending actions: a few at most, kept inline, so that copying a model
//! (before each input, to undo a refused one) allocates nothing.

/// Room for more actions than the contract ever has pending at once (three: a shutdown, the
/// linger setting and the close).
const CAPACITY: usize = 6;

/// A first-in first-out queue of at most [`CAPACITY`] items; unused slots are always `None`, so
/// equal queues compare and hash equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Queue<T: Copy> {
    items: [Option<T>; CAPACITY],
}

impl<T: Copy> Queue<T> {
    pub(crate) fn new() -> Self {
        Self {
            items: [None; CAPACITY],
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items[0].is_none()
    }

    /// Adds `item` at the back.
    ///
    /// # Panics
    /// If the queue is full: a model that queues more than the contract allows is a bug in the
    /// model, said as such rather than as a broken rule.
    pub(crate) fn push_back(&mut self, item: T) {
        let free = self.items.iter_mut().find(|slot| slot.is_none());
        *free.expect("a reference model queued more actions than the contract allows") = Some(item);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let first = self.items[0].take();
        self.items.rotate_left(1);
        first
    }

    pub(crate) fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        let mut kept = Self::new();
        for item in self.items.iter().flatten().filter(|item| keep(item)) {
            kept.push_back(*item);
        }
        *self = kept;
    }
}
