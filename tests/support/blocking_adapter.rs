//! The blocking adapter behind the tests' interface: each async method makes its blocking call
//! and is done, so its future is ready at the first poll; spawned work is a thread.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::panic;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use socket_lifecycle::blocking::{self, Observer, Peer, ReadHalf, Server, ServerConfig, WriteHalf};
use socket_lifecycle::{CloseReason, Config, Lifecycle, StdClock};

use super::adapter::{
    AbortHandle, Adapter, Connection, Handled, Receiving, Running, Sending, Task, open_process_wide,
};
use super::{Log, fd_count};

/// The blocking adapter, `socket_lifecycle::blocking`.
#[derive(Debug)]
pub struct Blocking;

/// Runs `work`, which only makes blocking calls, in one poll. A future that is not ready at once
/// waits for a wake-up that nothing here will give: that is a test written for an executor, and
/// it is said at once instead of hanging.
pub fn block_on<F: Future>(work: F) -> F::Output {
    let mut work = pin!(work);
    match work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!(
            "test defect: code run on the blocking adapter waited for a wake-up; \
             it must only make blocking calls"
        ),
    }
}

impl Adapter for Blocking {
    const NAME: &'static str = "blocking";
    type Connection = blocking::Connection;
    type Task<T: Send + 'static> = ThreadTask<T>;

    fn serve<H>(config: ServerConfig, handler: H) -> Running
    where
        H: for<'a> Fn(&'a mut Self::Connection) -> Handled<'a> + Send + Sync + 'static,
    {
        let server = Server::bind("127.0.0.1:0", config).expect("binding 127.0.0.1:0");
        let addr = server.local_addr();
        let drain = server.drain_handle();
        let log = Log::default();
        let observers = log.clone();
        let (sender, done) = mpsc::channel();
        thread::spawn(move || {
            let report = server.serve(
                move |connection| block_on(handler(connection)),
                move |peer: Peer| observers.accepted(peer.id, peer.addr),
            );
            let _ = sender.send(report);
        });
        Running::new(addr, log, move || drain.drain(), done)
    }

    async fn connect(
        address: &str,
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        blocking::Connector::new(config)
            .observer(observer)
            .connect(address)
    }

    async fn connect_to(
        addrs: &[SocketAddr],
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        blocking::Connector::new(config)
            .observer(observer)
            .connect_to(addrs)
    }

    fn accepted(
        stream: TcpStream,
        config: Config,
        observer: impl Observer + 'static,
    ) -> io::Result<Self::Connection> {
        blocking::Connection::accepted(stream, config, StdClock::new(), observer)
    }

    async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<()> {
        Server::bind(addr, config).map(drop)
    }

    fn run<T>(work: impl Future<Output = T>) -> T {
        block_on(work)
    }

    fn spawn<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> ThreadTask<T> {
        let (ended, end) = mpsc::channel();
        let thread = thread::spawn(move || {
            let output = block_on(work);
            let _ = ended.send(());
            output
        });
        ThreadTask { thread, end }
    }

    async fn sleep(duration: Duration) {
        thread::sleep(duration);
    }

    fn baseline() -> usize {
        super::open_process_wide::<Self>();
        fd_count()
    }
}

/// Work on a thread of its own.
#[derive(Debug)]
pub struct ThreadTask<T> {
    thread: thread::JoinHandle<T>,
    /// Disconnected, or sent to, when the work has ended.
    end: mpsc::Receiver<()>,
}

impl<T: Send + 'static> Task<T> for ThreadTask<T> {
    async fn join(self) -> T {
        self.thread
            .join()
            .unwrap_or_else(|panic| panic::resume_unwind(panic))
    }

    async fn join_within(self, limit: Duration) -> Option<T> {
        match self.end.recv_timeout(limit) {
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            _ => Some(self.join().await),
        }
    }
}

impl Receiving for blocking::Connection {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        blocking::Connection::recv(self, buf)
    }
}

impl Sending for blocking::Connection {
    async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        blocking::Connection::send(self, buf)
    }

    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        blocking::Connection::send_all(self, buf)
    }

    fn shutdown_send(&mut self) -> io::Result<()> {
        blocking::Connection::shutdown_send(self)
    }
}

impl Connection for blocking::Connection {
    type ReadHalf = ReadHalf;
    type WriteHalf = WriteHalf;
    type AbortHandle = blocking::AbortHandle;

    async fn close(&mut self) -> io::Result<CloseReason> {
        blocking::Connection::close(self)
    }

    fn abort(&mut self) -> CloseReason {
        blocking::Connection::abort(self)
    }

    fn abort_handle(&self) -> Self::AbortHandle {
        blocking::Connection::abort_handle(self)
    }

    fn close_reason(&self) -> Option<CloseReason> {
        blocking::Connection::close_reason(self)
    }

    fn lifecycle(&self) -> &Lifecycle {
        blocking::Connection::lifecycle(self)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        blocking::Connection::peer_addr(self)
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        blocking::Connection::set_idle_timeout(self, timeout)
    }

    fn split(self) -> (ReadHalf, WriteHalf) {
        blocking::Connection::split(self)
    }
}

impl Receiving for ReadHalf {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        ReadHalf::recv(self, buf)
    }
}

impl Sending for WriteHalf {
    async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        WriteHalf::send(self, buf)
    }

    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        WriteHalf::send_all(self, buf)
    }

    fn shutdown_send(&mut self) -> io::Result<()> {
        WriteHalf::shutdown_send(self)
    }
}

impl AbortHandle for blocking::AbortHandle {
    fn abort(&self) {
        blocking::AbortHandle::abort(self);
    }
}
