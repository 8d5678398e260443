//! The core's cost per handled input: `cargo bench --bench core`.
//!
//! A long trace of complete connection lives (client and server side, every kind of input, each
//! input valid where it comes) is generated once with a fixed seed, then replayed input by input:
//! one iteration is one input handed to [`Lifecycle::handle`] and the actions it asks for polled
//! (`input`), and the same plus [`Lifecycle::poll_timeout`], an adapter's whole turn
//! (`input_and_poll_timeout`). The floor (`floor`) is a match over one byte per input, the
//! inputs' kinds, over a trace of the same length. `steady_receive` is one established
//! connection receiving, input after input: every branch predicted, what is left is the work and
//! each input's wait for the state the one before left. At the end it prints the medians in ns per
//! input, the ratio to the floor, the allocations seen during the timed replays (a counting
//! global allocator; it must be zero) and the sizes of the machines.

// A counting global allocator implements `GlobalAlloc`, an unsafe trait: there is no other way to
// see every allocation. It only counts and hands everything to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::Criterion;
use socket_lifecycle::{
    Action, Config, Input, InputKind, Instant, IoErrorKind, Lifecycle, Listener, Outcome, State,
};

// ---- counting allocations ----------------------------------------------------------------------

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and inputs seen inside the timed replays, warm-up included.
static TIMED_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TIMED_INPUTS: AtomicU64 = AtomicU64::new(0);

// ---- the trace ---------------------------------------------------------------------------------

/// How many connection lives the trace holds: about 60,000 inputs, under 2 MB with their times,
/// so the replay measures the machine rather than the memory.
const LIVES: usize = 8_000;
const SEED: u64 = 0x5EED_2025_C0DE_0001;

/// SplitMix64: small, fast and good enough to pick inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn kind(&mut self) -> IoErrorKind {
        let all = IoErrorKind::ALL;
        all[self.below(all.len() as u64) as usize]
    }
}

/// One connection's life: how it starts, and its inputs in the trace.
struct Life {
    accepted_at: Option<Instant>,
    inputs: Range<usize>,
}

impl Life {
    fn start(&self, config: Config) -> Lifecycle {
        match self.accepted_at {
            Some(now) => Lifecycle::accepted(now, config),
            None => Lifecycle::new(config),
        }
    }
}

struct Trace {
    config: Config,
    lives: Vec<Life>,
    inputs: Vec<(Instant, Input)>,
    /// Each input's kind, as a byte: the floor's trace.
    kinds: Vec<u8>,
}

fn config() -> Config {
    Config::new()
        .with_connect_timeout(Duration::from_millis(100))
        .and_then(|c| c.with_linger(Duration::from_secs(1), Duration::from_millis(200)))
        .expect("valid settings")
}

/// The next input for `conn`, valid in its state, or `None` when its life is over.
fn next_input(rng: &mut Rng, conn: &Lifecycle, candidate: usize, step: usize) -> Option<Input> {
    // Past this many inputs a life is brought to its close.
    let wrap_up = step >= 24;
    Some(match conn.state() {
        State::Idle => match rng.below(100) {
            0..3 => Input::Close,
            3..6 => Input::Abort,
            6..8 => Input::Timeout,
            _ => Input::StartConnect {
                candidates: 1 + rng.below(3) as usize,
            },
        },
        State::Connecting => match rng.below(100) {
            0..45 => Input::Connected { candidate },
            45..70 => Input::ConnectFailed {
                candidate,
                kind: rng.kind(),
            },
            70..90 => Input::Timeout,
            90..94 => Input::Abort,
            94..97 => Input::Close,
            _ => Input::Abandon,
        },
        State::Closed => return None,
        _ if wrap_up && !conn.state().is_closing() => Input::Close,
        // The peer acknowledges our end of stream, most of the time before the deadline.
        State::Acknowledging if rng.chance(50) => Input::Acknowledged,
        _ => match rng.below(100) {
            0..40 if conn.may_receive() => Input::Received {
                len: 1 + rng.below(65_536) as usize,
            },
            40..48 if conn.may_receive() => Input::EndOfStream,
            0..62 => Input::Flushed,
            62..68 => Input::ShutdownSend,
            68..76 => Input::Close,
            76..94 => Input::Timeout,
            94..97 => Input::Error(rng.kind()),
            97 => Input::Abort,
            98 => Input::AbortForDrain,
            _ => Input::Abandon,
        },
    })
}

