//! A connection split into a read half and a write half for two threads, on the T1 close guard.

use std::fmt;
use std::io;
use std::sync::Arc;

use socket2::Socket;

use super::wait::{self, ReadTimeout, ReaderWaker, WriteTimeout};
use super::{AbortHandle, Connection};
use crate::CloseReason;
use crate::adapter::{SplitHalf, Steps};

/// The receiving half of a [split](Connection::split) connection.
pub struct ReadHalf {
    half: SplitHalf<Arc<Socket>, ReaderWaker>,
}

/// The sending half of a [split](Connection::split) connection.
pub struct WriteHalf {
    half: SplitHalf<Arc<Socket>, ReaderWaker>,
    /// The socket's write timeout as last set: the write half is its only sender.
    write_timeout: WriteTimeout,
}

impl Connection {
    /// Splits the connection for two threads: one receives, one sends (rule T1). The socket is
    /// closed once, when both halves are gone, and never while either is inside a call on it.
    /// Dropping both is dropping the connection (A1): if the write half had not shut the send
    /// side, a reset ([`CloseReason::Abandoned`]); if it had, the lingering close, at once
    /// graceful when the read half has read the peer's end of stream too. When the core closes
    /// the connection (an error, say), either half asks the other to stop and wakes it if it is
    /// blocked in `recv`.
    ///
    /// ```
    /// use socket_lifecycle::{Config, blocking::Connection};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let address = listener.local_addr()?;
    /// let echo = std::thread::spawn(move || -> std::io::Result<()> {
    ///     let (mut stream, _) = listener.accept()?;
    ///     std::io::copy(&mut stream.try_clone()?, &mut stream)?;
    ///     Ok(())
    /// });
    ///
    /// let (mut read, mut write) = Connection::connect(address, Config::default())?.split();
    /// let writer = std::thread::spawn(move || -> std::io::Result<()> {
    ///     write.send_all(b"two threads")?;
    ///     write.shutdown_send()
    /// });
    /// let mut reply = Vec::new();
    /// let mut buffer = [0; 64];
    /// loop {
    ///     match read.recv(&mut buffer)? {
    ///         0 => break,
    ///         n => reply.extend_from_slice(&buffer[..n]),
    ///     }
    /// }
    /// writer.join().expect("the writer returns")?;
    /// assert_eq!(reply, b"two threads");
    /// drop(read); // both directions ended: the close is graceful
    /// echo.join().expect("the echo returns")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        let (read, write) = SplitHalf::split(self.into_endpoint());
        (
            ReadHalf { half: read },
            WriteHalf {
                half: write,
                write_timeout: WriteTimeout::default(),
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
        match self.half.reunite(write.half) {
            Ok(endpoint) => Ok(Connection::from_endpoint(endpoint)),
            Err((read, write)) => Err(ReuniteError(
                ReadHalf { half: read },
                WriteHalf {
                    half: write,
                    write_timeout: WriteTimeout::default(),
                },
            )),
        }
    }

    /// Receives into `buf`, as [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let answer = self
            .half
            .enter()
            // The halves set the read timeout before every `recv`: neither knows the other's.
            .and_then(|mut call| wait::recv(&mut call, buf, &mut ReadTimeout::default()));
        self.half.settle();
        answer
    }

    /// A handle that aborts the connection (both halves) from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.half.signal()))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.half.close_reason()
    }
}

impl WriteHalf {
    /// Sends as much of `buf` as the kernel takes now, as [`Connection::send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        let answer = self
            .half
            .enter()
            .and_then(|mut call| wait::send(&mut call, buf, &mut self.write_timeout));
        self.half.settle();
        answer
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let answer = self
            .half
            .enter()
            .and_then(|mut call| wait::send_all(&mut call, buf, &mut self.write_timeout));
        self.half.settle();
        answer
    }

    /// Shuts the send side, as [`Connection::shutdown_send`].
    ///
    /// # Errors
    /// As [`Connection::shutdown_send`].
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        self.half.shutdown_send()
    }

    /// A handle that aborts the connection (both halves) from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(self.half.signal()))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.half.close_reason()
    }
}

/// Reading is [`recv`](ReadHalf::recv), as for a whole [`Connection`].
impl io::Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

/// Writing is [`send`](WriteHalf::send), as for a whole [`Connection`]; flushing has nothing to
/// do.
impl io::Write for WriteHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let answer = self.half.enter().and_then(|mut call| call.flush());
        self.half.settle();
        answer
    }
}

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
