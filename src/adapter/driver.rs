//! Every step a connection takes through the core, written once for both adapters: ask the core
//! before a system call, report what the call came back with, tell the observer, perform what
//! the core asks. Only the wait itself (a blocking call, or an `.await`) is the adapter's.
//!
//! Each step takes the socket by reference, for the actions it may have to perform, and the
//! connection's [`Signal`], to perform an abort asked for from elsewhere before anything else.
//! The socket's owner (a whole connection, or the two halves of a split one) releases it once
//! the core is closed.

use std::fmt;
use std::io;
use std::time::Duration;

use socket2::Socket;

#[cfg(feature = "tokio")]
use super::Served;
use super::signal::{Signal, Wake};
use super::{Event, Observer, sys, tcp_info};
use crate::{
    Action, CloseReason, Error, Input, Instant, IoErrorKind, Lifecycle, Outcome, State, StdClock,
};

/// What one wait for bytes came back with.
#[derive(Debug)]
pub(crate) enum Received {
    Bytes(usize),
    /// `recv` returned 0: the peer's end of stream.
    EndOfStream,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The connection's [`Signal`] ended the wait (an abort, or the other half's close).
    Raised,
    Failed(io::Error),
}

/// What a close waits for next: bytes to read and throw away, until the deadline (`None`
/// inside: none); or only time, until this instant, before the peer's acknowledgement is asked
/// for again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseWait {
    Discard(Option<Instant>),
    Pause(Instant),
}

/// The first pause before the peer's acknowledgement is asked for again (C13), doubled each
/// time up to [`ACK_PAUSE_MAX_US`] microseconds: on loopback it has come by the first asking; on
/// a lossy wire a retransmission takes a round trip or more.
/// In microseconds, as [`Driver`] keeps it: a `Duration` would take 16 bytes of every
/// connection for a tenth of a second at most.
const ACK_PAUSE_MIN_US: u32 = 1_000;
const ACK_PAUSE_MAX_US: u32 = 100_000;

/// What one wait to send came back with.
#[derive(Debug)]
pub(crate) enum Sent {
    Bytes(usize),
    /// The deadline passed and the peer took nothing.
    TimedOut,
    /// The connection's [`Signal`] ended the wait.
    Raised,
    Failed(io::Error),
}

/// A connection's core, its clock, its observer and its idle timeout, without the socket.
pub(crate) struct Driver {
    lifecycle: Lifecycle,
    clock: StdClock,
    observer: Box<dyn Observer>,
    /// The operating system's error that ended the connection, if one did.
    error: Option<io::Error>,
    idle_timeout: Option<Duration>,
    /// The next pause before the peer's acknowledgement is asked for again (C13), in
    /// microseconds.
    ack_pause_us: u32,
    /// The tokio server's count of the connection, released with its close however the
    /// connection ends (its lingering close finished after its owner dropped it, too), or with
    /// the driver. Here rather than in an observer of its own, which would be one more
    /// allocation per connection. (The blocking server's thread holds its count itself.)
    #[cfg(feature = "tokio")]
    served: Option<Served<crate::tokio::AbortHandle>>,
}

impl Driver {
    pub(crate) fn new(lifecycle: Lifecycle, clock: StdClock, observer: Box<dyn Observer>) -> Self {
        Self {
            lifecycle,
            clock,
            observer,
            error: None,
            idle_timeout: None,
            ack_pause_us: ACK_PAUSE_MIN_US,
            #[cfg(feature = "tokio")]
            served: None,
        }
    }

    /// A server's driver: `served` is released with the connection's close.
    #[cfg(feature = "tokio")]
    pub(crate) fn served(mut self, served: Served<crate::tokio::AbortHandle>) -> Self {
        self.served = Some(served);
        self
    }

    /// A driver with nothing to drive, left behind when a connection hands its own over.
    pub(crate) fn placeholder(clock: StdClock) -> Self {
        Self::new(
            Lifecycle::new(crate::Config::default()),
            clock,
            Box::new(()),
        )
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub(crate) fn clock(&self) -> StdClock {
        self.clock
    }

    pub(crate) fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Bounds each wait for the peer while the connection is open; zero means none.
    pub(crate) fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout.filter(|t| !t.is_zero());
    }

    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
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

