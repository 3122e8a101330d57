//! Throughput of the batch kernels over a block larger than the caches, per SIMD level.
//! Also the `i8` code kernels over the same rows quantized (a quarter of the bytes).
//! `cargo run --release -p freshvec-core --example kernel_speed [dim] [megabytes]`

use freshvec_core::distance::codes::{available_code_levels, code_table};
use freshvec_core::distance::{available_levels, level_name, table};
use freshvec_core::rng::Rng;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dim: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(128);
    let mb: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rows = mb * 1024 * 1024 / (4 * dim);
    let mut rng = Rng::new(1);
    let block: Vec<f32> = (0..rows * dim).map(|_| rng.normal()).collect();
    let q: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
    let mut out = vec![0f32; rows];
    println!("dim {dim}, {rows} rows, {mb} MiB");
    for level in available_levels() {
        let k = table(level).expect("available");
        for (name, f) in [("l2sq_batch", k.l2sq_batch), ("neg_dot_batch", k.neg_dot_batch)] {
            let t = Instant::now();
            let reps = 5;
            for _ in 0..reps {
                f(&q, &block, &mut out);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{:>8} {name:>14}: {:6.1} GB/s",
                level_name(level),
                (rows * dim * 4) as f64 / s / 1e9
            );
        }
    }
    // The same rows as i8 codes: a quarter of the bytes.
    let quant = |x: &f32| (x * 40.0).clamp(-127.0, 127.0) as i8;
    let codes: Vec<u8> = block.iter().map(|x| (quant(x) as i32 + 128) as u8).collect();
    let qc: Vec<i8> = q.iter().map(quant).collect();
    let mut iout = vec![0i32; rows];
    for level in available_code_levels() {
        let k = code_table(level).expect("available");
        let t = Instant::now();
        let reps = 5;
        for _ in 0..reps {
            (k.dot_batch)(&qc, &codes, &mut iout);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{:>10} i8 dot_batch: {:6.1} GB/s of codes, {:7.1} M rows/s (f32 rows: {:.1} GB/s equivalent)",
            format!("{level:?}"),
            (rows * dim) as f64 / s / 1e9,
            rows as f64 / s / 1e6,
            (rows * dim * 4) as f64 / s / 1e9
        );
    }
}
