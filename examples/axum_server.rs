//! An axum app served on the crate's tokio server: `axum::serve(server, app)`, where `server` is
//! a `socket_lifecycle::tokio::Server` instead of a `tokio::net::TcpListener`. Every connection
//! then gets the lingering close (an upload refused unread still gets its answer), a close reason,
//! the connection cap, and a drain with a deadline: Ctrl-C (SIGINT) or SIGTERM stops accepting,
//! lets open requests finish, and aborts what is still open at `--drain-timeout` (an endless
//! event stream, say), so the program exits.
//!
//! Routes: `/` answers "ok"; `/upload` answers 413 without reading the body; `/events` streams a
//! line a second, for ever.
//!
//! ```text
//! RUST_LOG=socket_lifecycle=debug cargo run --features axum,tracing --example axum_server -- [ADDR] [--drain-timeout D]
//! ```

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::{get, post};
use socket_lifecycle::tokio::Server;

#[allow(dead_code)] // each program uses its part of the shared module
mod common;

use common::server_log;
use common::server_options::{self, Options};
use common::stop::{Stop, drain_on_stop};

const PROGRAM: &str = "axum_server";

const DESCRIPTION: &str = "\
Serves an axum app: GET / answers \"ok\", POST /upload answers 413 without reading the body, GET
/events streams a line a second for ever. Ctrl-C (SIGINT) or SIGTERM drains the server: open
requests finish, what is still open at the drain timeout is aborted, and a summary is printed; a
second one exits at once. RUST_LOG (e.g. socket_lifecycle=debug) logs each connection's close.";

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
        println!("{}", server_options::help_for(PROGRAM, DESCRIPTION));
        return Ok(());
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let config = options.server_config()?;
    let server = Server::bind(options.listen_addr()?, config)
        .await
        .map_err(|error| error.to_string())?;
    println!("listening on {}", server.local_addr());

    let drain = server.drain_handle();
    let stop = Stop::new().map_err(|error| format!("cannot handle Ctrl-C: {error}"))?;
    tokio::spawn(drain_on_stop(stop, drain.clone(), config.drain_timeout));
    let draining = drain.clone();
    axum::serve(server, app())
        .with_graceful_shutdown(async move { draining.draining().await })
        .await
        .map_err(|error| format!("serving: {error}"))?;
    // Connections axum let go of may still be in their lingering close.
    let report = drain.drained().await;
    println!("{}", server_log::summary(&report));
    Ok(())
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route(
            "/upload",
            post(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "upload too large\n") }),
        )
        .route("/events", get(|| async { Body::from_stream(events()) }))
}

/// A line a second, for ever: what only a drain deadline ends.
fn events() -> impl futures_util::Stream<Item = Result<String, Infallible>> {
    futures_util::stream::unfold(0_u64, |n| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((Ok(format!("data: {n}\n\n")), n + 1))
    })
}
