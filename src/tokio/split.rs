//! A connection split into a read half and a write half for two tasks, on the T1 close guard.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpStream;

use super::wait::{self, Timer, Wakers};
use super::{AbortHandle, Connection};
use crate::CloseReason;
use crate::adapter::{SplitHalf, Steps};

/// The receiving half of a [split](Connection::split) connection: [`AsyncRead`](tokio::io::AsyncRead).
pub struct ReadHalf {
    half: SplitHalf<TcpStream, Wakers>,
    timer: Timer,
}

/// The sending half of a [split](Connection::split) connection: [`AsyncWrite`](tokio::io::AsyncWrite).
pub struct WriteHalf {
    half: SplitHalf<TcpStream, Wakers>,
    timer: Timer,
}

impl Connection {
    /// Splits the connection for two tasks: one receives, one sends (rule T1). Both share the
    /// core behind a lock that is never held across an `.await`. The socket is closed once, when
    /// both halves are gone, and so never while either is inside a call on it. Dropping both is
    /// dropping the connection (A1): if the write half had not shut the send side, a reset
    /// ([`CloseReason::Abandoned`]); if it had, the lingering close, at once graceful when the
    /// read half has read the peer's end of stream too. When the core closes the connection (an
    /// error, an abort), the other half's pending wait returns and no further call starts.
    ///
    /// ```
    /// use socket_lifecycle::{Config, tokio::Connection};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let address = listener.local_addr()?;
    /// let echo = tokio::spawn(async move {
    ///     let (stream, _) = listener.accept().await?;
    ///     let (mut read, mut write) = stream.into_split();
    ///     tokio::io::copy(&mut read, &mut write).await
    /// });
    ///
    /// let (mut read, mut write) = Connection::connect(address, Config::default()).await?.split();
    /// let writer = tokio::spawn(async move {
    ///     write.send_all(b"two tasks").await?;
    ///     write.shutdown_send()
    /// });
    /// let mut reply = Vec::new();
    /// let mut buffer = [0; 64];
    /// loop {
    ///     match read.recv(&mut buffer).await? {
    ///         0 => break,
    ///         n => reply.extend_from_slice(&buffer[..n]),
    ///     }
    /// }
    /// writer.await??;
    /// assert_eq!(reply, b"two tasks");
    /// drop(read); // both directions ended: the close is graceful
    /// echo.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let (read, write) = SplitHalf::split(self.into_endpoint());
        (
            ReadHalf {
                half: read,
                timer: Timer::default(),
            },
            WriteHalf {
                half: write,
                timer: Timer::default(),
            },
        )
    }

    /// [`into_split`](Self::into_split), by its earlier name.
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        self.into_split()
    }
}

impl ReadHalf {
    /// Puts the two halves of one connection back together: the connection, as it is now
    /// (open, closing or closed).
    ///
    /// # Errors
    /// `write` is not the other half of this connection: both are given back in the error.
    pub fn reunite(self, write: WriteHalf) -> Result<Connection, ReuniteError> {
        let (read_timer, write_timer) = (self.timer, write.timer);
        match self.half.reunite(write.half) {
            Ok(endpoint) => Ok(Connection::from_endpoint(endpoint)),
            Err((read, write)) => Err(ReuniteError(
                ReadHalf {
                    half: read,
                    timer: read_timer,
                },
                WriteHalf {
                    half: write,
                    timer: write_timer,
                },
            )),
        }
    }

    /// Receives into `buf`, as [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        wait::call(
            self,
            // A call of its own: the idle deadline of an earlier one, cancelled, is not this
            // one's.
            |this| this.timer.disarm(),
            move |this, cx| this.poll_recv(cx, buf),
        )
    }

    /// [`recv`](Self::recv) in `poll` form, as [`Connection::poll_recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let answer = match self.half.enter() {
            Ok(mut call) => wait::poll_recv(&mut call, &mut self.timer, cx, buf),
            Err(closed) => Poll::Ready(Err(closed)),
        };
        self.half.settle();
        answer
    }

    /// A handle that aborts the connection (both halves) from anywhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.half.signal()))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.half.close_reason()
    }
}

impl WriteHalf {
    /// Sends as much of `buf` as the kernel takes once there is room, as [`Connection::send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send {
        wait::call(
            self,
            // A call of its own: the idle deadline of an earlier one, cancelled, is not this
            // one's.
            |this| this.timer.disarm(),
            move |this, cx| this.poll_send(cx, buf),
        )
    }

    /// [`send`](Self::send) in `poll` form, as [`Connection::poll_send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn poll_send(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let answer = match self.half.enter() {
            Ok(mut call) => wait::poll_send(&mut call, &mut self.timer, cx, buf),
            Err(closed) => Poll::Ready(Err(closed)),
        };
        self.half.settle();
        answer
    }

    /// `poll_flush`: see [`Steps::flush`].
    pub(crate) fn flush_steps(&mut self) -> io::Result<()> {
        let answer = self.half.enter().and_then(|mut call| call.flush());
        self.half.settle();
        answer
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_all(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        let mut rest = buf;
        wait::call(
            self,
            |this| this.timer.disarm(),
            move |this, cx| wait::poll_send_all(&mut rest, cx, |cx, part| this.poll_send(cx, part)),
        )
    }

    /// Shuts the send side, as [`Connection::shutdown_send`].
    ///
    /// # Errors
    /// As [`Connection::shutdown_send`].
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        self.half.shutdown_send()
    }

    /// A handle that aborts the connection (both halves) from anywhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.half.signal()))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.half.close_reason()
    }
}

super::wait::impl_async_read!(ReadHalf);
super::wait::impl_async_write!(WriteHalf);

/// Two halves given to [`ReadHalf::reunite`] that are not the halves of one connection, given
/// back.
#[derive(Debug)]
pub struct ReuniteError(pub ReadHalf, pub WriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the halves are not the two halves of one connection")
    }
}

impl std::error::Error for ReuniteError {}

impl fmt::Debug for ReadHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadHalf").finish_non_exhaustive()
    }
}

impl fmt::Debug for WriteHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}
