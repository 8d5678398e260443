//! What a reference model predicts for one operation, in its own terms: the core's answers and
//! refusals, told apart only as far as the contract tells them apart.

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

/// Where a jump to `deadline` plus `offset` microseconds lands, or `clock` if no deadline runs.
/// The models compute their clock themselves rather than through the harness's
/// [`ClockMove::moved`](crate::ClockMove::moved), so that a mistake there is not shared.
pub(crate) fn jump_to(clock: u64, deadline: Option<u64>, offset: i8) -> u64 {
    match deadline {
        Some(deadline) if offset >= 0 => deadline.saturating_add(offset.unsigned_abs().into()),
        Some(deadline) => deadline.saturating_sub(offset.unsigned_abs().into()),
        None => clock,
    }
}
