//! The seed's conversation over loopback sockets, both sides in one process, on the blocking
//! adapter: the server (`blocking::Server`, port 0) echoes until the client's end of stream and
//! shuts its send side; the client (`blocking::Connector`) sends, shuts its send side, reads until
//! the server's end of stream. Both sides' transitions are printed, then a one-line verdict.
//!
//! ```text
//! cargo run --example seed [-- MESSAGE]
//! ```
//!
//! PASS only if the client got back exactly what it sent, then end of stream, and each side
//! closed exactly once, gracefully. The exit status is 1 on FAIL.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use socket_lifecycle::blocking::{Connection, Connector, Event, Server, ServerConfig};
use socket_lifecycle::{CloseReason, Config};

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::Arg;

const USAGE: &str = "\
usage: seed [MESSAGE]

Runs the seed's server and client in one process over loopback, prints both sides' transitions
and a verdict line; exits 1 on FAIL. MESSAGE defaults to \"this is a test\".";

/// Every close a side's observers saw.
type Closes = Arc<Mutex<Vec<CloseReason>>>;

/// What the client saw.
#[derive(Default)]
struct ClientRun {
    reply: Vec<u8>,
    end_of_stream: bool,
    reason: Option<CloseReason>,
}

fn main() -> ExitCode {
    let mut message = None;
    for arg in common::args() {
        match arg {
            Arg::Flag { name, .. } if name == "-h" || name == "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Arg::Flag { name, .. } => {
                eprintln!("seed: unknown flag '{name}' (try --help)");
                return ExitCode::FAILURE;
            }
            Arg::Word(word) if message.is_none() => message = Some(word),
            Arg::Word(word) => {
                eprintln!("seed: unexpected argument '{word}' (try --help)");
                return ExitCode::FAILURE;
            }
        }
    }
    let message = message.unwrap_or_else(|| common::DEFAULT_MESSAGE.to_owned());
    match converse(message.as_bytes()) {
        Ok(problems) if problems.is_empty() => {
            println!(
                "verdict: PASS (the client got back its {} bytes, then end of stream; each side \
                 closed once, gracefully)",
                message.len()
            );
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            println!("verdict: FAIL ({})", problems.join("; "));
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("verdict: FAIL ({error})");
            ExitCode::FAILURE
        }
    }
}

/// Runs the conversation; returns what went wrong (nothing, for a PASS).
fn converse(message: &[u8]) -> io::Result<Vec<String>> {
    let config = ServerConfig::default()
        // Bounds the run if the client misbehaves; a good conversation never waits for it.
        .with_drain_timeout(Duration::from_secs(5));
    let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config)?;
    let addr = server.local_addr();
    println!("server: listening on {addr}");
    let drain = server.drain_handle();
    let server_closes = Closes::default();
    let observed = Arc::clone(&server_closes);
    let serving = std::thread::spawn(move || {
        server.serve(echo, move |peer| {
            observer(
                format!("server: [{} {}]", peer.id, peer.addr),
                Arc::clone(&observed),
            )
        })
    });

    let client_closes = Closes::default();
    let client = run_client(addr, message, &client_closes);

    // The server's connection closes by itself; the drain then finds nothing open.
    drain.drain();
    let report = serving
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))??;

    let mut problems = Vec::new();
    match &client {
        Ok(run) => {
            if run.reply != message {
                problems.push(format!(
                    "the client sent {} bytes and got back {} bytes that differ: {:?}",
                    message.len(),
                    run.reply.len(),
                    String::from_utf8_lossy(&run.reply)
                ));
            }
            if !run.end_of_stream {
                problems.push("the client saw no end of stream".to_owned());
            }
            if run.reason != Some(CloseReason::Graceful) {
                problems.push(format!("the client's close returned {:?}", run.reason));
            }
        }
        Err(error) => problems.push(format!("client: {error}")),
    }
    check_closes("client", &client_closes, &mut problems);
    check_closes("server", &server_closes, &mut problems);
    if report.accepted != 1 || report.graceful != 1 {
        problems.push(format!(
            "the server accepted {} connections and closed {} gracefully, not 1 and 1",
            report.accepted, report.graceful
        ));
    }
    Ok(problems)
}

/// The client's side: connect, send, shut the send side, read to end of stream, close.
fn run_client(addr: SocketAddr, message: &[u8], closes: &Closes) -> io::Result<ClientRun> {
    let mut connection = Connector::new(Config::default())
        .observer(observer("client:".to_owned(), Arc::clone(closes)))
        .connect_to(&[addr])?;
    let mut run = ClientRun::default();
    connection.send_all(message)?;
    connection.shutdown_send()?;
    let mut buffer = [0_u8; 4096];
    loop {
        match connection.recv(&mut buffer)? {
            0 => {
                run.end_of_stream = true;
                break;
            }
            n => run
                .reply
                .extend_from_slice(buffer.get(..n).unwrap_or_default()),
        }
    }
    println!(
        "client: received {:?}: sent {} bytes, received {} bytes",
        String::from_utf8_lossy(&run.reply),
        message.len(),
        run.reply.len()
    );
    run.reason = Some(connection.close()?);
    Ok(run)
}

/// The server's side of a connection: echo until the client's end of stream, shut the send side.
fn echo(connection: &mut Connection) -> io::Result<()> {
    let mut buffer = [0_u8; 4096];
    loop {
        match connection.recv(&mut buffer)? {
            0 => return connection.shutdown_send(),
            n => connection.send_all(buffer.get(..n).unwrap_or_default())?,
        }
    }
}

/// Prints each event after `prefix` and keeps each close's reason.
fn observer(prefix: String, closes: Closes) -> impl FnMut(&Event<'_>) + Send + 'static {
    let mut log = common::logger(prefix);
    move |event: &Event<'_>| {
        log(event);
        if let Event::Closed { reason, .. } = event {
            closes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(*reason);
        }
    }
}

/// Exactly one close, graceful.
fn check_closes(side: &str, closes: &Closes, problems: &mut Vec<String>) {
    let closes = closes.lock().unwrap_or_else(PoisonError::into_inner);
    match closes.as_slice() {
        [CloseReason::Graceful] => {}
        [reason] => problems.push(format!("the {side} closed with reason {reason}")),
        reasons => problems.push(format!(
            "the {side} closed {} times ({reasons:?}), not once",
            reasons.len()
        )),
    }
}
