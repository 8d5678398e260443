//! The seed's client on the blocking adapter: connect (trying each address the name resolves to),
//! send a message, shut the send side, read until the server's end of stream, close. Every
//! transition is logged, then what came back and the byte counts.
//!
//! ```text
//! cargo run --example echo_client -- [ADDR] [MESSAGE]
//! ```

use std::process::ExitCode;

use socket_lifecycle::Config;
use socket_lifecycle::blocking::Connector;

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::Arg;

const USAGE: &str = "\
usage: echo_client [ADDR] [MESSAGE]

Connects to ADDR (default 127.0.0.1:27015; a name is tried at each address it resolves to),
sends MESSAGE (default \"this is a test\"), shuts its send side, reads until the server's end
of stream, and closes. Exits 1 if anything fails or the close is not graceful.

  -h, --help   this help
  --           what follows is ADDR and MESSAGE, even if it starts with '-'";

fn main() -> ExitCode {
    common::exit_status("echo_client", run())
}

fn run() -> Result<(), String> {
    let mut words = Vec::new();
    for arg in common::args() {
        match arg {
            Arg::Flag { name, .. } if name == "-h" || name == "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            Arg::Flag { name, .. } => return Err(format!("unknown flag '{name}' (try --help)")),
            Arg::Word(word) if words.len() < 2 => words.push(word),
            Arg::Word(word) => return Err(format!("unexpected argument '{word}' (try --help)")),
        }
    }
    let mut words = words.into_iter();
    let addr = words
        .next()
        .unwrap_or_else(|| common::DEFAULT_ADDR.to_owned());
    let message = words
        .next()
        .unwrap_or_else(|| common::DEFAULT_MESSAGE.to_owned());

    let candidates = common::resolve(&addr)?;
    let listed: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    println!("connecting to {addr} ({})", listed.join(", "));

    let mut connection = Connector::new(Config::default())
        .observer(common::logger("[client]".to_owned()))
        .connect_to(&candidates)
        .map_err(|error| error.to_string())?;
    let peer = connection
        .peer_addr()
        .map_or_else(|_| addr.clone(), |peer| peer.to_string());

    connection
        .send_all(message.as_bytes())
        .map_err(|error| format!("cannot send to {peer}: {error}"))?;
    connection
        .shutdown_send()
        .map_err(|error| format!("cannot shut the send side to {peer}: {error}"))?;
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match connection.recv(&mut buffer) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(buffer.get(..n).unwrap_or_default()),
            Err(error) => return Err(format!("cannot receive from {peer}: {error}")),
        }
    }
    println!("received: {:?}", String::from_utf8_lossy(&reply));
    println!(
        "sent {} bytes, received {} bytes",
        message.len(),
        reply.len()
    );
    let reason = connection
        .close()
        .map_err(|error| format!("closing the connection to {peer} failed: {error}"))?;
    if reason.is_graceful() {
        Ok(())
    } else {
        Err(format!(
            "the connection to {peer} did not close gracefully: {reason}"
        ))
    }
}
