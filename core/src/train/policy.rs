//! The policy around the steps, as the run config says: after each step, whether to log the
//! loss, evaluate (and keep the best checkpoint), save a checkpoint (and prune old ones); at the
//! end of training, the best checkpoint back and the export of what was trained.

use burn::module::AutodiffModule;

use super::checkpoint::{self, TrainerState};
use super::config::{EvaluationStrategy, RunConfig};
use super::evaluate::{evaluate, format_metrics};
use super::gather::Ranks;
use super::observer::Observer;
use super::outputs::Outputs;
use super::setup::Setup;
use crate::error::{Error, Result};
use crate::fused::FusedAutodiff;
use crate::model_dir::save_pretrained;

/// What one optimizer step measured.
#[derive(Clone, Copy, Debug)]
pub struct StepRecord {
    pub loss: f64,
    pub lr: f64,
    pub examples_per_s: f64,
    /// Whether an interrupt (Ctrl-C) came, on any rank: save and stop.
    pub interrupted: bool,
}

/// The run config's answers to "what now?", the output directory they write to, and the
/// ranks that share the evaluations.
pub struct Policy<'a> {
    config: &'a RunConfig,
    pub out: &'a Outputs,
    ranks: &'a dyn Ranks,
}

impl<'a> Policy<'a> {
    pub fn new(config: &'a RunConfig, out: &'a Outputs, ranks: &'a dyn Ranks) -> Self {
        Self { config, out, ranks }
    }

    fn log_now(&self, step: usize) -> bool {
        step.is_multiple_of(self.config.logging_steps.max(1))
            || (self.config.logging_first_step && step == 1)
    }

    /// Evaluations during training happen every `eval_steps` (`"epoch"` evaluates after training
    /// only).
    fn evaluate_now(&self, step: usize) -> bool {
        self.config.evaluation_strategy == EvaluationStrategy::Steps
            && self.config.eval_steps > 0
            && step.is_multiple_of(self.config.eval_steps)
    }

    fn save_now(&self, step: usize) -> bool {
        self.config.save_steps > 0 && step.is_multiple_of(self.config.save_steps)
    }

    fn is_better(&self, metric: f64, best: Option<f64>) -> bool {
        best.is_none_or(|b| {
            if self.config.greater_is_better {
                metric > b
            } else {
                metric < b
            }
        })
    }

    /// After optimizer step `state.step`: logs, evaluates, saves as due. An interrupt (Ctrl-C)
    /// saves a checkpoint and ends the run with an error.
    pub fn after_step<B: FusedAutodiff>(
        &self,
        setup: &Setup<B>,
        state: &mut TrainerState,
        record: StepRecord,
        obs: &mut dyn Observer,
    ) -> Result<()> {
        let step = state.step;
        if self.log_now(step) {
            self.out
                .log_step(step, record.loss, record.lr, record.examples_per_s)?;
        }
        // A new best was saved just now: saving the same step again would only open a moment
        // with no checkpoint of it (the old one removed, the new one not yet renamed).
        // In a data-parallel run every rank evaluates its share; rank 0 alone saves (a
        // follower writes nothing).
        let writes = self.out.writes();
        let saved = self.evaluate_now(step) && self.evaluate(setup, state, obs)?;
        let interrupted = record.interrupted;
        if writes && (self.save_now(step) || interrupted) {
            if !saved {
                let tr = &setup.trainable;
                tr.save(&self.out.checkpoint(step), state, &setup.model_config)?;
            }
            checkpoint::prune(
                &self.out.dir,
                self.config.save_total_limit,
                state.best_checkpoint.as_deref(),
            );
        }
        if interrupted {
            obs.message(&format!(
                "interrupted: saved {} (run again to resume)",
                checkpoint::name(step)
            ));
            return Err(Error::Invalid("training interrupted".into()));
        }
        Ok(())
    }

    /// Evaluates on the validation splits, logs the metrics, and saves a checkpoint when
    /// `metric_for_best_model` improved; returns whether it saved (never on a follower, which
    /// keeps the best metric all the same).
    fn evaluate<B: FusedAutodiff>(
        &self,
        setup: &Setup<B>,
        state: &mut TrainerState,
        obs: &mut dyn Observer,
    ) -> Result<bool> {
        let tr = &setup.trainable;
        let (model, adapters) = (tr.model.valid(), tr.adapters.valid());
        let metrics = evaluate(
            &model,
            adapters.all()?.as_ref(),
            self.config,
            &setup.data,
            &setup.tokenizer,
            false,
            self.ranks,
        )?;
        if !self.out.writes() {
            if let Some(&m) = metrics.get(&self.config.metric_for_best_model) {
                if self.is_better(m, state.best_metric) {
                    state.best_metric = Some(m);
                    state.best_checkpoint = Some(checkpoint::name(state.step));
                }
            }
            return Ok(false);
        }
        obs.message(&format!(
            "step {}: {}",
            state.step,
            format_metrics(&metrics)
        ));
        self.out.log_eval(state.step, &metrics)?;
        if let Some(&m) = metrics.get(&self.config.metric_for_best_model) {
            if self.is_better(m, state.best_metric) {
                state.best_metric = Some(m);
                state.best_checkpoint = Some(checkpoint::name(state.step));
                tr.save(&self.out.checkpoint(state.step), state, &setup.model_config)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// After the last step (on every rank, so that they evaluate the same weights): the best
    /// checkpoint back (`load_best_model_at_end`); returns whether it loaded one.
    pub fn restore_best<B: FusedAutodiff>(
        &self,
        setup: &mut Setup<B>,
        state: &TrainerState,
        device: &B::Device,
        obs: &mut dyn Observer,
    ) -> Result<bool> {
        if let (true, Some(best)) = (self.config.load_best_model_at_end, &state.best_checkpoint) {
            let dir = self.out.dir.join(best);
            if dir.is_dir() {
                obs.message(&format!(
                    "loading the best checkpoint ({best}, {} = {:.2})",
                    self.config.metric_for_best_model,
                    state.best_metric.unwrap_or(0.0)
                ));
                setup.trainable.restore(&dir, device)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The export (rank 0): each task's adapter directory (`adapters/<task>/`) with adapters,
    /// the fine-tuned model as a model directory (`model/`) when the backbone trained.
    pub fn export<B: FusedAutodiff>(&self, setup: &Setup<B>) -> Result<()> {
        let tr = &setup.trainable;
        if self.config.train_adapters {
            tr.adapters.valid().export(
                &self.out.dir.join("adapters"),
                &self.out.dir.join("hypernetwork"),
                &setup.model_config,
            )?;
        }
        if tr.backbone_trains {
            let dir = self.out.dir.join("model");
            save_pretrained(&tr.model, Some(&setup.tokenizer_file), &dir)?;
        }
        Ok(())
    }
}
