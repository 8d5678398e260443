//! The differential test: one generated operation sequence, run twice, must be seen the same way.
//!
//! - **Model**: two cores (`Lifecycle`, client and server) driven as an ideal adapter drives them,
//!   over a small simulation of what TCP on Linux loopback delivers between them: bytes in order,
//!   end of stream after `shutdown(Write)`, a reset when a side closes with linger zero or with
//!   unread received data; data already received stays readable before the reset's error, and an
//!   end of stream received before a reset still reads as end of stream (the reset then shows as
//!   `EPIPE` to a sender, as Linux reports it in CLOSE-WAIT). What reaches the peer's kernel is
//!   acknowledged at once, as on loopback: a side whose close waits in `Acknowledging` (C13) is
//!   told `Acknowledged` as soon as its end of stream is out and no reset came, as an adapter
//!   reading `TCP_INFO` would be.
//! - **Sockets**: two `blocking::Connection`s over real loopback sockets (the server side accepted
//!   from a std listener), each on its own thread, with short linger settings and `TCP_NODELAY`:
//!   the model has every byte a send returned for in the peer's kernel at once, which Nagle's
//!   algorithm breaks (see `run_on_sockets`).
//!
//! Compared, side by side: every read (bytes delivered, and whether it ended quiet, at the end of
//! stream, or in an error of which kind), every send and shutdown (ok, or the error kind), what
//! `close` and `abort` return, and the close reasons the observer saw (exactly one `Closed` per
//! side, C1). Bytes read are also checked against the pattern sent, so order and integrity count.
//!
//! Excluded, because the real outcome is not deterministic on loopback:
//! - sending to a peer whose socket was released by a graceful or timed-out close: the data is
//!   lost and the peer's kernel answers with a reset, and whether the sender's current call or a
//!   later one sees it is a race (sending after the peer's reset has arrived is kept);
//! - more than two operations by one side while the other side's close is lingering: each takes
//!   real time, and the linger idle deadline (150 ms) must not fire in the sockets run when the
//!   model says no time passed; a `Wait` (silence past every deadline) is put in first;
//! - large unread data: a send the peer does not read is at most 16 KiB, and at most 32 KiB wait
//!   unread, well under loopback's socket buffers; larger sends are `Transfer`s, read by the peer
//!   while they are sent, so no send can block for ever.
//!
//! `PROPTEST_CASES=1000 cargo test --test differential` runs more cases (default 512).

// The simulation follows what Linux does on a reset (see above); other systems differ in it.
#![cfg(target_os = "linux")]

use std::io;
use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use socket_lifecycle::blocking::{AbortHandle, Connection, Connector, Event};
use socket_lifecycle::{
    Action, CloseReason, Config, Instant, IoErrorKind, Lifecycle, State, StdClock,
};
use socket2::SockRef;

const LINGER_IDLE: Duration = Duration::from_millis(150);
const LINGER_TOTAL: Duration = Duration::from_millis(400);
/// The largest send left unread, and the most bytes waiting unread at one side.
const SMALL_SEND: usize = 16 * 1024;
const UNREAD_CAP: usize = 32 * 1024;
/// The largest send read by the peer as it goes.
const LARGE_SEND: usize = 256 * 1024;
/// Operations one side may make while the other's close lingers, before a `Wait`.
const OPS_WHILE_LINGERING: usize = 2;
/// How long a read waits for bytes the model says are coming, and a step for its answer.
const LONG_WAIT: Duration = Duration::from_secs(5);
const STEP_BOUND: Duration = Duration::from_secs(15);
/// How long a read waits to see that nothing more comes when the model says so.
const QUIET: Duration = Duration::from_millis(15);
const DEFAULT_CASES: u32 = 512;

const SIDES: [&str; 2] = ["client", "server"];

// ---- the operations --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Send this many bytes, which the peer does not read now (at most `SMALL_SEND`).
    Send(usize, usize),
    /// Send this many bytes while the peer reads everything available.
    Transfer(usize, usize),
    /// Read everything available.
    ReadAll(usize),
    ShutdownSend(usize),
    /// Close gracefully: it lingers in the background while the script goes on.
    Close(usize),
    Abort(usize),
    /// Drop the connection while it is open.
    Drop(usize),
    /// Both sides stay silent until every deadline has passed.
    Wait,
}

