//! `native train`: multi-task fine-tuning, fully or with per-task adapters on a frozen backbone,
//! with temperature sampling, evaluation by generation, checkpoints and resumption.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use serde::{Deserialize, Serialize};

use super::batch::{truncate, Example};
use super::config::{EvaluationStrategy, RunConfig};
use super::optim::{clip_factor, scale, squared_norm, GroupedAdamW};
use super::plot::{training_curves, Series};
use super::sampler::{MultiTaskSampler, MultiTaskSamplerState};
use super::schedule::learning_rate;
use super::step::{add, gradients, StepBatch, StepOptions};
use super::summary::ParameterSummary;
use crate::adapter::{save_adapter, AdapterSet, Adapters, BottleneckConfig, TaskAdapter};
use crate::config::T5Config;
use crate::data::{read_records, Record};
use crate::error::{Error, Result};
use crate::files::TOKENIZER_FILE;
use crate::fused::{FusedAutodiff, FusedOps};
use crate::generation::{generate, GenerationConfig};
use crate::model::{FreezeOptions, T5ForConditionalGeneration};
use crate::model_dir::{save_pretrained, ModelDir};
use crate::tasks::{self, Role, Task};
use crate::tokenizer::T5Tokenizer;

/// A task's tokenized splits; evaluation keeps the target texts to score against.
pub struct TaskData {
    pub task: Task,
    pub train: Vec<Example>,
    pub validation: Vec<(Example, String)>,
    pub test: Vec<(Example, String)>,
}

/// What the trainer reports while it runs (the CLI draws a progress bar from it).
pub trait Observer {
    fn message(&mut self, text: &str);
    fn start(&mut self, total_steps: usize, first_step: usize);
    fn step(&mut self, step: usize, loss: f64, lr: f64, examples_per_s: f64);
    /// Checked after every step: true stops training after saving a checkpoint (Ctrl-C).
    fn interrupted(&self) -> bool {
        false
    }
}

/// Built-in model presets for runs without a checkpoint (the embedded default).
pub fn preset(name: &str, vocab_size: usize) -> Option<T5Config> {
    let mut c = T5Config::t5_small();
    match name {
        "t5-tiny" => {
            (c.d_model, c.d_kv, c.d_ff, c.num_heads, c.num_layers) = (64, 16, 256, 4, 2);
        }
        "t5-mini" => {
            (c.d_model, c.d_kv, c.d_ff, c.num_heads, c.num_layers) = (256, 32, 1024, 8, 4);
        }
        _ => return None,
    }
    c.vocab_size = vocab_size;
    c.dropout_rate = 0.0;
    Some(c)
}

/// Reads one split of `task`: custom tasks from the files their config names; built-in tasks
/// from `data_dir` when it is set, else from the hub (downloaded once into the HF cache). A split
/// that is not `required` is read only when it is at hand locally.
fn load_split(config: &RunConfig, task: &Task, role: Role, required: bool) -> Result<Vec<Record>> {
    if let Some(custom) = config.custom_task(task.name()) {
        let file = match role {
            Role::Train => &custom.train_file,
            Role::Validation => &custom.validation_file,
            Role::Test => &custom.test_file,
        };
        return match file {
            Some(path) if path.is_file() || required => read_records(path),
            _ => Ok(Vec::new()),
        };
    }
    if let Some(dir) = &config.data_dir {
        return match tasks::source::load_local(task, role, dir)? {
            Some(records) => Ok(records),
            None if required => Err(tasks::source::not_found(task, role, dir)),
            None => Ok(Vec::new()),
        };
    }
    if !required {
        return Ok(Vec::new());
    }
    #[cfg(all(feature = "hub", feature = "parquet"))]
    {
        tasks::source::load_from_hub(task, role, &crate::hub::HubOptions::from_env())
    }
    #[cfg(not(all(feature = "hub", feature = "parquet")))]
    Err(crate::Error::Invalid(format!(
        "task `{}`: set `data_dir` to local copies of its data (this build cannot download datasets)",
        task.name()
    )))
}

