//! A connection split into a read half and a write half for two tasks.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;

use super::abort_handle::Signal;
use super::connection::{Received, Sent, after, recv_once, send_once};
use super::{AbortHandle, Connection};
use crate::blocking::driver::{Driver, clone_error};
use crate::{CloseReason, Input, State};

/// What both halves share. Dropping it, after both halves, is the close.
struct Joint {
    /// `None` for a connection split after it closed: the core then lets no call through.
    stream: Option<TcpStream>,
    /// Never held across an `.await`.
    driver: Mutex<Driver>,
    signal: Arc<Signal>,
    idle_timeout: Option<Duration>,
}

impl Joint {
    fn lock(&self) -> MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Performs what the core asks on the shared socket. A `Close` waits for the last half: the
    /// other half may be about to make a call on the socket.
    fn perform(&self, driver: &mut Driver) {
        let socket = self.stream.as_ref().map(SockRef::from);
        let _ = driver.perform(socket.as_deref());
    }

    /// Applies `input` and performs what it brings.
    fn step(&self, driver: &mut Driver, input: Input) {
        let _ = driver.input(input);
        self.perform(driver);
    }

    /// Turns an abort asked for into the core's; once the core has closed, wakes the other half
    /// and tells it no call may start.
    fn settle(&self, driver: &mut Driver) {
        if self.signal.abort_requested() {
            self.step(driver, Input::Abort);
        }
        if driver.lifecycle.is_closed() {
            self.signal.set_closed();
        }
    }

    /// Fails with the closing error once closed (or aborted).
    fn check_open(&self, driver: &mut Driver) -> io::Result<()> {
        self.settle(driver);
        if driver.lifecycle.is_closed() {
            return Err(driver.closed_error());
        }
        Ok(())
    }
}

impl Drop for Joint {
    /// Both halves are gone: a connection whose both directions ended closes gracefully; one
    /// still open is reset, as a dropped [`Connection`] is. Then the socket goes, once.
    fn drop(&mut self) {
        let mut driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner);
        let input = match driver.lifecycle.state() {
            State::BothShut => Some(Input::Close),
            State::Closed => None,
            _ => Some(Input::Abandon),
        };
        if let Some(input) = input {
            let _ = driver.input(input);
            let socket = self.stream.as_ref().map(SockRef::from);
            let _ = driver.perform(socket.as_deref());
        }
        // Split after it closed, the connection has told its observer already.
        if self.stream.take().is_some() {
            driver.closed();
        }
    }
}

/// The receiving half of a [split](Connection::split) connection.
pub struct ReadHalf {
    joint: Arc<Joint>,
}

/// The sending half of a [split](Connection::split) connection.
pub struct WriteHalf {
    joint: Arc<Joint>,
}

impl Connection {
    /// Splits the connection for two tasks: one receives, one sends (rule T1). Both share the
    /// core behind a lock that is never held across an `.await`. The socket is closed once, when
    /// both halves are gone, and so never while either is inside a call on it. If by then the
    /// write half has shut the send side and the read half has read the peer's end of stream,
    /// the close is graceful; otherwise it is a reset ([`CloseReason::Abandoned`]). When the core
    /// closes the connection (an error, an abort), the other half's pending wait returns and no
    /// further call starts.
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
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        let (stream, driver, signal, idle_timeout) = self.into_parts();
        let joint = Arc::new(Joint {
            stream,
            driver: Mutex::new(driver),
            signal,
            idle_timeout,
        });
        (
            ReadHalf {
                joint: Arc::clone(&joint),
            },
            WriteHalf { joint },
        )
    }
}

impl ReadHalf {
    /// Receives into `buf`, as [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let joint = &*self.joint;
        {
            let mut driver = joint.lock();
            joint.check_open(&mut driver)?;
            if buf.is_empty() || !driver.lifecycle.may_receive() {
                return Ok(0);
            }
        }
        let Some(stream) = &joint.stream else {
            return Err(joint.lock().closed_error());
        };
        let received = recv_once(stream, buf, after(joint.idle_timeout), &joint.signal).await;
        let mut driver = joint.lock();
        let answer = match received {
            Received::Bytes(n) => {
                joint.step(&mut driver, Input::Received { len: n });
                Ok(n)
            }
            Received::EndOfStream => {
                joint.step(&mut driver, Input::EndOfStream);
                Ok(0)
            }
            Received::TimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no byte from the peer in time",
            )),
            Received::Raised => {
                joint.settle(&mut driver);
                Err(driver.closed_error())
            }
            Received::Failed(error) => {
                let copy = clone_error(&error);
                driver.fail(error);
                joint.perform(&mut driver);
                Err(copy)
            }
        };
        joint.settle(&mut driver);
        answer
    }

    /// A handle that aborts the connection (both halves) from anywhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(&self.joint.signal))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.joint.lock().lifecycle.close_reason()
    }
}

impl WriteHalf {
    /// Sends as much of `buf` as the kernel takes once there is room, as [`Connection::send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        let joint = &*self.joint;
        {
            let mut driver = joint.lock();
            joint.check_open(&mut driver)?;
            if !driver.lifecycle.may_queue() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "send after the send side was shut",
                ));
            }
        }
        let Some(stream) = &joint.stream else {
            return Err(joint.lock().closed_error());
        };
        let sent = send_once(stream, buf, after(joint.idle_timeout), &joint.signal).await;
        let mut driver = joint.lock();
        let failure = match sent {
            Sent::Bytes(n) => {
                joint.settle(&mut driver);
                return Ok(n);
            }
            Sent::TimedOut => {
                io::Error::new(io::ErrorKind::TimedOut, "the peer took no byte in time")
            }
            Sent::Raised => {
                joint.settle(&mut driver);
                return Err(driver.closed_error());
            }
            Sent::Failed(error) => error,
        };
        let copy = clone_error(&failure);
        driver.fail(failure);
        joint.perform(&mut driver);
        joint.settle(&mut driver);
        Err(copy)
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub async fn send_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = self.send(buf).await?;
            buf = buf.get(sent..).unwrap_or_default();
        }
        Ok(())
    }

    /// Shuts the send side, as [`Connection::shutdown_send`].
    ///
    /// # Errors
    /// As [`Connection::shutdown_send`].
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        let joint = &*self.joint;
        let mut driver = joint.lock();
        joint.check_open(&mut driver)?;
        driver.input(Input::ShutdownSend)?;
        joint.step(&mut driver, Input::Flushed);
        joint.settle(&mut driver);
        match driver.error() {
            Some(error) if driver.lifecycle.is_closed() => Err(clone_error(error)),
            _ => Ok(()),
        }
    }

    /// A handle that aborts the connection (both halves) from anywhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(Arc::clone(&self.joint.signal))
    }

    /// Why the connection closed; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.joint.lock().lifecycle.close_reason()
    }
}

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
