//! What trains, and one optimizer step of it: the backbone and the adapters (per task, or a
//! hypernetwork that generates them) with their AdamW states; the gradients of a step's batches (see [`super::step`]) summed, clipped to one global
//! norm, and applied.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;

use super::adapters::RunAdapters;
use super::config::RunConfig;
use super::optim::{clip_factor, scale, squared_norm, GroupedAdamW};
use super::step::{add, gradients, StepBatch, StepGradients, StepOptions};
use crate::config::T5Config;
use crate::error::Result;
use crate::fused::FusedAutodiff;
use crate::model::T5ForConditionalGeneration;

/// The parameters a run trains and their optimizer states.
pub struct Trainable<B: FusedAutodiff> {
    pub model: T5ForConditionalGeneration<B>,
    pub adapters: RunAdapters<B>,
    pub model_optim: GroupedAdamW<T5ForConditionalGeneration<B>, B>,
    pub adapters_optim: GroupedAdamW<RunAdapters<B>, B>,
    /// Whether any backbone parameter trains (full fine-tuning or unfrozen parts).
    pub backbone_trains: bool,
}

impl<B: FusedAutodiff> Trainable<B> {
    /// `model` (frozen where it should not train; `backbone_trains` when anything of it does)
    /// and the `adapters`, with fresh AdamW states of the config's hyper-parameters.
    pub fn new(
        model: T5ForConditionalGeneration<B>,
        adapters: RunAdapters<B>,
        backbone_trains: bool,
        config: &RunConfig,
    ) -> Self {
        let (wd, b1, b2, eps) = (
            config.weight_decay,
            config.adam_beta1,
            config.adam_beta2,
            config.adam_epsilon,
        );
        Self {
            model,
            adapters,
            model_optim: GroupedAdamW::new(wd, b1, b2, eps),
            adapters_optim: GroupedAdamW::new(wd, b1, b2, eps),
            backbone_trains,
        }
    }

    /// One optimizer step over `batches` (gradient accumulation: their gradients add up) at
    /// learning rate `lr`; returns the sum of the batches' (scaled) losses.
    pub fn step(
        &mut self,
        batches: Vec<StepBatch>,
        options: StepOptions,
        lr: f64,
        max_grad_norm: f64,
    ) -> Result<f64> {
        let grads = self.accumulate(batches, options)?;
        let loss = grads.loss;
        self.apply(grads, lr, max_grad_norm);
        Ok(loss)
    }

    /// The gradients of `batches` summed (gradient accumulation), not yet applied.
    pub fn accumulate(
        &self,
        batches: Vec<StepBatch>,
        options: StepOptions,
    ) -> Result<StepGradients> {
        let mut total = StepGradients {
            loss: 0.0,
            model: None,
            adapters: None,
        };
        for batch in batches {
            let g = gradients(&self.model, &self.adapters, batch, options)?;
            total.loss += g.loss;
            total.model = add(&self.model, total.model, g.model);
            total.adapters = add(&self.adapters, total.adapters, g.adapters);
        }
        Ok(total)
    }

    /// Clips `grads` to `max_grad_norm` and takes an AdamW step at learning rate `lr`.
    pub fn apply(&mut self, grads: StepGradients, lr: f64, max_grad_norm: f64) {
        let (mut model_grads, mut set_grads) = (grads.model, grads.adapters);
        // One global norm over everything that trains, as PyTorch's `clip_grad_norm_`.
        let norm = (model_grads
            .as_ref()
            .map_or(0.0, |g| squared_norm(&self.model, g))
            + set_grads
                .as_ref()
                .map_or(0.0, |g| squared_norm(&self.adapters, g)))
        .sqrt();
        if let Some(factor) = clip_factor(norm, max_grad_norm) {
            if let Some(g) = model_grads.as_mut() {
                scale(&self.model, g, factor);
            }
            if let Some(g) = set_grads.as_mut() {
                scale(&self.adapters, g, factor);
            }
        }
        // The optimizer gets the modules themselves, not clones: as their only owner it updates
        // the parameters in place instead of copying each one first.
        if let Some(g) = model_grads {
            let hollow = stand_in(&self.model);
            let model = std::mem::replace(&mut self.model, hollow);
            self.model = self.model_optim.step(lr, model, g);
        }
        if let Some(g) = set_grads {
            let hollow = stand_in(&self.adapters);
            let adapters = std::mem::replace(&mut self.adapters, hollow);
            self.adapters = self.adapters_optim.step(lr, adapters, g);
        }
    }

    /// Whether a training step draws random numbers (dropout in the model or the adapters).
    pub fn dropout_active(&self, config: &T5Config) -> bool {
        config.dropout_rate > 0.0 || self.adapters.dropout_active()
    }
}

/// A stand-in for `module` while the optimizer holds it: the same structure with every parameter
/// an empty tensor, so it keeps none of the parameters' buffers alive.
fn stand_in<B: Backend, M: Module<B>>(module: &M) -> M {
    struct Hollow;
    impl<B: Backend> ModuleMapper<B> for Hollow {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.map(|t| Tensor::empty([0; D], &t.device()))
        }
    }
    module.clone().map(&mut Hollow)
}