fn resolve_task(config: &RunConfig, name: &str) -> Result<Task> {
    match config.custom_task(name) {
        Some(custom) => custom.build(),
        None => tasks::registry::get(name),
    }
}

fn tokenize(
    task: &Task,
    records: Vec<Record>,
    tok: &T5Tokenizer,
    config: &RunConfig,
    max_target: usize,
    eos: u32,
) -> Result<Vec<(Example, String)>> {
    let prefix = !config.train_adapters;
    records
        .into_iter()
        .filter(|r| task.is_labelled(r))
        .map(|r| {
            let ex = task.format(&r, prefix)?;
            let input_ids = truncate(tok.encode(&ex.input)?, config.max_source_length, eos);
            let labels = truncate(tok.encode(&ex.target)?, max_target, eos);
            Ok((Example { input_ids, labels }, ex.target))
        })
        .collect()
}

/// Reads, splits, limits and tokenizes every task named in the run config.
pub fn prepare_data(config: &RunConfig, tok: &T5Tokenizer, eos: u32) -> Result<Vec<TaskData>> {
    let mut names: Vec<String> = config.tasks.clone();
    for t in config.eval_task_names() {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    let mut out = Vec::new();
    for name in names {
        let task = resolve_task(config, &name)?;
        let training = config.tasks.contains(&name) && config.do_train;
        let train = if training || config.split_validation_test {
            load_split(config, &task, Role::Train, training)?
        } else {
            Vec::new()
        };
        let validation = load_split(
            config,
            &task,
            Role::Validation,
            config.do_eval || config.split_validation_test,
        )?;
        let test = if config.split_validation_test {
            None
        } else {
            Some(load_split(config, &task, Role::Test, config.do_test)?)
        };
        let data_seed = config.effective_data_seed();
        let (train, validation, test) = if config.split_validation_test {
            let s = tasks::split_validation_test(&task, train, validation, test, data_seed)?;
            (s.train, s.validation, s.test)
        } else {
            (train, validation, test.unwrap_or_default())
        };
        let train = tasks::take_n(train, Some(config.n_train))?;
        let validation = tasks::take_n(validation, Some(config.n_val))?;
        let test = tasks::take_n(test, Some(config.n_test))?;
        let train = tokenize(&task, train, tok, config, config.max_target_length, eos)?
            .into_iter()
            .map(|(e, _)| e)
            .collect::<Vec<_>>();
        if training && train.is_empty() {
            return Err(Error::Invalid(format!(
                "task `{name}`: the training split is empty"
            )));
        }
        out.push(TaskData {
            validation: tokenize(
                &task,
                validation,
                tok,
                config,
                config.val_max_target_length,
                eos,
            )?,
            test: tokenize(&task, test, tok, config, config.test_max_target_length, eos)?,
            task,
            train,
        });
    }
    Ok(out)
}

/// The trainer's state between steps, saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: usize,
    pub sampler: MultiTaskSamplerState,
    pub best_metric: Option<f64>,
    pub best_checkpoint: Option<String>,
}

const STATE_FILE: &str = "trainer_state.json";
type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

