//! What the connection and listener harnesses have in common: a step, and replaying a sequence
//! of operations twice to check that the same inputs give the same outputs (C11).

use std::fmt::Debug;

use crate::Violation;

/// A machine under a rule monitor, driven one operation at a time.
pub trait Harness: Clone + PartialEq + Debug {
    /// What can be done to it.
    type Op: Copy + Debug;
    /// What an observer sees of one operation.
    type Step: PartialEq + Debug;

    /// Applies one operation and checks every rule.
    ///
    /// # Errors
    /// The first rule the step broke.
    fn step(&mut self, op: Self::Op) -> Result<Self::Step, Violation>;

    /// Applies one operation to the machine alone, checking nothing.
    fn step_machine(&mut self, op: Self::Op) -> Self::Step;

    /// Whether both harnesses' machines and clocks are the same.
    fn same_machine(&self, other: &Self) -> bool;
}

/// Replays `ops` on two copies of `fresh`, checking every step of the first, and checks that the
/// machine alone, replayed on the second, makes the same steps and ends the same (C11). Returns
/// the first run's harness and steps.
///
/// # Errors
/// The first rule a step broke, or a C11 violation.
pub fn replay_twice<H: Harness>(fresh: &H, ops: &[H::Op]) -> Result<(H, Vec<H::Step>), Violation> {
    let mut first = fresh.clone();
    let steps = ops
        .iter()
        .map(|&op| first.step(op))
        .collect::<Result<Vec<_>, _>>()?;
    let mut second = fresh.clone();
    for (i, (&op, step)) in ops.iter().zip(&steps).enumerate() {
        let again = second.step_machine(op);
        if again != *step {
            return Err(Violation::new(
                "C11",
                format!("operation {i} ({op:?}) gave {step:?}, then {again:?}"),
            ));
        }
    }
    if !second.same_machine(&first) {
        return Err(Violation::new(
            "C11",
            "two replays ended in different states",
        ));
    }
    Ok((first, steps))
}
