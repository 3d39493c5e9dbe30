//! GFLOP/s of the CPU backend's matrix products at the shapes of a t5-small training step,
//! through the same entry point the model uses (`fused::linear` on the CPU backend, strided
//! views for the transposed operands of the backward). Prints one JSON line per shape;
//! `benches/gemm.py` runs it beside PyTorch's `matmul` at the same shapes.
//!
//!     cargo bench -p t5-core --bench gemm
//!
//! Threads: `RAYON_NUM_THREADS` (default: every core).

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use t5_core::backend::Cpu;
use t5_core::fused;

/// `(name, m, k, n, layout)`: `a` is `[m, k]`, `b` is `[k, n]`; `"nt"` reads `b` as the
/// transpose of a row-major `[n, k]` (a layer's input gradient, the tied LM head), `"tn"` reads
/// `a` as the transpose of a row-major `[k, m]` (a weight's gradient).
const SHAPES: &[(&str, usize, usize, usize, &str)] = &[
    ("square 1024", 1024, 1024, 1024, "nn"),
    ("encoder q/k/v/o", 512, 512, 512, "nn"),
    ("encoder wi", 512, 512, 2048, "nn"),
    ("encoder wo", 512, 2048, 512, "nn"),
    ("encoder wi dx", 512, 2048, 512, "nt"),
    ("encoder wi dW", 512, 512, 2048, "tn"),
    ("decoder wi", 64, 512, 2048, "nn"),
    ("lm head", 64, 512, 32128, "nt"),
    ("lm head dx", 64, 32128, 512, "nn"),
    ("lm head dW", 32128, 64, 512, "tn"),
];

fn operand(rows: usize, cols: usize, device: &burn::tensor::Device<Cpu>) -> Tensor<Cpu, 2> {
    Tensor::random([rows, cols], Distribution::Normal(0.0, 1.0), device)
}

fn main() {
    let device = Default::default();
    let threads = rayon::current_num_threads();
    for &(name, m, k, n, layout) in SHAPES {
        let a = match layout {
            "tn" => operand(k, m, &device).transpose(),
            _ => operand(m, k, &device),
        };
        let b = match layout {
            "nt" => operand(n, k, &device).transpose(),
            _ => operand(k, n, &device),
        };
        let run = || fused::linear(a.clone(), b.clone(), None);
        // Warm-up: first-touch of the output and the packing buffers.
        for _ in 0..2 {
            drop(run());
        }
        let mut times: Vec<f64> = (0..7)
            .map(|_| {
                let t = Instant::now();
                drop(run());
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let gflops = 2.0 * (m * k * n) as f64 / times[times.len() / 2] / 1e9;
        println!(
            "{{\"shape\":\"{name}\",\"m\":{m},\"k\":{k},\"n\":{n},\"layout\":\"{layout}\",\"threads\":{threads},\"gflops\":{gflops:.1}}}"
        );
    }
}
