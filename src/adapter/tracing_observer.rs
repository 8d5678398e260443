//! The `tracing` feature: a connection's events as `tracing` events, in a span of its own, for
//! servers that already log through `tracing`; and the server's failed accepts.

use std::io;
use std::net::SocketAddr;

use tracing::Span;

use super::{Event, Observer, Peer};

/// The target of every span and event: what a filter names (`socket_lifecycle=debug`), the same
/// from whichever module of the crate they come.
const TARGET: &str = "socket_lifecycle";

/// An [`Observer`] that turns each [`Event`] into a `tracing` event with target
/// `socket_lifecycle`, inside a span `connection` whose fields are the connection's `id` and
/// `peer` address (feature `tracing`):
///
/// | event | level | message | fields |
/// |---|---|---|---|
/// | [`Event::Transition`] | TRACE | `transition` | `from`, `to`, `input` (as `Display` shows them) |
/// | [`Event::ConnectAttemptFailed`] | DEBUG | `connect attempt failed` | `addr`, `os_error` (the error's message), `os_code` (when the OS gave one) |
/// | [`Event::Closed`] | DEBUG | `closed` | `reason`, and with an error `os_error` and `os_code` as above |
///
/// A failed attempt is DEBUG, not WARN: the next address may well connect, and once none
/// does, the connector's error is the application's to report. The span is at DEBUG too, so a
/// subscriber that keeps DEBUG for `socket_lifecycle` sees every close with its connection.
///
/// A server gives one to each connection with [`for_peer`](Self::for_peer); a client names
/// the address it connects to:
///
/// ```
/// use socket_lifecycle::Config;
/// use socket_lifecycle::blocking::{Connector, Server, ServerConfig, TracingObserver};
///
/// // A server: each accepted connection's events in a span with its id and peer address.
/// let server = Server::bind("127.0.0.1:0", ServerConfig::default())?;
/// server.drain_handle().drain(); // this example only shows where the observer goes
/// let report = server.serve(|_connection| Ok(()), TracingObserver::for_peer)?;
/// assert_eq!(report.accepted, 0);
///
/// // A client: here to a port where nothing listens, so the subscriber, if one is set, gets a
/// // failed attempt and the close, each with `os_error` and `os_code`.
/// let nowhere = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let refused = Connector::new(Config::default())
///     .observer(TracingObserver::new(1, nowhere))
///     .connect_to(&[nowhere]);
/// assert!(refused.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub struct TracingObserver {
    span: Span,
}

impl TracingObserver {
    /// An observer for connection `id` with `peer`, its span a child of the current span (the
    /// server's, say, where it is made).
    pub fn new(id: u64, peer: SocketAddr) -> Self {
        Self {
            span: tracing::debug_span!(target: TARGET, "connection", id, %peer),
        }
    }

    /// An observer for a server's connection: `server.serve(handler, TracingObserver::for_peer)`.
    pub fn for_peer(peer: Peer) -> Self {
        Self::new(peer.id, peer.addr)
    }

    /// The connection's span, for the application's own events about it
    /// (`observer.span().clone()`, before the observer is handed over).
    pub fn span(&self) -> &Span {
        &self.span
    }
}

impl From<Peer> for TracingObserver {
    fn from(peer: Peer) -> Self {
        Self::for_peer(peer)
    }
}

impl Observer for TracingObserver {
    fn on_event(&mut self, event: &Event<'_>) {
        let _in_span = self.span.enter();
        match *event {
            Event::Transition { from, to, input } => {
                tracing::trace!(target: TARGET, %from, %to, %input, "transition");
            }
            Event::ConnectAttemptFailed { addr, error } => {
                tracing::debug!(
                    target: TARGET,
                    %addr,
                    os_error = %error,
                    os_code = error.raw_os_error(),
                    "connect attempt failed"
                );
            }
            Event::Closed { reason, error } => {
                tracing::debug!(
                    target: TARGET,
                    %reason,
                    os_error = error.map(tracing::field::display),
                    os_code = error.and_then(io::Error::raw_os_error),
                    "closed"
                );
            }
        }
    }
}

