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
pub use super::gather::Ranks;
use super::step::StepGradients;
use super::trainable::Trainable;
use crate::error::Result;
use crate::fused::FusedAutodiff;

/// The ranks of a run: who they are and their sum ([`Ranks`], all a sharded evaluation needs),
/// and the exchanges of training.
pub trait Replicas<B: FusedAutodiff>: Ranks {
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

impl Ranks for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn sum(&self, values: &[f32]) -> Result<Vec<f32>> {
        Ok(values.to_vec())
    }
}

impl<B: FusedAutodiff> Replicas<B> for Alone {
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

/// Where each gradient lies in a [`flatten`]ed tensor, in visiting order: every trainable
/// parameter, with or without a gradient on this rank (a rank's rows may not reach every
/// task's adapter; the ranks must send tensors of one shape).
pub struct Layout {
    entries: Vec<(ParamId, Vec<usize>)>,
    /// Which entries had a gradient here (1) or are zeros (0).
    present: Vec<f32>,
}

/// The step's gradients (the backbone's, then the adapters'), one presence flag per trainable
/// parameter and the `extra` values as one flat tensor; `grads` is left empty.
pub fn flatten<B: FusedAutodiff>(
    trainable: &Trainable<B>,
    grads: &mut StepGradients,
    extra: &[f64],
    device: &B::Device,
) -> (Tensor<B::InnerBackend, 1>, Layout) {
    let mut parts = Vec::new();
    let mut layout = Layout {
        entries: Vec::new(),
        present: Vec::new(),
    };
    if let Some(g) = grads.model.as_mut() {
        take(&trainable.model, g, &mut parts, &mut layout, device);
    }
    if let Some(g) = grads.adapters.as_mut() {
        take(&trainable.adapters, g, &mut parts, &mut layout, device);
    }
    let mut tail = layout.present.clone();
    tail.extend(extra.iter().map(|&v| v as f32));
    parts.push(Tensor::from_floats(tail.as_slice(), device));
    (Tensor::cat(parts, 0), layout)
}

/// The inverse of [`flatten`] after the all-reduce: into `grads` (whose `Some`s say which
/// modules had any) the gradients that some rank had, and the extra values.
pub fn unflatten<B: FusedAutodiff>(
    trainable: &Trainable<B>,
    grads: &mut StepGradients,
    flat: Tensor<B::InnerBackend, 1>,
    layout: Layout,
) -> Vec<f64> {
    let sizes: usize = layout
        .entries
        .iter()
        .map(|(_, d)| d.iter().product::<usize>())
        .sum();
    let tail: Vec<f32> = flat
        .clone()
        .slice(sizes..)
        .into_data()
        .iter::<f32>()
        .collect();
    let (present, extra) = tail.split_at(layout.entries.len());
    let mut put = Put::<B::InnerBackend> {
        flat,
        offset: 0,
        entries: layout.entries.into_iter().zip(present.to_vec()),
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
    extra.iter().map(|&v| f64::from(v)).collect()
}

fn take<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    parts: &mut Vec<Tensor<B::InnerBackend, 1>>,
    layout: &mut Layout,
    device: &B::Device,
) {
    struct Take<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        parts: &'a mut Vec<Tensor<B::InnerBackend, 1>>,
        layout: &'a mut Layout,
        device: &'a B::Device,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Take<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let dims = value.dims().to_vec();
            let n = dims.iter().product::<usize>();
            let (part, present) = match self.grads.remove::<B::InnerBackend, D>(param.id) {
                Some(g) => (g.reshape([n]), 1.0),
                None => (Tensor::zeros([n], self.device), 0.0),
            };
            self.parts.push(part);
            self.layout.entries.push((param.id, dims));
            self.layout.present.push(present);
        }
    }
    module.visit(&mut Take::<B> {
        grads,
        parts,
        layout,
        device,
    });
}

struct Put<B: Backend> {
    flat: Tensor<B, 1>,
    offset: usize,
    entries: std::iter::Zip<std::vec::IntoIter<(ParamId, Vec<usize>)>, std::vec::IntoIter<f32>>,
    target: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Put<B::InnerBackend> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        // The same modules visit in the same order as in `take`: the next entry is this
        // parameter's when it trains.
        if !param.val().is_require_grad() {
            return;
        }
        let Some(((id, dims), present)) = self.entries.next() else {
            return;
        };
        let n: usize = dims.iter().product();
        if id != param.id {
            unreachable!("parameters visited in another order than when flattened");
        }
        let part = self.flat.clone().slice(self.offset..self.offset + n);
        self.offset += n;
        // No rank had a gradient: none, as in a run alone (AdamW leaves the parameter be).
        if present > 0.0 {
            let dims: [usize; D] = dims
                .try_into()
                .expect("a gradient has its parameter's rank");
            self.target
                .register::<B::InnerBackend, D>(id, part.reshape(dims));
        }
    }
}
