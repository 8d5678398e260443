//! L3 at the descriptor limit: a drain asked for while the accept loop waits in `accept` and no
//! descriptor is left, so the drain handle cannot make the connection that would wake it.
//!
//! The test lowers this process's descriptor limit, so it runs in a child process: it re-runs
//! this test binary with only this test and an environment variable that makes it the child.

// Lowering and restoring the descriptor limit (`getrlimit`, `setrlimit`) are libc calls.
#![allow(unsafe_code)]

mod support;

use std::time::Duration;

use socket_lifecycle::blocking::ServerConfig;
use support::{HANG, Running};

const CHILD: &str = "SOCKET_LIFECYCLE_L3_EMFILE_CHILD";
const NAME: &str = "l3_drain_at_the_descriptor_limit_stops_a_server_waiting_in_accept";

#[test]
fn l3_drain_at_the_descriptor_limit_stops_a_server_waiting_in_accept() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let output =
        std::process::Command::new(std::env::current_exe().expect("L3: this test's binary"))
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("L3: running the child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "L3 violated: the child failed: {:?}\n{}\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains("L3 drained"),
        "L3 test defect: the child did not run the scenario\n{stderr}"
    );
}

/// Sets the soft descriptor limit; returns the one before.
fn set_soft_limit(soft: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or fill the struct they are given a pointer to.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit),
            0,
            "L3: getrlimit"
        );
        let before = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "L3: setrlimit"
        );
        before
    }
}

fn child() {
    let running = Running::start(ServerConfig::default(), |_| Ok(()));
    std::thread::sleep(Duration::from_millis(100)); // the accept loop waits in `accept`
    // No new descriptor from now on: the drain handle's wake-up connection cannot be made.
    let before = set_soft_limit(0);
    assert!(
        std::net::TcpStream::connect(running.addr).is_err(),
        "L3 test defect: a descriptor could still be made"
    );
    running.drain.drain();
    let report = running.wait(HANG, "L3 (drain at the descriptor limit)");
    set_soft_limit(before);
    eprintln!("L3 drained: {report:?}");
}
