//! The listener rules L1-L3 as checks over what an observer of a [`Listener`] sees.

use socket_lifecycle::{Instant, Listener, ListenerAction, ListenerError, ListenerInput, Outcome};

use crate::violation::{Violation, ensure};

/// Watches one listener and checks L1-L3 (and that refused inputs leave no trace) after every
/// step. It counts connections itself instead of trusting the listener's count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListenerMonitor {
    open: u64,
    stopped: bool,
    drain_deadline: Option<Instant>,
    stops: u8,
    closes: u8,
    aborts: u8,
}

impl ListenerMonitor {
    /// A monitor for a fresh listener.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks an input that `before` was given at `now`, which gave `result` and left `after`.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn on_input(
        &mut self,
        before: &Listener,
        after: &Listener,
        now: Instant,
        input: ListenerInput,
        result: Result<Outcome, ListenerError>,
    ) -> Result<(), Violation> {
        if let Err(error) = result {
            return ensure(after == before, "C9", || {
                format!("refused {input:?} ({error}) changed the listener")
            });
        }
        ensure(after.now() == before.now().max(now), "C11", || {
            format!(
                "after {input:?} at {now:?} the listener's clock reads {:?}",
                after.now()
            )
        })?;
        match input {
            ListenerInput::Accepted => {
                ensure(!self.stopped, "L1", || {
                    "an accept was taken after stop".into()
                })?;
                self.open += 1;
            }
            ListenerInput::ConnectionClosed => {
                ensure(self.open > 0, "L3", || {
                    "a close counted with none open".into()
                })?;
                self.open -= 1;
            }
            ListenerInput::Stop => self.stopped = true,
            ListenerInput::Drain(timeout) => {
                self.stopped = true;
                self.drain_deadline
                    .get_or_insert(after.now().saturating_add(timeout));
            }
            ListenerInput::AcceptFailed(_) | ListenerInput::Timeout => {}
        }
        Ok(())
    }

    /// Checks an action just handed out by `listener`.
    ///
    /// # Errors
    /// The first rule the action broke.
    pub fn on_action(
        &mut self,
        listener: &Listener,
        action: ListenerAction,
    ) -> Result<(), Violation> {
        match action {
            ListenerAction::StopAccepting => {
                ensure(self.stopped, "L1", || {
                    "stop accepting without a stop".into()
                })?;
                self.stops += 1;
            }
            ListenerAction::Close => {
                ensure(self.stops == 1, "L2", || {
                    "the listener closed before accepting stopped".into()
                })?;
                self.closes += 1;
            }
            ListenerAction::AbortConnections { open } => {
                let deadline = self.drain_deadline.unwrap_or(Instant::MAX);
                ensure(listener.now() >= deadline, "L3", || {
                    format!(
                        "aborted at {:?}, before the drain deadline {deadline:?}",
                        listener.now()
                    )
                })?;
                ensure(u64::from(open) == self.open, "L3", || {
                    format!("asked to abort {open}, {} are open", self.open)
                })?;
                self.aborts += 1;
            }
        }
        ensure(self.stops <= 1 && self.closes <= 1, "L2", || {
            format!(
                "{} stops and {} closes of the listener",
                self.stops, self.closes
            )
        })?;
        ensure(self.aborts <= 1, "L3", || {
            "the remaining connections were aborted twice".into()
        })
    }

    /// Checks what `listener` permits and reports now.
    ///
    /// # Errors
    /// The first rule the state broke.
    pub fn on_state(&self, listener: &Listener) -> Result<(), Violation> {
        if self.stopped {
            ensure(!listener.may_accept(), "L1", || {
                "accepting after stop".into()
            })?;
            if !listener.has_pending_actions() {
                ensure(self.stops == 1 && self.closes == 1, "L2", || {
                    format!(
                        "stopped, yet {} stops and {} closes of the listener came out",
                        self.stops, self.closes
                    )
                })?;
            }
        }
        ensure(
            u64::from(listener.open_connections()) == self.open,
            "L3",
            || {
                format!(
                    "the listener counts {}, {} are open",
                    listener.open_connections(),
                    self.open
                )
            },
        )?;
        if listener.is_drained() {
            ensure(self.drain_deadline.is_some(), "L3", || {
                "drained without a drain".into()
            })?;
            ensure(self.open == 0, "L3", || {
                format!("drained with {} open", self.open)
            })?;
        } else if let Some(deadline) = self.drain_deadline {
            ensure(self.open > 0, "L3", || {
                "all closed during a drain, yet not drained".into()
            })?;
            if listener.now() >= deadline && self.aborts == 0 {
                ensure(
                    listener.poll_timeout().is_some_and(|t| t <= listener.now())
                        || listener.has_pending_actions(),
                    "L3",
                    || "past the drain deadline with connections open, yet no abort is due".into(),
                )?;
            }
        }
        Ok(())
    }
}
