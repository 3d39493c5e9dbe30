//! The hypernetworks' building blocks, each a row-wise map from generator inputs `z: [n, e]`
//! (one row per task, or per (task, block, position)) to what it generates: HyperFormer's
//! `TaskHyperNet` ([`Projector`]), `AdapterHyperNet` ([`LinearGenerator`]) and
//! `LayerNormHyperNet` ([`NormGenerator`]).

use burn::module::Initializer;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::fused::{self, FusedOps};

/// HyperFormer's `linear_layer`: weight N(0, 0.01), bias 0 (`adapter_utils.py:17-27`), in burn's
/// `[in, out]` layout (files keep PyTorch's `[out, in]`).
pub fn seed_linear<B: Backend>(n_in: usize, n_out: usize, device: &B::Device) -> Linear<B> {
    Linear {
        weight: Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        }
        .init([n_in, n_out], device),
        bias: Some(Initializer::Zeros.init([n_out], device)),
    }
}

/// `z · W + c` over rows.
///
/// # Shapes
/// - z: `[n, in]` -> `[n, out]`
pub fn rows<B: FusedOps>(layer: &Linear<B>, z: Tensor<B, 2>) -> Tensor<B, 2> {
    fused::linear(z, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// `TaskHyperNet`: `Lin(h -> out)(relu(Lin(in -> h)(z)))` (`adapter_utils.py:30-44`).
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    pub hidden: Linear<B>,
    pub out: Linear<B>,
}

impl<B: Backend> Projector<B> {
    pub fn init(n_in: usize, hidden: usize, n_out: usize, device: &B::Device) -> Self {
        Self {
            hidden: seed_linear(n_in, hidden, device),
            out: seed_linear(hidden, n_out, device),
        }
    }
}

impl<B: FusedOps> Projector<B> {
    /// # Shapes
    /// - z: `[n, in]` -> `[n, out]`
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        rows(&self.out, relu(rows(&self.hidden, z)))
    }
}

/// The generator of one adapter Linear with `out_features` outputs and `in_features` inputs:
/// `W[o, i] = weight_generator(z)[o·in + i]`, `c = bias_generator(z)` (`AdapterHyperNet`,
/// `adapter_modeling.py:30-70`, whose "input_dim" is the generated Linear's output size).
#[derive(Module, Debug)]
pub struct LinearGenerator<B: Backend> {
    pub weight_generator: Linear<B>,
    pub bias_generator: Linear<B>,
    pub out_features: usize,
    pub in_features: usize,
}

impl<B: Backend> LinearGenerator<B> {
    pub fn init(e: usize, out_features: usize, in_features: usize, device: &B::Device) -> Self {
        Self {
            weight_generator: seed_linear(e, out_features * in_features, device),
            bias_generator: seed_linear(e, out_features, device),
            out_features,
            in_features,
        }
    }
}

impl<B: FusedOps> LinearGenerator<B> {
    /// Weights in burn's `[in, out]` layout (a transposed view of the generated `[out, in]`) and
    /// biases, one per row of `z`.
    ///
    /// # Shapes
    /// - z: `[n, e]` -> (`[n, in, out]`, `[n, out]`)
    pub fn forward(&self, z: Tensor<B, 2>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let n = z.dims()[0];
        let w = rows(&self.weight_generator, z.clone())
            .reshape([n, self.out_features, self.in_features])
            .swap_dims(1, 2);
        (w, rows(&self.bias_generator, z))
    }
}

/// `LayerNormHyperNet`: `γ = Lin(e -> d)(z)`, `β = Lin(e -> d)(z)` (`adapter_utils.py:47-59`).
#[derive(Module, Debug)]
pub struct NormGenerator<B: Backend> {
    pub weight_generator: Linear<B>,
    pub bias_generator: Linear<B>,
}

impl<B: Backend> NormGenerator<B> {
    pub fn init(e: usize, d: usize, device: &B::Device) -> Self {
        Self {
            weight_generator: seed_linear(e, d, device),
            bias_generator: seed_linear(e, d, device),
        }
    }
}

impl<B: FusedOps> NormGenerator<B> {
    /// # Shapes
    /// - z: `[n, e]` -> (`[n, d]`, `[n, d]`)
    pub fn forward(&self, z: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        (
            rows(&self.weight_generator, z.clone()),
            rows(&self.bias_generator, z),
        )
    }
}

/// The weights generated for the adapter at one position, one row per task vector: what a
/// seed adapter holds (down and up projections, and the norms when they are generated).
pub struct GeneratedWeights<B: Backend> {
    /// `[n, d, b]`, `[n, b]`
    pub down: (Tensor<B, 3>, Tensor<B, 2>),
    /// `[n, b, d]`, `[n, d]`
    pub up: (Tensor<B, 3>, Tensor<B, 2>),
    /// `[n, d]` gains and biases; `None` when off or not generated (shared plain norms).
    pub pre_layer_norm: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    pub post_layer_norm: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
}

/// The generators of one adapter: down and up projections and, when generated, its norms.
#[derive(Module, Debug)]
pub struct AdapterGenerators<B: Backend> {
    pub up: LinearGenerator<B>,
    pub down: LinearGenerator<B>,
    pub pre_layer_norm: Option<NormGenerator<B>>,
    pub post_layer_norm: Option<NormGenerator<B>>,
}

impl<B: Backend> AdapterGenerators<B> {
    /// Generators reading `e`-sized inputs for an adapter of width `d`, bottleneck `b`; norm
    /// generators where `norms` says (before, after).
    pub fn init(e: usize, d: usize, b: usize, norms: (bool, bool), device: &B::Device) -> Self {
        Self {
            up: LinearGenerator::init(e, d, b, device),
            down: LinearGenerator::init(e, b, d, device),
            pre_layer_norm: norms.0.then(|| NormGenerator::init(e, d, device)),
            post_layer_norm: norms.1.then(|| NormGenerator::init(e, d, device)),
        }
    }
}

impl<B: FusedOps> AdapterGenerators<B> {
    /// # Shapes
    /// - z: `[n, e]`
    pub fn forward(&self, z: Tensor<B, 2>) -> GeneratedWeights<B> {
        GeneratedWeights {
            down: self.down.forward(z.clone()),
            up: self.up.forward(z.clone()),
            pre_layer_norm: self.pre_layer_norm.as_ref().map(|g| g.forward(z.clone())),
            post_layer_norm: self.post_layer_norm.as_ref().map(|g| g.forward(z)),
        }
    }
}

impl<B: Backend> GeneratedWeights<B> {
    /// Rows `start..start + len` of every tensor.
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        let r2 = |t: &Tensor<B, 2>| t.clone().narrow(0, start, len);
        let r3 = |t: &Tensor<B, 3>| t.clone().narrow(0, start, len);
        let pair =
            |p: &Option<(Tensor<B, 2>, Tensor<B, 2>)>| p.as_ref().map(|(g, b)| (r2(g), r2(b)));
        Self {
            down: (r3(&self.down.0), r2(&self.down.1)),
            up: (r3(&self.up.0), r2(&self.up.1)),
            pre_layer_norm: pair(&self.pre_layer_norm),
            post_layer_norm: pair(&self.post_layer_norm),
        }
    }
}
