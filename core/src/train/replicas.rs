//! The ranks of a data-parallel run as the trainer sees them: who this rank is, and the one
//! exchange of a step, the gradients averaged over the ranks before the optimizer step.
//!
//! The exchange itself is burn's collective all-reduce ([`super::collective`], native builds
//! with the `collective` feature); this module holds what does not depend on it: the run of one
//! rank ([`Alone`]) and the packing of a step's gradients into one flat tensor. One tensor per
//! step instead of one per parameter: one all-reduce (as PyTorch DDP's buckets), in the order
//! the modules visit their parameters, the same on every rank (burn's own
//! `GradientsParams::all_reduce` orders by `ParamId`, which is drawn at random in each process).

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::config::RunConfig;
use super::step::StepGradients;
use super::trainable::Trainable;
use crate::error::Result;
use crate::fused::FusedAutodiff;

/// The ranks of a run.
pub trait Replicas<B: FusedAutodiff> {
    /// This rank, `0..world()`; rank 0 writes the outputs.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world(&self) -> usize;
    /// Refuses to go on unless every rank has the same `value` of `what` (a fingerprint of the
    /// run config, the step resumed from); a barrier too: it returns once every rank called it.
    fn agree(&self, what: &str, value: u64) -> Result<()>;
    /// Replaces each gradient of `grads` by its mean over the ranks, and each of `sums` by its
    /// sum over the ranks.
    fn all_reduce(
        &self,
        trainable: &Trainable<B>,
        grads: &mut StepGradients,
        sums: &mut [f64],
    ) -> Result<()>;
}

/// A run of one rank: nothing to exchange.
pub struct Alone;

impl<B: FusedAutodiff> Replicas<B> for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn agree(&self, _: &str, _: u64) -> Result<()> {
        Ok(())
    }
    fn all_reduce(&self, _: &Trainable<B>, _: &mut StepGradients, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

/// A fingerprint of what every rank must agree on: the resolved run config and the world size
/// (FNV-1a, the same in every build).
pub fn fingerprint(config: &RunConfig, world: usize) -> u64 {
    let text = format!("{}\n{world}", config.resolved_json());
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where each gradient lies in a [`flatten`]ed tensor, in visiting order.
pub struct Layout {
    entries: Vec<(ParamId, Vec<usize>)>,
}

/// The step's gradients (the backbone's, then the adapters') and `extra` values as one flat
/// tensor, in the order the modules visit their parameters; `grads` is left empty.
pub fn flatten<B: FusedAutodiff>(
    trainable: &Trainable<B>,
    grads: &mut StepGradients,
    extra: &[f64],
    device: &B::Device,
) -> (Tensor<B::InnerBackend, 1>, Layout) {
    let mut parts = Vec::new();
    let mut layout = Layout {
        entries: Vec::new(),
    };
    if let Some(g) = grads.model.as_mut() {
        take(&trainable.model, g, &mut parts, &mut layout);
    }
    if let Some(g) = grads.adapters.as_mut() {
        take(&trainable.adapters, g, &mut parts, &mut layout);
    }
    let extra: Vec<f32> = extra.iter().map(|&v| v as f32).collect();
    parts.push(Tensor::from_floats(extra.as_slice(), device));
    (Tensor::cat(parts, 0), layout)
}

/// The inverse of [`flatten`]: the gradients back into `grads` (whose `Some`s say which modules
/// had any), and the extra values.
pub fn unflatten<B: FusedAutodiff>(
    trainable: &Trainable<B>,
    grads: &mut StepGradients,
    flat: Tensor<B::InnerBackend, 1>,
    layout: Layout,
) -> Vec<f64> {
    let mut put = Put::<B::InnerBackend> {
        flat,
        offset: 0,
        entries: layout.entries.into_iter(),
        target: GradientsParams::new(),
    };
    if let Some(g) = grads.model.as_mut() {
        trainable.model.visit(&mut put);
        *g = std::mem::take(&mut put.target);
    }
    if let Some(g) = grads.adapters.as_mut() {
        trainable.adapters.visit(&mut put);
        *g = std::mem::take(&mut put.target);
    }
    let rest = put.flat.slice(put.offset..);
    rest.into_data()
        .iter::<f32>()
        .map(|v| v as f64)
        .collect()
}

fn take<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    parts: &mut Vec<Tensor<B::InnerBackend, 1>>,
    layout: &mut Layout,
) {
    struct Take<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        parts: &'a mut Vec<Tensor<B::InnerBackend, 1>>,
        layout: &'a mut Layout,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Take<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let dims = g.dims().to_vec();
                self.parts.push(g.reshape([dims.iter().product::<usize>()]));
                self.layout.entries.push((param.id, dims));
            }
        }
    }
    module.visit(&mut Take::<B> {
        grads,
        parts,
        layout,
    });
}

struct Put<B: Backend> {
    flat: Tensor<B, 1>,
    offset: usize,
    entries: std::vec::IntoIter<(ParamId, Vec<usize>)>,
    target: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Put<B::InnerBackend> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        // The same modules visit in the same order as in `take`: the next entry is this
        // parameter's when it had a gradient.
        let next = self.entries.as_slice().first();
        if next.is_none_or(|(id, _)| *id != param.id) {
            return;
        }
        let (id, dims) = self.entries.next().expect("checked above");
        let n: usize = dims.iter().product();
        let part = self.flat.clone().slice(self.offset..self.offset + n);
        self.offset += n;
        let dims: [usize; D] = dims.try_into().expect("a gradient has its parameter's rank");
        self.target
            .register::<B::InnerBackend, D>(id, part.reshape(dims));
    }
}
