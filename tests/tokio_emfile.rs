//! S8 through the tokio adapter: the descriptor limit reached while accepting (`EMFILE`). The
//! server is a tokio `Server`; its backoff is a tokio timer. The peers and checks are those of
//! the blocking suite (`emfile.rs`).
//!
//! The test lowers this process's descriptor limit, so it runs in a child process: it re-runs
//! this test binary with only this test and an environment variable that makes it the child.

// Lowering the descriptor limit (`setrlimit`) and reading the process's CPU time (`getrusage`,
// which needs no descriptor, unlike /proc) are libc calls.
#![allow(unsafe_code)]
#![cfg(feature = "tokio")]

mod support;
mod tokio_support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use socket_lifecycle::tokio::ServerConfig;
use socket2::{Domain, Protocol, Socket, Type};
use support::read_all;
use tokio_support::{Running, echo_handler};

const CHILD: &str = "SOCKET_LIFECYCLE_TOKIO_S8_CHILD";
const NAME: &str = "s8_descriptor_limit_keeps_serving_backs_off_and_recovers";
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

#[test]
fn s8_descriptor_limit_keeps_serving_backs_off_and_recovers() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let output =
        std::process::Command::new(std::env::current_exe().expect("S8: this test's binary"))
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("S8: running the child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("S8")) {
        eprintln!("{line}");
    }
    assert!(
        output.status.success(),
        "S8 violated: the child failed: {:?}\n{}\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains("S8 summary"),
        "S8 test defect: the child did not run the scenario\n{stderr}"
    );
}

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

fn set_descriptor_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading and lowering this process's own limit through valid pointers.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "S8: getrlimit"
        );
        limit.rlim_cur = soft as libc::rlim_t;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "S8: setrlimit"
        );
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

fn child() {
    let server = Running::start(
        ServerConfig {
            drain_timeout: Duration::from_secs(5),
            ..ServerConfig::default()
        },
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
    let mut limit = 0;
    while free < ROOM {
        if !open.contains(&(limit as i32)) {
            free += 1;
        }
        limit += 1;
    }
    let open_count = open.len();
    set_descriptor_limit(limit);
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