#[derive(Clone, Copy, Debug)]
enum Fate {
    Close,
    Abort,
    Drop,
}

fn op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    prop_oneof![
        3 => (side.clone(), 0..=SMALL_SEND).prop_map(|(s, n)| Op::Send(s, n)),
        3 => (side.clone(), 0..=LARGE_SEND).prop_map(|(s, n)| Op::Transfer(s, n)),
        3 => side.clone().prop_map(Op::ReadAll),
        2 => side.clone().prop_map(Op::ShutdownSend),
        2 => side.clone().prop_map(Op::Close),
        1 => side.clone().prop_map(Op::Abort),
        1 => side.prop_map(Op::Drop),
        1 => Just(Op::Wait),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![3 => Just(Fate::Close), 1 => Just(Fate::Abort), 1 => Just(Fate::Drop)]
}

// ---- what is observed ------------------------------------------------------------------------

/// How a read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadEnd {
    /// Nothing more was available.
    Quiet,
    EndOfStream,
    Failed(IoErrorKind),
}

/// One observation of one side, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Read {
        bytes: usize,
        end: ReadEnd,
    },
    Sent(Result<(), IoErrorKind>),
    Shutdown(Result<(), IoErrorKind>),
    /// What `close` ended with (the close reason).
    Closed(String),
    Aborted(String),
    /// Bytes that were not the ones sent at that offset.
    Corrupt {
        offset: u64,
    },
}

/// A close reason as compared: a drop's reset reads `Aborted` today and `Abandoned` once the
/// core names it; both are the same observation here.
fn reason_name(reason: CloseReason) -> String {
    format!("{reason:?}").replace("Abandoned", "Aborted")
}

fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

// ---- the model: two cores over simulated TCP --------------------------------------------------

#[derive(Clone, Debug)]
struct SimSide {
    lc: Lifecycle,
    /// The application is done with it (closed, aborted or dropped).
    ended: bool,
    /// A `close` is lingering in the background.
    closing: bool,
    /// Dropped with its close still to finish (A1): the adapter finishes it on its own, and no
    /// call answers when it ends; only the observer hears of it.
    dropped: bool,
    /// The socket is closed (the core's `Close` was performed).
    released: bool,
    linger_zero: bool,
    unread: usize,
    fin_in: bool,
    fin_out: bool,
    /// The error a reset left, not yet reported by a call.
    reset_error: Option<IoErrorKind>,
    /// A reset came: the socket is in CLOSE.
    dead: bool,
    trace: Vec<Seen>,
    closed_events: Vec<String>,
}

impl SimSide {
    fn new(lc: Lifecycle) -> Self {
        Self {
            lc,
            ended: false,
            closing: false,
            dropped: false,
            released: false,
            linger_zero: false,
            unread: 0,
            fin_in: false,
            fin_out: false,
            reset_error: None,
            dead: false,
            trace: Vec::new(),
            closed_events: Vec::new(),
        }
    }

    fn usable(&self) -> bool {
        !self.ended && !self.lc.is_closed()
    }
}

enum Recv {
    Bytes(usize),
    EndOfStream,
    Failed(IoErrorKind),
    WouldBlock,
}

#[derive(Debug)]
struct Model {
    sides: [SimSide; 2],
    now: u64,
}

impl Model {
    fn new(config: Config) -> Self {
        let mut client = Lifecycle::new(config);
        client.start_connect(Instant::ZERO, 1).expect("start");
        assert_eq!(client.poll_action(), Some(Action::Connect { candidate: 0 }));
        client
            .handle_connected(Instant::ZERO, 0)
            .expect("connected");
        Self {
            sides: [
                SimSide::new(client),
                SimSide::new(Lifecycle::accepted(Instant::ZERO, config)),
            ],
            now: 0,
        }
    }

    fn t(&self) -> Instant {
        Instant::from_millis(self.now)
    }

    // The kernel.