/// Generates the trace, checking every input is accepted (valid) as it goes.
fn generate() -> Trace {
    let config = config();
    let mut rng = Rng(SEED);
    let mut clock = Instant::ZERO;
    let mut lives = Vec::with_capacity(LIVES);
    let mut inputs = Vec::new();
    for _ in 0..LIVES {
        let first = inputs.len();
        let accepted_at = rng.chance(35).then_some(clock);
        let mut conn = match accepted_at {
            Some(now) => Lifecycle::accepted(now, config),
            None => Lifecycle::new(config),
        };
        let mut candidate = 0;
        let mut step = 0;
        while let Some(input) = next_input(&mut rng, &conn, candidate, step) {
            // Time passes between inputs; a timeout comes at its deadline, or a little before.
            clock = clock + Duration::from_micros(rng.below(2_000));
            if input == Input::Timeout {
                if let Some(deadline) = conn.poll_timeout() {
                    if rng.chance(80) {
                        clock = clock.max(deadline);
                    }
                }
            }
            let outcome = conn.handle(clock, input);
            assert!(
                outcome.is_ok(),
                "the trace must be valid: {input:?} in {:?} gave {outcome:?}",
                conn.state()
            );
            while let Some(action) = conn.poll_action() {
                if let Action::Connect { candidate: next } = action {
                    candidate = next;
                }
            }
            inputs.push((clock, input));
            step += 1;
        }
        lives.push(Life {
            accepted_at,
            inputs: first..inputs.len(),
        });
    }
    let kinds = inputs.iter().map(|(_, input)| input.kind() as u8).collect();
    Trace {
        config,
        lives,
        inputs,
        kinds,
    }
}

/// What the trace holds, for the report.
fn describe(trace: &Trace) {
    let mut counts = [0usize; InputKind::ALL.len()];
    for kind in &trace.kinds {
        counts[usize::from(*kind)] += 1;
    }
    let (mut changed, mut unchanged) = (0, 0);
    let mut reasons = std::collections::BTreeMap::new();
    for life in &trace.lives {
        let mut conn = life.start(trace.config);
        for (now, input) in &trace.inputs[life.inputs.clone()] {
            match conn.handle(*now, *input) {
                Ok(Outcome::Changed) => changed += 1,
                Ok(Outcome::Unchanged) => unchanged += 1,
                Err(e) => panic!("the replay differs from the generation: {e}"),
            }
            while conn.poll_action().is_some() {}
        }
        assert!(conn.is_closed(), "every life in the trace ends closed");
        let reason = conn
            .close_reason()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let reason = reason.split(':').next().unwrap_or_default().to_owned();
        *reasons.entry(reason).or_insert(0usize) += 1;
    }
    let clients = trace
        .lives
        .iter()
        .filter(|l| l.accepted_at.is_none())
        .count();
    println!(
        "trace: {} inputs ({} KiB) over {} connection lives ({} clients, {} accepted), seed {SEED:#x}",
        trace.inputs.len(),
        trace.inputs.len() * size_of::<(Instant, Input)>() / 1024,
        trace.lives.len(),
        clients,
        trace.lives.len() - clients
    );
    let mix: Vec<String> = InputKind::ALL
        .iter()
        .zip(counts)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!("  inputs: {}", mix.join(", "));
    println!("  outcomes: {changed} changed, {unchanged} unchanged, 0 refused");
    let ends: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!("  lives ended: {}", ends.join(", "));
}

// ---- the replays -------------------------------------------------------------------------------

/// Replays `n` inputs of the trace from its start, wrapping around; returns the time taken.
fn replay(trace: &Trace, n: u64, poll_timeout: bool) -> Duration {
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mut left = n;
    'replay: while left > 0 {
        for life in &trace.lives {
            let mut conn = life.start(trace.config);
            for (now, input) in &trace.inputs[life.inputs.clone()] {
                if left == 0 {
                    break 'replay;
                }
                left -= 1;
                black_box(conn.handle(*now, *input)).ok();
                while let Some(action) = conn.poll_action() {
                    black_box(action);
                }
                if poll_timeout {
                    black_box(conn.poll_timeout());
                }
            }
            black_box(&conn);
        }
    }
    let elapsed = started.elapsed();
    TIMED_ALLOCATIONS.fetch_add(
        ALLOCATIONS.load(Ordering::Relaxed) - allocations,
        Ordering::Relaxed,
    );
    TIMED_INPUTS.fetch_add(n, Ordering::Relaxed);
    elapsed
}

