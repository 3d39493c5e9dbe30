//! One bottleneck adapter: `up(act(down(z)))` with optional LayerNorms around it.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use super::config::BottleneckConfig;
use super::phm::{PhmLinear, PhmShared};
use crate::config::Activation;
use crate::fused::{self, FusedOps};
use crate::layers::{activate, project};

/// A standard LayerNorm with bias (PyTorch's `nn.LayerNorm`, eps 1e-5), unlike T5's RMS norm.
#[derive(Module, Debug)]
pub struct AdapterLayerNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub bias: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> AdapterLayerNorm<B> {
    pub fn init(d: usize, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d], device),
            bias: Initializer::Zeros.init([d], device),
            eps: 1e-5,
        }
    }
}

impl<B: FusedOps> AdapterLayerNorm<B> {
    /// # Shapes
    /// - x: `[batch, seq, d]` -> `[batch, seq, d]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        fused::layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}

/// `module` with every parameter replaced by a new one holding a copy of its values: no shared
/// parameter ids, and no ties to the graph that computed them.
pub fn detached_copy<B: Backend, M: Module<B>>(module: M) -> M {
    struct Fresh;
    impl<B: Backend> burn::module::ModuleMapper<B> for Fresh {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let t = p.val();
            Param::from_tensor(Tensor::from_data(t.to_data(), &t.device()))
        }
    }
    module.map(&mut Fresh)
}

/// The LayerNorms around one adapter (owned per task, or shared across tasks as the seed does).
#[derive(Module, Debug)]
pub struct AdapterNorms<B: Backend> {
    pub before: Option<AdapterLayerNorm<B>>,
    pub after: Option<AdapterLayerNorm<B>>,
}

impl<B: Backend> AdapterNorms<B> {
    /// An independent copy: new parameters with the same values. A `clone` shares the
    /// parameters' ids and autodiff nodes, so its gradients would be credited to the original.
    pub fn detached_copy(&self) -> Self {
        detached_copy(self.clone())
    }

    pub fn init(config: &BottleneckConfig, d: usize, device: &B::Device) -> Self {
        Self {
            before: config.ln_before.then(|| AdapterLayerNorm::init(d, device)),
            after: config.ln_after.then(|| AdapterLayerNorm::init(d, device)),
        }
    }
}

/// A projection of a bottleneck adapter: a linear layer, or a PHM layer (Compacter).
// The PHM variant's optional factors make it larger; a projection is built once per adapter
// and never moved in a loop, and burn's module derive does not see through a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Projection<B: Backend> {
    Linear(Linear<B>),
    Phm(PhmLinear<B>),
}

impl<B: Backend> Projection<B> {
    /// The projection as a linear layer (a PHM layer's weight built from its factors and the
    /// adapter's `shared` ones; `up` says which side's shared `W` it uses).
    pub fn linear(&self, shared: Option<&PhmShared<B>>, up: bool) -> Linear<B> {
        match self {
            Projection::Linear(l) => l.clone(),
            Projection::Phm(p) => p.linear(shared, up),
        }
    }

    /// The plain linear layer, or `None` for a PHM layer.
    pub fn as_linear(&self) -> Option<&Linear<B>> {
        match self {
            Projection::Linear(l) => Some(l),
            Projection::Phm(_) => None,
        }
    }
}

/// Down- and up-projection of one adapter at one sublayer.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    /// `[d_model, bottleneck]` with bias.
    pub down: Projection<B>,
    /// `[bottleneck, d_model]` with bias.
    pub up: Projection<B>,
    /// Per-task norms (unused when the set shares norms across tasks).
    pub norms: AdapterNorms<B>,
    pub dropout: Dropout,
}

impl<B: Backend> Bottleneck<B> {
    /// The seed's initialization: weights N(0, 0.01), biases zero; PHM layers as the
    /// `adapters` library draws them.
    pub fn init(config: &BottleneckConfig, d: usize, device: &B::Device) -> Self {
        let n = config.bottleneck(d);
        let linear = |i: usize, o: usize| Linear {
            weight: Initializer::Normal {
                mean: 0.0,
                std: 0.01,
            }
            .init([i, o], device),
            bias: Some(Initializer::Zeros.init([o], device)),
        };
        let (down, up) = match &config.phm {
            Some(phm) => (
                Projection::Phm(PhmLinear::init(phm, (d, n), device)),
                Projection::Phm(PhmLinear::init(phm, (n, d), device)),
            ),
            None => (
                Projection::Linear(linear(d, n)),
                Projection::Linear(linear(n, d)),
            ),
        };
        Self {
            down,
            up,
            norms: AdapterNorms::init(config, d, device),
            dropout: DropoutConfig::new(config.dropout).init(),
        }
    }
}

impl<B: FusedOps> Bottleneck<B> {
    /// Combines the sublayer input `x` and output `h` (before T5's residual dropout) into the
    /// sublayer's adapted output, by `config`'s rules (see [`BottleneckConfig`]). `shared`:
    /// the adapter's PHM parameters shared across layers (Compacter).
    ///
    /// # Shapes
    /// - x, h: `[batch, seq, d_model]` -> `[batch, seq, d_model]`
    pub fn forward(
        &self,
        config: &BottleneckConfig,
        act: Activation,
        norms: &AdapterNorms<B>,
        shared: Option<&PhmShared<B>>,
        (x, h): (Tensor<B, 3>, Tensor<B, 3>),
        residual_dropout: &Dropout,
    ) -> Tensor<B, 3> {
        let h = if config.dropout_after_adapter {
            h
        } else {
            residual_dropout.forward(h)
        };
        let mut residual = config.residual_before_ln.then(|| h.clone());
        let h = if config.original_ln_before {
            h + x.clone()
        } else {
            h
        };
        let residual = residual.take().unwrap_or_else(|| h.clone());
        let z = match &norms.before {
            Some(ln) => ln.forward(h),
            None => h,
        };
        let (down, up) = (
            self.down.linear(shared, false),
            self.up.linear(shared, true),
        );
        let mut z = project(&up, activate(act, project(&down, z)));
        if config.scaling != 1.0 {
            z = z * config.scaling;
        }
        let z = self.dropout.forward(z);
        let z = if config.adapter_residual_before_ln {
            let z = z + residual;
            match &norms.after {
                Some(ln) => ln.forward(z),
                None => z,
            }
        } else {
            let z = match &norms.after {
                Some(ln) => ln.forward(z),
                None => z,
            };
            z + residual
        };
        if config.dropout_after_adapter {
            // The seed: `x + dropout(h + A(h))`.
            x + residual_dropout.forward(z)
        } else if config.original_ln_after {
            z + x
        } else {
            z
        }
    }
}
