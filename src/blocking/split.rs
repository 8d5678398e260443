//! A connection split into a read half and a write half for two threads, on the T1 close guard.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use socket2::Socket;

use super::Connection;
use super::driver::{Driver, clone_error};
use super::sys::{self, Received};
use crate::{Half, Input, State};

/// What both halves share. Dropping it, after both halves, is the close.
struct Joint {
    /// `None` for a connection split after it closed: the core then lets no call through.
    socket: Option<Arc<Socket>>,
    driver: Mutex<Driver>,
    abort_requested: Arc<AtomicBool>,
    idle_timeout: Option<Duration>,
}

impl Joint {
    fn lock(&self) -> MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `input` and performs what it brings; returns whether the core asked to close.
    fn step(&self, driver: &mut Driver, input: Input) -> bool {
        let _ = driver.input(input);
        driver.perform(self.socket.as_deref())
    }

    /// Fails with the closing error once closed; turns an abort asked for into the core's.
    fn check_open(&self, driver: &mut Driver) -> io::Result<bool> {
        let mut close = false;
        if self.abort_requested.load(Ordering::SeqCst) {
            close = self.step(driver, Input::Abort);
        }
        if driver.lifecycle.is_closed() {
            return Err(driver.closed_error());
        }
        Ok(close)
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
            let _ = driver.perform(self.socket.as_deref());
        }
        // A connection split after its close was released, and reported, before the split.
        if self.socket.is_some() {
            driver.closed();
        }
    }
}

/// The receiving half of a [split](Connection::split) connection.
pub struct ReadHalf {
    half: Half<Joint>,
}

/// The sending half of a [split](Connection::split) connection.
pub struct WriteHalf {
    half: Half<Joint>,
}

impl Connection {
    /// Splits the connection for two threads: one receives, one sends (rule T1). The socket is
    /// closed once, when both halves are gone, and never while either is inside a call on it.
    /// If by then the write half has shut the send side and the read half has read the peer's
    /// end of stream, the close is graceful; otherwise it is a reset
    /// ([`CloseReason::Abandoned`](crate::CloseReason::Abandoned)). When the core closes the
    /// connection (an error, say), either half asks the other to stop and wakes it if it is
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
    pub fn split(self) -> (ReadHalf, WriteHalf) {
        let idle_timeout = self.idle_timeout();
        let (socket, driver, abort_requested) = self.into_parts();
        let (read, write) = Half::split(Joint {
            socket,
            driver: Mutex::new(driver),
            abort_requested,
            idle_timeout,
        });
        (ReadHalf { half: read }, WriteHalf { half: write })
    }
}

impl ReadHalf {
    /// Receives into `buf`, as [`Connection::recv`].
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = {
            let Some(call) = self.half.enter() else {
                return Err(closed_error(&self.half));
            };
            let joint: &Joint = &call;
            {
                let mut driver = joint.lock();
                if joint.check_open(&mut driver)? {
                    drop(driver);
                    drop(call);
                    self.close_other();
                    return Err(closed_error(&self.half));
                }
                if buf.is_empty() || !driver.lifecycle.may_receive() {
                    return Ok(0);
                }
            }
            let Some(socket) = joint.socket.as_deref() else {
                return Err(joint.lock().closed_error());
            };
            let result = sys::recv_abortable(
                socket,
                buf,
                joint.idle_timeout,
                // Not kept: the halves set the read timeout before every `recv`.
                &mut sys::ReadTimeout::default(),
                &joint.abort_requested,
            );
            let mut driver = joint.lock();
            // Woken by an abort or by the other half's close: the 0 a shut receive side returns
            // is not the peer's end of stream.
            if let Err(error) = joint.check_open(&mut driver) {
                drop(driver);
                drop(call);
                self.close_other();
                return Err(error);
            }
            let (close, answer) = match result {
                Ok(Received::Bytes(n)) => {
                    (joint.step(&mut driver, Input::Received { len: n }), Ok(n))
                }
                Ok(Received::EndOfStream) => (joint.step(&mut driver, Input::EndOfStream), Ok(0)),
                Ok(Received::TimedOut) => (
                    false,
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no byte from the peer in time",
                    )),
                ),
                Err(error) => {
                    let copy = clone_error(&error);
                    driver.fail(error);
                    (driver.perform(joint.socket.as_deref()), Err(copy))
                }
            };
            let close = close || joint.check_open(&mut driver).unwrap_or(true);
            (close, answer)
        };
        if result.0 {
            self.close_other();
        }
        result.1
    }

    fn close_other(&self) {
        request_close(&self.half);
    }
}

impl WriteHalf {
    /// Sends as much of `buf` as the kernel takes now, as [`Connection::send`].
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (close, answer) = {
            let Some(call) = self.half.enter() else {
                return Err(closed_error(&self.half));
            };
            let joint: &Joint = &call;
            {
                let mut driver = joint.lock();
                if joint.check_open(&mut driver)? {
                    drop(driver);
                    drop(call);
                    request_close(&self.half);
                    return Err(closed_error(&self.half));
                }
                if !driver.lifecycle.may_queue() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "send after the send side was shut",
                    ));
                }
            }
            let Some(socket) = joint.socket.as_deref() else {
                return Err(joint.lock().closed_error());
            };
            let result = sys::send(socket, buf);
            let mut driver = joint.lock();
            match result {
                Ok(n) => (joint.check_open(&mut driver).unwrap_or(true), Ok(n)),
                Err(error) => {
                    let copy = clone_error(&error);
                    driver.fail(error);
                    (driver.perform(joint.socket.as_deref()), Err(copy))
                }
            }
        };
        if close {
            request_close(&self.half);
        }
        answer
    }

    /// Sends all of `buf`.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let sent = self.send(buf)?;
            buf = buf.get(sent..).unwrap_or_default();
        }
        Ok(())
    }

    /// Shuts the send side, as [`Connection::shutdown_send`].
    ///
    /// # Errors
    /// As [`Connection::shutdown_send`].
    pub fn shutdown_send(&mut self) -> io::Result<()> {
        let close = {
            let Some(call) = self.half.enter() else {
                return Err(closed_error(&self.half));
            };
            let joint: &Joint = &call;
            let mut driver = joint.lock();
            joint.check_open(&mut driver)?;
            driver.input(Input::ShutdownSend)?;
            let close = joint.step(&mut driver, Input::Flushed);
            if close {
                if let Some(error) = driver.error() {
                    let error = clone_error(error);
                    drop(driver);
                    drop(call);
                    request_close(&self.half);
                    return Err(error);
                }
            }
            close
        };
        if close {
            request_close(&self.half);
        }
        Ok(())
    }
}

/// The core closed the connection: no call of either half may start from now on; a `recv` the
/// other half is blocked in is woken. The socket goes with the last half.
fn request_close(half: &Half<Joint>) {
    let request = half.request_close();
    if let (true, Some(socket)) = (request.other_in_call(), &request.resource().socket) {
        sys::wake_reader(socket);
    }
}

fn closed_error(half: &Half<Joint>) -> io::Error {
    let request = half.request_close();
    request.resource().lock().closed_error()
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
