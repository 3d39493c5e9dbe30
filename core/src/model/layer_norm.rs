//! T5's layer norm: RMS scaling only (no mean subtraction, no bias), HF's `T5LayerNorm`.

use burn::module::{Initializer, Param};
use burn::prelude::*;

use crate::error::Result;
use crate::fused::{self, FusedOps};
use crate::weights::Weights;

/// RMS layer norm with a learned scale, `weight * x / sqrt(mean(x^2) + eps)`.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[d_model]` (HF key `...layer_norm.weight`).
    pub weight: Param<Tensor<B, 1>>,
    /// `layer_norm_epsilon` of the config.
    pub variance_epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// A norm whose scale is `value` everywhere (HF initializes it to `initializer_factor`).
    pub fn init(d_model: usize, eps: f64, value: f64, device: &B::Device) -> Self {
        let weight = Initializer::Constant { value }.init([d_model], device);
        Self {
            weight,
            variance_epsilon: eps,
        }
    }

    pub fn load(
        w: &mut Weights,
        name: &str,
        d_model: usize,
        eps: f64,
        device: &B::Device,
    ) -> Result<Self> {
        let weight = Param::from_tensor(w.take(&format!("{name}.weight"), [d_model], device)?);
        Ok(Self {
            weight,
            variance_epsilon: eps,
        })
    }
}

impl<B: FusedOps> LayerNorm<B> {
    /// # Shapes
    /// - x: `[batch, seq, d_model]` -> `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        fused::rms_norm(x, self.weight.val(), self.variance_epsilon)
    }
}
