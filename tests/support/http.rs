//! HTTP clients for the tests of servers on the crate (hyper's, axum's): Python's, which are
//! not ours, run as child processes.

use std::process::Command;

/// Runs `script` with `python3`, its arguments after it, on a thread of its own; its standard
/// output. Fails the test if it fails.
pub async fn python(script: &'static str, args: Vec<String>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .expect("python's thread")
    .expect("python3 runs (it must be installed)");
    assert!(
        output.status.success(),
        "python failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("python's output is text")
}

/// S12's client, a raw socket as the simplest client is: it sends the whole request, body and
/// all, then reads the answer to the end of stream. Prints what it saw, a `key=value` a line.
pub const UPLOADING_CLIENT: &str = r#"
import errno, socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
def failure(error):
    return f"{errno.errorcode.get(error.errno, error.errno)} {error.strerror}"
s = socket.create_connection(("127.0.0.1", port), timeout=30)
request = b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % size
send_error = recv_error = "none"
try:
    s.sendall(request + bytes(size))
except OSError as error:
    send_error = failure(error)
answer = b""
try:
    while chunk := s.recv(65536):
        answer += chunk
except OSError as error:
    recv_error = failure(error)
s.close()
head, _, body = answer.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
length = next((int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length:")), -1)
print(f"send_error={send_error}")
print(f"recv_error={recv_error}")
print(f"answer_bytes={len(answer)}")
print(f"status={lines[0]}")
print(f"whole={length >= 0 and len(body) == length}")
"#;

/// What S12's client saw.
#[derive(Debug)]
pub struct Upload {
    pub send_error: String,
    pub recv_error: String,
    pub answer_bytes: usize,
    pub status: String,
    pub whole: bool,
}

impl Upload {
    pub fn parse(output: &str) -> Self {
        let field = |key: &str| {
            output
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| {
                    panic!("S12 test defect: no {key} in the client's output\n{output}")
                })
                .to_owned()
        };
        Self {
            send_error: field("send_error"),
            recv_error: field("recv_error"),
            answer_bytes: field("answer_bytes").parse().expect("a byte count"),
            status: field("status"),
            whole: field("whole") == "True",
        }
    }

    /// The client's exchange went as HTTP means it to: its whole request went out, and the
    /// answer came whole, status line and body, then a clean end of stream. (A client that
    /// stops at a failed send, as Python's `http.client` does, never reads an answer at all.)
    pub fn went_through(&self) -> bool {
        self.send_error == "none"
            && self.recv_error == "none"
            && self.status == "HTTP/1.1 413 Payload Too Large"
            && self.whole
    }
}
