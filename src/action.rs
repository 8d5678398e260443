//! What the core asks an adapter to do.

use core::fmt;

/// One thing the adapter must do, handed out once by
/// [`Lifecycle::poll_action`](crate::Lifecycle::poll_action).
// Deliberately exhaustive: every action must be performed (a `_ => {}` arm that skips a new
// action could skip a close, rule C1), so a new action must fail to compile in every adapter's
// match rather than be ignored by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Open a fresh socket and start connecting it to the candidate address at this index of the
    /// list given to [`Lifecycle::start_connect`](crate::Lifecycle::start_connect). The socket of an
    /// earlier attempt, if the adapter still holds one, never became this connection: close it first.
    Connect {
        /// Index into the adapter's list of candidate addresses.
        candidate: usize,
    },
    /// `shutdown(Write)` (Winsock's `shutdown(SD_SEND)`): send the end of stream. Reading goes on.
    ShutdownWrite,
    /// Set `SO_LINGER` to zero, so that the coming close resets the connection at once.
    SetLingerZero,
    /// Close the socket (`close`, `closesocket`). Emitted exactly once per connection, and last.
    Close,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { candidate } => write!(f, "connect to candidate {candidate}"),
            Self::ShutdownWrite => f.write_str("shutdown(Write)"),
            Self::SetLingerZero => f.write_str("set linger to zero"),
            Self::Close => f.write_str("close"),
        }
    }
}

/// The actions decided but not yet handed out, as a set whose bit order is the order they must be
/// performed in: a connect, then the shutdown, then linger-zero, then the close. No two actions
/// of one kind are ever pending at once, so a set is all the queue a connection needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PendingActions(u8);

impl PendingActions {
    pub(crate) const EMPTY: Self = Self(0);
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const SHUTDOWN_WRITE: u8 = 1 << 1;
    pub(crate) const SET_LINGER_ZERO: u8 = 1 << 2;
    pub(crate) const CLOSE: u8 = 1 << 3;

    pub(crate) const fn contains(self, action: u8) -> bool {
        self.0 & action != 0
    }

    pub(crate) fn insert(&mut self, action: u8) {
        self.0 |= action;
    }

    pub(crate) fn remove(&mut self, action: u8) {
        self.0 &= !action;
    }

    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Removes and returns the first pending action in performing order.
    pub(crate) fn pop_first(&mut self) -> Option<u8> {
        if self.0 == 0 {
            return None;
        }
        let first = self.0 & self.0.wrapping_neg();
        self.0 &= !first;
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_actions_come_out_in_performing_order() {
        let mut pending = PendingActions::default();
        pending.insert(PendingActions::CLOSE);
        pending.insert(PendingActions::SET_LINGER_ZERO);
        pending.insert(PendingActions::CONNECT);
        pending.insert(PendingActions::SHUTDOWN_WRITE);
        assert_eq!(pending.pop_first(), Some(PendingActions::CONNECT));
        assert_eq!(pending.pop_first(), Some(PendingActions::SHUTDOWN_WRITE));
        assert_eq!(pending.pop_first(), Some(PendingActions::SET_LINGER_ZERO));
        assert_eq!(pending.pop_first(), Some(PendingActions::CLOSE));
        assert_eq!(pending.pop_first(), None);
        assert!(pending.is_empty());
    }

    #[test]
    fn actions_display_as_the_call_they_stand_for() {
        use std::string::ToString;
        assert_eq!(
            Action::Connect { candidate: 2 }.to_string(),
            "connect to candidate 2"
        );
        assert_eq!(Action::ShutdownWrite.to_string(), "shutdown(Write)");
        assert_eq!(Action::SetLingerZero.to_string(), "set linger to zero");
        assert_eq!(Action::Close.to_string(), "close");
    }
}
