//! T1: a connection split into a read half and a write half, used from two threads, is closed
//! exactly once, after both halves are done, and never while either half is inside a system
//! call on it.

use core::fmt;
use core::ops::Deref;

use super::sync::{Arc, AtomicUsize, Ordering};

// The state word shared by both halves. One read-modify-write on it decides each step, so a
// close request and a call that starts at the same moment are always ordered one way or the
// other: either the request sees the call in flight, or the call sees the request and is refused.
/// Set by the first close request, never cleared: no call may start afterwards.
const CLOSING: usize = 1 << 0;
/// The read half is inside a call.
const READ_IN_CALL: usize = 1 << 1;
/// The write half is inside a call.
const WRITE_IN_CALL: usize = 1 << 2;

/// Which half of a split connection.
// Deliberately exhaustive: a connection has two halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The half that receives.
    Read,
    /// The half that sends.
    Write,
}

impl Side {
    /// The other half.
    pub fn other(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }

    fn in_call(self) -> usize {
        match self {
            Self::Read => READ_IN_CALL,
            Self::Write => WRITE_IN_CALL,
        }
    }
}

struct Shared<T> {
    /// Dropping it is the close: it happens when the `Arc` holding it goes, after both halves.
    resource: T,
    state: AtomicUsize,
}

/// One half of a connection shared by two threads: the guard of rule T1.
///
/// [`Half::split`] puts the resource (a `TcpStream`, a raw descriptor wrapper: anything whose
/// drop is the close) behind two halves. The resource is dropped, which closes it, exactly
/// once, when the last half is dropped, and never while either half is inside a system call on it:
/// a [`Call`] borrows its half, so a half cannot go while one of its calls is in flight. The
/// descriptor number therefore cannot be reused by the kernel for another socket while a call
/// of either half may still use it.
///
/// # Protocol
///
/// One atomic word holds a `CLOSING` flag and, for each half, whether it is inside a call. Each
/// half is used by one thread at a time (calls take `&mut self`), so a half has at most one call
/// in flight and one bit per half is a count that cannot overflow.
///
/// - **Before every system call**, [`enter`](Half::enter): it sets the half's in-call bit unless
///   `CLOSING` is set, in one compare-and-swap. `None` means a close was requested: do not make
///   the call; the half is done and should be dropped. `Some(call)` gives `&T` for one call; drop
///   the [`Call`] when the system call has returned, which clears the bit.
/// - **To close**, either half calls [`request_close`](Half::request_close): one `fetch_or`
///   sets `CLOSING` and returns the word as it was, so the [`CloseRequest`] says whether this was
///   the first request and whether the *other* half was inside a call at that instant. If it
///   was, that call may be blocked (a `recv` on a silent peer) and will not see the flag until it
///   returns: wake it with a call that makes it return, such as `shutdown(Both)`, through
///   [`CloseRequest::resource`]. Then drop the half.
/// - **The other half**, woken (or finishing its call on its own), drops its [`Call`], gets
///   `None` from its next `enter`, and drops its half. The last drop closes the resource.
///
/// No wake-up is lost: a call that starts concurrently with a request either set its bit
/// before the request's `fetch_or` (the request sees it in flight) or runs its
/// compare-and-swap after it (it sees `CLOSING` and is refused). There is no third order.
///
/// A half dropped without a close request only says it is done with its direction: the other
/// half keeps working (after the peer's end of stream, the write half may still send).
///
/// That the close never comes while a call is in flight is the compiler's check, not a runtime
/// one: a half cannot be dropped while its [`Call`] lives.
///
/// ```compile_fail,E0505
/// let (mut read, write) = socket_lifecycle::Half::split(());
/// let call = read.enter();
/// drop(read); // error: `read` is borrowed by its call
/// drop(write); // if this compiled, it would be the close, with the call in flight
/// drop(call);
/// ```
///
/// # Example
///
/// A reader blocked in `read` on a silent peer, and a writer that decides to close:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{Shutdown, TcpListener, TcpStream};
/// use socket_lifecycle::{Half, Side};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let _peer = TcpStream::connect(listener.local_addr()?)?; // keeps the connection open, silent
/// let (stream, _) = listener.accept()?;
/// let (mut read_half, mut write_half) = Half::split(stream);
/// assert_eq!(read_half.side(), Side::Read);
///
/// let reader = std::thread::spawn(move || {
///     let mut buffer = [0; 64];
///     // Ask before every system call; `None` means a close was requested.
///     while let Some(call) = read_half.enter() {
///         match (&*call).read(&mut buffer) {
///             Ok(0) | Err(_) => break, // end of stream, or woken by the shutdown below
///             Ok(_) => {}
///         }
///     } // the call ends here, before the half can go
///     drop(read_half); // done with reading
/// });
///
/// if let Some(call) = write_half.enter() {
///     (&*call).write_all(b"bye")?;
/// }
/// let request = write_half.request_close();
/// assert!(request.is_first());
/// if request.other_in_call() {
///     // The reader may be blocked in `read`: make it return. Safe, the socket is still open.
///     let _ = request.resource().shutdown(Shutdown::Both);
/// }
/// assert!(write_half.enter().is_none()); // no call starts after the request
/// drop(write_half);
/// reader.join().expect("the reader returns");
/// // Both halves are gone: the socket was closed, once, by the last drop.
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Half<T> {
    shared: Arc<Shared<T>>,
    side: Side,
}

