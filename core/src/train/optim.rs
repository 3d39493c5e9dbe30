//! The optimizer step: AdamW with no weight decay on biases and norms (rank-1 parameters),
//! global gradient-norm clipping as PyTorch's `clip_grad_norm_`, then the update.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{
    AdamWState, AdaptiveMomentumState, GradientsParams, LearningRate, Optimizer, SimpleOptimizer,
};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::TensorPrimitive;

use crate::fused::{AdamWStep, FusedOps};

/// burn's `AdamW` (same arithmetic, same saved state) as one fused update per parameter
/// ([`FusedOps::adamw_step`]) instead of a dozen tensor operations with an allocation each.
#[derive(Clone, Copy, Debug)]
pub struct FusedAdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl<B: FusedOps> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let prim = |t: Tensor<B, D>| t.into_primitive().tensor();
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let moments = state.map(|s| [prim(s.momentum.moment_1), prim(s.momentum.moment_2)]);
        let step = AdamWStep {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            time,
        };
        let [p, m, v] = B::adamw_step(prim(tensor), prim(grad), moments, step);
        let t = |x| Tensor::from_primitive(TensorPrimitive::Float(x));
        let momentum = AdaptiveMomentumState::new(time, t(m), t(v));
        (t(p), Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// Two AdamW instances over one module: with and without weight decay.
pub struct GroupedAdamW<M: AutodiffModule<B>, B: AutodiffBackend>
where
    B::InnerBackend: FusedOps,
{
    decay: OptimizerAdaptor<FusedAdamW, M, B>,
    no_decay: OptimizerAdaptor<FusedAdamW, M, B>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> GroupedAdamW<M, B>
where
    B::InnerBackend: FusedOps,
{
    pub fn new(weight_decay: f64, beta1: f64, beta2: f64, epsilon: f64) -> Self {
        let with_decay = |weight_decay: f32| {
            OptimizerAdaptor::from(FusedAdamW {
                beta_1: beta1 as f32,
                beta_2: beta2 as f32,
                epsilon: epsilon as f32,
                weight_decay,
            })
        };
        Self {
            decay: with_decay(weight_decay as f32),
            no_decay: with_decay(0.0),
        }
    }

    /// Applies `grads` (already clipped) at learning rate `lr`.
    pub fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        let (decay, no_decay) = split_by_rank(&module, grads);
        let module = self.decay.step(lr, module, decay);
        self.no_decay.step(lr, module, no_decay)
    }

    /// The optimizer states (with decay, without), for checkpoints.
    pub fn to_record(&self) -> (OptimRecord<M, B>, OptimRecord<M, B>) {
        (self.decay.to_record(), self.no_decay.to_record())
    }

    pub fn load_records(&mut self, decay: OptimRecord<M, B>, no_decay: OptimRecord<M, B>) {
        let (d, n) = (*self.decay.optim(), *self.no_decay.optim());
        let old = std::mem::replace(&mut self.decay, OptimizerAdaptor::from(d));
        self.decay = old.load_record(decay);
        let old = std::mem::replace(&mut self.no_decay, OptimizerAdaptor::from(n));
        self.no_decay = old.load_record(no_decay);
    }
}

/// The saved state of one AdamW over module `M` (the record of burn's `AdamW`).
pub type OptimRecord<M, B> = <OptimizerAdaptor<FusedAdamW, M, B> as Optimizer<M, B>>::Record;

/// Splits gradients into (matrices, vectors): weight decay applies to the first only.
fn split_by_rank<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    mut grads: GradientsParams,
) -> (GradientsParams, GradientsParams) {
    struct Split<'a, B: AutodiffBackend> {
        from: &'a mut GradientsParams,
        vectors: GradientsParams,
        _b: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Split<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if D == 1 {
                if let Some(g) = self.from.remove::<B::InnerBackend, D>(param.id) {
                    self.vectors.register::<B::InnerBackend, D>(param.id, g);
                }
            }
        }
    }
    let mut split = Split::<B> {
        from: &mut grads,
        vectors: GradientsParams::new(),
        _b: Default::default(),
    };
    module.visit(&mut split);
    let vectors = split.vectors;
    (grads, vectors)
}

/// The ids and ranks of `module`'s parameters.
fn param_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<(ParamId, usize)> {
    struct Ids(Vec<(ParamId, usize)>);
    impl<B: Backend> ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push((param.id, D));
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// The sum of squares of `module`'s gradients in `grads`.
pub fn squared_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    fn sq<B: Backend, const D: usize>(g: &GradientsParams, id: ParamId) -> f64 {
        g.get::<B, D>(id)
            .map(|t| t.powi_scalar(2).sum().into_scalar().elem::<f64>())
            .unwrap_or(0.0)
    }
    param_ids::<B, M>(module)
        .into_iter()
        .map(|(id, rank)| match rank {
            1 => sq::<B::InnerBackend, 1>(grads, id),
            2 => sq::<B::InnerBackend, 2>(grads, id),
            _ => 0.0,
        })
        .sum()
}

/// Multiplies `module`'s gradients in `grads` by `factor`.
pub fn scale<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    factor: f64,
) {
    fn scale_one<B: Backend, const D: usize>(g: &mut GradientsParams, id: ParamId, s: f64) {
        if let Some(t) = g.remove::<B, D>(id) {
            g.register::<B, D>(id, t * s);
        }
    }
    for (id, rank) in param_ids::<B, M>(module) {
        match rank {
            1 => scale_one::<B::InnerBackend, 1>(grads, id, factor),
            2 => scale_one::<B::InnerBackend, 2>(grads, id, factor),
            _ => {}
        }
    }
}

/// PyTorch's `clip_grad_norm_`: the factor `max_norm / (norm + 1e-6)` when the global norm is
/// above `max_norm` (no clipping when `max_norm` is not positive).
pub fn clip_factor(norm: f64, max_norm: f64) -> Option<f64> {
    (max_norm > 0.0 && norm > max_norm).then(|| max_norm / (norm + 1e-6))
}