    fn os_recv(&mut self, i: usize) -> Recv {
        let side = &mut self.sides[i];
        if side.unread > 0 {
            return Recv::Bytes(std::mem::take(&mut side.unread));
        }
        if side.fin_in {
            return Recv::EndOfStream;
        }
        match side.reset_error.take() {
            Some(kind) => Recv::Failed(kind),
            None => Recv::WouldBlock,
        }
    }

    fn os_send(&mut self, i: usize, n: usize) -> Result<(), IoErrorKind> {
        if let Some(kind) = self.sides[i].reset_error.take() {
            return Err(kind);
        }
        if self.sides[i].dead {
            return Err(IoErrorKind::BrokenPipe);
        }
        let peer = &mut self.sides[1 - i];
        assert!(!peer.released, "the script sends into a released peer");
        peer.unread += n;
        Ok(())
    }

    /// `shutdown(Write)`: after a reset the socket is not connected, and the error to report is
    /// the one the reset left (`SO_ERROR`).
    fn os_shutdown(&mut self, i: usize) -> Result<(), IoErrorKind> {
        if self.sides[i].dead {
            return Err(self.sides[i]
                .reset_error
                .take()
                .unwrap_or(IoErrorKind::Other));
        }
        if !self.sides[i].fin_out {
            self.sides[i].fin_out = true;
            self.sides[1 - i].fin_in = true;
        }
        Ok(())
    }

    fn os_close(&mut self, i: usize) {
        let side = &mut self.sides[i];
        side.released = true;
        let connected = !(side.dead || side.fin_in && side.fin_out);
        if connected && (side.linger_zero || side.unread > 0) {
            self.reset(1 - i);
        } else if connected && !side.fin_out {
            side.fin_out = true;
            self.sides[1 - i].fin_in = true;
        }
    }

    /// Whether the peer acknowledged everything side `i` sent and its end of stream: bytes and
    /// the end of stream reach the peer's kernel the moment they are sent, and it acknowledges
    /// them at once, whether or not its application reads them (C13). A reset leaves nothing
    /// acknowledged.
    fn os_acknowledged(&self, i: usize) -> bool {
        self.sides[i].fin_out && !self.sides[i].dead
    }

    fn reset(&mut self, i: usize) {
        let side = &mut self.sides[i];
        if side.released || side.dead || (side.fin_in && side.fin_out) {
            return;
        }
        side.dead = true;
        side.reset_error = Some(if side.fin_in && !side.fin_out {
            IoErrorKind::BrokenPipe
        } else {
            IoErrorKind::Reset
        });
    }

    // The ideal adapter.

    /// Performs the core's actions, and reports the peer's acknowledgement to a close waiting for
    /// it (C13); returns the error a shutdown failed with.
    fn perform(&mut self, i: usize) -> Option<IoErrorKind> {
        let mut failed = None;
        while let Some(action) = self.sides[i].lc.poll_action() {
            match action {
                Action::ShutdownWrite => {
                    if let Err(kind) = self.os_shutdown(i) {
                        let now = self.t();
                        let _ = self.sides[i].lc.handle_error(now, kind);
                        failed = Some(kind);
                    }
                }
                Action::SetLingerZero => self.sides[i].linger_zero = true,
                Action::Close => {
                    self.os_close(i);
                    let reason = self.sides[i]
                        .lc
                        .close_reason()
                        .expect("closed has a reason");
                    self.sides[i].closed_events.push(reason_name(reason));
                }
                Action::Connect { .. } => unreachable!("connected already"),
            }
        }
        if self.sides[i].lc.state() == State::Acknowledging && self.os_acknowledged(i) {
            let now = self.t();
            self.sides[i]
                .lc
                .handle_acknowledged(now)
                .expect("acknowledged");
            return self.perform(i).or(failed);
        }
        failed
    }

    fn fail(&mut self, i: usize, kind: IoErrorKind) {
        let now = self.t();
        let _ = self.sides[i].lc.handle_error(now, kind);
        self.perform(i);
    }

