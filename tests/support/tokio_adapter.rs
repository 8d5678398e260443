//! The tokio adapter behind the tests' interface: a server on a multi-threaded runtime in a
//! thread of its own, as an application would run it; the tests' own side (clients, accepted
//! connections) on a multi-threaded runtime of its own, so that a test's plain blocking peer,
//! which may block the test's thread, never stops the adapter's tasks.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use socket_lifecycle::tokio::{
    self as adapter, Observer, Peer, ReadHalf, Server, ServerConfig, WriteHalf,
};
use socket_lifecycle::{CloseReason, Config, Lifecycle, StdClock};

use super::adapter::{
    AbortHandle, Adapter, Connection, Handled, Receiving, Running, Sending, Task, open_process_wide,
};
use super::{HANG, Log, fd_count};

/// The tokio adapter, `socket_lifecycle::tokio`.
#[derive(Debug)]
pub struct Tokio;

/// A multi-threaded runtime (two workers) with time and I/O.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

impl Adapter for Tokio {
    const NAME: &'static str = "tokio";
    type Connection = adapter::Connection;
    type Task<T: Send + 'static> = TokioTask<T>;

    fn serve<H>(config: ServerConfig, handler: H) -> Running
    where
        H: for<'a> Fn(&'a mut Self::Connection) -> Handled<'a> + Send + Sync + 'static,
    {
        let log = Log::default();
        let observers = log.clone();
        let (started, bound) = mpsc::channel();
        let (sender, done) = mpsc::channel();
        thread::spawn(move || {
            let runtime = runtime();
            runtime.block_on(async move {
                let server = Server::bind("127.0.0.1:0", config)
                    .await
                    .expect("binding 127.0.0.1:0");
                let _ = started.send((server.local_addr(), server.drain_handle()));
                let report = server
                    .serve(handler, move |peer: Peer| {
                        observers.accepted(peer.id, peer.addr)
                    })
                    .await;
                let _ = sender.send(report);
            });
            // The runtime's threads are joined here, before the test counts descriptors.
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        let (addr, drain) = bound.recv_timeout(HANG).expect("the server starts");
        Running::new(addr, log, move || drain.drain(), done)
    }

    async fn connect(
        address: &str,
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        adapter::Connector::new(config)
            .observer(observer)
            .connect(address)
            .await
    }

    async fn connect_to(
        addrs: &[SocketAddr],
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        adapter::Connector::new(config)
            .observer(observer)
            .connect_to(addrs)
            .await
    }

    fn accepted(
        stream: TcpStream,
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        stream.set_nonblocking(true)?;
        let stream = tokio::net::TcpStream::from_std(stream)?;
        adapter::Connection::accepted(stream, config, StdClock::new(), observer)
    }

    async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<()> {
        Server::bind(addr, config).await.map(drop)
    }

    fn run<T>(work: impl Future<Output = T>) -> T {
        let runtime = runtime();
        let output = runtime.block_on(work);
        // Its workers are joined here, before the test counts descriptors.
        runtime.shutdown_timeout(Duration::from_secs(5));
        output
    }

    fn spawn<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> TokioTask<T> {
        TokioTask(tokio::spawn(work))
    }

    async fn sleep(duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// With tokio's `signal` feature on (the example's Ctrl-C needs it), the first runtime opens
    /// a socket pair for signals that stays open for the life of the process: tokio's, made once.
    fn baseline() -> usize {
        super::open_process_wide::<Self>();
        drop(runtime());
        fd_count()
    }
}

/// A tokio task.
#[derive(Debug)]
pub struct TokioTask<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> for TokioTask<T> {
    async fn join(self) -> T {
        self.0
            .await
            .unwrap_or_else(|error| panic::resume_unwind(error.into_panic()))
    }

    async fn join_within(self, limit: Duration) -> Option<T> {
        tokio::time::timeout(limit, self.join()).await.ok()
    }
}

impl Receiving for adapter::Connection {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        adapter::Connection::recv(self, buf).await
    }
}

impl Sending for adapter::Connection {
    async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        adapter::Connection::send(self, buf).await
    }

    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        adapter::Connection::send_all(self, buf).await
    }

    fn shutdown_send(&mut self) -> io::Result<()> {
        adapter::Connection::shutdown_send(self)
    }
}

impl Connection for adapter::Connection {
    type ReadHalf = ReadHalf;
    type WriteHalf = WriteHalf;
    type AbortHandle = adapter::AbortHandle;

    async fn close(&mut self) -> io::Result<CloseReason> {
        adapter::Connection::close(self).await
    }

    fn abort(&mut self) -> CloseReason {
        adapter::Connection::abort(self)
    }

    fn abort_handle(&self) -> Self::AbortHandle {
        adapter::Connection::abort_handle(self)
    }

    fn close_reason(&self) -> Option<CloseReason> {
        adapter::Connection::close_reason(self)
    }

    fn lifecycle(&self) -> &Lifecycle {
        adapter::Connection::lifecycle(self)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        adapter::Connection::peer_addr(self)
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        adapter::Connection::set_idle_timeout(self, timeout);
        Ok(())
    }

    fn split(self) -> (ReadHalf, WriteHalf) {
        adapter::Connection::split(self)
    }
}

impl Receiving for ReadHalf {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        ReadHalf::recv(self, buf).await
    }
}

impl Sending for WriteHalf {
    async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        WriteHalf::send(self, buf).await
    }

    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        WriteHalf::send_all(self, buf).await
    }

    fn shutdown_send(&mut self) -> io::Result<()> {
        WriteHalf::shutdown_send(self)
    }
}

impl AbortHandle for adapter::AbortHandle {
    fn abort(&self) {
        adapter::AbortHandle::abort(self);
    }
}
