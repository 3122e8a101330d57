//! Helpers for tests that hand the engine hostile data: a deadline on the work, and vectors
//! whose distances overflow `f32` or are not numbers at all.

use crate::rng::Rng;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `body` on its own thread and fails the test unless it finishes (without panicking)
/// within `secs` seconds. A body that never ends is left behind, still running.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("deadline-{what}"))
        .spawn(move || {
            let out = body();
            let _ = tx.send(());
            out
        })
        .expect("spawning a test thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => handle.join().expect("the body finished"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(_) => unreachable!("the body returned without reporting"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// The kinds of hostile rows.
#[derive(Clone, Copy, Debug)]
pub enum Hostile {
    /// Every component `+3e38`: finite, but any squared distance to a normal vector overflows.
    Huge,
    /// Components `±3e38` with random signs.
    HugeMixed,
    /// One component `3e38`, the others normal.
    OneHuge,
    /// One component NaN.
    OneNan,
    /// Every component NaN.
    Nan,
    /// One component `+inf`.
    OneInf,
    /// Components `±inf`.
    Inf,
}

pub const HOSTILE: [Hostile; 7] = [
    Hostile::Huge,
    Hostile::HugeMixed,
    Hostile::OneHuge,
    Hostile::OneNan,
    Hostile::Nan,
    Hostile::OneInf,
    Hostile::Inf,
];

/// One row of `kind`, `dim` wide.
pub fn hostile_row(rng: &mut Rng, kind: Hostile, dim: usize) -> Vec<f32> {
    let sign = |rng: &mut Rng| if rng.below(2) == 0 { 1.0f32 } else { -1.0 };
    let mut v: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
    let at = rng.below(dim);
    match kind {
        Hostile::Huge => v.fill(3e38),
        Hostile::HugeMixed => v.iter_mut().for_each(|x| *x = 3e38 * sign(rng)),
        Hostile::OneHuge => v[at] = 3e38,
        Hostile::OneNan => v[at] = f32::NAN,
        Hostile::Nan => v.fill(f32::NAN),
        Hostile::OneInf => v[at] = f32::INFINITY,
        Hostile::Inf => v.iter_mut().for_each(|x| *x = f32::INFINITY * sign(rng)),
    }
    v
}

/// `n` rows, row-major: normal ones (clustered) mixed with a fraction `hostile` of hostile ones
/// of every kind.
pub fn mixed_rows(rng: &mut Rng, n: usize, dim: usize, hostile: f32) -> Vec<f32> {
    let centres: Vec<f32> = (0..8 * dim).map(|_| rng.normal() * 4.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        if rng.unit() < hostile {
            let kind = HOSTILE[rng.below(HOSTILE.len())];
            out.extend(hostile_row(rng, kind, dim));
        } else {
            let c = rng.below(8);
            out.extend((0..dim).map(|j| centres[c * dim + j] + rng.normal()));
        }
    }
    out
}
