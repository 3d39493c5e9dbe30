//! The gradients of one batch: forward and backward, the batch split into shards that run at
//! the same time on separate threads when the backend profits from it (the CPU backend, whose
//! operations on a small model are too small to fill every core by themselves).
//!
//! Each shard differentiates its own copy of the trainable parameters (fresh autodiff leaves, so
//! the shards' graphs share no node and burn runs their backward passes concurrently) and its
//! loss is weighted by its share of the batch's target tokens: the sum of the shards' gradients
//! is the gradient of the whole batch's mean loss, up to the order of floating-point additions.

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rayon::prelude::*;

use super::adapters::RunAdapters;
use super::batch::{collate, Example};
use crate::adapter::Adapters;
use crate::error::Result;
use crate::fused::FusedAutodiff;
use crate::model::T5ForConditionalGeneration;

/// One batch as the step takes it: examples and, per row, the adapter it runs through (`None`:
/// the plain backbone).
pub struct StepBatch<'a> {
    pub examples: Vec<&'a Example>,
    pub adapters: Vec<Option<&'a str>>,
    /// The target tokens the loss is a mean over, when the batch is one rank's part of a
    /// data-parallel batch: those of the whole batch (`None`: this batch's own).
    pub mean_over_tokens: Option<usize>,
}

/// What a step's forward and backward produce.
pub struct StepGradients {
    /// The batch's loss, times `scale`.
    pub loss: f64,
    /// Gradients of the backbone's trainable parameters, when it has any.
    pub model: Option<GradientsParams>,
    /// Gradients of the adapters, when there are any.
    pub adapters: Option<GradientsParams>,
}

/// How a step runs.
#[derive(Clone, Copy, Debug)]
pub struct StepOptions {
    pub pad_token_id: u32,
    pub label_smoothing: f64,
    /// Multiplies the loss (and so the gradients): `1 / gradient_accumulation_steps`.
    pub scale: f64,
    /// Parts of the batch run at once (at most one per row).
    pub shards: usize,
}

/// Forward and backward of `batch` through `model` and `adapters`.
pub fn gradients<B: FusedAutodiff>(
    model: &T5ForConditionalGeneration<B>,
    set: &RunAdapters<B>,
    batch: StepBatch,
    options: StepOptions,
) -> Result<StepGradients> {
    let rows = batch.examples.len();
    let shards = options.shards.clamp(1, rows.max(1));
    // A lazily initialized parameter (fresh adapters, a preset's weights) cloned before its
    // first use is drawn anew in every copy: the forward would see one draw and the optimizer
    // update another. Draw it once, here, in the original (a no-op once drawn).
    materialize(model);
    materialize(set);
    // Every row's labels count in the mean loss (padding, added by `collate`, does not).
    let tokens: usize = batch
        .mean_over_tokens
        .unwrap_or_else(|| batch.examples.iter().map(|e| e.labels.len()).sum())
        .max(1);
    let per_shard = rows.div_ceil(shards);
    let parts: Vec<(&[&Example], &[Option<&str>])> = batch
        .examples
        .chunks(per_shard)
        .zip(batch.adapters.chunks(per_shard))
        .collect();
    let sharded = parts.len() > 1;
    let run = |(examples, adapters): (&[&Example], &[Option<&str>])| {
        let weight = examples.iter().map(|e| e.labels.len()).sum::<usize>() as f64 / tokens as f64;
        let (model, set) = if sharded {
            (detached(model), detached(set))
        } else {
            (model.clone(), set.clone())
        };
        shard_gradients(
            &model,
            &set,
            examples,
            adapters,
            weight * options.scale,
            &options,
        )
    };
    let results: Vec<Result<StepGradients>> = if sharded {
        parts.into_par_iter().map(run).collect()
    } else {
        parts.into_iter().map(run).collect()
    };
    let mut total = StepGradients {
        loss: 0.0,
        model: None,
        adapters: None,
    };
    for r in results {
        let r = r?;
        total.loss += r.loss;
        total.model = add(model, total.model, r.model);
        total.adapters = add(set, total.adapters, r.adapters);
    }
    Ok(total)
}