fn checkpoints(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

struct Training<B: FusedAutodiff> {
    model: T5ForConditionalGeneration<B>,
    set: AdapterSet<B>,
    model_optim: GroupedAdamW<T5ForConditionalGeneration<B>, B>,
    set_optim: GroupedAdamW<AdapterSet<B>, B>,
    /// Whether any backbone parameter trains (full fine-tuning or unfrozen parts).
    backbone_trains: bool,
}

impl<B: FusedAutodiff> Training<B> {
    fn save(&self, dir: &Path, state: &TrainerState, config: &T5Config) -> Result<()> {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let rec = Rec::new();
        let io = |e: burn::record::RecorderError| Error::checkpoint(&tmp, e.to_string());
        if self.backbone_trains {
            rec.record(self.model.clone().into_record(), tmp.join("model"))
                .map_err(io)?;
            // One snapshot of the optimizer states serves both files.
            let (decay, no_decay) = self.model_optim.to_record();
            rec.record(decay, tmp.join("optimizer-model-decay"))
                .map_err(io)?;
            rec.record(no_decay, tmp.join("optimizer-model-no-decay"))
                .map_err(io)?;
        }
        if !self.set.tasks.is_empty() {
            rec.record(self.set.clone().into_record(), tmp.join("adapters"))
                .map_err(io)?;
            let (decay, no_decay) = self.set_optim.to_record();
            rec.record(decay, tmp.join("optimizer-adapters-decay"))
                .map_err(io)?;
            rec.record(no_decay, tmp.join("optimizer-adapters-no-decay"))
                .map_err(io)?;
            for t in &self.set.tasks {
                save_adapter(
                    &self.set,
                    &t.name,
                    config,
                    &tmp.join("adapter").join(&t.name),
                )?;
            }
        }
        let text = serde_json::to_string_pretty(state).expect("serializable");
        crate::io::write_atomic(&tmp.join(STATE_FILE), text.as_bytes())?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
    }

    fn restore(&mut self, dir: &Path, device: &B::Device) -> Result<TrainerState> {
        let rec = Rec::new();
        let io = |e: burn::record::RecorderError| Error::checkpoint(dir, e.to_string());
        if self.backbone_trains {
            let r = rec.load(dir.join("model"), device).map_err(io)?;
            self.model = self.model.clone().load_record(r);
            let d = rec
                .load(dir.join("optimizer-model-decay"), device)
                .map_err(io)?;
            let n = rec
                .load(dir.join("optimizer-model-no-decay"), device)
                .map_err(io)?;
            self.model_optim.load_records(d, n);
        }
        if !self.set.tasks.is_empty() {
            let r = rec.load(dir.join("adapters"), device).map_err(io)?;
            self.set = self.set.clone().load_record(r);
            let d = rec
                .load(dir.join("optimizer-adapters-decay"), device)
                .map_err(io)?;
            let n = rec
                .load(dir.join("optimizer-adapters-no-decay"), device)
                .map_err(io)?;
            self.set_optim.load_records(d, n);
        }
        crate::io::read_json(&dir.join(STATE_FILE))
    }
}

/// What a finished run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub steps: usize,
    pub seconds: f64,
    pub examples_per_s: f64,
    pub validation: Option<BTreeMap<String, f64>>,
    pub test: Option<BTreeMap<String, f64>>,
}

fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{value}").map_err(|e| Error::io(path, e))
}

/// Generated texts for the validation (or test) rows of one task, through its adapter when the
/// run trains adapters.
pub fn predict<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    set: &AdapterSet<B>,
    config: &RunConfig,
    td: &TaskData,
    tok: &T5Tokenizer,
    test: bool,
) -> Result<Vec<String>> {
    let rows = if test { &td.test } else { &td.validation };
    let adapter_name = config.adapter_for(td.task.name()).map(str::to_string);
    let adapters = match (&adapter_name, config.train_adapters) {
        (Some(a), true) => Some(Adapters::task(set, a)?),
        _ => None,
    };
    let mut gen = GenerationConfig::for_model(&model.config);
    gen.max_new_tokens = if test {
        config.test_max_target_length
    } else {
        config.val_max_target_length
    };
    gen.num_beams = config.eval_beams.max(1);
    let mut predictions = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(config.per_device_eval_batch_size.max(1)) {
        let inputs: Vec<Vec<u32>> = chunk.iter().map(|(e, _)| e.input_ids.clone()).collect();
        for ids in generate(model, &inputs, &gen, adapters.as_ref())? {
            predictions.push(tok.decode(&ids)?);
        }
    }
    Ok(predictions)
}

