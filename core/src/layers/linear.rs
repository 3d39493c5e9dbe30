//! Linear layers applied to `[batch, seq, d]` activations as one `[batch·seq, d]` matrix
//! product: the CPU backend then runs a single large GEMM instead of one per batch row against a
//! broadcast weight, and the weight's gradient needs no per-row partial products. With few rows
//! (decoding) the CPU backend uses the bandwidth-bound kernel of [`crate::kernels`].

use burn::module::{Initializer, Param};
use burn::nn::Linear;
use burn::prelude::*;

use crate::error::Result;
use crate::fused::{self, FusedOps};
use crate::kernels::small_rows_matmul;
use crate::weights::Weights;

/// A bias-free `[d_in, d_out]` layer with weights drawn from N(0, `std`) (T5's projections).
pub fn init_linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    std: f64,
    device: &B::Device,
) -> Linear<B> {
    Linear {
        weight: Initializer::Normal { mean: 0.0, std }.init([d_in, d_out], device),
        bias: None,
    }
}

/// The bias-free layer `{name}.weight` (PyTorch's `[d_out, d_in]`, transposed to burn's layout).
pub fn load_linear<B: Backend>(
    w: &mut Weights,
    name: &str,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Result<Linear<B>> {
    let weight = w.take_linear(&format!("{name}.weight"), d_in, d_out, device)?;
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias: None,
    })
}

/// # Shapes
/// - x: `[batch, seq, d_in]` -> `[batch, seq, d_out]`
pub fn project<B: FusedOps>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, s, d] = x.dims();
    let x = x.reshape([b * s, d]);
    let bias = layer.bias.as_ref().map(|b| b.val());
    let y = match small_rows_matmul(&x, &layer.weight.val()) {
        Some(y) => match bias {
            Some(bias) => y + bias.unsqueeze(),
            None => y,
        },
        None => fused::linear(x, layer.weight.val(), bias),
    };
    let n = y.dims()[1];
    y.reshape([b, s, n])
}
