//! Linear layers applied to `[batch, seq, d]` activations as one `[batch·seq, d]` matrix
//! product: the CPU backend then runs a single large GEMM instead of one per batch row against a
//! broadcast weight, and the weight's gradient needs no per-row partial products.

use burn::nn::Linear;
use burn::prelude::*;

/// # Shapes
/// - x: `[batch, seq, d_in]` -> `[batch, seq, d_out]`
pub fn project<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, d] = x.dims();
    let y = layer.forward(x.reshape([b * s, d]));
    let n = y.dims()[1];
    y.reshape([b, s, n])
}