    fn read_all(&mut self, i: usize) -> Seen {
        let mut bytes = 0;
        let end = loop {
            if !self.sides[i].lc.may_receive() {
                break ReadEnd::EndOfStream;
            }
            let now = self.t();
            match self.os_recv(i) {
                Recv::Bytes(n) => {
                    bytes += n;
                    self.sides[i].lc.handle_received(now, n).expect("receive");
                }
                Recv::EndOfStream => {
                    self.sides[i].lc.handle_end_of_stream(now).expect("eos");
                    break ReadEnd::EndOfStream;
                }
                Recv::Failed(kind) => {
                    self.fail(i, kind);
                    break ReadEnd::Failed(kind);
                }
                Recv::WouldBlock => break ReadEnd::Quiet,
            }
        };
        self.perform(i);
        Seen::Read { bytes, end }
    }

    fn send(&mut self, i: usize, n: usize) -> Seen {
        if n == 0 {
            return Seen::Sent(Ok(()));
        }
        let result = self.os_send(i, n);
        if let Err(kind) = result {
            self.fail(i, kind);
        }
        Seen::Sent(result)
    }

    fn shutdown_send(&mut self, i: usize) -> Seen {
        let now = self.t();
        self.sides[i].lc.shutdown_send(now).expect("shutdown");
        let _ = self.sides[i].lc.handle_flushed(now);
        Seen::Shutdown(match self.perform(i) {
            Some(kind) => Err(kind),
            None => Ok(()),
        })
    }

