//! Whether the peer acknowledged everything we sent, our end of stream included (rule C13): the
//! one question no readiness event answers and no safe crate asks for us.
//!
//! On Linux and Android it is `getsockopt(TCP_INFO)`'s state: once our `FIN` is acknowledged,
//! and with it every byte before it, the connection is in `FIN_WAIT2`, `TIME_WAIT` or `CLOSE`.
//! The call is `unsafe` (a C struct filled through a pointer), so it is kept to this one small
//! function. Elsewhere the platform is not asked, and the answer is "cannot tell".

// The one place the crate allows `unsafe`: `libc::getsockopt` fills a `tcp_info` it is given.
#![allow(unsafe_code)]

use std::io;

use socket2::Socket;

/// `Some(true)` once the peer acknowledged every byte we sent and our `FIN`; `Some(false)`
/// while some of it is unacknowledged; `None` where the platform cannot tell.
///
/// # Errors
/// `getsockopt` failed (the socket is not a TCP socket, say).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn acknowledged(socket: &Socket) -> io::Result<Option<bool>> {
    use std::os::fd::AsRawFd;

    // SAFETY: `tcp_info` is a plain C struct of integers, for which all zeroes is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>())
        .map_err(|_| io::Error::other("tcp_info is larger than a socklen_t"))?;
    // SAFETY: the descriptor is the socket's, open for the borrow; `info` and `len` point to
    // writable memory of the size `len` says, which the kernel fills at most.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // `FIN_WAIT2`, `TIME_WAIT`, `CLOSE` (linux/tcp_states.h): our FIN acknowledged, so every byte
    // before it was. `CLOSE` is also where a reset or the kernel giving up leaves a connection:
    // then the socket holds their error, which is the answer instead.
    const CLOSE: u8 = 7;
    const ACKNOWLEDGED: [u8; 3] = [5, 6, CLOSE];
    if info.tcpi_state == CLOSE {
        if let Some(error) = socket.take_error()? {
            return Err(error);
        }
    }
    Ok(Some(ACKNOWLEDGED.contains(&info.tcpi_state)))
}

/// Elsewhere: the platform is not asked.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn acknowledged(_: &Socket) -> io::Result<Option<bool>> {
    Ok(None)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};

    #[test]
    fn c13_a_connection_the_peer_reset_is_never_called_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let server = Socket::from(server);
        // The peer ends its stream, then resets: the connection is down, nothing of ours was
        // acknowledged, and the kernel's state is CLOSE.
        client
            .shutdown(Shutdown::Write)
            .expect("the peer's end of stream");
        socket2::SockRef::from(&client)
            .set_linger(Some(std::time::Duration::ZERO))
            .expect("linger zero");
        drop(client);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match acknowledged(&server) {
                Err(error) => {
                    assert!(
                        matches!(
                            error.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ),
                        "C13: the reset's error, not {error}"
                    );
                    return;
                }
                Ok(Some(true)) => {
                    panic!("C13 violated: a connection the peer reset was called acknowledged")
                }
                Ok(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "C13: the reset never came"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    #[test]
    fn c13_our_fin_is_acknowledged_by_a_live_peer_and_not_before_it_is_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let server = Socket::from(server);
        assert_eq!(
            acknowledged(&server).expect("TCP_INFO"),
            Some(false),
            "C13: established, our FIN not sent: nothing to call acknowledged"
        );
        server.shutdown(Shutdown::Write).expect("shutdown");
        let mut client = client;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("the end of stream");
        // Loopback acknowledges at once; a little room for the kernel's timer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while acknowledged(&server).expect("TCP_INFO") != Some(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "C13: loopback never acknowledged our FIN"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
