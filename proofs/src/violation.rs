//! A broken rule, named.

use std::fmt;

/// A rule of the contract that an observed step broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule's id: `C1` to `C12`, `A1`, `L1` to `L3`.
    pub rule: &'static str,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: &'static str, detail: impl Into<String>) -> Self {
        Self {
            rule,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Violation {}

/// `Err(Violation)` unless `holds`.
pub(crate) fn ensure(
    holds: bool,
    rule: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), Violation> {
    if holds {
        Ok(())
    } else {
        Err(Violation::new(rule, detail()))
    }
}