    /// Moves every lingering close on with what its socket has to read.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..2 {
                // As an adapter, call recv only while the core permits it: a close waiting for
                // the peer's acknowledgement has nothing left to read.
                while self.sides[i].closing
                    && !self.sides[i].lc.is_closed()
                    && self.sides[i].lc.may_receive()
                {
                    let now = self.t();
                    match self.os_recv(i) {
                        Recv::Bytes(n) => {
                            let _ = self.sides[i].lc.handle_received(now, n);
                        }
                        Recv::EndOfStream => {
                            let _ = self.sides[i].lc.handle_end_of_stream(now);
                        }
                        Recv::Failed(kind) => {
                            let _ = self.sides[i].lc.handle_error(now, kind);
                        }
                        Recv::WouldBlock => break,
                    }
                    self.perform(i);
                    moved = true;
                }
                if self.sides[i].closing && self.sides[i].lc.is_closed() {
                    self.sides[i].closing = false;
                    if !self.sides[i].dropped {
                        let reason = self.sides[i].lc.close_reason().expect("reason");
                        self.sides[i].trace.push(Seen::Closed(reason_name(reason)));
                    }
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Whether `op` is in the deterministic part (see the module's documentation).
    fn allows(&self, op: Op) -> bool {
        let ok = |i: usize| self.sides[i].usable();
        match op {
            Op::Send(i, n) => {
                let (me, peer) = (&self.sides[i], &self.sides[1 - i]);
                ok(i)
                    && me.lc.may_queue()
                    && peer.unread + n <= UNREAD_CAP
                    && (!peer.released || me.dead)
            }
            Op::Transfer(i, _) => {
                let (me, peer) = (&self.sides[i], &self.sides[1 - i]);
                ok(i) && me.lc.may_queue() && !peer.released && (peer.closing || ok(1 - i))
            }
            Op::ReadAll(i) | Op::ShutdownSend(i) | Op::Close(i) | Op::Abort(i) => ok(i),
            Op::Drop(i) => !self.sides[i].ended,
            Op::Wait => true,
        }
    }

    /// Applies `op`; returns what the sockets run needs to know: for a read, what to wait for.
    fn apply(&mut self, op: Op) -> Option<Seen> {
        let mut hint = None;
        match op {
            Op::Send(i, n) => {
                let seen = self.send(i, n);
                self.sides[i].trace.push(seen);
            }
            Op::Transfer(i, n) => {
                let seen = self.send(i, n);
                self.sides[i].trace.push(seen);
                let peer = 1 - i;
                if !self.sides[peer].closing {
                    let seen = self.read_all(peer);
                    hint = Some(seen.clone());
                    self.sides[peer].trace.push(seen);
                }
            }
            Op::ReadAll(i) => {
                let seen = self.read_all(i);
                hint = Some(seen.clone());
                self.sides[i].trace.push(seen);
            }
            Op::ShutdownSend(i) => {
                let seen = self.shutdown_send(i);
                self.sides[i].trace.push(seen);
            }
            Op::Close(i) => {
                let now = self.t();
                self.sides[i].ended = true;
                self.sides[i].closing = true;
                self.sides[i].lc.close(now).expect("close");
                let _ = self.sides[i].lc.handle_flushed(now);
                self.perform(i);
            }
            Op::Abort(i) => {
                let now = self.t();
                self.sides[i].ended = true;
                self.sides[i].lc.abort(now).expect("abort");
                self.perform(i);
                let reason = self.sides[i].lc.close_reason().expect("reason");
                self.sides[i].trace.push(Seen::Aborted(reason_name(reason)));
            }
            Op::Drop(i) => {
                // A1: reset while the send side is open; after it was shut, the close goes on.
                let now = self.t();
                self.sides[i].ended = true;
                self.sides[i].lc.abandon(now).expect("abandon");
                self.perform(i);
                if !self.sides[i].lc.is_closed() {
                    self.sides[i].closing = true;
                    self.sides[i].dropped = true;
                }
            }
            Op::Wait => {
                self.now += 10 * LINGER_TOTAL.as_millis() as u64;
                let now = self.t();
                for i in 0..2 {
                    if self.sides[i].closing {
                        self.sides[i].lc.handle_timeout(now).expect("timeout");
                        self.perform(i);
                    }
                }
            }
        }
        self.settle();
        hint
    }
}

/// One step of the script, with what the model expects a read to show (how long to wait).
#[derive(Clone, Debug)]
struct Step {
    op: Op,
    hint: Option<Seen>,
    /// For a close: whether it lingers, waiting for the peer. One that does not is waited for
    /// before the next step, as the model finished it before the next step.
    lingers: bool,
    /// The sides whose lingering close the model finished in this step: the sockets run waits
    /// for them before the next step, so that no later step races the end of their close.
    finishes: [bool; 2],
}

/// Runs the model over the raw operations, keeping the deterministic ones, and ends both sides.
fn plan(raw: &[Op], fates: [Fate; 2], config: Config) -> (Vec<Step>, Model) {
    let mut model = Model::new(config);
    let mut steps = Vec::new();
    let mut while_lingering = [0usize; 2];
    let mut push = |model: &mut Model, op: Op, steps: &mut Vec<Step>| {
        if let Some(side) = side_of(op) {
            if model.sides[1 - side].closing {
                if while_lingering[side] >= OPS_WHILE_LINGERING {
                    let hint = model.apply(Op::Wait);
                    steps.push(Step {
                        op: Op::Wait,
                        hint,
                        lingers: false,
                        finishes: [true; 2],
                    });
                    while_lingering = [0; 2];
                }
                while_lingering[side] += 1;
            }
        } else {
            while_lingering = [0; 2];
        }
        if model.allows(op) {
            let before = [model.sides[0].closing, model.sides[1].closing];
            let hint = model.apply(op);
            let lingers = side_of(op).is_some_and(|i| model.sides[i].closing);
            let finishes = [0, 1].map(|i| before[i] && !model.sides[i].closing);
            steps.push(Step {
                op,
                hint,
                lingers,
                finishes,
            });
        }
    };
    for &op in raw {
        if model.allows(op) {
            push(&mut model, op, &mut steps);
        }
    }
    for (i, fate) in fates.into_iter().enumerate() {
        let op = match fate {
            Fate::Close => Op::Close(i),
            Fate::Abort => Op::Abort(i),
            Fate::Drop => Op::Drop(i),
        };
        if model.allows(op) {
            push(&mut model, op, &mut steps);
        } else if model.allows(Op::Drop(i)) {
            push(&mut model, Op::Drop(i), &mut steps);
        }
    }
    push(&mut model, Op::Wait, &mut steps);
    (steps, model)
}

fn side_of(op: Op) -> Option<usize> {
    match op {
        Op::Send(i, _)
        | Op::Transfer(i, _)
        | Op::ReadAll(i)
        | Op::ShutdownSend(i)
        | Op::Close(i)
        | Op::Abort(i)
        | Op::Drop(i) => Some(i),
        Op::Wait => None,
    }
}

// ---- the sockets run -------------------------------------------------------------------------

enum Cmd {
    Send(usize),
    /// Read everything available; the model's answer says how long to wait for it.
    Read(Seen),
    Shutdown,
    Close,
    Abort,
    Drop,
}

/// One side's thread: it owns the connection and answers each command with what it saw.
struct Worker {
    commands: Sender<Cmd>,
    answers: Receiver<Option<Seen>>,
    /// Commands whose answer is still to come.
    pending: usize,
    abort: AbortHandle,
    thread: Option<JoinHandle<Vec<Seen>>>,
}

impl Worker {
    fn spawn(connection: Connection) -> Self {
        let (commands, inbox) = mpsc::channel::<Cmd>();
        let (outbox, answers) = mpsc::channel();
        let abort = connection.abort_handle();
        let thread = thread::spawn(move || {
            let mut connection = Some(connection);
            let mut trace = Vec::new();
            let (mut sent, mut received) = (0u64, 0u64);
            for command in inbox {
                let seen = run(&mut connection, command, &mut sent, &mut received);
                if let Some(seen) = &seen {
                    trace.push(seen.clone());
                }
                if outbox.send(seen).is_err() {
                    break;
                }
            }
            drop(connection);
            trace
        });
        Self {
            commands,
            answers,
            pending: 0,
            abort,
            thread: Some(thread),
        }
    }

    fn send(&mut self, command: Cmd) {
        self.commands.send(command).expect("the worker listens");
        self.pending += 1;
    }

    /// Waits for every answer still to come.
    fn settle(&mut self, side: usize) -> Result<(), String> {
        while self.pending > 0 {
            match self.answers.recv_timeout(STEP_BOUND) {
                Ok(_) => self.pending -= 1,
                Err(_) => {
                    self.abort.abort();
                    return Err(format!(
                        "the {} side did not answer within {STEP_BOUND:?}: a blocked call \
                         (aborted to free it)",
                        SIDES[side]
                    ));
                }
            }
        }
        Ok(())
    }
}

fn kind_of(error: &io::Error) -> IoErrorKind {
    IoErrorKind::of(error)
}

fn run(
    connection: &mut Option<Connection>,
    command: Cmd,
    sent: &mut u64,
    received: &mut u64,
) -> Option<Seen> {
    let conn = connection.as_mut()?;
    match command {
        Cmd::Send(n) => {
            let _ = conn.set_idle_timeout(Some(LONG_WAIT));
            let data: Vec<u8> = (*sent..*sent + n as u64).map(pattern).collect();
            *sent += n as u64;
            Some(Seen::Sent(conn.send_all(&data).map_err(|e| kind_of(&e))))
        }
        Cmd::Read(expected) => Some(read_all(conn, &expected, received)),
        Cmd::Shutdown => Some(Seen::Shutdown(
            conn.shutdown_send().map_err(|e| kind_of(&e)),
        )),
        Cmd::Close => {
            let _ = conn.close();
            let reason = conn.close_reason().map_or("none".into(), reason_name);
            Some(Seen::Closed(reason))
        }
        Cmd::Abort => Some(Seen::Aborted(reason_name(conn.abort()))),
        Cmd::Drop => {
            *connection = None;
            None
        }
    }
}

/// Reads until nothing more comes: waits long for what the model says is coming, and briefly
/// to see that nothing else does.
fn read_all(conn: &mut Connection, expected: &Seen, received: &mut u64) -> Seen {
    let (want, quiet_expected) = match expected {
        Seen::Read { bytes, end } => (*bytes, *end == ReadEnd::Quiet),
        _ => (0, true),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0usize;
    let end = loop {
        let wait = if quiet_expected && bytes >= want {
            QUIET
        } else {
            LONG_WAIT
        };
        let _ = conn.set_idle_timeout(Some(wait));
        match conn.recv(&mut buf) {
            Ok(0) => break ReadEnd::EndOfStream,
            Ok(n) => {
                for (k, byte) in buf[..n].iter().enumerate() {
                    let offset = *received + k as u64;
                    if *byte != pattern(offset) {
                        return Seen::Corrupt { offset };
                    }
                }
                *received += n as u64;
                bytes += n;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut && !conn.lifecycle().is_closed() => {
                break ReadEnd::Quiet;
            }
            Err(e) => break ReadEnd::Failed(kind_of(&e)),
        }
    };
    Seen::Read { bytes, end }
}

type Events = Arc<Mutex<Vec<String>>>;

fn observer(events: &Events) -> impl FnMut(&Event<'_>) + Send + 'static {
    let events = Arc::clone(events);
    move |event: &Event<'_>| {
        if let Event::Closed { reason, .. } = event {
            events.lock().expect("events").push(reason_name(*reason));
        }
    }
}

/// What the sockets run saw: each side's trace and the reasons its observer was told.
type Outcome = [(Vec<Seen>, Vec<String>); 2];

fn run_on_sockets(steps: &[Step], config: Config) -> Result<Outcome, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let events: [Events; 2] = Default::default();
    let client = Connector::new(config)
        .observer(observer(&events[0]))
        .connect(address)
        .map_err(|e| format!("connect: {e}"))?;
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    // With Nagle's algorithm, a small send waits in the sender's kernel while an earlier one is
    // unacknowledged, and the peer delays its acknowledgement (Linux does once it has had a
    // large segment, which lowers its quick-ack budget): an abort or a drop then resets with the
    // send never transmitted, and the peer reads fewer bytes than the model sent it. The model
    // cannot tell when a delayed acknowledgement comes, so the sockets send at once instead.
    for socket in [SockRef::from(&client), SockRef::from(&stream)] {
        socket
            .set_tcp_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    }
    let server = Connection::accepted(stream, config, StdClock::new(), observer(&events[1]))
        .map_err(|e| format!("accepted: {e}"))?;
    drop(listener);
    let mut workers = [Worker::spawn(client), Worker::spawn(server)];
    let mut closing = [false; 2];
    // Dropped with a close left to finish on the adapter's own thread.
    let mut dropped = [false; 2];

    let mut result = Ok(());
    for step in steps {
        let outcome = (|| -> Result<(), String> {
            match step.op {
                Op::Send(i, n) => {
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Send(n));
                    workers[i].settle(i)
                }
                Op::Transfer(i, n) => {
                    let peer = 1 - i;
                    if let Some(hint) = &step.hint {
                        workers[peer].settle(peer)?;
                        workers[peer].send(Cmd::Read(hint.clone()));
                    }
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Send(n));
                    workers[i].settle(i)?;
                    if !closing[peer] {
                        workers[peer].settle(peer)?;
                    }
                    Ok(())
                }
                Op::ReadAll(i) => {
                    let hint = step.hint.clone().expect("a read has a hint");
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Read(hint));
                    workers[i].settle(i)
                }
                Op::ShutdownSend(i) => {
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Shutdown);
                    workers[i].settle(i)
                }
                Op::Close(i) => {
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Close);
                    closing[i] = step.lingers;
                    if step.lingers {
                        // Whether the peer's next step comes before or after this close's
                        // shutdown, the model's outcome is the same (see `Model::allows`).
                        Ok(())
                    } else {
                        workers[i].settle(i)
                    }
                }
                Op::Abort(i) => {
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Abort);
                    workers[i].settle(i)
                }
                Op::Drop(i) => {
                    workers[i].settle(i)?;
                    workers[i].send(Cmd::Drop);
                    // A drop returns at once; a close it leaves to finish goes on without the
                    // worker, as the model's does.
                    closing[i] = step.lingers;
                    dropped[i] = step.lingers;
                    workers[i].settle(i)?;
                    if step.lingers {
                        Ok(())
                    } else {
                        // The model ended this close within the step (a reset, or the peer's
                        // end of stream already there): so must the adapter's own thread.
                        wait_closed(&events[i], i)
                    }
                }
                Op::Wait => {
                    for (i, worker) in workers.iter_mut().enumerate() {
                        worker.settle(i)?;
                    }
                    closing = [false; 2];
                    Ok(())
                }
            }
        })()
        .and_then(|()| {
            for (i, worker) in workers.iter_mut().enumerate() {
                if step.finishes[i] {
                    worker.settle(i)?;
                    closing[i] = false;
                    // A dropped connection's close ends on the adapter's own thread: only its
                    // observer says when.
                    if std::mem::take(&mut dropped[i]) {
                        wait_closed(&events[i], i)?;
                    }
                }
            }
            Ok(())
        });
        if let Err(error) = outcome {
            result = Err(format!("at {:?}: {error}", step.op));
            break;
        }
    }
    let mut traces = Vec::new();
    for (i, worker) in workers.iter_mut().enumerate() {
        if result.is_err() {
            worker.abort.abort();
        }
        let (commands, _) = mpsc::channel();
        drop(std::mem::replace(&mut worker.commands, commands));
        let trace = worker
            .thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| format!("the {} worker panicked", SIDES[i]))?;
        traces.push(trace);
    }
    result?;
    let server_trace = traces.pop().expect("two");
    let client_trace = traces.pop().expect("two");
    let seen = |i: usize| events[i].lock().expect("events").clone();
    Ok([(client_trace, seen(0)), (server_trace, seen(1))])
}