/// One established connection receiving, `n` times: the steadiest stream there is, every branch
/// predicted, so what is left is the work itself, and each input waiting for the state the one
/// before left.
fn steady(n: u64) -> Duration {
    let config = config();
    let mut conn = Lifecycle::accepted(Instant::ZERO, config);
    let started = std::time::Instant::now();
    for i in 0..n {
        let now = Instant::from_micros(i);
        black_box(conn.handle(now, black_box(Input::Received { len: 1_024 }))).ok();
        while let Some(action) = conn.poll_action() {
            black_box(action);
        }
    }
    black_box(&conn);
    started.elapsed()
}

/// The floor: a trivial match over one byte per input, over a trace as long as the inputs'.
fn floor(kinds: &[u8], n: u64) -> Duration {
    let started = std::time::Instant::now();
    let mut left = n;
    let mut acc = 0u64;
    'replay: while left > 0 {
        for kind in kinds {
            if left == 0 {
                break 'replay;
            }
            left -= 1;
            acc = match black_box(*kind) {
                0 => acc.wrapping_add(1),
                1 => acc.rotate_left(1),
                2 => acc ^ 0x55,
                3 => acc.wrapping_sub(3),
                4 => acc.wrapping_mul(3),
                _ => acc.wrapping_add(u64::from(*kind)),
            };
        }
    }
    black_box(acc);
    started.elapsed()
}

fn benches(c: &mut Criterion, trace: &Trace) {
    let mut group = c.benchmark_group("core");
    group.bench_function("floor", |b| b.iter_custom(|n| floor(&trace.kinds, n)));
    group.bench_function("input", |b| b.iter_custom(|n| replay(trace, n, false)));
    group.bench_function("input_and_poll_timeout", |b| {
        b.iter_custom(|n| replay(trace, n, true))
    });
    group.bench_function("steady_receive", |b| b.iter_custom(steady));
    group.finish();
}

// ---- the report --------------------------------------------------------------------------------

/// Where criterion keeps its results, found as criterion finds it: `CRITERION_HOME`, else
/// `criterion` in the target directory (`CARGO_TARGET_DIR`, else the one holding this program).
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    // target/<profile>/deps/core-<hash>
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// Criterion's median estimate for one benchmark of the group, in nanoseconds per iteration, if
/// this run wrote it (not in `--test` or `--profile-time` runs, nor when filtered out).
fn median_ns(name: &str, since: std::time::SystemTime) -> Option<f64> {
    let path = criterion_home()?.join(format!("core/{name}/new/estimates.json"));
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let median = &json[json.find("\"median\":")?..];
    let point = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = point.find([',', '}'])?;
    point[..end].trim().parse().ok()
}

fn report(since: std::time::SystemTime) {
    let floor = median_ns("floor", since);
    let input = median_ns("input", since);
    let turn = median_ns("input_and_poll_timeout", since);
    let steady = median_ns("steady_receive", since);
    println!();
    println!("medians (criterion's estimate), ns per input:");
    for (name, median) in [
        ("floor (a match over one byte)", floor),
        ("input (handle, then poll_action until None)", input),
        ("input_and_poll_timeout (and poll_timeout)", turn),
        (
            "steady_receive (one connection receiving, every branch predicted)",
            steady,
        ),
    ] {
        match (median, floor) {
            (Some(m), Some(f)) if f > 0.0 => {
                println!("  {name}: {m:.2} ns, {:.1}x the floor", m / f);
            }
            (Some(m), _) => println!("  {name}: {m:.2} ns"),
            (None, _) => println!("  {name}: no estimate from this run"),
        }
    }
    if let Some(m) = input {
        const TARGET_NS: f64 = 5.0;
        if m <= TARGET_NS {
            println!("  target <= {TARGET_NS} ns per handled input: met");
        } else {
            println!(
                "  target <= {TARGET_NS} ns per handled input: missed by {:.2} ns",
                m - TARGET_NS
            );
        }
    }
}

fn main() {
    let started = std::time::SystemTime::now();
    println!(
        "size_of::<Lifecycle>() = {} bytes, size_of::<Listener>() = {} bytes",
        size_of::<Lifecycle>(),
        size_of::<Listener>()
    );
    let trace = generate();
    describe(&trace);

    let mut criterion = Criterion::default()
        .sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    benches(&mut criterion, &trace);
    criterion.final_summary();

    let allocations = TIMED_ALLOCATIONS.load(Ordering::Relaxed);
    let inputs = TIMED_INPUTS.load(Ordering::Relaxed);
    println!(
        "allocations during the timed replays: {allocations} over {inputs} inputs (warm-up included)"
    );
    assert_eq!(
        allocations, 0,
        "the core allocated while handling inputs: {allocations} allocations"
    );
    report(started);
}
