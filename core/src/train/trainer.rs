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
use super::replicas::{fingerprint, Alone, Replicas};
use super::sampler::MultiTaskSampler;
use super::schedule::learning_rate;
use super::setup::{Schedule, Setup};
use super::step::{materialize, StepBatch, StepOptions};
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
    run_replicated::<B>(config, device, &Alone, obs)
}

/// [`run`] as one of the ranks of a data-parallel run: each rank trains on its part of every
/// batch (`per_device_train_batch_size` rows of a batch of that times the world size) and the
/// ranks average their gradients before each step; rank 0 alone writes the outputs, evaluates
/// and exports. The other ranks return after the last step.
pub fn run_replicated<B: FusedAutodiff>(
    config: &RunConfig,
    device: B::Device,
    replicas: &dyn Replicas<B>,
    obs: &mut dyn Observer,
) -> Result<RunSummary> {
    let main = replicas.rank() == 0;
    let out = if main {
        Outputs::create(config, obs)?
    } else {
        Outputs::follower(config)
    };
    // Also a barrier: no rank looks for checkpoints before rank 0 has prepared the directory.
    replicas.agree("run config", fingerprint(config, replicas.world()))?;
    let mut setup = {
        let _turn = generator_turn();
        Setup::<B>::new(config, &device)?
    };
    if main && (config.print_num_parameters || config.do_train) {
        obs.message(setup.parameters.to_string().trim_end());
    }
    let global = global_batches(config, replicas.world());
    let mut schedule = Schedule::new(&global, &setup.data)?;
    let policy = Policy::new(config, &out, replicas);
    let mut summary = RunSummary::default();
    if config.do_train {
        let (state, examples, seconds) = train(
            config,
            &mut setup,
            &mut schedule,
            &policy,
            replicas,
            &device,
            obs,
        )?;
        summary.steps = state.step;
        summary.seconds = seconds;
        summary.examples_per_s = examples as f64 / seconds.max(1e-9);
        // Rank 0 has saved its last checkpoint: every rank finds the best one.
        replicas.agree("last step", state.step as u64)?;
        let best = policy.restore_best(&mut setup, &state, &device, obs)?;
        replicas.agree(
            "best checkpoint loaded (is `output_dir` shared by every node?)",
            best as u64,
        )?;
        if main {
            policy.export(&setup)?;
        }
    }
    if !(config.do_eval || config.do_test) {
        if main {
            out.write_curves(&config.output_dir.display().to_string())?;
        }
        return Ok(summary);
    }
    // Every rank evaluates its share of each split; rank 0 writes the results.
    let (model, adapters) = (
        setup.trainable.model.valid(),
        setup.trainable.adapters.valid(),
    );
    let set = adapters.all()?;
    let set = set.as_ref();
    let (data, tok) = (&setup.data, &setup.tokenizer);
    for (test, wanted) in [(false, config.do_eval), (true, config.do_test)] {
        if !wanted {
            continue;
        }
        let metrics = evaluate(&model, set, config, data, tok, test, replicas)?;
        let split = if test { "test" } else { "validation" };
        obs.message(&format!("{split}: {}", format_metrics(&metrics)));
        if main {
            out.write_results(test, &metrics)?;
        }
        if test {
            summary.test = Some(metrics);
        } else {
            summary.validation = Some(metrics);
        }
    }
    if main {
        out.write_curves(&config.output_dir.display().to_string())?;
    }
    Ok(summary)
}

/// The backend's random generator is one per process (the CPU backend's, shared by its one
/// device): ranks on threads of one process take turns to seed it and draw the initial and
/// lazily drawn parameters, so that each draws what a run alone would.
fn generator_turn() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|e| e.into_inner())
}

/// The config of the whole data-parallel batch: `world` ranks' batches drawn as one, so the
/// sampler, the schedule and the checkpoints are those of one process on the global batch.
fn global_batches(config: &RunConfig, world: usize) -> RunConfig {
    let mut global = config.clone();
    global.per_device_train_batch_size = config.per_device_train_batch_size * world.max(1);
    global
}

