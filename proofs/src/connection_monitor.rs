//! The connection rules C1-C13, and what A1 (drop) and L3 (a drain's abort at its deadline) ask
//! of the core, as checks over what an observer of a [`Lifecycle`] sees.

use socket_lifecycle::{
    Action, CloseReason, Config, Error, Input, Instant, IoErrorKind, Lifecycle, Outcome, Permits,
    State,
};

use crate::violation::{Violation, ensure};

const NOTHING: Permits = Permits {
    send: false,
    queue: false,
    receive: false,
    discard: false,
};

/// Watches one connection and checks every connection rule after every step. It remembers only
/// what an observer could: which actions came out, which inputs were accepted, and when a close
/// was asked for.
///
/// Call [`on_input`](Self::on_input) after every input, [`on_action`](Self::on_action) for every
/// action polled, and [`on_state`](Self::on_state) after either.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectionMonitor {
    closes: u8,
    shutdowns: u8,
    /// The send side is shut: `ShutdownWrite` performed, or an error, abort or close ended it.
    send_shut: bool,
    /// `shutdown_send` or `close` was accepted on a connected socket.
    shutdown_requested: bool,
    /// `Flushed` was reported after that request.
    flushed_after_request: bool,
    close_requested_at: Option<Instant>,
    end_of_stream: bool,
    aborted: bool,
    linger_zero: bool,
    attempt_in_flight: bool,
    next_candidate: u32,
    /// How many candidates `start_connect` named.
    candidates: u32,
    /// When the attempt being tried was decided: its deadline counts from then.
    attempt_decided_at: Option<Instant>,
    /// The application asked to stop sending: no new data may be queued from then on.
    queue_closed: bool,
    /// When our end of stream was decided (`Flushed` after a shutdown or close request).
    fin_at: Option<Instant>,
    /// When the last byte from the peer arrived after our end of stream and a close request, or
    /// its end of stream then.
    last_byte_at: Option<Instant>,
}