/// Waits until side `i`'s observer heard of its close, at most `STEP_BOUND`.
fn wait_closed(events: &Events, i: usize) -> Result<(), String> {
    let start = std::time::Instant::now();
    while events.lock().expect("events").is_empty() {
        if start.elapsed() > STEP_BOUND {
            return Err(format!(
                "the {} side's close did not end within {STEP_BOUND:?}",
                SIDES[i]
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn config() -> Config {
    Config::new()
        .with_linger(LINGER_TOTAL, LINGER_IDLE)
        .expect("linger settings")
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The property for one case, apart from proptest so that a case once found can be replayed
/// as it is, by a test of its own.
fn check(raw: &[Op], fates: [Fate; 2]) -> Result<(), TestCaseError> {
    let config = config();
    let (steps, model) = plan(raw, fates, config);
    let script: Vec<Op> = steps.iter().map(|step| step.op).collect();
    let real = run_on_sockets(&steps, config)
        .map_err(|e| TestCaseError::fail(format!("S1-S5 run failed: {e}\nscript {script:?}")))?;
    for (i, (trace, events)) in real.iter().enumerate() {
        let expected = &model.sides[i];
        prop_assert_eq!(
            trace,
            &expected.trace,
            "C5/C7/C8 (S1-S5) violated: the {} side saw on sockets what the core over \
             simulated TCP did not\nscript {:?}",
            SIDES[i],
            script
        );
        prop_assert_eq!(
            events,
            &expected.closed_events,
            "C1/C7 violated: the {} side's observer saw other closes than the core's \
             (one Closed, same reason)\nscript {:?}",
            SIDES[i],
            script
        );
        prop_assert_eq!(expected.closed_events.len(), 1, "C1: the model closes once");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// C1, C3, C5, C6, C7, C8 and S1-S5: the core over simulated TCP and the blocking adapter
    /// over loopback sockets agree on everything either side observes.
    #[test]
    fn c5_c7_c8_s1_s5_core_and_loopback_sockets_agree(
        raw in prop::collection::vec(op(), 0..12),
        fates in [fate(), fate()],
    ) {
        check(&raw, fates)?;
    }
}

/// Found by the property: the peer, out of quick-ack mode after a large segment, delays its
/// acknowledgement of the first one-byte send, so without `TCP_NODELAY` the second waits in the
/// client's kernel and the abort discards it (the server read 1 byte, then the reset, where the
/// model has 2).
#[test]
fn c5_s1_s5_an_abort_after_small_sends_resets_behind_every_byte_sent() {
    use Op::{Abort, ReadAll, Send, Transfer};
    let raw = [
        Transfer(0, 16371),
        Send(0, 1),
        Send(0, 0),
        Send(0, 1),
        Abort(0),
        ReadAll(1),
    ];
    if let Err(error) = check(&raw, [Fate::Close, Fate::Close]) {
        panic!("{error}");
    }
}
