//! The seed's server, for many clients, on the blocking adapter: each connection echoes what it
//! receives until the client's end of stream, then shuts its send side, and the server closes it
//! gracefully. Ctrl-C (or SIGTERM) drains: no more accepts, open connections finish, and a
//! summary is printed. Every transition and every close of every connection is logged.
//!
//! ```text
//! cargo run --example echo_server -- [ADDR] [--idle-timeout D] [--linger-total D] [--linger-idle D]
//! ```

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use socket_lifecycle::blocking::{Connection, Server};

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::server_log::{self, ConnectionLog};
use common::server_options::{self, Options};

const PROGRAM: &str = "echo_server";

fn main() -> ExitCode {
    common::exit_status(PROGRAM, run())
}

fn run() -> Result<(), String> {
    let Some(options) = Options::parse()? else {
        println!("{}", server_options::help(PROGRAM));
        return Ok(());
    };
    let config = options.server_config()?;
    let server = Server::bind(options.listen_addr()?, config).map_err(|error| error.to_string())?;
    println!("listening on {}", server.local_addr());

    let drain = server.drain_handle();
    let stopping = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if stopping.swap(true, Ordering::SeqCst) {
            server_log::exit_on_second_stop();
        }
        server_log::draining(config.drain_timeout);
        drain.drain();
    })
    .map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;

    let log = ConnectionLog::default();
    let handler_log = log.clone();
    let report = server
        .serve(
            move |connection| echo(connection, &handler_log),
            move |peer| log.observer(peer),
        )
        .map_err(|error| format!("the server stopped: {error}"))?;
    println!("{}", server_log::summary(&report));
    Ok(())
}

/// One connection: echo until the client's end of stream, then shut the send side. The server
/// closes it afterwards.
fn echo(connection: &mut Connection, log: &ConnectionLog) -> io::Result<()> {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        match connection.recv(&mut buffer) {
            Ok(0) => break,
            Ok(n) => connection.send_all(buffer.get(..n).unwrap_or_default())?,
            Err(error) => {
                log.idle_timeout(&error, connection.close_reason(), || connection.peer_addr());
                return Err(error);
            }
        }
    }
    connection.shutdown_send()
}
