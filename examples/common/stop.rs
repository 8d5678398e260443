//! The tokio programs' stop signals: Ctrl-C (SIGINT), and SIGTERM on Unix. The first starts the
//! server's drain; a second exits at once.

use std::io;
use std::time::Duration;

use socket_lifecycle::tokio::DrainHandle;

use super::server_log;

/// The stop signals, listened for from the moment this is made.
pub struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    pub fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next stop signal.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The first stop signal drains; a second one exits at once.
pub async fn drain_on_stop(mut stop: Stop, drain: DrainHandle, drain_timeout: Duration) {
    stop.next().await;
    server_log::draining(drain_timeout);
    drain.drain();
    stop.next().await;
    server_log::exit_on_second_stop();
}
