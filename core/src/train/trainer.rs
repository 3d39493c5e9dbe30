//! `native train`: multi-task fine-tuning, fully or with per-task adapters on a frozen backbone,
//! with temperature sampling, evaluation by generation, checkpoints and resumption.
//!
//! A run is three parts: its [setup](super::setup) (model, adapters, data, optimizers), the
//! [step](super::trainable) (batches in, loss out, parameters updated), and the
//! [policy](super::policy) for logging, evaluation, checkpoints and the export. [`run`] tells the
//! story of a run with them.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::AutodiffModule;
use serde::Serialize;

use super::checkpoint::{self, TrainerState};
use super::config::RunConfig;
use super::data::TaskData;
use super::evaluate::{evaluate, format_metrics};
pub use super::observer::Observer;
use super::outputs::Outputs;
use super::policy::{Policy, StepRecord};
use super::sampler::MultiTaskSampler;
use super::schedule::learning_rate;
use super::setup::{Schedule, Setup};
use super::step::{StepBatch, StepOptions};
use crate::error::Result;
use crate::fused::FusedAutodiff;
use crate::rng::derive_seed;

/// What a finished run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub steps: usize,
    pub seconds: f64,
    pub examples_per_s: f64,
    pub validation: Option<BTreeMap<String, f64>>,
    pub test: Option<BTreeMap<String, f64>>,
}

/// Runs the whole job of `config` on `device`: set up, train (from the newest checkpoint in
/// `output_dir`, if any), export, evaluate.
pub fn run<B: FusedAutodiff>(
    config: &RunConfig,
    device: B::Device,
    obs: &mut dyn Observer,
) -> Result<RunSummary> {
    let out = Outputs::create(config, obs)?;
    let mut setup = Setup::<B>::new(config, &device)?;
    if config.print_num_parameters || config.do_train {
        obs.message(setup.parameters.to_string().trim_end());
    }
    let mut schedule = Schedule::new(config, &setup.data)?;
    let policy = Policy::new(config, &out);
    let mut summary = RunSummary::default();
    if config.do_train {
        let (state, examples, seconds) =
            train(config, &mut setup, &mut schedule, &policy, &device, obs)?;
        summary.steps = state.step;
        summary.seconds = seconds;
        summary.examples_per_s = examples as f64 / seconds.max(1e-9);
        policy.finish(&mut setup, &state, &device, obs)?;
    }
    let (model, adapters) = (
        setup.trainable.model.valid(),
        setup.trainable.adapters.valid(),
    );
    let set = adapters.all()?;
    let set = set.as_ref();
    let (data, tok) = (&setup.data, &setup.tokenizer);
    if config.do_eval {
        let metrics = evaluate(&model, set, config, data, tok, false)?;
        obs.message(&format!("validation: {}", format_metrics(&metrics)));
        out.write_results(false, &metrics)?;
        summary.validation = Some(metrics);
    }
    if config.do_test {
        let metrics = evaluate(&model, set, config, data, tok, true)?;
        obs.message(&format!("test: {}", format_metrics(&metrics)));
        out.write_results(true, &metrics)?;
        summary.test = Some(metrics);
    }
    out.write_curves(&config.output_dir.display().to_string())?;
    Ok(summary)
}

/// The training loop, from the newest checkpoint (or step 0) to the last step; returns the
/// final state, the examples seen and the seconds it took.
fn train<B: FusedAutodiff>(
    config: &RunConfig,
    setup: &mut Setup<B>,
    schedule: &mut Schedule,
    policy: &Policy,
    device: &B::Device,
    obs: &mut dyn Observer,
) -> Result<(TrainerState, usize, f64)> {
    let mut state = resume(setup, schedule, policy.out, device, obs)?;
    obs.message(&task_mix(config, &setup.data, schedule));
    obs.start(schedule.total_steps, state.step);
    let options = step_options(config, setup);
    let started = Instant::now();
    let mut examples = 0usize;
    while state.step < schedule.total_steps {
        // Dropout masks depend only on (seed, step), so a resumed run repeats them.
        B::seed(device, derive_seed(config.seed, state.step as u64 + 1));
        let lr = learning_rate(
            config.lr_scheduler,
            config.learning_rate,
            state.step,
            config.warmup_steps,
            schedule.total_steps,
        );
        let rows: Vec<Vec<(usize, usize)>> = (0..config.gradient_accumulation_steps.max(1))
            .map(|_| draw_rows(config, &mut schedule.sampler))
            .collect();
        examples += rows.iter().map(Vec::len).sum::<usize>();
        let batches = rows
            .iter()
            .map(|r| step_batch(config, &setup.data, r))
            .collect();
        let loss = setup
            .trainable
            .step(batches, options, lr, config.max_grad_norm)?;
        state.step += 1;
        state.sampler = schedule.sampler.state();
        let examples_per_s = examples as f64 / started.elapsed().as_secs_f64().max(1e-9);
        obs.step(state.step, loss, lr, examples_per_s);
        let record = StepRecord {
            loss,
            lr,
            examples_per_s,
        };
        policy.after_step(setup, &mut state, record, obs)?;
    }
    Ok((state, examples, started.elapsed().as_secs_f64()))
}

