//! What the tokio adapter's scenario tests share on top of `support`: a tokio server running on
//! a runtime of its own, in a thread of its own, so that the tests' peers can be plain blocking
//! sockets as in the blocking adapter's suite; and the seed's handlers in async form.

#![allow(dead_code)] // each test file uses a part of it

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use socket_lifecycle::tokio::{
    Connection, DrainHandle, HandlerFuture, Peer, ServeReport, Server, ServerConfig,
};

use crate::support::{HANG, Log};

/// A runtime for the tests' own async code (the adapter's clients): one thread, time and I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// This process's open descriptors, counted once tokio's process-wide ones exist: with tokio's
/// `signal` feature on (the example's Ctrl-C needs it), the first runtime opens a socket pair for
/// signals that stays open for the life of the process. That is tokio's, made once; the count
/// before a test starts must include it.
pub fn baseline() -> usize {
    drop(runtime());
    crate::support::fd_count()
}

/// A tokio server serving on a multi-threaded runtime (two workers) in a thread of its own.
pub struct Running {
    pub addr: SocketAddr,
    pub drain: DrainHandle,
    pub log: Log,
    done: mpsc::Receiver<io::Result<ServeReport>>,
}

impl Running {
    /// Binds 127.0.0.1 and serves with `handler`; every connection's observer records in the log.
    pub fn start<H>(config: ServerConfig, handler: H) -> Self
    where
        H: for<'a> Fn(&'a mut Connection) -> HandlerFuture<'a> + Send + Sync + 'static,
    {
        let log = Log::default();
        let observers = log.clone();
        let (started, bound) = mpsc::channel();
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_io()
                .enable_time()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let server = Server::bind("127.0.0.1:0".parse().expect("an address"), config)
                    .await
                    .expect("binding 127.0.0.1:0");
                let _ = started.send((server.local_addr(), server.drain_handle()));
                let report = server
                    .serve(handler, move |peer: Peer| observers.observer(peer.id))
                    .await;
                let _ = sender.send(report);
            });
            // The runtime's threads are joined here, before the test counts descriptors.
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        let (addr, drain) = bound.recv_timeout(HANG).expect("the server starts");
        Self {
            addr,
            drain,
            log,
            done,
        }
    }

    /// Waits for `serve` to return, at most `limit`, without starting a drain.
    pub fn wait(&self, limit: Duration, rule: &str) -> ServeReport {
        let report = self
            .done
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("{rule} violated: serve did not return within {limit:?}"));
        report.unwrap_or_else(|e| panic!("{rule} violated: serve failed: {e}"))
    }

    /// Drains, and waits for `serve` to return.
    pub fn finish(&self, rule: &str) -> ServeReport {
        self.drain.drain();
        self.wait(HANG, rule)
    }
}

/// The seed's server: echo until the peer's end of stream, then shut the send side.
pub async fn echo(connection: &mut Connection) -> io::Result<()> {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match connection.recv(&mut buffer).await? {
            0 => break,
            n => connection.send_all(&buffer[..n]).await?,
        }
    }
    connection.shutdown_send()
}

/// [`echo`] as a server's handler.
pub fn echo_handler(connection: &mut Connection) -> HandlerFuture<'_> {
    Box::pin(echo(connection))
}

/// Reads from an adapter connection until its end of stream or an error.
pub async fn recv_all(connection: &mut Connection) -> (Vec<u8>, Option<io::Error>) {
    let mut data = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match connection.recv(&mut buffer).await {
            Ok(0) => return (data, None),
            Ok(n) => data.extend_from_slice(&buffer[..n]),
            Err(e) => return (data, Some(e)),
        }
    }
}