/// Logs a failed accept at WARN, with `os_error` and `os_code`: out of descriptors (`EMFILE`),
/// a server pauses accepting, which an operator should hear of.
pub(crate) fn accept_failed(error: &io::Error) {
    tracing::warn!(
        target: TARGET,
        os_error = %error,
        os_code = error.raw_os_error(),
        "accept failed"
    );
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Level, Metadata, Subscriber};

    use super::*;
    use crate::{CloseReason, Config, InputKind, IoErrorKind, State};

    /// A field's name and its value, as `{:?}` (a `%` field's `Display`) writes it.
    type Fields = Vec<(&'static str, String)>;

    /// One `tracing` event as a subscriber received it.
    #[derive(Debug, PartialEq)]
    struct Seen {
        target: String,
        level: Level,
        fields: Fields,
        /// The name and fields of the span it was in.
        span: Option<(&'static str, Fields)>,
    }

    /// A subscriber that keeps every event with the span it was in: spans are numbered in the
    /// order they were made, and entered spans stack.
    #[derive(Debug, Default)]
    struct Collector {
        spans: Mutex<Vec<(&'static str, Fields)>>,
        entered: Mutex<Vec<u64>>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    struct Visitor(Fields);

    impl Visit for Visitor {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push((field.name(), value.to_owned()));
        }

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.push((field.name(), format!("{value:?}")));
        }
    }

    impl Subscriber for Collector {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut visitor = Visitor(Vec::new());
            span.record(&mut visitor);
            let mut spans = lock(&self.spans);
            spans.push((span.metadata().name(), visitor.0));
            Id::from_u64(spans.len() as u64)
        }

        fn record(&self, _: &Id, _: &Record<'_>) {}

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &tracing::Event<'_>) {
            let mut visitor = Visitor(Vec::new());
            event.record(&mut visitor);
            let span = lock(&self.entered)
                .last()
                .and_then(|id| lock(&self.spans).get(*id as usize - 1).cloned());
            lock(&self.seen).push(Seen {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields: visitor.0,
                span,
            });
        }

        fn enter(&self, span: &Id) {
            lock(&self.entered).push(span.into_u64());
        }

        fn exit(&self, _: &Id) {
            lock(&self.entered).pop();
        }
    }

    /// What `work` made `tracing` emit on this thread.
    fn collect(work: impl FnOnce()) -> Vec<Seen> {
        let collector = Collector::default();
        let seen = Arc::clone(&collector.seen);
        tracing::subscriber::with_default(collector, work);
        std::mem::take(&mut *lock(&seen))
    }

    fn seen(level: Level, fields: &[(&'static str, &str)], span: Option<&Fields>) -> Seen {
        Seen {
            target: "socket_lifecycle".to_owned(),
            level,
            fields: fields
                .iter()
                .map(|&(name, value)| (name, value.to_owned()))
                .collect(),
            span: span.map(|fields| ("connection", fields.clone())),
        }
    }

    fn connection_span(id: u64, peer: SocketAddr) -> Fields {
        vec![("id", id.to_string()), ("peer", peer.to_string())]
    }

    #[test]
    fn each_event_is_a_tracing_event_in_the_connections_span() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 50_000));
        let upstream = SocketAddr::from(([192, 0, 2, 1], 80));
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "the connect timeout passed");
        let events = collect(|| {
            let mut observer = TracingObserver::from(Peer { id: 3, addr: peer });
            observer.on_event(&Event::Transition {
                from: State::Established,
                to: State::PeerShut,
                input: InputKind::EndOfStream,
            });
            observer.on_event(&Event::ConnectAttemptFailed {
                addr: upstream,
                error: &timeout,
            });
            observer.on_event(&Event::Closed {
                reason: CloseReason::PeerReset,
                error: Some(&reset),
            });
            observer.on_event(&Event::Closed {
                reason: CloseReason::Graceful,
                error: None,
            });
        });
        let span = connection_span(3, peer);
        let reset_text = reset.to_string();
        let reset_code = libc::ECONNRESET.to_string();
        assert_eq!(
            events,
            [
                seen(
                    Level::TRACE,
                    &[
                        ("message", "transition"),
                        ("from", "Established"),
                        ("to", "PeerShut"),
                        ("input", "handle_end_of_stream"),
                    ],
                    Some(&span)
                ),
                seen(
                    Level::DEBUG,
                    &[
                        ("message", "connect attempt failed"),
                        ("addr", "192.0.2.1:80"),
                        ("os_error", "the connect timeout passed"),
                    ],
                    Some(&span)
                ),
                seen(
                    Level::DEBUG,
                    &[
                        ("message", "closed"),
                        ("reason", "reset by peer"),
                        ("os_error", &reset_text),
                        ("os_code", &reset_code),
                    ],
                    Some(&span)
                ),
                seen(
                    Level::DEBUG,
                    &[("message", "closed"), ("reason", "graceful")],
                    Some(&span)
                ),
            ]
        );
    }

    #[test]
    fn a_failed_accept_is_a_warning_with_its_os_error() {
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let events = collect(|| accept_failed(&error));
        assert_eq!(
            events,
            [seen(
                Level::WARN,
                &[
                    ("message", "accept failed"),
                    ("os_error", &error.to_string()),
                    ("os_code", &libc::EMFILE.to_string()),
                ],
                None
            )]
        );
    }

    /// The OS code of a refused connect.
    #[cfg(not(windows))]
    const REFUSED: i32 = libc::ECONNREFUSED;
    /// The OS code of a refused connect: `WSAECONNREFUSED`.
    #[cfg(windows)]
    const REFUSED: i32 = 10061;

    /// The events of a connect refused at `nowhere`, as the span of connection 1 holds them.
    fn refused_connect(nowhere: SocketAddr) -> Vec<Seen> {
        let span = connection_span(1, nowhere);
        let refused = io::Error::from_raw_os_error(REFUSED).to_string();
        let code = REFUSED.to_string();
        let address = nowhere.to_string();
        vec![
            seen(
                Level::TRACE,
                &[
                    ("message", "transition"),
                    ("from", "Idle"),
                    ("to", "Connecting"),
                    ("input", "start_connect"),
                ],
                Some(&span),
            ),
            seen(
                Level::DEBUG,
                &[
                    ("message", "connect attempt failed"),
                    ("addr", &address),
                    ("os_error", &refused),
                    ("os_code", &code),
                ],
                Some(&span),
            ),
            seen(
                Level::TRACE,
                &[
                    ("message", "transition"),
                    ("from", "Connecting"),
                    ("to", "Closed"),
                    ("input", "handle_connect_failed"),
                ],
                Some(&span),
            ),
            seen(
                Level::DEBUG,
                &[
                    ("message", "closed"),
                    (
                        "reason",
                        &CloseReason::ConnectFailed(IoErrorKind::Refused).to_string(),
                    ),
                    ("os_error", &refused),
                    ("os_code", &code),
                ],
                Some(&span),
            ),
        ]
    }

    /// A loopback address where nothing listens: bound, then released.
    fn nowhere() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
    }

    #[test]
    fn c12_a_refused_connect_through_the_blocking_connector_is_traced_in_its_span() {
        let nowhere = nowhere();
        let events = collect(|| {
            let result = crate::blocking::Connector::new(Config::default())
                .observer(TracingObserver::new(1, nowhere))
                .connect_to(&[nowhere]);
            assert!(result.is_err(), "nothing listens at {nowhere}");
        });
        assert_eq!(events, refused_connect(nowhere));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn c12_a_refused_connect_through_the_tokio_connector_is_traced_in_its_span() {
        let nowhere = nowhere();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // A current-thread runtime runs the connect on this thread, under the collector.
        let events = collect(|| {
            let result = runtime.block_on(
                crate::tokio::Connector::new(Config::default())
                    .observer(TracingObserver::new(1, nowhere))
                    .connect_to(&[nowhere]),
            );
            assert!(result.is_err(), "nothing listens at {nowhere}");
        });
        assert_eq!(events, refused_connect(nowhere));
    }
}
