//! The echo servers' log: a line for each transition and each close of a connection, under a
//! prefix naming it (`[3 127.0.0.1:60580]`), a line when its idle timeout closes it, the drain's
//! lines and the summary. Both adapters report the same `Event`s, `Peer`s and `ServeReport`, so
//! both servers log alike.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socket_lifecycle::blocking::{Event, Peer, ServeReport};
use socket_lifecycle::{CloseReason, DrainOutcome};

/// The open connections' ids by their peer's address: a handler knows only its connection, and
/// finds there the id its observer logs under.
#[derive(Debug, Clone, Default)]
pub struct ConnectionLog {
    ids: Arc<Mutex<HashMap<SocketAddr, u64>>>,
}

impl ConnectionLog {
    /// A connection's observer: one line per transition and for its close, and its entry here
    /// while it is open. It holds the ids itself (`use<>`: it borrows nothing), as it outlives
    /// the call.
    pub fn observer(&self, peer: Peer) -> impl FnMut(&Event<'_>) + Send + use<> {
        let ids = Arc::clone(&self.ids);
        ids.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.addr, peer.id);
        let prefix = format!("[{} {}]", peer.id, peer.addr);
        move |event: &Event<'_>| {
            if let Some(line) = super::event_line(event) {
                println!("{prefix} {line}");
            }
            if let Event::Closed { .. } = event {
                ids.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&peer.addr);
            }
        }
    }

    /// Logs `error`, which a handler's `recv` returned, if it is the idle timeout: the connection
    /// is still open (`close_reason` is `None`) and will close gracefully. `peer_addr` is the
    /// connection's, asked only then.
    pub fn idle_timeout(
        &self,
        error: &io::Error,
        close_reason: Option<CloseReason>,
        peer_addr: impl FnOnce() -> io::Result<SocketAddr>,
    ) {
        if error.kind() == io::ErrorKind::TimedOut && close_reason.is_none() {
            println!("{} {error}: closing", self.prefix(peer_addr()));
        }
    }

    /// The log prefix of the connection with this peer.
    fn prefix(&self, peer_addr: io::Result<SocketAddr>) -> String {
        match peer_addr {
            Ok(addr) => {
                let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
                match ids.get(&addr) {
                    Some(id) => format!("[{id} {addr}]"),
                    None => format!("[{addr}]"),
                }
            }
            Err(_) => "[?]".to_owned(),
        }
    }
}

/// Logs the first stop signal, which starts the drain.
pub fn draining(drain_timeout: Duration) {
    println!("stop signal: draining (open connections have {drain_timeout:?} to finish)");
}

/// The second stop signal: exits at once, without waiting for the drain.
pub fn exit_on_second_stop() -> ! {
    println!("second stop signal: exiting without waiting for the drain");
    std::process::exit(1);
}

/// The last line: what the server did.
pub fn summary(report: &ServeReport) -> String {
    let drain = match report.drain {
        Some(DrainOutcome::Drained) | None => "every connection closed".to_owned(),
        Some(DrainOutcome::Expired { open }) => {
            format!("the deadline passed with {open} open")
        }
    };
    format!(
        "drained: served {} connections, {} graceful, {} aborted by the drain, {} failed accepts; \
         {drain}, in {:?}",
        report.accepted,
        report.graceful,
        report.aborted_by_drain,
        report.accept_failures,
        report.drain_time
    )
}
