//! One LoRA update of a linear layer: `y = W x + scaling · B A dropout(x)`.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

/// The low-rank pair of one adapted layer.
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    /// `[d_in, r]` (PEFT's `lora_A.weight` is `[r, d_in]`).
    pub a: Param<Tensor<B, 2>>,
    /// `[r, d_out]` (PEFT's `lora_B.weight` is `[d_out, r]`).
    pub b: Param<Tensor<B, 2>>,
    /// `lora_alpha / r`, or `lora_alpha / sqrt(r)` with rsLoRA.
    pub scaling: f64,
    /// On the layer's input, before `A`.
    pub dropout: Dropout,
}

impl<B: Backend> LoraLinear<B> {
    /// PEFT's default initialization: `A` as `nn.Linear`'s weight (Kaiming-uniform with
    /// `a = sqrt(5)`, i.e. U(±1/sqrt(d_in))), `B` zero, so that a new LoRA changes nothing.
    pub fn init(
        d_in: usize,
        d_out: usize,
        r: usize,
        scaling: f64,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        Self {
            a: Initializer::Uniform {
                min: -bound,
                max: bound,
            }
            .init([d_in, r], device),
            b: Initializer::Zeros.init([r, d_out], device),
            scaling,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }

    /// The update `scaling · B A dropout(x)` for the rows of `x`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_in]` -> `[batch, seq, d_out]`
    pub fn delta(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let x = self.dropout.forward(x).reshape([b * s, d]);
        let y = x.matmul(self.a.val()).matmul(self.b.val()) * self.scaling;
        let n = y.dims()[1];
        y.reshape([b, s, n])
    }

    /// `scaling · (B A)ᵀ` in burn's `[d_in, d_out]` layout: what merging adds to the weight.
    pub fn merged_delta(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()) * self.scaling
    }
}