/// Scores generated predictions on the validation (or test) split of every evaluation task;
/// keys are `<task>_<metric>` plus `average_metrics`.
pub fn evaluate<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    set: &AdapterSet<B>,
    config: &RunConfig,
    data: &[TaskData],
    tok: &T5Tokenizer,
    test: bool,
) -> Result<BTreeMap<String, f64>> {
    let mut per_task = BTreeMap::new();
    for td in data
        .iter()
        .filter(|t| config.eval_task_names().iter().any(|n| n == t.task.name()))
    {
        let rows = if test { &td.test } else { &td.validation };
        if rows.is_empty() {
            continue;
        }
        let predictions = predict(model, set, config, td, tok, test)?;
        let references: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
        per_task.insert(
            td.task.name().to_string(),
            td.task.evaluate(&predictions, &references)?,
        );
    }
    let mut flat = BTreeMap::new();
    if !per_task.is_empty() {
        flat.insert(
            "average_metrics".to_string(),
            tasks::average_metrics(&per_task),
        );
    }
    for (task, metrics) in per_task {
        for (metric, value) in metrics {
            flat.insert(format!("{task}_{metric}"), value);
        }
    }
    Ok(flat)
}

/// Runs the whole job of `config` on `device`.
pub fn run<B: FusedAutodiff>(
    config: &RunConfig,
    device: B::Device,
    obs: &mut dyn Observer,
) -> Result<RunSummary> {
    let out_dir = config.output_dir.clone();
    if config.overwrite_output_dir && out_dir.exists() && config.do_train {
        std::fs::remove_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    crate::io::write_atomic(
        &out_dir.join("config.json"),
        config.resolved_json().as_bytes(),
    )?;

    // Model and tokenizer.
    let tokenizer_path = match &config.tokenizer_name {
        Some(t) => {
            let p = PathBuf::from(t);
            if p.is_dir() {
                p.join(TOKENIZER_FILE)
            } else {
                p
            }
        }
        None => PathBuf::new(),
    };
    let (mut model_config, model_dir) = match preset(&config.model_name_or_path, 0) {
        Some(_) => {
            if config.tokenizer_name.is_none() {
                return Err(Error::Invalid(format!(
                    "preset `{}` needs `tokenizer_name`",
                    config.model_name_or_path
                )));
            }
            (None, None)
        }
        None => {
            let dir = ModelDir::resolve(&config.model_name_or_path)?;
            (Some(dir.config.clone()), Some(dir))
        }
    };
    let tok = if config.tokenizer_name.is_some() {
        T5Tokenizer::from_file(&tokenizer_path)?
    } else {
        model_dir
            .as_ref()
            .expect("a model directory")
            .load_tokenizer()?
    };
    let tokenizer_file = if config.tokenizer_name.is_some() {
        tokenizer_path.clone()
    } else {
        model_dir.as_ref().unwrap().path.join(TOKENIZER_FILE)
    };
    B::seed(&device, config.seed);
    let model = match &model_dir {
        Some(dir) => dir.load_model::<B>(&device)?,
        None => {
            let c = preset(
                &config.model_name_or_path,
                tok.vocab_size().div_ceil(64) * 64,
            )
            .expect("preset");
            model_config = Some(c.clone());
            T5ForConditionalGeneration::init(&c, &device)
        }
    };
    let model_config = model_config.expect("model config");
    let eos = model_config.eos_token_id as u32;
    let data = prepare_data(config, &tok, eos)?;

    // What trains.
    let freeze = FreezeOptions {
        backbone: config.train_adapters,
        unfreeze_layer_norms: config.unfreeze_layer_norms,
        unfreeze_lm_head: config.unfreeze_lm_head,
        freeze_encoder: config.freeze_encoder,
        freeze_embeds: config.freeze_embeds,
    };
    let model = model.freeze(freeze);
    let mut set = AdapterSet::default();
    if config.train_adapters {
        // `adapter_config_name` is `adapter`: the config's checks say so.
        let bottleneck = BottleneckConfig::seed(&config.adapter, &model_config);
        for name in &config.tasks {
            set.insert(TaskAdapter::init(
                name,
                bottleneck.clone(),
                &model_config,
                &device,
            )?);
        }
        if config.shared_adapter_layer_norms {
            set.share_norms();
        }
    }
    let backbone_trainable = model.num_trainable_params();
    let summary = ParameterSummary::new(&model, Some(&set), backbone_trainable);
    if config.print_num_parameters || config.do_train {
        obs.message(summary.to_string().trim_end());
    }
    let (wd, b1, b2, eps) = (
        config.weight_decay,
        config.adam_beta1,
        config.adam_beta2,
        config.adam_epsilon,
    );
    let mut tr = Training {
        model,
        set,
        model_optim: GroupedAdamW::new(wd, b1, b2, eps),
        set_optim: GroupedAdamW::new(wd, b1, b2, eps),
        backbone_trains: backbone_trainable > 0,
    };

    let train_tasks: Vec<&TaskData> = config
        .tasks
        .iter()
        .map(|n| data.iter().find(|d| d.task.name() == n).expect("prepared"))
        .collect();
    let sizes: Vec<usize> = train_tasks.iter().map(|t| t.train.len()).collect();
    let total_examples: usize = sizes.iter().sum();
    let total_steps = config.total_steps(total_examples);
    let mut sampler = MultiTaskSampler::new(&sizes, config.temperature, config.seed)?;
    let mut state = TrainerState {
        step: 0,
        sampler: sampler.state(),
        best_metric: None,
        best_checkpoint: None,
    };
    let metrics_path = out_dir.join("metrics.jsonl");
    let mut summary_out = RunSummary::default();

    if config.do_train {
        if let Some((step, dir)) = checkpoints(&out_dir).pop() {
            obs.message(&format!("resuming from {} (step {step})", dir.display()));
            state = tr.restore(&dir, &device)?;
            sampler.restore(&state.sampler)?;
        } else {
            let _ = std::fs::remove_file(&metrics_path);
        }
        let probs = sampler.probabilities();
        let mix: Vec<String> = train_tasks
            .iter()
            .zip(probs.iter())
            .map(|(t, p)| format!("{} {:.0}%", t.task.name(), 100.0 * p))
            .collect();
        obs.message(&format!(
            "{total_examples} training examples; task mix (temperature {}): {}",
            config.temperature,
            mix.join(", ")
        ));
        obs.start(total_steps, state.step);
        let started = Instant::now();
        let mut examples = 0usize;
        let accumulation = config.gradient_accumulation_steps.max(1);
        let step_options = StepOptions {
            pad_token_id: model_config.pad_token_id as u32,
            label_smoothing: config.label_smoothing,
            scale: 1.0 / accumulation as f64,
            // Shards draw dropout masks from the backend's one random stream in no fixed order,
            // so a step with dropout runs as one part (its masks then repeat on resume).
            shards: if dropout_active(&model_config, &tr.set) {
                1
            } else {
                B::data_parallel_shards()
            },
        };
        while state.step < total_steps {
            // Dropout masks depend only on (seed, step), so a resumed run repeats them.
            B::seed(
                &device,
                crate::rng::derive_seed(config.seed, state.step as u64 + 1),
            );
            let lr = learning_rate(
                config.lr_scheduler,
                config.learning_rate,
                state.step,
                config.warmup_steps,
                total_steps,
            );
            let mut model_grads: Option<GradientsParams> = None;
            let mut set_grads: Option<GradientsParams> = None;
            let mut loss_sum = 0.0;
            for _ in 0..accumulation {
                let rows: Vec<(usize, usize)> = if config.mixed_task_batches {
                    sampler.next_mixed_batch(config.per_device_train_batch_size)
                } else {
                    let (task, idx) = sampler.next_batch(config.per_device_train_batch_size);
                    idx.into_iter().map(|i| (task, i)).collect()
                };
                examples += rows.len();
                let batch = StepBatch {
                    examples: rows
                        .iter()
                        .map(|&(t, i)| &train_tasks[t].train[i])
                        .collect(),
                    adapters: rows
                        .iter()
                        .map(|&(t, _)| config.train_adapters.then(|| train_tasks[t].task.name()))
                        .collect(),
                };
                let g = gradients(&tr.model, &tr.set, batch, step_options)?;
                loss_sum += g.loss;
                model_grads = add(&tr.model, model_grads, g.model);
                set_grads = add(&tr.set, set_grads, g.adapters);
            }
            // One global norm over everything that trains, as PyTorch's `clip_grad_norm_`.
            let norm = (model_grads
                .as_ref()
                .map_or(0.0, |g| squared_norm(&tr.model, g))
                + set_grads.as_ref().map_or(0.0, |g| squared_norm(&tr.set, g)))
            .sqrt();
            if let Some(factor) = clip_factor(norm, config.max_grad_norm) {
                if let Some(g) = model_grads.as_mut() {
                    scale(&tr.model, g, factor);
                }
                if let Some(g) = set_grads.as_mut() {
                    scale(&tr.set, g, factor);
                }
            }
            if let Some(g) = model_grads {
                tr.model = tr.model_optim.step(lr, tr.model.clone(), g);
            }
            if let Some(g) = set_grads {
                tr.set = tr.set_optim.step(lr, tr.set.clone(), g);
            }
            state.step += 1;
            state.sampler = sampler.state();
            let rate = examples as f64 / started.elapsed().as_secs_f64().max(1e-9);
            obs.step(state.step, loss_sum, lr, rate);
            if state.step.is_multiple_of(config.logging_steps.max(1))
                || (config.logging_first_step && state.step == 1)
            {
                append_jsonl(
                    &metrics_path,
                    &serde_json::json!({"step": state.step, "loss": loss_sum, "lr": lr, "examples_per_s": rate}),
                )?;
            }
            let eval_now = config.evaluation_strategy == EvaluationStrategy::Steps
                && config.eval_steps > 0
                && state.step.is_multiple_of(config.eval_steps);
            if eval_now {
                let metrics = evaluate(
                    &tr.model.valid(),
                    &tr.set.valid(),
                    config,
                    &data,
                    &tok,
                    false,
                )?;
                obs.message(&format!(
                    "step {}: {}",
                    state.step,
                    format_metrics(&metrics)
                ));
                let mut line = serde_json::json!({"step": state.step});
                for (k, v) in &metrics {
                    line[format!("eval_{k}")] = serde_json::json!(v);
                }
                append_jsonl(&metrics_path, &line)?;
                if let Some(&m) = metrics.get(&config.metric_for_best_model) {
                    let better = state.best_metric.is_none_or(|b| {
                        if config.greater_is_better {
                            m > b
                        } else {
                            m < b
                        }
                    });
                    if better {
                        state.best_metric = Some(m);
                        state.best_checkpoint = Some(format!("checkpoint-{}", state.step));
                        tr.save(
                            &out_dir.join(format!("checkpoint-{}", state.step)),
                            &state,
                            &model_config,
                        )?;
                    }
                }
            }
            let interrupted = obs.interrupted();
            if (config.save_steps > 0 && state.step.is_multiple_of(config.save_steps))
                || interrupted
            {
                tr.save(
                    &out_dir.join(format!("checkpoint-{}", state.step)),
                    &state,
                    &model_config,
                )?;
                prune_checkpoints(
                    &out_dir,
                    config.save_total_limit,
                    state.best_checkpoint.as_deref(),
                );
            }
            if interrupted {
                obs.message(&format!(
                    "interrupted: saved checkpoint-{} (run again to resume)",
                    state.step
                ));
                return Err(Error::Invalid("training interrupted".into()));
            }
        }
        summary_out.steps = state.step;
        summary_out.seconds = started.elapsed().as_secs_f64();
        summary_out.examples_per_s = examples as f64 / summary_out.seconds.max(1e-9);
        if config.load_best_model_at_end {
            if let Some(best) = &state.best_checkpoint {
                let dir = out_dir.join(best);
                if dir.is_dir() {
                    obs.message(&format!(
                        "loading the best checkpoint ({best}, {} = {:.2})",
                        config.metric_for_best_model,
                        state.best_metric.unwrap_or(0.0)
                    ));
                    tr.restore(&dir, &device)?;
                }
            }
        }
        // Final outputs: the adapters, or the fine-tuned model as an HF checkpoint.
        if config.train_adapters {
            for t in &tr.set.tasks {
                save_adapter(
                    &tr.set,
                    &t.name,
                    &model_config,
                    &out_dir.join("adapters").join(&t.name),
                )?;
            }
        }
        if tr.backbone_trains {
            save_pretrained(&tr.model, Some(&tokenizer_file), &out_dir.join("model"))?;
        }
    }
    let (model, set) = (tr.model.valid(), tr.set.valid());
    if config.do_eval {
        let m = evaluate(&model, &set, config, &data, &tok, false)?;
        obs.message(&format!("validation: {}", format_metrics(&m)));
        crate::io::write_atomic(
            &out_dir.join("val_results.json"),
            serde_json::to_string_pretty(&m).expect("json").as_bytes(),
        )?;
        summary_out.validation = Some(m);
    }
    if config.do_test {
        let m = evaluate(&model, &set, config, &data, &tok, true)?;
        obs.message(&format!("test: {}", format_metrics(&m)));
        crate::io::write_atomic(
            &out_dir.join("test_results.json"),
            serde_json::to_string_pretty(&m).expect("json").as_bytes(),
        )?;
        summary_out.test = Some(m);
    }
    write_plot(
        &metrics_path,
        &out_dir.join("training_curves.svg"),
        &config.output_dir.display().to_string(),
    )?;
    Ok(summary_out)
}

/// Whether a training step draws random numbers (dropout in the model or the adapters).
fn dropout_active<B: Backend>(config: &T5Config, set: &AdapterSet<B>) -> bool {
    config.dropout_rate > 0.0 || set.tasks.iter().any(|t| t.config.dropout > 0.0)
}

fn prune_checkpoints(out_dir: &Path, limit: Option<usize>, best: Option<&str>) {
    let Some(limit) = limit else { return };
    let all = checkpoints(out_dir);
    let removable: Vec<&(usize, PathBuf)> = all
        .iter()
        .filter(|(_, p)| Some(p.file_name().unwrap().to_string_lossy().as_ref()) != best)
        .collect();
    let keep = if best.is_some() {
        limit.saturating_sub(1)
    } else {
        limit
    };
    if removable.len() > keep {
        for (_, p) in &removable[..removable.len() - keep] {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

pub fn format_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_plot(metrics: &Path, out: &Path, title: &str) -> Result<()> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let mut loss = Series {
        name: "loss",
        points: Vec::new(),
    };
    let mut evals: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss"].as_f64() {
            loss.points.push((step, l));
        }
        for (k, val) in v.as_object().into_iter().flatten() {
            if let (Some(name), Some(x)) = (k.strip_prefix("eval_"), val.as_f64()) {
                evals.entry(name.to_string()).or_default().push((step, x));
            }
        }
    }
    let metrics: Vec<Series> = evals
        .iter()
        .map(|(k, p)| Series {
            name: k,
            points: p.clone(),
        })
        .collect();
    let svg = training_curves(title, &[loss], &metrics);
    crate::io::write_atomic(out, svg.as_bytes())
}