/// One shard: its loss times `weight`, backward, the gradients of what trains. Generated
/// adapters are generated here, from the shard's own copy of the hypernetwork.
fn shard_gradients<B: FusedAutodiff>(
    model: &T5ForConditionalGeneration<B>,
    run_adapters: &RunAdapters<B>,
    examples: &[&Example],
    adapters: &[Option<&str>],
    weight: f64,
    options: &StepOptions,
) -> Result<StepGradients> {
    let device = model.device();
    let batch = collate::<B>(examples, options.pad_token_id, &device);
    let names: Vec<&str> = adapters.iter().flatten().copied().collect();
    let set = run_adapters.for_tasks(&names)?;
    let set = set.as_ref();
    // Without adapter blocks (`train_adapters_blocks: false`) every row runs on the backbone.
    let routing = if adapters.iter().all(Option::is_none) || set.tasks.is_empty() {
        None
    } else if adapters.windows(2).all(|w| w[0] == w[1]) {
        Some(Adapters::task(set, adapters[0].expect("checked above"))?)
    } else {
        Some(Adapters::per_row(set, adapters)?)
    };
    let out = model.forward_with_labels(
        batch.input_ids,
        batch.attention_mask,
        batch.labels,
        options.label_smoothing,
        routing.as_ref(),
    );
    let loss = out.loss * weight;
    let value = loss.clone().into_scalar().elem::<f64>();
    let mut grads = loss.backward();
    let model_grads =
        (model.num_trainable_params() > 0).then(|| GradientsParams::from_module(&mut grads, model));
    let set_grads = (run_adapters.num_params() > 0)
        .then(|| GradientsParams::from_module(&mut grads, run_adapters));
    Ok(StepGradients {
        loss: value,
        model: model_grads,
        adapters: set_grads,
    })
}

/// Initializes every lazily initialized parameter of `module` in place.
pub(crate) fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// The module with its trainable parameters as new autodiff leaves (same ids, same values).
fn detached<B: AutodiffBackend, M: Module<B>>(module: &M) -> M {
    struct Detach;
    impl<B: AutodiffBackend> ModuleMapper<B> for Detach {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.map(|t| {
                if t.is_require_grad() {
                    Tensor::from_inner(t.inner()).require_grad()
                } else {
                    t
                }
            })
        }
    }
    module.clone().map(&mut Detach)
}

/// `acc + new`, parameter by parameter (in that order of addition): shards of a batch, and the
/// micro-batches of gradient accumulation.
pub fn add<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    acc: Option<GradientsParams>,
    new: Option<GradientsParams>,
) -> Option<GradientsParams> {
    let (mut acc, mut new) = match (acc, new) {
        (Some(a), Some(n)) => (a, n),
        (a, n) => return a.or(n),
    };
    struct Add<'a> {
        acc: &'a mut GradientsParams,
        new: &'a mut GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Add<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.new.remove::<B::InnerBackend, D>(param.id) {
                let sum = match self.acc.remove::<B::InnerBackend, D>(param.id) {
                    Some(a) => a + g,
                    None => g,
                };
                self.acc.register::<B::InnerBackend, D>(param.id, sum);
            }
        }
    }
    module.visit(&mut Add {
        acc: &mut acc,
        new: &mut new,
    });
    Some(acc)
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use burn::backend::Autodiff;

    use super::*;
    use crate::adapter::{BottleneckConfig, SeedAdapterConfig, TaskAdapter};
    use crate::backend::Cpu;
    use crate::model::freeze::FreezeOptions;
    use crate::train::setup::preset;

    /// Fresh adapters are drawn lazily; a step on one thread differentiates a clone of them. The
    /// draw must happen once, in the original: two steps over the same batch see the same
    /// weights (and so the same loss), and the optimizer updates the weights the forward saw.
    #[test]
    fn fresh_parameters_are_drawn_once() {
        type B = Autodiff<Cpu>;
        let device = Default::default();
        let config = preset("t5-tiny", 100).expect("a preset");
        let model = T5ForConditionalGeneration::<B>::init(&config, &device).freeze(FreezeOptions {
            backbone: true,
            ..Default::default()
        });
        let mut set = crate::adapter::AdapterSet::default();
        let seed = SeedAdapterConfig::default();
        let c = BottleneckConfig::seed(&seed, &config);
        set.insert(TaskAdapter::init("task", c, &config, &device).unwrap());
        let set = RunAdapters::PerTask(set);
        let example = Example {
            input_ids: vec![5, 6, 7, 1],
            labels: vec![8, 1],
        };
        let options = StepOptions {
            pad_token_id: 0,
            label_smoothing: 0.0,
            scale: 1.0,
            shards: 1,
        };
        let loss = || {
            let batch = StepBatch {
                examples: vec![&example],
                adapters: vec![Some("task")],
                mean_over_tokens: None,
            };
            gradients(&model, &set, batch, options).unwrap().loss
        };
        assert_eq!(loss(), loss());
    }
}