impl ConnectionMonitor {
    /// A monitor for a connection that has done nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks an input that `before` was given at `now`, which gave `result` and left `after`.
    ///
    /// # Errors
    /// The first rule the step broke.
    pub fn on_input(
        &mut self,
        before: &Lifecycle,
        after: &Lifecycle,
        now: Instant,
        input: Input,
        result: Result<Outcome, Error>,
    ) -> Result<(), Violation> {
        let outcome = match result {
            Err(error) => {
                return ensure(after == before, "C9", || {
                    format!("refused {input:?} ({error}) changed the connection")
                });
            }
            Ok(outcome) => outcome,
        };
        ensure(after.now() == before.now().max(now), "C11", || {
            format!(
                "after {input:?} at {now:?} the clock reads {:?}, not {:?}",
                after.now(),
                before.now().max(now)
            )
        })?;
        let connected = before.state().is_connected();
        let repeated = match input {
            Input::ShutdownSend => self.shutdown_requested || before.is_closed(),
            Input::Close => self.close_requested_at.is_some() || before.is_closed(),
            Input::Abort | Input::Abandon | Input::AbortForDrain => before.is_closed(),
            _ => false,
        };
        if repeated {
            ensure(pending(after) == pending(before), "C10", || {
                format!("a repeated {input:?} left {:?} to perform", pending(after))
            })?;
        }
        match input {
            Input::ShutdownSend
            | Input::Close
            | Input::Abort
            | Input::Abandon
            | Input::AbortForDrain
                if before.is_closed() =>
            {
                ensure(outcome == Outcome::Unchanged, "C10", || {
                    format!("{input:?} on a closed connection changed it")
                })?;
                // A connection that ended before the drain's deadline was not the drain's doing.
                ensure(
                    input != Input::AbortForDrain || after.close_reason() == before.close_reason(),
                    "L3",
                    || {
                        format!(
                            "the drain's abort relabelled a connection closed as {:?} as {:?}",
                            before.close_reason(),
                            after.close_reason()
                        )
                    },
                )?;
            }
            Input::StartConnect { candidates } if outcome == Outcome::Changed => {
                self.candidates = u32::try_from(candidates).unwrap_or(u32::MAX);
                self.attempt_decided_at = Some(after.now());
            }
            Input::ShutdownSend if connected => {
                self.queue_closed = true;
                if self.shutdown_requested {
                    ensure(outcome == Outcome::Unchanged, "C10", || {
                        "a repeated shutdown changed the connection".into()
                    })?;
                }
                self.shutdown_requested = true;
                ensure(!after.may_queue(), "C3", || {
                    "new data may be queued after shutdown_send".into()
                })?;
            }
            Input::Close if connected => {
                if self.close_requested_at.is_some() {
                    ensure(outcome == Outcome::Unchanged, "C10", || {
                        "a repeated close changed the connection".into()
                    })?;
                }
                self.close_requested_at.get_or_insert(after.now());
                self.shutdown_requested = true;
                self.queue_closed = true;
            }
            // A drop after the application shut its send side is the close it was heading for
            // (A1): from here on the obligations of a close (C4, C5, C8), none of an abort.
            Input::Abandon if connected && self.queue_closed => {
                ensure(
                    !pending(after).contains(&Action::SetLingerZero),
                    "A1",
                    || {
                        format!(
                            "abandon in {} after the send side was shut reset the connection",
                            before.state()
                        )
                    },
                )?;
                ensure(
                    matches!(after.close_reason(), None | Some(CloseReason::Graceful)),
                    "A1",
                    || {
                        format!(
                            "abandon in {} after the send side was shut closed it as {:?}",
                            before.state(),
                            after.close_reason()
                        )
                    },
                )?;
                if self.close_requested_at.is_some() {
                    ensure(
                        outcome == Outcome::Unchanged
                            && after.state() == before.state()
                            && pending(after) == pending(before)
                            && after.poll_timeout() == before.poll_timeout(),
                        "A1",
                        || format!("abandon during a close changed it in {}", before.state()),
                    )?;
                } else {
                    ensure(
                        outcome == Outcome::Changed
                            && (after.is_closed() || after.poll_timeout().is_some()),
                        "A1",
                        || {
                            format!(
                                "abandon in {} after the send side was shut started no close \
                                 ({outcome:?}, {})",
                                before.state(),
                                after.state()
                            )
                        },
                    )?;
                }
                self.close_requested_at.get_or_insert(after.now());
                self.shutdown_requested = true;
            }
            // A close before there is a connection is an abort; so is an abandon while the send
            // side is open (A1), and the drain's abort at its deadline (L3), each under a reason
            // of its own.
            Input::Close | Input::Abort | Input::Abandon | Input::AbortForDrain => {
                self.aborted = true;
                self.send_shut = true;
                ensure(
                    pending(after) == [Action::SetLingerZero, Action::Close],
                    "C6",
                    || format!("{input:?} left {:?} to perform", pending(after)),
                )?;
                // C6 checks an abort's reason; L3 the drain's, which must say the drain did it.
                let (reason, rule) = match input {
                    Input::Abandon => (CloseReason::Abandoned, "C6"),
                    Input::AbortForDrain => (CloseReason::DrainAborted, "L3"),
                    _ => (CloseReason::Aborted, "C6"),
                };
                ensure(after.close_reason() == Some(reason), rule, || {
                    format!("{input:?} left reason {:?}", after.close_reason())
                })?;
            }
            Input::Flushed if self.shutdown_requested => {
                self.flushed_after_request = true;
                if outcome == Outcome::Changed && self.fin_at.is_none() {
                    // Our end of stream is decided: the send side is shut from this moment.
                    self.fin_at = Some(after.now());
                    self.send_shut = true;
                }
            }
            Input::Received { .. } if self.lingering() => self.last_byte_at = Some(after.now()),
            Input::EndOfStream => {
                // The peer's end of stream ends the lingering and starts the wait for its
                // acknowledgement of ours (C13), which has an idle deadline of its own: it counts
                // as the peer's last sign of life, as a byte does.
                if self.lingering() {
                    self.last_byte_at = Some(after.now());
                }
                self.end_of_stream = true;
            }
            Input::Error(kind) => {
                ensure(connected, "C9", || {
                    "an error accepted with no connection".into()
                })?;
                self.send_shut = true;
                ensure(
                    after.close_reason() == Some(CloseReason::from_error(kind)),
                    "C7",
                    || format!("{kind:?} closed with reason {:?}", after.close_reason()),
                )?;
                ensure(pending(after).last() == Some(&Action::Close), "C7", || {
                    format!("{kind:?} left {:?} to perform", pending(after))
                })?;
                ensure(
                    !pending(after).contains(&Action::ShutdownWrite),
                    "C7",
                    || "a shutdown is still to go out on a broken socket".into(),
                )?;
            }
            _ => {}
        }
        self.check_acknowledgement(before, after, input)?;
        if before.state() == State::Connecting
            && self.attempt_in_flight
            && matches!(input, Input::Timeout)
        {
            let deadline = self
                .attempt_decided_at
                .unwrap_or(Instant::MAX)
                .saturating_add(after.config().connect_timeout());
            ensure(
                after.now() < deadline || outcome == Outcome::Changed,
                "C12",
                || {
                    format!(
                        "an attempt outlived its deadline {deadline:?} at {:?}",
                        after.now()
                    )
                },
            )?;
        }
        if before.state() == State::Connecting && outcome == Outcome::Changed && !self.aborted {
            // The attempt in flight ended: connected, failed, or timed out. A failure moves to
            // the next candidate while there is one.
            let failed = !matches!(input, Input::Connected { .. });
            if failed && self.next_candidate < self.candidates {
                ensure(!after.is_closed(), "C12", || {
                    format!(
                        "closed after candidate {} of {} failed",
                        self.next_candidate, self.candidates
                    )
                })?;
                self.attempt_decided_at = Some(after.now());
            }
        }
        if before.state() == State::Connecting && outcome == Outcome::Changed {
            self.attempt_in_flight = false;
            if after.is_closed() && !self.aborted {
                let last = match input {
                    Input::ConnectFailed { kind, .. } => kind,
                    _ => IoErrorKind::TimedOut,
                };
                ensure(
                    after.close_reason() == Some(CloseReason::ConnectFailed(last)),
                    "C12",
                    || format!("all attempts failed, reason {:?}", after.close_reason()),
                )?;
            }
        }
        let idle_deadline = self
            .idle_deadline(after.config())
            .filter(|_| self.waiting_on_peer());
        if let (Input::Timeout, Some(idle_deadline)) = (input, idle_deadline) {
            ensure(
                after.now() < idle_deadline || after.is_closed(),
                "C8",
                || {
                    format!(
                        "still {} at {:?}, past the idle linger deadline {idle_deadline:?}",
                        after.state(),
                        after.now()
                    )
                },
            )?;
        }
        if let (Input::Timeout, Some(requested)) = (input, self.close_requested_at) {
            let deadline = requested.saturating_add(after.config().linger_total());
            ensure(after.now() < deadline || after.is_closed(), "C8", || {
                format!(
                    "still {} at {:?}, past the total linger deadline {deadline:?}",
                    after.state(),
                    after.now()
                )
            })?;
        }
        Ok(())
    }

