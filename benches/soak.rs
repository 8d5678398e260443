//! The soak at full size (issue 13): `cargo bench --features tokio --bench soak`.
//!
//! 10,000 connections of mixed behaviour (echo, reset mid-stream, stop reading, silent, never
//! shut down, vanish after shutdown) against the blocking adapter's server, then the tokio
//! adapter's, in this process, with deadlines of hundreds of milliseconds. The body, its checks
//! and the figures it prints are the test's (`tests/support/soak.rs`; `tests/soak.rs` runs it
//! with 2,000): connections and close reasons per behaviour, bytes echoed and lost, descriptors
//! before and after, how late the closes came past their deadlines (maximum, 99th percentile),
//! the wall time, and the CPU time of the server's threads and of the clients' thread over it.
//! A check that fails fails the bench, after the other adapter has run.
//!
//! `SOAK_CONNECTIONS=N` sets the count, `SOAK_CONCURRENCY=N` the clients at once (100).

// The tests' shared support, which allows what a user of a part of it leaves unused.
#[path = "../tests/support/mod.rs"]
mod support;

use std::panic;
use std::process::ExitCode;

use support::{Blocking, Tokio, soak};

/// The connections the issue asks for.
const CONNECTIONS: usize = 10_000;

fn main() -> ExitCode {
    let settings = soak::Settings::from_env(CONNECTIONS);
    let mut failed = Vec::new();
    for (name, run) in [
        (
            "blocking",
            (|s| drop(soak::run::<Blocking>(s))) as fn(soak::Settings),
        ),
        ("tokio", |s| drop(soak::run::<Tokio>(s))),
    ] {
        // The panic's message, which names the rule, is printed by the hook as it happens.
        if panic::catch_unwind(|| run(settings)).is_err() {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("soak: failed through {}", failed.join(" and "));
        ExitCode::FAILURE
    }
}
