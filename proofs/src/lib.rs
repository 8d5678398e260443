//! Checks of `socket-lifecycle` that every verification method shares.
//!
//! - [`ConnectionMonitor`] and [`ListenerMonitor`] hold the rules of the contract (C1-C13,
//!   L1-L3) as checks over what an observer sees: inputs, their outcomes, the actions handed
//!   out, and the getters. They remember a handful of flags, never the machine's own state, so
//!   they are a second opinion rather than a copy.
//! - [`ConnectionModel`] and [`ListenerModel`] are reference models written from the contract:
//!   for every operation they predict exactly what the core must answer, hand out and report
//!   (each deadline's value, each permission, each close reason), where the monitors check only
//!   that nothing is late or forbidden.
//! - [`ConnectionHarness`] and [`ListenerHarness`] replay [`ConnectionOp`]s and [`ListenerOp`]s
//!   (every intent, every report, polls and clock moves) against the core under a monitor and
//!   beside a model. The fuzz target, the property suite and the model check all drive the core
//!   through them, so each has both oracles.
//! - [`explore`] walks every reachable state of both machines against every operation, checks
//!   every rule on every edge and the liveness of the close, and draws the state graph.

mod connection_harness;
mod connection_model;
mod connection_monitor;
mod diagram;
pub mod explore;
mod harness;
mod listener_harness;
mod listener_model;
mod listener_monitor;
mod ops;
mod prediction;
mod queue;
mod violation;

pub use connection_harness::{ConnectionHarness, ConnectionStep};
pub use connection_model::ConnectionModel;
pub use connection_monitor::ConnectionMonitor;
pub use diagram::{StateGraph, render_dot, render_mermaid};
pub use harness::{Harness, replay_twice};
pub use listener_harness::{ListenerHarness, ListenerStep};
pub use listener_model::ListenerModel;
pub use listener_monitor::ListenerMonitor;
pub use ops::{CANDIDATE_EDGES, ClockMove, ConnectionOp, Kind, ListenerOp};
pub use prediction::{Answer, Prediction, Refusal};
pub use violation::Violation;