    /// Checks an action just handed out by `conn`.
    ///
    /// # Errors
    /// The first rule the action broke.
    pub fn on_action(&mut self, conn: &Lifecycle, action: Action) -> Result<(), Violation> {
        if action == Action::Close {
            ensure(self.closes == 0, "C1", || "a second Close".into())?;
        }
        ensure(self.closes == 0, "C2", || format!("{action} after Close"))?;
        match action {
            Action::Close => {
                self.closes += 1;
                self.send_shut = true;
                match conn.close_reason() {
                    Some(CloseReason::Graceful) => {
                        ensure(self.shutdowns == 1, "C4", || {
                            "a graceful close without shutdown(Write)".into()
                        })?;
                        ensure(self.end_of_stream, "C5", || {
                            "a graceful close before the peer's end of stream".into()
                        })?;
                    }
                    Some(CloseReason::LingerTimeout) => {
                        let total = self
                            .close_requested_at
                            .unwrap_or(Instant::MAX)
                            .saturating_add(conn.config().linger_total());
                        let earliest = self
                            .idle_deadline(conn.config())
                            .map_or(total, |idle| idle.min(total));
                        ensure(conn.now() >= earliest, "C5", || {
                            format!("linger timeout at {:?}, before {earliest:?}", conn.now())
                        })?;
                    }
                    Some(
                        CloseReason::Aborted | CloseReason::Abandoned | CloseReason::DrainAborted,
                    ) => {
                        ensure(self.linger_zero, "C6", || {
                            "an abort closed without linger zero".into()
                        })?;
                    }
                    None => return Err(Violation::new("C2", "Close with no close reason")),
                    _ => {}
                }
            }
            Action::ShutdownWrite => {
                ensure(!self.aborted, "C6", || {
                    "shutdown(Write) after an abort".into()
                })?;
                ensure(self.shutdowns == 0, "C10", || {
                    "a second shutdown(Write)".into()
                })?;
                ensure(self.flushed_after_request, "C4", || {
                    "shutdown(Write) before the flush was reported".into()
                })?;
                self.shutdowns += 1;
                self.send_shut = true;
            }
            Action::SetLingerZero => {
                ensure(
                    self.aborted || conn.close_reason() == Some(CloseReason::LingerTimeout),
                    "C6",
                    || format!("linger zero with reason {:?}", conn.close_reason()),
                )?;
                self.linger_zero = true;
            }
            Action::Connect { candidate } => {
                ensure(!self.attempt_in_flight, "C12", || {
                    format!("connect to {candidate} while an attempt is in flight")
                })?;
                ensure(candidate == self.next_candidate as usize, "C12", || {
                    format!("connect to {candidate}, expected {}", self.next_candidate)
                })?;
                self.next_candidate += 1;
                self.attempt_in_flight = true;
            }
        }
        Ok(())
    }

