//! The soak (issue 13): 2,000 connections of mixed behaviour (echo, reset mid-stream, stop
//! reading, silent, never shut down, vanish after shutdown) against each adapter's server, with
//! deadlines of hundreds of milliseconds: not a byte lost on the well-behaved ones, each close
//! with its behaviour's reason and within its deadline plus 10 %, descriptors after = before.
//! The body is `tests/support/soak.rs`, which the bench `benches/soak.rs` runs with 10,000.
//!
//! `SOAK_CONNECTIONS=N` sets the count, `SOAK_CONCURRENCY=N` the clients at once (100);
//! `--nocapture` shows the figures.
//!
//! A file of its own: it counts this process's open descriptors; its instantiations run one at a
//! time (`serial`).

mod support;

use support::{Adapter, for_each_adapter, soak};

for_each_adapter! {
    #[cfg_attr(
        not(target_os = "linux"),
        ignore = "the soak reads /proc (descriptors, CPU time) and binds 127.1.x.y for each client"
    )]
    soak_mixed_connections_lose_no_byte_close_in_time_and_leak_nothing,
}

fn soak_mixed_connections_lose_no_byte_close_in_time_and_leak_nothing<A: Adapter>() {
    soak::run::<A>(soak::Settings::from_env(2_000));
}
