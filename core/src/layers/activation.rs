//! Activations by name, computed as HF computes them (T5's feed-forward and the adapters).

use burn::prelude::*;
use burn::tensor::activation;

use crate::config::Activation;

/// Applies an activation by HF's semantics.
pub fn activate<B: Backend, const D: usize>(act: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Activation::Relu => activation::relu(x),
        Activation::Gelu => activation::gelu(x),
        Activation::GeluNew => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as HF's NewGELUActivation.
            let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715)
                * (2.0f64 / std::f64::consts::PI).sqrt();
            x * (inner.tanh() + 1.0) * 0.5
        }
        Activation::Silu => activation::silu(x),
        Activation::Tanh => x.tanh(),
    }
}
