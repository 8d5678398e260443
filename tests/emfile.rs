//! S8: the descriptor limit reached while accepting (`EMFILE`); and L3 at that limit, a drain
//! whose wake-up connection cannot be made. Each through each adapter's server:
//! `blocking::s8_...` and, with the `tokio` feature, `tokio::s8_...`.
//!
//! Each test lowers this process's descriptor limit, so it runs in a child process: it re-runs
//! this test binary with only this test and an environment variable that makes it the child.

// Lowering the descriptor limit (`setrlimit`) and reading the process's CPU time (`getrusage`,
// which needs no descriptor, unlike /proc) are libc calls.
#![allow(unsafe_code)]
// Descriptor limits are Unix's: on Windows the scenario is compiled out and its test reported as
// ignored, with the reason (see the stub at the end).
#![cfg_attr(windows, allow(dead_code, unused_imports))]

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use socket_lifecycle::blocking::ServerConfig;
use socket2::{Domain, Protocol, Socket, Type};
use support::{Adapter, echo_handler, for_each_adapter, read_all};

for_each_adapter! {
    #[cfg_attr(
        windows,
        ignore = "S8 is Unix only: Windows has no per-process descriptor limit (RLIMIT_NOFILE) to \
                  lower"
    )]
    s8_descriptor_limit_keeps_serving_backs_off_and_recovers,
    #[cfg_attr(
        windows,
        ignore = "Unix only: Windows has no per-process descriptor limit (RLIMIT_NOFILE) to lower"
    )]
    l3_drain_at_the_descriptor_limit_stops_a_server_waiting_in_accept,
}

const CHILD: &str = "SOCKET_LIFECYCLE_S8_CHILD";
const NAME: &str = "s8_descriptor_limit_keeps_serving_backs_off_and_recovers";
const L3_CHILD: &str = "SOCKET_LIFECYCLE_L3_EMFILE_CHILD";
const L3_NAME: &str = "l3_drain_at_the_descriptor_limit_stops_a_server_waiting_in_accept";
/// Clients, made before the limit is lowered (a client needs no new descriptor to connect).
const CLIENTS: usize = 8;
/// Descriptors left for the server to accept into.
const ROOM: usize = 3;
/// How long the test watches the server while it cannot accept.
const STARVED: Duration = Duration::from_secs(1);
/// More failed accepts than this while starved is a spinning server (the backoff, 5 ms doubling
/// to 1 s, allows about 10 in the whole test).
const MAX_FAILURES: u64 = 50;
/// More CPU time than this while starved is a spinning server (a spinning one burns ~STARVED).
const MAX_CPU: Duration = Duration::from_millis(400);

// On Windows there is no descriptor limit to lower: Winsock has no `RLIMIT_NOFILE`, and running
// out of sockets there (`WSAEMFILE`, `WSAENOBUFS`) is a system-wide condition a test cannot bring
// about in its own process. There the tests are reported ignored, with the reason, and do nothing.

fn s8_descriptor_limit_keeps_serving_backs_off_and_recovers<A: Adapter>() {
    #[cfg(unix)]
    if std::env::var_os(CHILD).is_some() {
        child::<A>();
    } else {
        run_child::<A>(NAME, CHILD, "S8", "S8 summary");
    }
}

fn l3_drain_at_the_descriptor_limit_stops_a_server_waiting_in_accept<A: Adapter>() {
    #[cfg(unix)]
    if std::env::var_os(L3_CHILD).is_some() {
        l3_child::<A>();
    } else {
        run_child::<A>(L3_NAME, L3_CHILD, "L3", "L3 drained");
    }
}

/// Runs the test `name` of this binary, for adapter `A`, again, alone, in a child process with
/// `marker` set in its environment (which makes it run the scenario), and checks that the child
/// passed and printed `proof`, so that a child that ran nothing is not taken for a pass. Its
/// lines that start with `rule` are shown.
#[cfg(unix)]
fn run_child<A: Adapter>(name: &str, marker: &str, rule: &str, proof: &str) {
    let output = std::process::Command::new(std::env::current_exe().expect("this test's binary"))
        .args([
            &format!("{}::{name}", A::NAME),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(marker, "1")
        .output()
        .unwrap_or_else(|e| panic!("{rule}: running the child: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| l.starts_with(rule)) {
        eprintln!("{line}");
    }
    assert!(
        output.status.success(),
        "{rule} violated: the child failed: {:?}\n{}\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains(proof),
        "{rule} test defect: the child did not run the scenario\n{stderr}"
    );
}

#[cfg(unix)]
/// Open descriptor numbers, not counting the one reading the directory.
fn open_descriptors() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(Result::ok)
        .filter(|entry| {
            // The directory's own descriptor points at it; it is free again once read.
            !std::fs::read_link(entry.path()).is_ok_and(|target| target.ends_with("fd"))
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(unix)]
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given a pointer to; zeroed is a valid rusage.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()),
            0,
            "S8: getrusage"
        );
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Sets this process's soft descriptor limit; returns the one before.
#[cfg(unix)]
fn set_descriptor_limit(soft: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or fill the struct they are given a pointer to.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "getrlimit"
        );
        let before = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "setrlimit");
        before
    }
}

