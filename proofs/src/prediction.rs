//! What a reference model predicts for one operation, in its own terms: the core's answers and
//! refusals, told apart only as far as the contract tells them apart.

use crate::ClockMove;

/// What an input must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// `Ok(Outcome::Changed)`.
    Changed,
    /// `Ok(Outcome::Unchanged)`.
    Unchanged,
    /// An error, for this kind of reason.
    Refused(Refusal),
}

/// Why an input is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The input does not fit where the machine is (`InvalidTransition`).
    Misuse,
    /// A bad value: no candidates, too many, an empty receive, a close never counted open.
    BadValue,
    /// A report for a connect attempt other than the one in flight.
    NotCurrentCandidate,
}

/// The model's prediction for one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prediction<A> {
    /// For an input: its answer.
    pub answer: Option<Answer>,
    /// For a poll: the action handed out.
    pub polled: Option<A>,
}

impl<A> Prediction<A> {
    pub(crate) fn answer(answer: Answer) -> Self {
        Self {
            answer: Some(answer),
            polled: None,
        }
    }

    pub(crate) fn polled(polled: Option<A>) -> Self {
        Self {
            answer: None,
            polled,
        }
    }

    pub(crate) fn nothing() -> Self {
        Self {
            answer: None,
            polled: None,
        }
    }
}

/// A model's time: the clock inputs are given at, and the latest time the machine has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Time {
    pub(crate) clock: u64,
    pub(crate) now: u64,
}

impl Time {
    /// Moves the clock. The models compute the move themselves rather than through the
    /// harness's [`ClockMove::moved`](crate::ClockMove::moved), so that a mistake there is not
    /// shared.
    pub(crate) fn moved<A>(&mut self, to: ClockMove, deadline: Option<u64>) -> Prediction<A> {
        self.clock = match to {
            ClockMove::Wait(micros) => self.clock.saturating_add(micros.into()),
            ClockMove::Rewind(micros) => self.clock.saturating_sub(micros.into()),
            ClockMove::ToDeadline(offset) => match deadline {
                Some(deadline) if offset >= 0 => {
                    deadline.saturating_add(offset.unsigned_abs().into())
                }
                Some(deadline) => deadline.saturating_sub(offset.unsigned_abs().into()),
                None => self.clock,
            },
        };
        Prediction::nothing()
    }
}

/// Gives `model` an input at its clock's time: the time moves on to the clock (never back), and a
/// refused input changes nothing, not even the time (C9).
pub(crate) fn give_input<M: Clone, A>(
    model: &mut M,
    time: fn(&mut M) -> &mut Time,
    input: impl FnOnce(&mut M) -> Answer,
) -> Prediction<A> {
    let before = model.clone();
    let clock = time(model).clock;
    let now = &mut time(model).now;
    *now = (*now).max(clock);
    let answer = input(model);
    if matches!(answer, Answer::Refused(_)) {
        *model = before;
    }
    Prediction::answer(answer)
}