    /// Lingering, as an observer sees it: a close was asked for, our end of stream was decided,
    /// the peer's has not come, and `Close` has not come out.
    fn lingering(&self) -> bool {
        self.waiting_on_peer() && !self.end_of_stream
    }

    /// Waiting on the peer, as an observer sees it: a close was asked for, our end of stream was
    /// decided, and `Close` has not come out. Before the peer's end of stream that is lingering
    /// for it; after, waiting for the peer to acknowledge ours (C13). The idle deadline bounds
    /// both.
    fn waiting_on_peer(&self) -> bool {
        self.close_requested_at.is_some() && self.fin_at.is_some() && self.closes == 0
    }

    /// Once a close was asked for and our end of stream decided, when the wait for the peer ends:
    /// the idle time after our end of stream, the close request, or the peer's last byte or end
    /// of stream, whichever came last.
    fn idle_deadline(&self, config: &Config) -> Option<Instant> {
        self.close_requested_at?;
        self.fin_at?;
        let since = [self.close_requested_at, self.fin_at, self.last_byte_at]
            .into_iter()
            .flatten()
            .max()?;
        Some(since.saturating_add(config.linger_idle()))
    }

    /// C13 on one accepted input: only the peer's acknowledgement, handled in Acknowledging,
    /// closes gracefully; Acknowledging is left only for that, a linger deadline once it has
    /// come, an error or an abort, each under its own reason; and the acknowledgement fits no
    /// other state.
    fn check_acknowledgement(
        &self,
        before: &Lifecycle,
        after: &Lifecycle,
        input: Input,
    ) -> Result<(), Violation> {
        let acknowledging = before.state() == State::Acknowledging;
        if input == Input::Acknowledged {
            ensure(acknowledging, "C13", || {
                format!(
                    "Acknowledged accepted in {}: only Acknowledging waits for it (C9: misuse)",
                    before.state()
                )
            })?;
        }
        if !before.is_closed() && after.close_reason() == Some(CloseReason::Graceful) {
            ensure(self.end_of_stream, "C5", || {
                format!("{input:?} closed gracefully before the peer's end of stream")
            })?;
            ensure(input == Input::Acknowledged && acknowledging, "C13", || {
                format!(
                    "{input:?} in {} closed gracefully without the peer's acknowledgement",
                    before.state()
                )
            })?;
        }
        if acknowledging && after.state() != State::Acknowledging {
            let reason = match input {
                Input::Acknowledged => Some(CloseReason::Graceful),
                Input::Timeout => Some(CloseReason::LingerTimeout),
                Input::Error(kind) => Some(CloseReason::from_error(kind)),
                Input::Abort => Some(CloseReason::Aborted),
                Input::AbortForDrain => Some(CloseReason::DrainAborted),
                _ => None,
            };
            ensure(
                reason.is_some() && after.close_reason() == reason,
                "C13",
                || {
                    format!(
                        "{input:?} left Acknowledging for {} with reason {:?}",
                        after.state(),
                        after.close_reason()
                    )
                },
            )?;
            // A deadline ends the wait only once it has come: the idle one, counted from when
            // the wait started, or the total one.
            if input == Input::Timeout {
                let total = self
                    .close_requested_at
                    .unwrap_or(Instant::MAX)
                    .saturating_add(after.config().linger_total());
                let deadline = self
                    .idle_deadline(after.config())
                    .map_or(total, |idle| idle.min(total));
                ensure(after.now() >= deadline, "C13", || {
                    format!(
                        "gave up on the peer's acknowledgement at {:?}, before its deadline \
                         {deadline:?}",
                        after.now()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Checks what `conn` permits and promises now.
    ///
    /// # Errors
    /// The first rule the state broke.
    pub fn on_state(&self, conn: &Lifecycle) -> Result<(), Violation> {
        ensure(self.closes <= 1, "C1", || format!("{} closes", self.closes))?;
        if self.queue_closed {
            ensure(!conn.may_queue(), "C3", || {
                format!(
                    "new data may be queued in {} after shutdown_send",
                    conn.state()
                )
            })?;
        }
        if self.send_shut {
            ensure(!conn.may_send(), "C3", || {
                format!("may send in {} after the send side was shut", conn.state())
            })?;
        }
        if conn.is_closed() {
            ensure(conn.permits() == NOTHING, "C2", || {
                format!("closed, yet permits {:?}", conn.permits())
            })?;
            ensure(conn.poll_timeout().is_none(), "C2", || {
                "closed, yet a deadline runs".into()
            })?;
            ensure(conn.close_reason().is_some(), "C2", || {
                "closed without a reason".into()
            })?;
            if !conn.has_pending_actions() {
                ensure(self.closes == 1, "C1", || {
                    "closed, yet Close never came out".into()
                })?;
            }
        } else {
            ensure(self.closes == 0, "C2", || {
                format!("Close came out, yet {}", conn.state())
            })?;
            if self.close_requested_at.is_some() && conn.may_receive() {
                ensure(conn.must_discard(), "C5", || {
                    "receiving after a close request without discarding".into()
                })?;
            }
            if conn.state() == State::Connecting {
                let bound = self
                    .attempt_decided_at
                    .unwrap_or(Instant::MAX)
                    .saturating_add(conn.config().connect_timeout());
                ensure(
                    conn.poll_timeout().is_some_and(|t| t <= bound),
                    "C12",
                    || {
                        format!(
                            "a connect attempt with deadline {:?}, not by {bound:?}",
                            conn.poll_timeout()
                        )
                    },
                )?;
            }
            // Only a close with both ends of stream through waits for the acknowledgement; before
            // the peer's end, what it still sends would be neither read nor discarded (C5).
            if conn.state() == State::Acknowledging {
                ensure(
                    self.close_requested_at.is_some()
                        && self.fin_at.is_some()
                        && self.end_of_stream,
                    "C13",
                    || {
                        format!(
                            "Acknowledging before both ends of stream and a close request (close \
                             {}, ours {}, the peer's {})",
                            self.close_requested_at.is_some(),
                            self.fin_at.is_some(),
                            self.end_of_stream
                        )
                    },
                )?;
            }
            if self.close_requested_at.is_some() {
                ensure(conn.poll_timeout().is_some(), "C8", || {
                    format!(
                        "a close was requested, yet no deadline runs in {}",
                        conn.state()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Whether `Close` has come out.
    pub fn closed(&self) -> bool {
        self.closes > 0
    }

    /// Whether a graceful close was asked for.
    pub fn close_requested(&self) -> bool {
        self.close_requested_at.is_some()
    }
}

/// The actions `conn` would hand out next, without handing them out. At most a few more than
/// any state has pending, so that a core whose `poll_action` never says `None` is seen handing
/// out too many (C1) instead of hanging the check.
fn pending(conn: &Lifecycle) -> Vec<Action> {
    let mut probe = conn.clone();
    std::iter::from_fn(|| probe.poll_action()).take(8).collect()
}
