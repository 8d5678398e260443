//! The echo servers' command line: where to listen, and the flags that set their deadlines. Both
//! adapters take the same `ServerConfig`, so both servers read the same flags the same way.

use std::net::SocketAddr;
use std::time::Duration;

use socket_lifecycle::Config;
use socket_lifecycle::blocking::ServerConfig;

use super::{Arg, flag_value, parse_duration};

/// What the echo servers do, for their help.
const ECHO: &str = "\
Echoes each connection until the client's end of stream, then shuts its send side and closes
gracefully. Ctrl-C (SIGINT) or SIGTERM drains the server and prints a summary; a second one exits
at once.";

/// The flags, after a server's description in its help.
const FLAGS: &str = "\
  ADDR                   where to listen (default 127.0.0.1:27015; port 0: any free port)
  --idle-timeout D       close a connection that sends nothing for D (default: never)
  --linger-total D       bound on a whole graceful close (default 30s)
  --linger-idle D        bound on each wait for the client during a close (default 5s)
  --drain-timeout D      how long a drain waits before it aborts what is open (default 10s)
  -h, --help             this help

Durations are written like 250us, 500ms, 2s or 1.5s.";

/// The help of the echo server called `program`.
pub fn help(program: &str) -> String {
    help_for(program, ECHO)
}

/// The help of the server called `program`, which does what `description` says.
pub fn help_for(program: &str, description: &str) -> String {
    format!("usage: {program} [ADDR] [FLAGS]\n\n{description}\n\n{FLAGS}")
}

/// What the command line asked for.
#[derive(Debug)]
pub struct Options {
    addr: String,
    idle_timeout: Option<Duration>,
    linger_total: Option<Duration>,
    linger_idle: Option<Duration>,
    drain_timeout: Option<Duration>,
}

impl Options {
    /// Reads the command line; `None` if it asked for the help.
    pub fn parse() -> Result<Option<Self>, String> {
        let mut options = Self {
            addr: super::DEFAULT_ADDR.to_owned(),
            idle_timeout: None,
            linger_total: None,
            linger_idle: None,
            drain_timeout: None,
        };
        let mut addr = None;
        let mut args = super::args().into_iter();
        while let Some(arg) = args.next() {
            match arg {
                Arg::Flag { name, inline } => {
                    let slot = match name.as_str() {
                        "-h" | "--help" => return Ok(None),
                        "--idle-timeout" => &mut options.idle_timeout,
                        "--linger-total" => &mut options.linger_total,
                        "--linger-idle" => &mut options.linger_idle,
                        "--drain-timeout" => &mut options.drain_timeout,
                        _ => return Err(format!("unknown flag '{name}' (try --help)")),
                    };
                    let value = flag_value(&name, inline, &mut args)?;
                    *slot = Some(parse_duration(&name, &value)?);
                }
                Arg::Word(word) if addr.is_none() => addr = Some(word),
                Arg::Word(word) => {
                    return Err(format!("unexpected argument '{word}' (try --help)"));
                }
            }
        }
        if let Some(addr) = addr {
            options.addr = addr;
        }
        Ok(Some(options))
    }

    /// The address to listen on: the first one ADDR resolves to.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        super::resolve(&self.addr)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("'{}' resolved to no address", self.addr))
    }

    /// The server's settings; a linger bound given alone keeps the other within it.
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        let defaults = Config::default();
        let (total, idle) = match (self.linger_total, self.linger_idle) {
            (Some(total), Some(idle)) => (total, idle),
            (Some(total), None) => (total, defaults.linger_idle().min(total)),
            (None, Some(idle)) => (defaults.linger_total().max(idle), idle),
            (None, None) => (defaults.linger_total(), defaults.linger_idle()),
        };
        let connection = defaults
            .with_linger(total, idle)
            .map_err(|error| format!("bad linger times: {error}"))?;
        let mut config = ServerConfig::default()
            .with_connection(connection)
            .with_idle_timeout(self.idle_timeout);
        if let Some(drain_timeout) = self.drain_timeout {
            config.drain_timeout = drain_timeout;
        }
        Ok(config)
    }
}