impl<T> Half<T> {
    /// Splits `resource` into its read half and its write half. Dropping the resource is its
    /// close; it happens when both halves have been dropped.
    pub fn split(resource: T) -> (Self, Self) {
        let shared = Arc::new(Shared {
            resource,
            state: AtomicUsize::new(0),
        });
        let read = Self {
            shared: Arc::clone(&shared),
            side: Side::Read,
        };
        let write = Self {
            shared,
            side: Side::Write,
        };
        (read, write)
    }

    /// Which half this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Asks to make one system call on the resource: `Some` while no close was requested, and
    /// the call is then counted as in flight until the returned [`Call`] is dropped; `None` once
    /// a close was requested by either half, and the caller must not make the call.
    pub fn enter(&mut self) -> Option<Call<'_, T>> {
        let in_call = self.side.in_call();
        let state = &self.shared.state;
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current & CLOSING != 0 {
                return None;
            }
            // One compare-and-swap checks CLOSING and sets the bit: no request can slip between.
            match state.compare_exchange(
                current,
                current | in_call,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Call { half: self }),
                Err(now) => current = now,
            }
        }
    }

    /// Requests the close: no call of either half starts afterwards. The answer says, from the
    /// same atomic step, whether this was the first request and whether the other half was
    /// inside a call (which the caller must then wake, with `shutdown(Both)` or the like).
    pub fn request_close(&self) -> CloseRequest<'_, T> {
        let before = self.shared.state.fetch_or(CLOSING, Ordering::AcqRel);
        CloseRequest {
            first: before & CLOSING == 0,
            other_in_call: before & self.side.other().in_call() != 0,
            resource: &self.shared.resource,
        }
    }

    /// Puts the two halves of one split back together and gives the resource back, whole and
    /// not closed (so the last drop no longer closes it); both halves back, unchanged, if they
    /// are not the two halves of one resource. Owning both halves, the caller has no call in
    /// flight on either, so nothing else can hold the resource.
    ///
    /// ```
    /// let (read, write) = socket_lifecycle::Half::split(String::from("resource"));
    /// let resource = write.unsplit(read).expect("the two halves of one split");
    /// assert_eq!(resource, "resource");
    /// ```
    pub fn unsplit(self, other: Self) -> Result<T, (Self, Self)> {
        // One split has one half of each side: the same resource is the whole check.
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Err((self, other));
        }
        drop(other);
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => Ok(shared.resource),
            // Only the two halves share it, and the other is gone: not reached. Should it be,
            // the resource stays shared and closes with its last holder, as if split.
            Err(shared) => {
                let half = Self {
                    shared,
                    side: self.side,
                };
                let other = Self {
                    shared: Arc::clone(&half.shared),
                    side: half.side.other(),
                };
                Err((half, other))
            }
        }
    }

    /// Whether a close was requested by either half. A hint only: the answer of
    /// [`enter`](Half::enter) is the one to act on.
    pub fn is_closing(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) & CLOSING != 0
    }
}

impl<T> fmt::Debug for Half<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Half")
            .field("side", &self.side)
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

/// One system call in flight on a [`Half`]: gives `&T` for the call, and ends the call when
/// dropped. It borrows the half, so the half (and with it the close) waits for it.
pub struct Call<'a, T> {
    half: &'a Half<T>,
}

impl<T> Deref for Call<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.half.shared.resource
    }
}

impl<T> Drop for Call<'_, T> {
    fn drop(&mut self) {
        self.half
            .shared
            .state
            .fetch_and(!self.half.side.in_call(), Ordering::Release);
    }
}

impl<T> fmt::Debug for Call<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("side", &self.half.side)
            .finish_non_exhaustive()
    }
}

/// What [`Half::request_close`] found, in the same atomic step that set the close request.
pub struct CloseRequest<'a, T> {
    first: bool,
    other_in_call: bool,
    resource: &'a T,
}

