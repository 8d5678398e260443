//! The seed's server, for many clients, on the tokio adapter: `echo_server` with a task per
//! connection instead of a thread. Each connection echoes what it receives until the client's end
//! of stream, then shuts its send side, and the server closes it gracefully. Ctrl-C (or SIGTERM)
//! drains: no more accepts, open connections finish, and a summary is printed. Every transition
//! and every close of every connection is logged.
//!
//! ```text
//! cargo run --features tokio --example tokio_echo_server -- [ADDR] [--idle-timeout D] [--linger-total D] [--linger-idle D]
//! ```

use std::io;
use std::process::ExitCode;

use socket_lifecycle::tokio::{Connection, Server};

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::server_log::{self, ConnectionLog};
use common::server_options::{self, Options};
use common::stop::{Stop, drain_on_stop};

const PROGRAM: &str = "tokio_echo_server";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => Err(format!("cannot start the tokio runtime: {error}")),
    };
    common::exit_status(PROGRAM, result)
}

async fn run() -> Result<(), String> {
    let Some(options) = Options::parse()? else {
        println!("{}", server_options::help(PROGRAM));
        return Ok(());
    };
    let config = options.server_config()?;
    let server = Server::bind(options.listen_addr()?, config)
        .await
        .map_err(|error| error.to_string())?;
    println!("listening on {}", server.local_addr());

    let stop = Stop::new().map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;
    tokio::spawn(drain_on_stop(
        stop,
        server.drain_handle(),
        config.drain_timeout,
    ));

    let log = ConnectionLog::default();
    let handler_log = log.clone();
    let report = server
        .serve(
            move |connection| {
                let log = handler_log.clone();
                Box::pin(async move { echo(connection, &log).await })
            },
            move |peer| log.observer(peer),
        )
        .await
        .map_err(|error| format!("the server stopped: {error}"))?;
    println!("{}", server_log::summary(&report));
    Ok(())
}

/// One connection: echo until the client's end of stream, then shut the send side. The server
/// closes it afterwards.
async fn echo(connection: &mut Connection, log: &ConnectionLog) -> io::Result<()> {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        match connection.recv(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => {
                connection
                    .send_all(buffer.get(..n).unwrap_or_default())
                    .await?
            }
            Err(error) => {
                log.idle_timeout(&error, connection.close_reason(), || connection.peer_addr());
                return Err(error);
            }
        }
    }
    connection.shutdown_send()
}
