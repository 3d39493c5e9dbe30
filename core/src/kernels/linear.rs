//! Linear layers on the CPU: `y = x · W + b` and its gradients as strided products (the
//! transposes of the backward are strides, not copies).

use rayon::prelude::*;

use super::matmul::{matmul, product, Out, View};

/// `x: [rows, d_in]`, `w: [d_in, d_out]`, `bias: [d_out]` -> `[rows, d_out]`.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    let (x, w) = (View::rows(x, rows, d_in), View::rows(w, d_in, d_out));
    match bias {
        None => product(x, w),
        Some(bias) => {
            // The bias rows first, the product added onto them.
            let mut y: Vec<f32> = bias.iter().copied().cycle().take(rows * d_out).collect();
            matmul(Out::rows(&mut y, d_out), x, w, true);
            y
        }
    }
}

/// `dy · Wᵀ`: the input's gradient.
pub fn grad_input(dy: &[f32], w: &[f32], rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    product(View::rows(dy, rows, d_out), View::rows(w, d_in, d_out).t())
}

/// `xᵀ · dy`: the weight's gradient.
pub fn grad_weight(x: &[f32], dy: &[f32], rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
    product(View::rows(x, rows, d_in).t(), View::rows(dy, rows, d_out))
}

/// Column sums of `dy: [rows, d_out]`: the bias' gradient (rows added in a fixed order).
pub fn grad_bias(dy: &[f32], d_out: usize) -> Vec<f32> {
    const ROWS: usize = 256;
    let partials: Vec<Vec<f32>> = dy
        .par_chunks(ROWS * d_out)
        .map(|block| {
            let mut sum = vec![0f32; d_out];
            for row in block.chunks_exact(d_out) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += v;
                }
            }
            sum
        })
        .collect();
    let mut total = vec![0f32; d_out];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}
