//! What the seed's programs share: reading flags and durations, the log line of a connection's
//! event, and the one line a failure prints. Each program includes it with `mod common;` and uses
//! the part it needs; the echo servers, one on each adapter, also share their flags
//! (`server_options`) and their log (`server_log`), and the tokio programs their stop signals
//! (`stop`).

pub mod server_log;
pub mod server_options;
#[cfg(feature = "tokio")]
pub mod stop;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use socket_lifecycle::blocking::Event;

/// The message the seed's client sends when it is given none.
pub const DEFAULT_MESSAGE: &str = "this is a test";

/// The seed's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:27015";

/// One command-line argument: a flag with the value written inside it (`--name=value`), or a word.
#[derive(Debug)]
pub enum Arg {
    /// `--name` or `--name=value` (the value is `None` in the first form); also `-h`.
    Flag {
        name: String,
        inline: Option<String>,
    },
    /// Anything else, and everything after `--`.
    Word(String),
}

/// The arguments after the program's name, as [`Arg`]s.
pub fn args() -> Vec<Arg> {
    let mut out = Vec::new();
    let mut words_only = false;
    for arg in std::env::args_os().skip(1) {
        let arg = arg.to_string_lossy().into_owned();
        if words_only {
            out.push(Arg::Word(arg));
        } else if arg == "--" {
            words_only = true;
        } else if arg.starts_with('-') && arg.len() > 1 && !is_negative_number(&arg) {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            out.push(Arg::Flag { name, inline });
        } else {
            out.push(Arg::Word(arg));
        }
    }
    out
}

/// Whether `arg` is a negative number (`-1s`): a flag's value, to be refused as such, not a flag.
fn is_negative_number(arg: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
}

/// The value of flag `name`: written inside it, or the next argument (which must not be a flag).
pub fn flag_value(
    name: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = Arg>,
) -> Result<String, String> {
    if let Some(value) = inline {
        return Ok(value);
    }
    match rest.next() {
        Some(Arg::Word(value)) => Ok(value),
        _ => Err(format!("{name} needs a value (try --help)")),
    }
}

/// A duration written as a number and a unit: `250us`, `500ms`, `2s`, `1.5s`. Zero is refused:
/// every duration the programs take is a deadline.
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("{flag}: bad duration '{text}': {why} (write it like 250us, 500ms, 2s or 1.5s)")
    };
    if text.starts_with('-') {
        return Err(bad("it must not be negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad("no unit"))?;
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(bad("the unit must be us, ms or s")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(bad("not a number"));
    }
    if whole.len() > 12 || fraction.len() > 9 {
        return Err(bad("too many digits"));
    }
    let value = |part: &str| -> u128 { part.bytes().fold(0, |n, b| n * 10 + u128::from(b - b'0')) };
    let scale = 10_u128.pow(u32::try_from(fraction.len()).unwrap_or(0));
    let nanos = value(whole) * unit_nanos + value(fraction) * unit_nanos / scale;
    let nanos = u64::try_from(nanos).map_err(|_| bad("too long"))?;
    if nanos == 0 {
        return Err(bad("it must be longer than zero"));
    }
    Ok(Duration::from_nanos(nanos))
}

/// Every address `addr` (`HOST:PORT`) resolves to, in the resolver's order; at least one.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|error| match error.kind() {
            // What the standard library says of a missing or bad port.
            io::ErrorKind::InvalidInput => {
                format!("cannot resolve '{addr}': {error} (expected HOST:PORT)")
            }
            _ => format!("cannot resolve '{addr}': {error}"),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(format!("'{addr}' resolved to no address"));
    }
    Ok(addrs)
}

/// The log line of an event, without its prefix: `Established -> PeerShut on
/// handle_end_of_stream`, or `closed: graceful`, or `closed: reset by peer; Connection reset by
/// peer (os error 104)` when the operating system's error ended the connection.
pub fn event_line(event: &Event<'_>) -> Option<String> {
    match event {
        Event::Transition { from, to, input } => Some(format!("{from} -> {to} on {input}")),
        Event::Closed {
            reason,
            error: Some(error),
        } => Some(format!("closed: {reason}; {error}")),
        Event::Closed {
            reason,
            error: None,
        } => Some(format!("closed: {reason}")),
        _ => None,
    }
}

/// An observer that prints each event on its own line after `prefix`.
pub fn logger(prefix: String) -> impl FnMut(&Event<'_>) + Send + 'static {
    move |event: &Event<'_>| {
        if let Some(line) = event_line(event) {
            println!("{prefix} {line}");
        }
    }
}

/// The exit status of `program` once its work returned `result`: a failure is one line on stderr,
/// after the program's name.
pub fn exit_status(program: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{program}: {message}");
            ExitCode::FAILURE
        }
    }
}
