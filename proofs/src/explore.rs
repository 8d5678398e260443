//! The exhaustive model check: a breadth-first walk over every reachable state of a connection
//! and of a listener, against every operation, with every rule checked on every edge.
//!
//! Values are cut down to their equivalence classes: a few candidate counts and indices (the
//! first, the next, one past the last; 257 candidates, so that attempts cross from index 255 to
//! 256; the largest count accepted and the first refused), receives of zero and one byte, every
//! error kind. A connect of more than [`MAX_WALKED_CANDIDATES`] is checked as an input but not
//! walked on: its attempts go through the same transitions as those of 257, one more each time. Time is cut down to what the machine can tell apart: the clock stays where it is,
//! goes back one microsecond, or jumps to one microsecond before, at, or after the next deadline.
//! Durations are a few microseconds, so the set of states is finite and small. A node of the walk
//! is the whole harness (the machine, the monitor's memory and the clock), so the rules that
//! depend on the past are checked as exactly as the others.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::time::Duration;

use socket_lifecycle::{Config, ListenerConfig};

use crate::{
    ClockMove, ConnectionHarness, ConnectionOp, Kind, ListenerHarness, ListenerOp, StateGraph,
    Violation,
};

/// What a walk covered.
#[derive(Clone, Debug)]
pub struct Exploration {
    /// Distinct nodes reached: machine, monitor memory and clock.
    pub states: usize,
    /// Operations applied, one per node and operation.
    pub edges: usize,
    /// The machine's states and the inputs that move between them.
    pub graph: StateGraph,
}

/// A broken rule and the operations that lead to it from the start.
#[derive(Clone, Debug)]
pub struct Counterexample<Op> {
    /// The rule and what was seen.
    pub violation: Violation,
    /// The operations from the initial state, the last one breaking the rule.
    pub path: Vec<Op>,
}

impl<Op: std::fmt::Debug> std::fmt::Display for Counterexample<Op> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.violation)?;
        for (i, op) in self.path.iter().enumerate() {
            writeln!(f, "  {i:>3}. {op:?}")?;
        }
        Ok(())
    }
}

/// The configuration the connection walk uses: deadlines of a few microseconds.
pub fn connection_config() -> Config {
    Config::new()
        .with_connect_timeout(Duration::from_micros(3))
        .and_then(|c| c.with_linger(Duration::from_micros(7), Duration::from_micros(3)))
        .expect("valid durations")
}

/// The configuration the listener walk uses: backoff of 2 to 5 microseconds.
pub fn listener_config() -> ListenerConfig {
    ListenerConfig::new()
        .with_accept_backoff(Duration::from_micros(2), Duration::from_micros(5))
        .expect("valid durations")
}

/// Every operation tried from a connection node.
fn connection_ops(node: &ConnectionHarness) -> Vec<ConnectionOp> {
    use ConnectionOp as Op;
    let mut ops = vec![
        Op::StartConnect { candidates: 0 },
        Op::StartConnect { candidates: 1 },
        Op::StartConnect { candidates: 3 },
        Op::StartConnect {
            candidates: MAX_WALKED_CANDIDATES,
        },
        Op::StartConnect { candidates: 65_535 },
        Op::StartConnect { candidates: 65_536 },
        Op::ShutdownSend,
        Op::Close,
        Op::Abort,
        Op::Abandon,
        Op::AbortForDrain,
        Op::Connected { candidate: 0 },
        Op::Connected { candidate: 1 },
        Op::Connected { candidate: 2 },
        Op::Connected { candidate: 255 },
        Op::Connected { candidate: 256 },
        Op::ConnectFailed {
            candidate: 2,
            kind: Kind::Other,
        },
        Op::ConnectFailed {
            candidate: 256,
            kind: Kind::Other,
        },
        Op::Received { len: 0 },
        Op::Received { len: 1 },
        Op::EndOfStream,
        Op::Flushed,
        Op::Acknowledged,
        Op::Timeout,
        Op::PollAction,
    ];
    for kind in Kind::ALL {
        ops.push(Op::Error(kind));
        ops.push(Op::ConnectFailed { candidate: 0, kind });
        ops.push(Op::ConnectFailed { candidate: 1, kind });
    }
    ops.extend(
        clock_moves(
            node.clock().as_micros(),
            node.conn().now().as_micros(),
            node.conn().poll_timeout().is_some(),
        )
        .map(Op::from),
    );
    ops
}

/// The largest connect the walk follows: one candidate past the index 256.
pub const MAX_WALKED_CANDIDATES: u32 = 257;

/// Every operation tried from a listener node.
fn listener_ops(node: &ListenerHarness) -> Vec<ListenerOp> {
    use ListenerOp as Op;
    let mut ops = vec![
        Op::Accepted,
        Op::ConnectionClosed,
        Op::Stop,
        Op::Drain { micros: 0 },
        Op::Drain { micros: 4 },
        Op::Timeout,
        Op::PollAction,
    ];
    ops.extend(Kind::ALL.map(Op::AcceptFailed));
    ops.extend(
        clock_moves(
            node.clock().as_micros(),
            node.listener().now().as_micros(),
            node.listener().poll_timeout().is_some(),
        )
        .map(Op::from),
    );
    ops
}

/// Past this time the walk stops moving the clock. A listener can pause and resume accepting for
/// ever, each round later than the last; this horizon leaves room for several rounds of every
/// backoff and deadline while keeping the set of states finite. A connection never gets near it.
pub const HORIZON_MICROS: u64 = 40;

