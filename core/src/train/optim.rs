//! The optimizer step: AdamW with no weight decay on biases and norms (rank-1 parameters),
//! global gradient-norm clipping as PyTorch's `clip_grad_norm_`, then the update.

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Two AdamW instances over one module: with and without weight decay.
pub struct GroupedAdamW<M: AutodiffModule<B>, B: AutodiffBackend> {
    decay: OptimizerAdaptor<AdamW, M, B>,
    no_decay: OptimizerAdaptor<AdamW, M, B>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> GroupedAdamW<M, B> {
    pub fn new(weight_decay: f64, beta1: f64, beta2: f64, epsilon: f64) -> Self {
        let base = AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32);
        Self {
            decay: base.clone().with_weight_decay(weight_decay as f32).init(),
            no_decay: base.with_weight_decay(0.0).init(),
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
        let d = std::mem::replace(&mut self.decay, AdamWConfig::new().init());
        self.decay = d.load_record(decay);
        let n = std::mem::replace(&mut self.no_decay, AdamWConfig::new().init());
        self.no_decay = n.load_record(no_decay);
    }
}

/// The saved state of one AdamW over module `M`.
pub type OptimRecord<M, B> = <OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record;

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

/// Scales all gradients of `module` so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    struct Ids(Vec<(ParamId, usize)>);
    impl<B: Backend> ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push((param.id, D));
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    fn sq<B: Backend, const D: usize>(g: &GradientsParams, id: ParamId) -> f64 {
        g.get::<B, D>(id)
            .map(|t| t.powi_scalar(2).sum().into_scalar().elem::<f64>())
            .unwrap_or(0.0)
    }
    let mut total = 0.0;
    for &(id, rank) in &ids.0 {
        total += match rank {
            1 => sq::<B::InnerBackend, 1>(grads, id),
            2 => sq::<B::InnerBackend, 2>(grads, id),
            _ => 0.0,
        };
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        fn scale_one<B: Backend, const D: usize>(g: &mut GradientsParams, id: ParamId, s: f64) {
            if let Some(t) = g.remove::<B, D>(id) {
                g.register::<B, D>(id, t * s);
            }
        }
        for &(id, rank) in &ids.0 {
            match rank {
                1 => scale_one::<B::InnerBackend, 1>(grads, id, scale),
                2 => scale_one::<B::InnerBackend, 2>(grads, id, scale),
                _ => {}
            }
        }
    }
    norm
}
