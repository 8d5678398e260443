//! The seed's conversation, both sides, through the core alone: a client and a server
//! `Lifecycle` joined by an in-memory wire, in virtual time. Every transition of each side is
//! printed, then a one-line verdict.
//!
//! ```text
//! cargo run --example seed_in_memory [-- MESSAGE]
//! ```
//!
//! The wire delivers what one side sends to the other's receive queue, and a `shutdown(Write)` as
//! the other's end of stream, exactly as TCP would over a loss-free link. Nothing here touches a
//! socket: this is what an adapter does, with the system calls replaced by queue operations.

use std::collections::VecDeque;
use std::process::ExitCode;

use socket_lifecycle::{
    Action, CloseReason, Config, Input, Instant, IoErrorKind, Lifecycle, State,
};

/// One direction of the wire: bytes in flight, then the end of stream once shut.
#[derive(Default)]
struct Direction {
    bytes: VecDeque<u8>,
    shut: bool,
}

/// One side: its lifecycle and what the application around it holds.
struct Side {
    name: &'static str,
    conn: Lifecycle,
    last_state: State,
    /// Data the application queued and the "adapter" has not yet written to the wire.
    to_send: Vec<u8>,
    received: Vec<u8>,
    closes: u32,
}

impl Side {
    fn new(name: &'static str, conn: Lifecycle) -> Self {
        println!("{name:>6}: {}", conn.state());
        Self {
            name,
            last_state: conn.state(),
            conn,
            to_send: Vec::new(),
            received: Vec::new(),
            closes: 0,
        }
    }

    /// Gives the core one input and prints the transition it made, if any.
    fn apply(&mut self, now: Instant, input: Input) {
        if let Err(error) = self.conn.handle(now, input) {
            eprintln!("seed_in_memory: the core refused an input: {error}");
            std::process::exit(1);
        }
        if self.conn.state() != self.last_state {
            println!(
                "{:>6}: {} -> {}   ({})",
                self.name,
                self.last_state,
                self.conn.state(),
                input.kind()
            );
            self.last_state = self.conn.state();
        }
    }

    /// Performs every action the core asks for.
    fn perform(&mut self, outgoing: &mut Direction, connect_to: &mut Option<usize>) {
        while let Some(action) = self.conn.poll_action() {
            println!("{:>6}:   action: {action}", self.name);
            match action {
                Action::Connect { candidate } => *connect_to = Some(candidate),
                Action::ShutdownWrite => outgoing.shut = true,
                Action::SetLingerZero => {}
                Action::Close => self.closes += 1,
            }
        }
    }

    /// One turn of an adapter's loop: write what may be written, read what may be read.
    fn turn(&mut self, now: Instant, incoming: &mut Direction, outgoing: &mut Direction) {
        if self.conn.may_send() && !self.to_send.is_empty() {
            outgoing.bytes.extend(self.to_send.drain(..));
            self.apply(now, Input::Flushed);
        } else if !self.conn.may_queue() && self.conn.may_send() {
            self.apply(now, Input::Flushed); // nothing was left to flush
        }
        if self.conn.may_receive() {
            if !incoming.bytes.is_empty() {
                let chunk: Vec<u8> = incoming.bytes.drain(..).collect();
                if !self.conn.must_discard() {
                    self.received.extend_from_slice(&chunk);
                }
                self.apply(now, Input::Received { len: chunk.len() });
            } else if incoming.shut {
                self.apply(now, Input::EndOfStream);
            }
        }
    }
}

fn main() -> ExitCode {
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "this is a test".to_owned());
    let config = Config::default();
    let mut now = Instant::ZERO;
    let (mut to_server, mut to_client) = (Direction::default(), Direction::default());

    // The client resolved two addresses; nobody listens on the first.
    let mut client = Side::new("client", Lifecycle::new(config));
    client.apply(now, Input::StartConnect { candidates: 2 });
    let mut connect_to = None;
    client.perform(&mut to_server, &mut connect_to);
    client.apply(
        now,
        Input::ConnectFailed {
            candidate: 0,
            kind: IoErrorKind::Refused,
        },
    );
    client.perform(&mut to_server, &mut connect_to);
    client.apply(now, Input::Connected { candidate: 1 });
    client.perform(&mut to_server, &mut connect_to);
    let mut server = Side::new("server", Lifecycle::accepted(now, config));

    // Client: send the message, then shutdown(SD_SEND).
    client.to_send.extend_from_slice(message.as_bytes());
    client.apply(now, Input::ShutdownSend);

    let mut turns = 0;
    while !(client.conn.is_closed() && server.conn.is_closed()) && turns < 100 {
        turns += 1;
        now = now + std::time::Duration::from_millis(1);
        client.turn(now, &mut to_client, &mut to_server);
        client.perform(&mut to_server, &mut connect_to);
        server.turn(now, &mut to_server, &mut to_client);
        server.perform(&mut to_client, &mut connect_to);

        // Server: echo what arrived; after the client's end of stream, shut and close.
        if server.conn.may_queue() && !server.received.is_empty() {
            let echo = std::mem::take(&mut server.received);
            server.to_send.extend_from_slice(&echo);
        }
        if server.conn.state() == State::PeerShut && server.to_send.is_empty() {
            server.apply(now, Input::ShutdownSend);
        }
        if server.conn.state() == State::BothShut {
            server.apply(now, Input::Close);
        }
        // Client: once the server's end of stream arrived, close.
        if client.conn.state() == State::BothShut {
            client.apply(now, Input::Close);
        }
        client.perform(&mut to_server, &mut connect_to);
        server.perform(&mut to_client, &mut connect_to);
    }

    let echoed = String::from_utf8_lossy(&client.received);
    println!(
        "client received {} of {} bytes: {echoed:?}",
        client.received.len(),
        message.len()
    );
    let graceful = |side: &Side| side.conn.close_reason() == Some(CloseReason::Graceful);
    if echoed == message
        && graceful(&client)
        && graceful(&server)
        && client.closes == 1
        && server.closes == 1
    {
        println!(
            "verdict: PASS: every byte echoed, both sides closed once, gracefully ({turns} turns, {now:?} virtual)"
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "verdict: FAIL: client {:?} closed {}x, server {:?} closed {}x",
            client.conn.close_reason(),
            client.closes,
            server.conn.close_reason(),
            server.closes
        );
        ExitCode::FAILURE
    }
}