impl<'a, T> CloseRequest<'a, T> {
    /// Whether this was the first close request of the connection (the other half had not
    /// requested one).
    pub fn is_first(&self) -> bool {
        self.first
    }

    /// Whether the other half was inside a system call when the request was made. If so, that
    /// call may be blocked and must be woken (`shutdown(Both)`) for the other half to finish; if
    /// not, the other half will be refused its next call and needs no wake-up.
    pub fn other_in_call(&self) -> bool {
        self.other_in_call
    }

    /// The resource, for the call that wakes the other half. It is still open: it closes only
    /// when both halves are gone, and this request borrows one of them.
    pub fn resource(&self) -> &'a T {
        self.resource
    }
}

impl<T> fmt::Debug for CloseRequest<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloseRequest")
            .field("first", &self.first)
            .field("other_in_call", &self.other_in_call)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(lifecycle_loom)))]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::mpsc;

    /// A resource that counts its closes and the calls made on it.
    #[derive(Debug, Default)]
    struct Probe {
        closes: Arc<StdAtomicUsize>,
        calls: StdAtomicUsize,
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe() -> (Probe, Arc<StdAtomicUsize>) {
        let closes = Arc::new(StdAtomicUsize::new(0));
        let probe = Probe {
            closes: Arc::clone(&closes),
            calls: StdAtomicUsize::new(0),
        };
        (probe, closes)
    }

    // Tests for the halves on one thread.

    #[test]
    fn t1_unsplit_gives_the_resource_back_without_closing_it() {
        for read_first in [true, false] {
            let (resource, closes) = probe();
            let (read, write) = Half::split(resource);
            let whole = if read_first {
                read.unsplit(write)
            } else {
                write.unsplit(read)
            };
            let Ok(whole) = whole else {
                panic!("T1 violated: the two halves of one split were not put back together");
            };
            assert_eq!(
                closes.load(Ordering::SeqCst),
                0,
                "T1 violated: unsplit closed"
            );
            drop(whole);
            assert_eq!(
                closes.load(Ordering::SeqCst),
                1,
                "T1 violated: not closed once"
            );
        }
    }

    #[test]
    fn t1_unsplit_refuses_halves_of_two_splits_and_closes_nothing() {
        let (one, one_closes) = probe();
        let (two, two_closes) = probe();
        let (read_one, write_one) = Half::split(one);
        let (read_two, mut write_two) = Half::split(two);
        let Err((mut read_one, write_two_back)) = read_one.unsplit(write_two) else {
            panic!("T1 violated: halves of two splits were put together");
        };
        write_two = write_two_back;
        // Each half given back is the one given, on its own resource, and nothing was closed.
        let resource_of = |half: &mut Half<Probe>| {
            half.enter()
                .map(|call| Arc::as_ptr(&call.closes))
                .expect("no close was requested")
        };
        assert_eq!(
            resource_of(&mut read_one),
            Arc::as_ptr(&one_closes),
            "T1 violated: a refused unsplit gave back another half"
        );
        assert_eq!(
            resource_of(&mut write_two),
            Arc::as_ptr(&two_closes),
            "T1 violated: a refused unsplit gave back another half"
        );
        assert_eq!(read_one.side(), Side::Read);
        assert_eq!(write_two.side(), Side::Write);
        let closed = one_closes.load(Ordering::SeqCst) + two_closes.load(Ordering::SeqCst);
        assert_eq!(closed, 0, "T1 violated: a refused unsplit closed");
        drop((read_one, write_one, read_two, write_two));
        assert_eq!(
            one_closes.load(Ordering::SeqCst),
            1,
            "T1 violated: not closed once"
        );
        assert_eq!(
            two_closes.load(Ordering::SeqCst),
            1,
            "T1 violated: not closed once"
        );
    }

    #[test]
    fn t1_closes_once_after_both_halves_in_either_order() {
        for read_first in [true, false] {
            let (resource, closes) = probe();
            let (read, write) = Half::split(resource);
            let (first, second) = if read_first {
                (read, write)
            } else {
                (write, read)
            };
            drop(first);
            assert_eq!(
                closes.load(Ordering::SeqCst),
                0,
                "T1 violated: closed early"
            );
            drop(second);
            assert_eq!(
                closes.load(Ordering::SeqCst),
                1,
                "T1 violated: not closed once"
            );
        }
    }

    #[test]
    fn t1_calls_are_allowed_until_a_close_is_requested() {
        let (resource, _closes) = probe();
        let (mut read, mut write) = Half::split(resource);
        for half in [&mut read, &mut write] {
            let call = half.enter().expect("no close requested yet");
            call.calls.fetch_add(1, Ordering::SeqCst);
        }
        assert!(!read.is_closing());
        let request = read.request_close();
        assert!(request.is_first());
        assert!(!request.other_in_call(), "the write half's call had ended");
        assert_eq!(request.resource().calls.load(Ordering::SeqCst), 2);
        assert!(
            read.enter().is_none(),
            "T1 violated: a call after the request"
        );
        assert!(
            write.enter().is_none(),
            "T1 violated: a call after the request"
        );
        assert!(write.is_closing());
    }

    #[test]
    fn t1_only_the_first_request_is_first() {
        let (resource, _closes) = probe();
        let (read, write) = Half::split(resource);
        assert!(write.request_close().is_first());
        assert!(!read.request_close().is_first());
        assert!(!write.request_close().is_first());
    }

    #[test]
    fn t1_a_request_sees_the_other_half_in_its_call_and_not_its_own_side() {
        let (resource, _closes) = probe();
        let (mut read, write) = Half::split(resource);
        let call = read.enter().expect("no close requested yet");
        let request = write.request_close();
        assert!(
            request.other_in_call(),
            "T1 violated: the read call went unseen"
        );
        drop(call);
        assert!(!write.request_close().other_in_call());
        assert!(read.enter().is_none());
    }

    #[test]
    fn sides_and_debug() {
        let (read, write) = Half::split(0_u8);
        assert_eq!(read.side().other(), write.side());
        assert_eq!(Side::Write.other(), Side::Read);
        assert_eq!(
            format!("{read:?}"),
            "Half { side: Read, closing: false, .. }"
        );
        let request = write.request_close();
        assert_eq!(
            format!("{request:?}"),
            "CloseRequest { first: true, other_in_call: false, .. }"
        );
    }

    // Tests across threads: a reader blocked in a call, woken by the close request.

    /// A stand-in for a socket whose `recv` blocks until `shutdown`.
    #[derive(Debug, Default)]
    struct Blocking {
        shut: Mutex<bool>,
        woken: std::sync::Condvar,
    }

    impl Blocking {
        fn recv(&self) {
            let mut shut = self.shut.lock().expect("not poisoned");
            while !*shut {
                shut = self.woken.wait(shut).expect("not poisoned");
            }
        }

        fn shutdown(&self) {
            *self.shut.lock().expect("not poisoned") = true;
            self.woken.notify_all();
        }
    }

    #[test]
    fn t1_a_blocked_reader_is_woken_and_the_close_waits_for_it() {
        for run in 0..200 {
            let (mut read, write) = Half::split(Blocking::default());
            let (entered, was_entered) = mpsc::channel();
            let reader = std::thread::spawn(move || {
                let mut calls = 0;
                while let Some(call) = read.enter() {
                    calls += 1;
                    let _ = entered.send(());
                    call.recv();
                }
                calls
            });
            // Even runs request the close once the reader is in its call (and blocked, or about
            // to be); odd runs race it. A lost wake-up would hang the reader and the join.
            let waited = run % 2 == 0 && was_entered.recv().is_ok();
            let request = write.request_close();
            if request.other_in_call() {
                request.resource().shutdown();
            }
            assert!(
                request.other_in_call() || !waited,
                "T1 violated: the call went unseen"
            );
            drop(write);
            let calls = reader.join().expect("the reader returns");
            assert!(calls <= 1, "T1 violated: a call after the close request");
            assert!(calls == 1 || !waited);
        }
    }

    #[test]
    fn t1_two_threads_racing_close_exactly_once() {
        for _ in 0..200 {
            let (resource, closes) = probe();
            let (mut read, mut write) = Half::split(resource);
            let reader = std::thread::spawn(move || {
                loop {
                    let Some(call) = read.enter() else {
                        return false;
                    };
                    let enough = call.calls.fetch_add(1, Ordering::SeqCst) > 50;
                    drop(call); // a half requests the close between its calls, not inside one
                    if enough {
                        return read.request_close().is_first();
                    }
                }
            });
            let mut first = false;
            // The call ends inside `map`: a `while let Some(call)` would keep the half borrowed
            // for the whole body, and the request needs it back.
            while let Some(enough) = write
                .enter()
                .map(|call| call.calls.fetch_add(1, Ordering::SeqCst) > 50)
            {
                if enough {
                    first = write.request_close().is_first();
                    break;
                }
            }
            drop(write);
            let reader_first = reader.join().expect("the reader returns");
            assert_ne!(
                first, reader_first,
                "T1 violated: not exactly one first request"
            );
            assert_eq!(
                closes.load(Ordering::SeqCst),
                1,
                "T1 violated: not closed once"
            );
        }
    }
}