    /// The next action of the core, for the connect loop, which performs the `Connect`s.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.lifecycle.poll_action()
    }

    /// Performs every pending action on `socket` but the `Connect`s, which only the connect
    /// loop performs, and `Close`: once the core is closed, the socket's owner releases the
    /// socket, which is the close, and calls [`closed`](Self::closed).
    fn perform(&mut self, socket: Option<&Socket>) {
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
                // Before a socket exists (an abort while idle) there is nothing to act on.
                (
                    Action::Close
                    | Action::Connect { .. }
                    | Action::ShutdownWrite
                    | Action::SetLingerZero,
                    _,
                ) => {}
            }
        }
    }

    /// Tells the observer the socket was released; then the server's books, which count the
    /// connection closed.
    pub(crate) fn closed(&mut self) {
        if let Some(reason) = self.lifecycle.close_reason() {
            self.observer.on_event(&Event::Closed {
                reason,
                error: self.error.as_ref(),
            });
            #[cfg(feature = "tokio")]
            if let Some(served) = self.served.take() {
                served.books().closed(Some(reason));
            }
        }
    }

    /// Tells the observer of an event the driver does not see itself: the connector's.
    pub(crate) fn observe(&mut self, event: &Event<'_>) {
        self.observer.on_event(event);
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

    // The steps of a connection, each with the socket to act on and the connection's signal.

    /// Applies an input that fits the state by construction; a refusal changes nothing.
    fn step(&mut self, socket: Option<&Socket>, input: Input) {
        let _ = self.input(input);
        self.perform(socket);
    }

    /// Applies an application's input; misuse is [`io::ErrorKind::InvalidInput`].
    fn report(&mut self, socket: Option<&Socket>, input: Input) -> io::Result<()> {
        self.input(input)?;
        self.perform(socket);
        Ok(())
    }

    /// Reports a failed call; returns the error for the caller.
    fn fail_on(&mut self, socket: Option<&Socket>, error: io::Error) -> io::Error {
        let copy = clone_error(&error);
        self.fail(error);
        self.perform(socket);
        copy
    }

    /// A call's own system call failed: the error is reported (it closes the connection, unless
    /// it was closed already) and is the call's answer. Even when the other half of a split
    /// connection closed it first, this call answers with what it saw itself: of a peer's reset,
    /// one call gets `ECONNRESET` and the other `EPIPE`, whichever comes first. An abort asked
    /// for is performed first.
    fn call_failed<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
        error: io::Error,
    ) -> io::Error {
        if signal.abort_requested() {
            self.step(socket, signal.abort_input());
        }
        self.fail_on(socket, error)
    }

    /// Fails with the closing error once closed. An abort asked for through a handle is
    /// performed first, so that no call starts after it (C6).
    pub(crate) fn check_open<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
    ) -> io::Result<()> {
        if signal.abort_requested() {
            self.step(socket, signal.abort_input());
        }
        if self.lifecycle.is_closed() {
            return Err(self.closed_error());
        }
        Ok(())
    }

    /// Before a `recv`: `Ok(true)` to make it, `Ok(false)` to answer 0 without it (after the
    /// peer's end of stream, or for an empty buffer, whose 0 would not be an end of stream).
    pub(crate) fn before_recv<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
        empty: bool,
    ) -> io::Result<bool> {
        self.check_open(socket, signal)?;
        Ok(!empty && self.lifecycle.may_receive())
    }

    /// After a `recv`: the byte count, 0 for the peer's end of stream, or the error.
    ///
    /// An abort asked for during the wait comes first: a receive side shut to wake the wait
    /// returns 0, which is not the peer's end of stream.
    pub(crate) fn after_recv<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
        received: Received,
    ) -> io::Result<usize> {
        if let Received::Failed(error) = received {
            return Err(self.call_failed(socket, signal, error));
        }
        self.check_open(socket, signal)?;
        match received {
            Received::Bytes(n) => {
                self.report(socket, Input::Received { len: n })?;
                Ok(n)
            }
            Received::EndOfStream => {
                self.report(socket, Input::EndOfStream)?;
                Ok(0)
            }
            Received::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no byte from the peer for {:?}",
                    self.idle_timeout.unwrap_or_default()
                ),
            )),
            Received::Raised | Received::Failed(_) => Err(self.closed_error()),
        }
    }

    /// Before a `send`: an error once the send side was shut (misuse; nothing changes).
    pub(crate) fn before_send<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
    ) -> io::Result<()> {
        self.check_open(socket, signal)?;
        if !self.lifecycle.may_queue() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "send after the send side was shut (state {:?})",
                    self.lifecycle.state()
                ),
            ));
        }
        Ok(())
    }

    /// After a `send`: how much the kernel took, or the error, which closes the connection. A
    /// peer that took nothing within the idle timeout fails it too: what we queued would go
    /// nowhere.
    pub(crate) fn after_send<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
        sent: Sent,
    ) -> io::Result<usize> {
        if let Sent::Failed(error) = sent {
            return Err(self.call_failed(socket, signal, error));
        }
        self.check_open(socket, signal)?;
        match sent {
            Sent::Bytes(n) => Ok(n),
            Sent::TimedOut => {
                let error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the peer took no byte for {:?}",
                        self.idle_timeout.unwrap_or_default()
                    ),
                );
                Err(self.fail_on(socket, error))
            }
            Sent::Raised | Sent::Failed(_) => Err(self.closed_error()),
        }
    }

    /// The seed's `shutdown(SD_SEND)`. Every byte a `send` returned for is already the
    /// kernel's, so the core hears at once that nothing is queued.
    pub(crate) fn shutdown_send<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
    ) -> io::Result<()> {
        self.check_open(socket, signal)?;
        self.report(socket, Input::ShutdownSend)?;
        self.report(socket, Input::Flushed)?;
        match &self.error {
            Some(error) if self.lifecycle.is_closed() => Err(clone_error(error)),
            _ => Ok(()),
        }
    }

    /// Starts the lingering close: shut the send side (nothing is queued), then read and
    /// discard; or the abort asked for before it, with no shutdown (C6).
    pub(crate) fn begin_close<W: Wake>(&mut self, socket: Option<&Socket>, signal: &Signal<W>) {
        if signal.abort_requested() {
            self.step(socket, signal.abort_input());
        }
        if !self.lifecycle.is_closed() {
            self.step(socket, Input::Close);
            self.step(socket, Input::Flushed);
        }
    }

    /// The next wait of a lingering close, or `None` once closed. While lingering: read and
    /// discard until the deadline. Once both ends of stream are through (C13): the peer's
    /// acknowledgement of everything we sent, asked of the socket here and, while it is not
    /// there, waited for with a growing pause, within the linger deadlines.
    pub(crate) fn next_close_wait<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
    ) -> Option<CloseWait> {
        loop {
            if self.lifecycle.is_closed() {
                return None;
            }
            if signal.abort_requested() {
                self.step(socket, signal.abort_input());
                return None;
            }
            if self.lifecycle.must_discard() {
                return Some(CloseWait::Discard(self.lifecycle.poll_timeout()));
            }
            if self.lifecycle.state() != State::Acknowledging {
                // A state the core never leaves a close in: end it rather than wait for nothing.
                self.step(socket, Input::Abort);
                return None;
            }
            let deadline = self.lifecycle.poll_timeout();
            let now = self.clock.now();
            if deadline.is_some_and(|deadline| deadline <= now) {
                self.step(socket, Input::Timeout);
                continue;
            }
            match socket.map(tcp_info::acknowledged) {
                // Where the platform cannot tell, the end of stream handed to the kernel is all
                // there is to go by.
                Some(Ok(Some(true) | None)) => self.step(socket, Input::Acknowledged),
                Some(Ok(Some(false))) => {
                    let pause =
                        now.saturating_add(Duration::from_micros(u64::from(self.ack_pause_us)));
                    self.ack_pause_us = self.ack_pause_us.saturating_mul(2).min(ACK_PAUSE_MAX_US);
                    let until = deadline.map_or(pause, |deadline| deadline.min(pause));
                    return Some(CloseWait::Pause(until));
                }
                Some(Err(error)) => {
                    self.fail(error);
                    self.perform(socket);
                }
                None => self.step(socket, Input::Abort),
            }
        }
    }

    /// Reports what a wait of the lingering close came back with.
    pub(crate) fn after_discard<W: Wake>(
        &mut self,
        socket: Option<&Socket>,
        signal: &Signal<W>,
        received: Received,
    ) {
        if signal.abort_requested() {
            // Woken for the abort: what the wait returned says nothing of the peer. The next
            // step performs it.
            return;
        }
        match received {
            Received::Bytes(n) => self.step(socket, Input::Received { len: n }),
            Received::EndOfStream => self.step(socket, Input::EndOfStream),
            Received::TimedOut => self.step(socket, Input::Timeout),
            Received::Raised => {}
            Received::Failed(error) => {
                self.fail(error);
                self.perform(socket);
            }
        }
    }

    /// Resets the connection now (linger zero, then close); its reason, or the earlier one.
    pub(crate) fn abort(&mut self, socket: Option<&Socket>) -> CloseReason {
        self.step(socket, Input::Abort);
        self.lifecycle
            .close_reason()
            .unwrap_or(CloseReason::Aborted)
    }

    /// The owner let go of a connection still open: it is reset, with its own reason (A1); or,
    /// once the application shut its send side, closed as a close would, at once if both ends
    /// of stream are through and the peer has acknowledged ours already.
    pub(crate) fn abandon(&mut self, socket: Option<&Socket>) {
        self.step(socket, Input::Abandon);
        self.acknowledged_already(socket);
    }

    /// In `Acknowledging`: if the peer has acknowledged everything already (as it has long
    /// since, for an end of stream sent well before the close), the close ends now, in the
    /// caller's call, rather than in a wait of its own. A connection the peer reset meanwhile
    /// ends now too, with that error: asking took it off the socket (`SO_ERROR`), so no later
    /// question would see it, and the connection would pass for acknowledged.
    fn acknowledged_already(&mut self, socket: Option<&Socket>) {
        if self.lifecycle.state() != State::Acknowledging {
            return;
        }
        match socket.map(tcp_info::acknowledged) {
            Some(Ok(Some(true) | None)) => self.step(socket, Input::Acknowledged),
            Some(Err(error)) => {
                self.fail(error);
                self.perform(socket);
            }
            Some(Ok(Some(false))) | None => {}
        }
    }

    /// Both halves of a split connection are gone: one whose both directions ended (our send
    /// side shut, the peer's end of stream read) closes gracefully; one still open is abandoned.
    pub(crate) fn halves_dropped(&mut self, socket: Option<&Socket>) {
        match self.lifecycle.state() {
            State::BothShut => {
                self.step(socket, Input::Close);
                self.acknowledged_already(socket);
            }
            State::Closed => {}
            _ => self.abandon(socket),
        }
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
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}