/// Sends `message` and waits up to `wait` for its echo: whether it came.
fn echoed(stream: &mut TcpStream, message: &[u8], wait: Duration) -> bool {
    stream
        .set_read_timeout(Some(wait))
        .expect("S8: read timeout");
    if !message.is_empty() {
        stream.write_all(message).expect("S8: sending");
    }
    let mut got = vec![0; message.len()];
    match stream.read_exact(&mut got) {
        Ok(()) => {
            assert_eq!(got, message, "S8 violated: the echo is wrong");
            true
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(e) => panic!("S8 violated: a client's connection failed: {e}"),
    }
}

#[cfg(unix)]
fn child<A: Adapter>() {
    // Made before the descriptors are counted: the adapter keeps it for the life of the process.
    support::open_process_wide::<A>();
    let server = A::serve(
        ServerConfig::default().with_drain_timeout(Duration::from_secs(5)),
        echo_handler,
    );
    let sockets: Vec<Socket> = (0..CLIENTS)
        .map(|_| {
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
                .expect("S8: a client socket")
        })
        .collect();
    // The limit: exactly ROOM free descriptor numbers below it.
    let open = open_descriptors();
    let mut free = 0;
    let mut limit: i32 = 0;
    while free < ROOM {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    let open_count = open.len();
    set_descriptor_limit(limit as libc::rlim_t);
    eprintln!(
        "S8 child: {open_count} descriptors open, limit lowered to {limit}, room for {ROOM} accepts"
    );

    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        socket
            .connect(&server.addr.into())
            .expect("S8: connecting (the backlog takes it)");
        let mut stream = TcpStream::from(socket);
        let message = format!("hello {i}");
        if echoed(&mut stream, message.as_bytes(), Duration::from_millis(300)) {
            served.push(stream);
        } else {
            waiting.push((stream, message));
        }
    }
    eprintln!(
        "S8 child: {} clients served, {} waiting for an accept",
        served.len(),
        waiting.len()
    );
    assert!(
        !served.is_empty(),
        "S8 violated: no client served before the limit"
    );
    assert!(
        !waiting.is_empty(),
        "S8 test defect: the limit was never reached"
    );

    // Starved: the server must keep serving what it has, without spinning.
    let cpu_before = cpu_time();
    let watch = Instant::now();
    let mut rounds = 0;
    while watch.elapsed() < STARVED {
        for (i, stream) in served.iter_mut().enumerate() {
            let again = format!("again {i}");
            assert!(
                echoed(stream, again.as_bytes(), Duration::from_secs(5)),
                "S8 violated: a served connection stopped echoing while the server could not accept"
            );
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_time() - cpu_before;
    eprintln!(
        "S8 child: over {:.0} ms starved, {rounds} echo rounds on the served connections, process CPU time {:.1} ms",
        support::ms(watch.elapsed()),
        support::ms(cpu)
    );
    assert!(
        cpu <= MAX_CPU,
        "S8 violated: the process burnt {cpu:?} of CPU in {STARVED:?} while it could not accept (spinning?)"
    );

    // Recovery: once the served clients leave, the waiting ones are accepted and served.
    let freed = Instant::now();
    for mut stream in served.drain(..) {
        stream.shutdown(Shutdown::Write).expect("S8: shutting down");
        let (_, error) = read_all(&mut stream);
        assert!(
            error.is_none(),
            "S8 violated: a served client ended with {error:?}"
        );
    }
    let waiting_count = waiting.len();
    for (stream, message) in &mut waiting {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("S8: read timeout");
        let mut got = vec![0; message.len()];
        stream.read_exact(&mut got).unwrap_or_else(|e| {
            panic!("S8 violated: a waiting client was not served after descriptors were freed: {e}")
        });
        assert_eq!(got, message.as_bytes(), "S8 violated: the echo is wrong");
    }
    let recovered = freed.elapsed();
    for (mut stream, _) in waiting {
        stream.shutdown(Shutdown::Write).expect("S8: shutting down");
        let (_, error) = read_all(&mut stream);
        assert!(
            error.is_none(),
            "S8 violated: a recovered client ended with {error:?}"
        );
    }
    let report = server.finish("S8");
    eprintln!("S8 child: {report:?}");
    assert!(
        report.accept_failures >= 1,
        "S8 test defect: no accept failed"
    );
    assert!(
        report.accept_failures <= MAX_FAILURES,
        "S8 violated: {} failed accepts: the server spins instead of backing off",
        report.accept_failures
    );
    assert_eq!(report.accepted, CLIENTS as u64, "S8 violated: {report:?}");
    eprintln!(
        "S8 summary: connections {CLIENTS} ({} waited for descriptors), accept failures {}, CPU while starved {:.1} ms, all waiting served {:.0} ms after descriptors were freed, bytes lost 0",
        waiting_count,
        report.accept_failures,
        support::ms(cpu),
        support::ms(recovered)
    );
}

/// A drain asked for while the accept loop waits in `accept` and no descriptor is left, so a
/// drain handle that wakes the loop with a connection of its own (the blocking server's) cannot
/// make it: `serve` still returns.
#[cfg(unix)]
fn l3_child<A: Adapter>() {
    let running = A::serve(ServerConfig::default(), |_| Box::pin(async { Ok(()) }));
    std::thread::sleep(Duration::from_millis(100)); // the accept loop waits in `accept`
    // No new descriptor from now on: no wake-up connection can be made.
    let before = set_descriptor_limit(0);
    assert!(
        TcpStream::connect(running.addr).is_err(),
        "L3 test defect: a descriptor could still be made"
    );
    running.drain();
    let report = running.wait(support::HANG, "L3 (drain at the descriptor limit)");
    set_descriptor_limit(before);
    eprintln!("L3 drained: {report:?}");
}
