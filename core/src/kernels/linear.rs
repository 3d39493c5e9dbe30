//! Linear layers on the CPU: `y = x · W + b` and its gradients as strided products. Operands are
//! views, so a transposed weight (the tied LM head's `Eᵀ`) and the transposes of the backward
//! are strides, not copies.

use rayon::prelude::*;

use super::matmul::{matmul, product, Out, View};

/// `x: [rows, d_in]`, `w: [d_in, d_out]`, `bias: [d_out]` -> `[rows, d_out]`.
pub fn forward(x: View, w: View, bias: Option<&[f32]>) -> Vec<f32> {
    match bias {
        None => product(x, w),
        Some(bias) => {
            // The bias rows first, the product added onto them.
            let (rows, d_out) = (x.shape().0, w.shape().1);
            let mut y: Vec<f32> = bias.iter().copied().cycle().take(rows * d_out).collect();
            matmul(Out::rows(&mut y, d_out), x, w, true);
            y
        }
    }
}

/// `dy · Wᵀ`: the input's gradient, `[rows, d_in]`.
pub fn grad_input(dy: View, w: View) -> Vec<f32> {
    product(dy, w.t())
}

/// The weight's gradient `xᵀ · dy`, `[d_in, d_out]` row-major; or, with `transposed`, its
/// transpose `dyᵀ · x` (`[d_out, d_in]` row-major: the layout of a weight stored transposed).
pub fn grad_weight(x: View, dy: View, transposed: bool) -> Vec<f32> {
    if transposed {
        product(dy.t(), x)
    } else {
        product(x.t(), dy)
    }
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