/// The training loop, from the newest checkpoint (or step 0) to the last step; returns the
/// final state, the examples seen (by all ranks) and the seconds it took.
fn train<B: FusedAutodiff>(
    config: &RunConfig,
    setup: &mut Setup<B>,
    schedule: &mut Schedule,
    policy: &Policy,
    replicas: &dyn Replicas<B>,
    device: &B::Device,
    obs: &mut dyn Observer,
) -> Result<(TrainerState, usize, f64)> {
    let mut state = resume(setup, schedule, policy.out, device, obs)?;
    replicas.agree(
        "step to resume from (is `output_dir` shared by every node?)",
        state.step as u64,
    )?;
    let global = global_batches(config, replicas.world());
    if replicas.rank() == 0 {
        obs.message(&task_mix(config, &setup.data, schedule));
    }
    obs.start(schedule.total_steps, state.step);
    let options = step_options(config, setup, replicas.world());
    let started = Instant::now();
    let mut examples = 0usize;
    while state.step < schedule.total_steps {
        seed_step(config, setup, replicas, state.step, device);
        let lr = learning_rate(
            config.lr_scheduler,
            config.learning_rate,
            state.step,
            config.warmup_steps,
            schedule.total_steps,
        );
        let rows: Vec<Vec<(usize, usize)>> = (0..config.gradient_accumulation_steps.max(1))
            .map(|_| draw_rows(&global, &mut schedule.sampler))
            .collect();
        examples += rows.iter().map(Vec::len).sum::<usize>();
        let (rank, world) = (replicas.rank(), replicas.world());
        let batches = rows
            .iter()
            .map(|r| step_batch(config, &setup.data, r, rank, world))
            .collect();
        let mut grads = setup.trainable.accumulate(batches, options)?;
        // The loss of the whole batch and whether any rank was interrupted, summed over ranks.
        let mut sums = [grads.loss / world as f64, obs.interrupted() as u8 as f64];
        replicas.all_reduce(&setup.trainable, &mut grads, &mut sums)?;
        setup.trainable.apply(grads, lr, config.max_grad_norm);
        let loss = sums[0];
        state.step += 1;
        state.sampler = schedule.sampler.state();
        let examples_per_s = examples as f64 / started.elapsed().as_secs_f64().max(1e-9);
        obs.step(state.step, loss, lr, examples_per_s);
        let record = StepRecord {
            loss,
            lr,
            examples_per_s,
            interrupted: sums[1] > 0.0,
        };
        policy.after_step(setup, &mut state, record, obs)?;
    }
    Ok((state, examples, started.elapsed().as_secs_f64()))
}

/// Seeds the backend's generator for the step after `step`: dropout masks depend only on
/// (seed, step, rank), so a resumed run repeats them. Lazily drawn parameters are drawn first,
/// from the rank-free seed, so that every rank draws the same ones.
fn seed_step<B: FusedAutodiff>(
    config: &RunConfig,
    setup: &Setup<B>,
    replicas: &dyn Replicas<B>,
    step: usize,
    device: &B::Device,
) {
    let _turn = generator_turn();
    let seed = derive_seed(config.seed, step as u64 + 1);
    B::seed(device, seed);
    if replicas.world() > 1 {
        materialize(&setup.trainable.model);
        materialize(&setup.trainable.adapters);
        B::seed(device, derive_seed(seed, replicas.rank() as u64));
    }
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

fn step_options<B: FusedAutodiff>(
    config: &RunConfig,
    setup: &Setup<B>,
    world: usize,
) -> StepOptions {
    StepOptions {
        pad_token_id: setup.model_config.pad_token_id as u32,
        label_smoothing: config.label_smoothing,
        // Times the world size: the ranks' mean of the gradients is then their sum, the
        // gradient of the whole batch's loss (as HF's `average_tokens_across_devices`).
        scale: world as f64 / config.gradient_accumulation_steps.max(1) as f64,
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

/// This rank's part of the drawn rows (all of them for one rank) as the step takes them, each
/// row through its task's adapter when training adapters; the loss is a mean over the target
/// tokens of all the rows.
fn step_batch<'a>(
    config: &RunConfig,
    data: &'a [TaskData],
    rows: &[(usize, usize)],
    rank: usize,
    world: usize,
) -> StepBatch<'a> {
    let tasks = &data[..config.tasks.len()];
    let part = rows.len().div_ceil(world.max(1)).max(1);
    let mine = rows.chunks(part).nth(rank).unwrap_or_default();
    let tokens = rows.iter().map(|&(t, i)| tasks[t].train[i].labels.len());
    StepBatch {
        examples: mine.iter().map(|&(t, i)| &tasks[t].train[i]).collect(),
        adapters: mine
            .iter()
            .map(|&(t, _)| config.train_adapters.then(|| tasks[t].task.name()))
            .collect(),
        mean_over_tokens: (world > 1).then(|| tokens.sum()),
    }
}
