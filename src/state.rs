//! The states of one stream connection, and what each of them permits. The diagram of every
//! transition is on [`State`] (`src/docs/states.txt`), where docs.rs shows it.
//!
//! Every state and what it permits is in one table ([`State::permits`]); every transition is in
//! one match (`transition::cell`), from which the compiler builds the connection's transition
//! table.

use core::fmt;

/// Where a connection is in its life. Every transition, and the action it emits:
///
#[doc = concat!("```text\n", include_str!("docs/states.txt"), "```")]
///
/// What each state permits is one row of [`State::permits`].
// Deliberately exhaustive (no `#[non_exhaustive]`): the states are the contract's diagram, and
// a match over all of them is how the reference model, the monitors of `proofs/` and an
// adapter's own tables are kept complete. A new state would change what every permission and
// rule means, so it is a breaking change by design, and a compile error in every exhaustive
// match is the point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// A client connection not yet started: no socket.
    Idle,
    /// A connect attempt to one candidate address is in flight.
    Connecting,
    /// Connected; both directions open.
    Established,
    /// The application is done sending; waiting for the adapter to flush what was queued before
    /// `shutdown(Write)` goes out. Receiving goes on.
    SendFlushing,
    /// Our end of stream is sent; receiving goes on (the seed client's "receive until 0").
    SendShut,
    /// The peer's end of stream arrived; we may still send (the seed server's echo tail).
    PeerShut,
    /// The peer's end of stream arrived and our send side is flushing before its shutdown.
    PeerShutSendFlushing,
    /// Both directions finished; waiting for the application to close.
    BothShut,
    /// Close requested; flushing before `shutdown(Write)`; received bytes are read and discarded.
    ClosingFlushing,
    /// Close requested after the peer's end of stream; flushing before `shutdown(Write)` and close.
    ClosingFlushingPeerShut,
    /// Close requested and our end of stream sent: reading and discarding until the peer's end of
    /// stream, so the kernel never holds unread data when the socket is closed.
    Lingering,
    /// Both ends of stream are through and our end of stream is sent: waiting for the peer to
    /// acknowledge every byte we sent and our end of stream before the close (rule C13), since
    /// closing would hand what is unacknowledged to the kernel, which may give it up.
    Acknowledging,
    /// Closed. Final.
    Closed,
}

/// What a state lets the adapter do. One row per state, in [`State::permits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permits {
    /// `send(2)` may be called: data the application queued may still go out.
    pub send: bool,
    /// The application may queue new data to send.
    pub queue: bool,
    /// `recv(2)` may be called.
    pub receive: bool,
    /// What is received must be read and thrown away (lingering close).
    pub discard: bool,
}

impl State {
    /// Every state, for exhaustive tests.
    pub const ALL: [Self; 13] = [
        Self::Idle,
        Self::Connecting,
        Self::Established,
        Self::SendFlushing,
        Self::SendShut,
        Self::PeerShut,
        Self::PeerShutSendFlushing,
        Self::BothShut,
        Self::ClosingFlushing,
        Self::ClosingFlushingPeerShut,
        Self::Lingering,
        Self::Acknowledging,
        Self::Closed,
    ];

    /// What this state lets the adapter do.
    pub const fn permits(self) -> Permits {
        const fn row(send: bool, queue: bool, receive: bool, discard: bool) -> Permits {
            Permits {
                send,
                queue,
                receive,
                discard,
            }
        }
        match self {
            //                                        send   queue  receive discard
            Self::Idle | Self::Connecting => row(false, false, false, false),
            Self::Established => row(true, true, true, false),
            Self::SendFlushing => row(true, false, true, false),
            Self::SendShut => row(false, false, true, false),
            Self::PeerShut => row(true, true, false, false),
            Self::PeerShutSendFlushing => row(true, false, false, false),
            Self::BothShut => row(false, false, false, false),
            Self::ClosingFlushing => row(true, false, true, true),
            Self::ClosingFlushingPeerShut => row(true, false, false, false),
            Self::Lingering => row(false, false, true, true),
            Self::Acknowledging => row(false, false, false, false),
            Self::Closed => row(false, false, false, false),
        }
    }

    /// Whether a close has been requested and is under way: the linger deadlines run. False
    /// once the connection is [`Closed`](Self::Closed) (the close has happened, it is no longer
    /// under way), and false before any close request.
    pub const fn is_closing(self) -> bool {
        matches!(
            self,
            Self::ClosingFlushing
                | Self::ClosingFlushingPeerShut
                | Self::Lingering
                | Self::Acknowledging
        )
    }

    /// Whether the connection has a connected socket: an I/O error can be reported against it.
    pub const fn is_connected(self) -> bool {
        !matches!(self, Self::Idle | Self::Connecting | Self::Closed)
    }

    /// The state's name, as in the diagram.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connecting => "Connecting",
            Self::Established => "Established",
            Self::SendFlushing => "SendFlushing",
            Self::SendShut => "SendShut",
            Self::PeerShut => "PeerShut",
            Self::PeerShutSendFlushing => "PeerShutSendFlushing",
            Self::BothShut => "BothShut",
            Self::ClosingFlushing => "ClosingFlushing",
            Self::ClosingFlushingPeerShut => "ClosingFlushingPeerShut",
            Self::Lingering => "Lingering",
            Self::Acknowledging => "Acknowledging",
            Self::Closed => "Closed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