/// Moves of the clock that keep the walk finite: back by one only from the machine's own time,
/// forward by one only to catch up with it, and jumps to one before, at and one after the next
/// deadline.
fn clock_moves(
    clock: u64,
    machine_now: u64,
    deadline_runs: bool,
) -> impl Iterator<Item = ClockMove> {
    let within = machine_now.max(clock) <= HORIZON_MICROS;
    let rewind = (within && clock == machine_now && clock > 0).then_some(ClockMove::Rewind(1));
    let catch_up = (within && clock < machine_now).then_some(ClockMove::Wait(1));
    let jumps = (within && deadline_runs)
        .then_some([-1, 0, 1].map(ClockMove::ToDeadline))
        .into_iter()
        .flatten();
    rewind.into_iter().chain(catch_up).chain(jumps)
}

/// A breadth-first walk from `roots`; `visit` checks the liveness of every node it reaches. A
/// child that `walked` refuses is checked on its edge but not walked on.
fn walk<Node, Op, Step>(
    roots: Vec<Node>,
    ops: impl Fn(&Node) -> Vec<Op>,
    step: impl Fn(&mut Node, Op) -> Result<Step, Violation>,
    walked: impl Fn(&Node) -> bool,
    mut on_edge: impl FnMut(&Step),
    visit: impl Fn(&Node) -> Result<(), Violation>,
) -> Result<Exploration, Counterexample<Op>>
where
    Node: Clone + Eq + Hash,
    Op: Clone,
{
    let mut index: HashMap<Node, usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut parents: Vec<Option<(usize, Op)>> = Vec::new();
    for root in roots {
        if let Entry::Vacant(slot) = index.entry(root.clone()) {
            slot.insert(nodes.len());
            nodes.push(root);
            parents.push(None);
        }
    }
    let path_to = |parents: &Vec<Option<(usize, Op)>>, mut at: usize| {
        let mut path = Vec::new();
        while let Some((parent, op)) = &parents[at] {
            path.push(op.clone());
            at = *parent;
        }
        path.reverse();
        path
    };
    let mut edges = 0;
    let mut next = 0;
    while next < nodes.len() {
        let node = nodes[next].clone();
        match visit(&node) {
            Ok(()) => {}
            Err(violation) => {
                return Err(Counterexample {
                    violation,
                    path: path_to(&parents, next),
                });
            }
        }
        for op in ops(&node) {
            edges += 1;
            let mut child = node.clone();
            match step(&mut child, op.clone()) {
                Ok(observed) => on_edge(&observed),
                Err(violation) => {
                    let mut path = path_to(&parents, next);
                    path.push(op);
                    return Err(Counterexample { violation, path });
                }
            }
            if !walked(&child) {
                continue;
            }
            if let Entry::Vacant(slot) = index.entry(child.clone()) {
                slot.insert(nodes.len());
                nodes.push(child);
                parents.push(Some((next, op)));
            }
        }
        next += 1;
        if next % 100_000 == 0 {
            eprintln!(
                "model check: {next} states visited, {} found, {edges} edges",
                nodes.len()
            );
        }
    }
    Ok(Exploration {
        states: nodes.len(),
        edges,
        graph: StateGraph::default(),
    })
}

/// How many rounds of "perform, jump to the deadline, fire it" the liveness checks allow: more
/// than the number of deadlines any connection can run through.
const ROUNDS: usize = 16;

/// Walks every reachable state of a client and a server connection.
///
/// Liveness, from every node: a close leads to `Close` by time alone (C8: `Close` is reachable
/// from every state); and a node whose close is under way (a close asked for, a connect
/// running, or closed) reaches `Close` by time alone, with no further input.
///
/// # Errors
/// The first broken rule, with the operations that lead to it.
pub fn connections() -> Result<Exploration, Counterexample<ConnectionOp>> {
    let config = connection_config();
    let mut graph = StateGraph::default();
    let roots = vec![
        ConnectionHarness::client(config),
        ConnectionHarness::accepted(config),
    ];
    let mut exploration = walk(
        roots,
        connection_ops,
        |node, op| node.step(op),
        |node| node.model().candidates() <= MAX_WALKED_CANDIDATES,
        |step| {
            if let (Some(Ok(_)), Some(input)) = (step.result, step.input) {
                graph.add(step.from.name(), step.to.name(), input.name());
            }
        },
        |node| {
            node.check_close_is_reachable(ROUNDS)?;
            node.check_time_alone_closes(ROUNDS)
        },
    )?;
    exploration.graph = graph;
    Ok(exploration)
}

/// Walks every reachable state of a listener, up to three open connections.
///
/// Liveness, from every node: a drain ends with the listener drained once the connections the
/// adapter was told to abort report closed.
///
/// # Errors
/// The first broken rule, with the operations that lead to it.
pub fn listeners() -> Result<Exploration, Counterexample<ListenerOp>> {
    let mut graph = StateGraph::default();
    let mut exploration = walk(
        vec![ListenerHarness::new(listener_config())],
        |node| {
            let mut ops = listener_ops(node);
            if node.listener().open_connections() >= 3 {
                ops.retain(|op| *op != ListenerOp::Accepted);
            }
            ops
        },
        |node, op| node.step(op),
        |_| true,
        |step| {
            if let (Some(Ok(_)), Some(input)) = (step.result, step.input) {
                graph.add(step.from.name(), step.to.name(), input.name());
            }
        },
        |node| node.check_drain_ends(ROUNDS),
    )?;
    exploration.graph = graph;
    Ok(exploration)
}