/// Where training starts: the newest whole checkpoint in the output directory (each newer one
/// that is not whole is skipped with a warning saying why), or step 0 with a fresh metrics log.
fn resume<B: FusedAutodiff>(
    setup: &mut Setup<B>,
    schedule: &mut Schedule,
    out: &Outputs,
    device: &B::Device,
    obs: &mut dyn Observer,
) -> Result<TrainerState> {
    let found = checkpoint::list(&out.dir);
    for (step, dir) in found.iter().rev() {
        if let Err(e) = checkpoint::verify(dir) {
            obs.message(&format!(
                "warning: skipping {}: {e}",
                checkpoint::name(*step)
            ));
            continue;
        }
        obs.message(&format!("resuming from {} (step {step})", dir.display()));
        let state = setup.trainable.restore_verified(dir, device)?;
        schedule.sampler.restore(&state.sampler)?;
        out.truncate_log(state.step)?;
        return Ok(state);
    }
    if !found.is_empty() {
        obs.message(&format!(
            "warning: no whole checkpoint in {}: training starts from step 0",
            out.dir.display()
        ));
    }
    out.restart_log();
    Ok(TrainerState::start(&schedule.sampler))
}

/// `N training examples; task mix (temperature T): a 40%, b 60%`.
fn task_mix(config: &RunConfig, data: &[TaskData], schedule: &Schedule) -> String {
    let mix: Vec<String> = data[..config.tasks.len()]
        .iter()
        .zip(schedule.sampler.probabilities())
        .map(|(t, p)| format!("{} {:.0}%", t.task.name(), 100.0 * p))
        .collect();
    format!(
        "{} training examples; task mix (temperature {}): {}",
        schedule.total_examples,
        config.temperature,
        mix.join(", ")
    )
}

fn step_options<B: FusedAutodiff>(config: &RunConfig, setup: &Setup<B>) -> StepOptions {
    StepOptions {
        pad_token_id: setup.model_config.pad_token_id as u32,
        label_smoothing: config.label_smoothing,
        scale: 1.0 / config.gradient_accumulation_steps.max(1) as f64,
        // Shards draw dropout masks from the backend's one random stream in no fixed order,
        // so a step with dropout runs as one part (its masks then repeat on resume).
        shards: if setup.trainable.dropout_active(&setup.model_config) {
            1
        } else {
            B::data_parallel_shards()
        },
    }
}

/// The `(task, example)` rows of one batch: one task per batch, or with `mixed_task_batches` a
/// task per row.
fn draw_rows(config: &RunConfig, sampler: &mut MultiTaskSampler) -> Vec<(usize, usize)> {
    if config.mixed_task_batches {
        sampler.next_mixed_batch(config.per_device_train_batch_size)
    } else {
        let (task, idx) = sampler.next_batch(config.per_device_train_batch_size);
        idx.into_iter().map(|i| (task, i)).collect()
    }
}

/// Drawn rows as the step takes them, each row through its task's adapter when training
/// adapters.
fn step_batch<'a>(
    config: &RunConfig,
    data: &'a [TaskData],
    rows: &[(usize, usize)],
) -> StepBatch<'a> {
    let tasks = &data[..config.tasks.len()];
    StepBatch {
        examples: rows.iter().map(|&(t, i)| &tasks[t].train[i]).collect(),
        adapters: rows
            .iter()
            .map(|&(t, _)| config.train_adapters.then(|| tasks[t].task.name()))
            .collect(),
    }
}
