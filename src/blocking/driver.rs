//! The loop every blocking connection runs through the core: feed an input at the clock's time,
//! tell the observer, perform what the core asks.

use std::fmt;
use std::io;

use socket2::Socket;

use super::{Event, Observer, sys};
use crate::{Action, CloseReason, Error, Input, IoErrorKind, Lifecycle, Outcome, StdClock};

/// A connection's core, its clock and its observer, without the socket: the socket's owner
/// (a whole connection, or the halves of a split one) lends it for each step.
pub(crate) struct Driver {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) clock: StdClock,
    observer: Box<dyn Observer>,
    /// The operating system's error that ended the connection, if one did.
    error: Option<io::Error>,
}

impl Driver {
    pub(crate) fn new(lifecycle: Lifecycle, clock: StdClock, observer: Box<dyn Observer>) -> Self {
        Self {
            lifecycle,
            clock,
            observer,
            error: None,
        }
    }

    /// Applies `input` now and tells the observer when the state changed.
    pub(crate) fn input(&mut self, input: Input) -> Result<Outcome, Error> {
        let from = self.lifecycle.state();
        let outcome = self.lifecycle.handle(self.clock.now(), input)?;
        let to = self.lifecycle.state();
        if from != to {
            self.observer.on_event(&Event::Transition {
                from,
                to,
                input: input.kind(),
            });
        }
        Ok(outcome)
    }

    /// Reports an error the operating system gave on the connected socket. The core closes the
    /// connection; the error is kept as the cause.
    pub(crate) fn fail(&mut self, error: io::Error) {
        // Refused only once closed, and then the first cause stands.
        if self.input(Input::Error(IoErrorKind::of(&error))).is_ok() {
            self.error = Some(error);
        }
    }

    /// Performs every pending action on `socket` but the `Connect`s, which only the connect
    /// loop performs. Returns whether the core asked to close: the caller then releases the
    /// socket, which is the close, and calls [`closed`](Self::closed).
    pub(crate) fn perform(&mut self, socket: Option<&Socket>) -> bool {
        let mut close = false;
        while let Some(action) = self.lifecycle.poll_action() {
            match (action, socket) {
                (Action::ShutdownWrite, Some(socket)) => {
                    if let Err(error) = sys::shutdown_write(socket) {
                        self.fail(error);
                    }
                }
                (Action::SetLingerZero, Some(socket)) => {
                    // If it fails the close is a plain one; there is nothing better to do.
                    let _ = sys::set_linger_zero(socket);
                }
                (Action::Close, _) => close = true,
                // Before a socket exists (an abort while idle) there is nothing to act on.
                (Action::Connect { .. } | Action::ShutdownWrite | Action::SetLingerZero, _) => {}
            }
        }
        close
    }

    /// Tells the observer the socket was released.
    pub(crate) fn closed(&mut self) {
        if let Some(reason) = self.lifecycle.close_reason() {
            self.observer.on_event(&Event::Closed {
                reason,
                error: self.error.as_ref(),
            });
        }
    }

    /// The error that ended the connection, or one that says why it is closed.
    pub(crate) fn closed_error(&self) -> io::Error {
        match &self.error {
            Some(error) => clone_error(error),
            None => io::Error::new(
                io::ErrorKind::NotConnected,
                match self.lifecycle.close_reason() {
                    Some(reason) => format!("the connection is closed ({reason})"),
                    None => "the connection is closed".into(),
                },
            ),
        }
    }

    /// What a finished close answers: its reason, or the OS error that ended the connection
    /// (a reset, any I/O error) or, still open, that says it is.
    pub(crate) fn outcome(&self) -> io::Result<CloseReason> {
        match self.lifecycle.close_reason() {
            Some(CloseReason::PeerReset | CloseReason::Error(_)) | None => Err(self.closed_error()),
            Some(reason) => Ok(reason),
        }
    }

    pub(crate) fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

/// A copy of an error good enough to hand out twice: the OS code, or the kind and message.
pub(crate) fn clone_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("lifecycle", &self.lifecycle)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}
