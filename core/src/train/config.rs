//! `RunConfig`: the JSON file that describes a training/evaluation run, in the seed project's
//! vocabulary (its `configs/*.json`, i.e. HF `TrainingArguments` plus the seed's model, data and
//! adapter arguments).
//!
//! Parsing is stricter than the seed's `HfArgumentParser`, which silently dropped misspelled keys
//! and kept the last of two duplicated keys:
//! - an unknown key is an error that lists the valid keys (with a "did you mean" when one is close);
//! - keys of the seed that we deliberately do not implement (its meta-adapter/HyperFormer, ...) are
//!   errors that say so;
//! - a duplicated key is an error that names it, anywhere in the file;
//! - a value of the wrong type names its key, what was expected, and the line and column.
//!
//! See `configs/README.md` for every key, its default and how it differs from the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::backend::BackendKind;
use crate::config::Activation;
use crate::error::{Error, Result};

/// The learning-rate schedule after warm-up (HF's `lr_scheduler_type` names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LrScheduler {
    /// Linear warm-up to `learning_rate`, then linear decay to 0 at the last step.
    #[default]
    #[serde(rename = "linear")]
    Linear,
    /// Linear warm-up, then half a cosine wave down to 0 at the last step.
    #[serde(rename = "cosine")]
    Cosine,
    /// `learning_rate` from the first step; `warmup_steps` is ignored.
    #[serde(rename = "constant")]
    Constant,
    /// Linear warm-up, then constant.
    #[serde(rename = "constant_w_warmup")]
    ConstantWithWarmup,
}

/// When to evaluate during training (HF's `evaluation_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvaluationStrategy {
    /// Only after training (with `do_eval`).
    #[default]
    #[serde(rename = "no")]
    No,
    /// Every `eval_steps` optimizer steps.
    #[serde(rename = "steps")]
    Steps,
    /// At the end of every epoch (an epoch is `ceil(total examples / (batch × accumulation))`
    /// optimizer steps, as in the seed's multi-task sampler).
    #[serde(rename = "epoch")]
    Epoch,
}

/// The file format of a custom task's splits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFormat {
    /// One JSON object per line.
    #[default]
    #[serde(rename = "jsonl")]
    Jsonl,
    /// Tab-separated values with a header row naming the fields.
    #[serde(rename = "tsv")]
    Tsv,
}

/// A task defined in the run config instead of the built-in registry: local files and a
/// text-to-text template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTaskConfig {
    /// The task's name, as used in `tasks`, `eval_tasks`, `adapters` and adapter directories.
    pub name: String,
    /// The training split.
    #[serde(default)]
    pub train_file: Option<PathBuf>,
    /// The validation split.
    #[serde(default)]
    pub validation_file: Option<PathBuf>,
    /// The test split.
    #[serde(default)]
    pub test_file: Option<PathBuf>,
    /// `jsonl` (default) or `tsv`.
    #[serde(default)]
    pub format: DataFormat,
    /// The model input, with `{field}` placeholders filled from each example.
    pub template: String,
    /// The field holding the target text.
    pub target_field: String,
    /// The valid targets of a classification task (a prediction outside them counts as wrong).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Metric names (resolved by the metrics module); default `["accuracy"]`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
}

fn default_metrics() -> Vec<String> {
    vec!["accuracy".into()]
}

/// The keys of a `custom_tasks` entry (kept in sync with [`CustomTaskConfig`] by a test).
const CUSTOM_TASK_KEYS: &[&str] = &[
    "name",
    "train_file",
    "validation_file",
    "test_file",
    "format",
    "template",
    "target_field",
    "labels",
    "metrics",
];

impl CustomTaskConfig {
    /// The `{field}` names the template uses, in order of appearance (repeats kept).
    pub fn placeholders(&self) -> std::result::Result<Vec<String>, String> {
        let mut names = Vec::new();
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!(
                    "custom task `{}`: template has a `}}` without a `{{`",
                    self.name
                ));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                format!(
                    "custom task `{}`: template has a `{{` without a `}}`",
                    self.name
                )
            })?;
            let name = &after[..close];
            if name.is_empty() || name.contains('{') {
                return Err(format!(
                    "custom task `{}`: template placeholder `{{{name}}}` must be a field name",
                    self.name
                ));
            }
            names.push(name.to_string());
            rest = &after[close + 1..];
        }
        Ok(names)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let name = &self.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "custom task name `{name}` must be non-empty and use only letters, digits, `_`, `-`, `.` \
                 (it names adapter files)"
            ));
        }
        if self.train_file.is_none() && self.validation_file.is_none() && self.test_file.is_none() {
            return Err(format!(
                "custom task `{name}` has no data: set `train_file`, `validation_file` or `test_file`"
            ));
        }
        if self.template.trim().is_empty() {
            return Err(format!("custom task `{name}`: `template` is empty"));
        }
        self.placeholders()?;
        if self.target_field.is_empty() {
            return Err(format!("custom task `{name}`: `target_field` is empty"));
        }
        if let Some(labels) = &self.labels {
            if labels.is_empty() {
                return Err(format!(
                    "custom task `{name}`: `labels` is empty (omit it for free-text targets)"
                ));
            }
            if let Some(dup) = first_duplicate(labels) {
                return Err(format!("custom task `{name}`: label `{dup}` appears twice"));
            }
        }
        if self.metrics.is_empty() {
            return Err(format!("custom task `{name}`: `metrics` is empty"));
        }
        Ok(())
    }
}

/// A run: which model, which tasks, how to train, evaluate and save. Field names and meanings
/// follow the seed project (HF `TrainingArguments` and the seed's own arguments).
///
/// Every field has a default (see [`RunConfig::default`]); `model_name_or_path`, `output_dir`
/// and `tasks` must be set, which [`RunConfig::validate`] checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    // ---- model ----
    /// A model directory, a hub name (`t5-small`, `google/flan-t5-base`) or a built-in preset (`t5-tiny`).
    pub model_name_or_path: String,
    /// The tokenizer, when not the model's own (a directory or hub name).
    pub tokenizer_name: Option<String>,

    // ---- tasks and data ----
    /// Training tasks (built-in names or `custom_tasks` names); one task is sampled per batch.
    pub tasks: Vec<String>,
    /// Evaluation/test tasks; default: `tasks`. Tasks that were not trained on are allowed.
    pub eval_tasks: Option<Vec<String>>,
    /// Eval task → the trained task whose adapter evaluates it (for eval-only tasks).
    pub adapters: Option<BTreeMap<String, String>>,
    /// Tasks defined here from local files and a template.
    pub custom_tasks: Vec<CustomTaskConfig>,
    /// Where built-in datasets are read from (offline copies); default: downloaded/cached.
    pub data_dir: Option<PathBuf>,
    /// Training examples per task; -1 = all.
    pub n_train: i64,
    /// Validation examples per task; -1 = all.
    pub n_val: i64,
    /// Test examples per task; -1 = all.
    pub n_test: i64,
    /// Source token limit (longer inputs are truncated).
    pub max_source_length: usize,
    /// Target token limit in training.
    pub max_target_length: usize,
    /// Generation length limit in validation.
    pub val_max_target_length: usize,
    /// Generation length limit in test.
    pub test_max_target_length: usize,
    /// Split validation into validation/test for small sets; take 1000 training examples as
    /// validation and use validation as test for large sets (the seed's rule).
    pub split_validation_test: bool,
    /// Seed for subsampling and splitting datasets; default: `seed`.
    pub data_seed: Option<u64>,

    // ---- output ----
    /// Where checkpoints, `config.json`, logs and results go.
    pub output_dir: PathBuf,
    /// Allow writing into a non-empty `output_dir`.
    pub overwrite_output_dir: bool,

    // ---- what to do ----
    /// Train.
    pub do_train: bool,
    /// Evaluate on the validation splits of `eval_tasks`.
    pub do_eval: bool,
    /// Evaluate on the test splits of `eval_tasks`.
    pub do_test: bool,

    // ---- optimization ----
    /// Total optimizer steps; when > 0 it overrides `num_train_epochs`.
    pub max_steps: i64,
    /// Epochs (may be fractional) when `max_steps` <= 0.
    pub num_train_epochs: f64,
    /// Peak AdamW learning rate.
    pub learning_rate: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// The schedule after warm-up.
    pub lr_scheduler: LrScheduler,
    /// AdamW decoupled weight decay (not applied to biases and layer norms).
    pub weight_decay: f64,
    /// AdamW epsilon.
    pub adam_epsilon: f64,
    /// AdamW beta1.
    pub adam_beta1: f64,
    /// AdamW beta2.
    pub adam_beta2: f64,
    /// Global gradient-norm clipping; 0 disables it.
    pub max_grad_norm: f64,
    /// Batches per optimizer step (each batch samples its own task).
    pub gradient_accumulation_steps: usize,
    /// Training batch size.
    pub per_device_train_batch_size: usize,
    /// Evaluation batch size.
    pub per_device_eval_batch_size: usize,
    /// Label-smoothing epsilon of the loss.
    pub label_smoothing: f64,
    /// Multi-task sampling temperature T: task i drawn ∝ (n_i/N)^(1/T).
    pub temperature: f64,
    /// Draw the task of every example instead of every batch, so that one batch mixes tasks
    /// (with adapters, each row runs through its own task's adapter).
    pub mixed_task_batches: bool,
    /// Seed for initialization, dropout and sampling.
    pub seed: u64,

    // ---- adapters ----
    /// Train one adapter per task on a frozen backbone instead of the full model.
    pub train_adapters: bool,
    /// The adapter kind; only the seed's `adapter` is implemented.
    pub adapter_config_name: String,
    /// Bottleneck width = d_model / reduction_factor.
    pub reduction_factor: usize,
    /// The adapter activation (relu, swish/silu, gelu, gelu_new, tanh).
    pub non_linearity: String,
    /// An adapter after each feed-forward sublayer.
    pub add_adapter_in_feed_forward: bool,
    /// An adapter after each self-attention sublayer.
    pub add_adapter_in_self_attention: bool,
    /// Adapters in the decoder as well as the encoder.
    pub add_adapters_in_decoder: bool,
    /// A LayerNorm on the adapter input.
    pub add_layer_norm_before_adapter: bool,
    /// A LayerNorm on the adapter output.
    pub add_layer_norm_after_adapter: bool,
    /// The adapter LayerNorms shared by all tasks (the seed's layout) rather than per task.
    pub shared_adapter_layer_norms: bool,
    /// With adapters, also train T5's layer norms.
    pub unfreeze_layer_norms: bool,
    /// With adapters, also train the LM head.
    pub unfreeze_lm_head: bool,
    /// Freeze the encoder (full fine-tuning).
    pub freeze_encoder: bool,
    /// Freeze the shared token embeddings (full fine-tuning).
    pub freeze_embeds: bool,

    // ---- evaluation, logging, saving ----
    /// Evaluate by generating text (needed for the task metrics); false: loss only.
    pub predict_with_generate: bool,
    /// Beams for evaluation generation (1 = greedy).
    pub eval_beams: usize,
    /// When to evaluate during training.
    pub evaluation_strategy: EvaluationStrategy,
    /// Evaluate every this many optimizer steps (with `evaluation_strategy: "steps"`).
    pub eval_steps: usize,
    /// Log the training loss every this many optimizer steps.
    pub logging_steps: usize,
    /// Also log after the first step.
    pub logging_first_step: bool,
    /// Save a checkpoint every this many optimizer steps; 0 = only at the end.
    pub save_steps: usize,
    /// Keep at most this many checkpoints (the best is always kept); null = all.
    pub save_total_limit: Option<usize>,
    /// Restore the best checkpoint (by `metric_for_best_model`) at the end of training.
    pub load_best_model_at_end: bool,
    /// The metric that picks the best checkpoint; `average_metrics` averages all task metrics.
    pub metric_for_best_model: String,
    /// Whether a larger `metric_for_best_model` is better.
    pub greater_is_better: bool,
    /// Print the total and trainable parameter counts.
    pub print_num_parameters: bool,
    /// `auto` (wgpu when a GPU adapter exists, else CPU), `wgpu` or `cpu`.
    #[serde(with = "backend_serde")]
    pub backend: BackendKind,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            model_name_or_path: String::new(),
            tokenizer_name: None,
            tasks: Vec::new(),
            eval_tasks: None,
            adapters: None,
            custom_tasks: Vec::new(),
            data_dir: None,
            n_train: -1,
            n_val: -1,
            n_test: -1,
            max_source_length: 128,
            max_target_length: 128,
            val_max_target_length: 128,
            test_max_target_length: 128,
            split_validation_test: false,
            data_seed: None,
            output_dir: PathBuf::new(),
            overwrite_output_dir: false,
            do_train: false,
            do_eval: false,
            do_test: false,
            max_steps: -1,
            num_train_epochs: 3.0,
            learning_rate: 3e-4,
            warmup_steps: 0,
            lr_scheduler: LrScheduler::Linear,
            weight_decay: 0.0,
            adam_epsilon: 1e-8,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            max_grad_norm: 1.0,
            gradient_accumulation_steps: 1,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            label_smoothing: 0.0,
            temperature: 1.0,
            mixed_task_batches: false,
            seed: 42,
            train_adapters: false,
            adapter_config_name: "adapter".into(),
            reduction_factor: 16,
            non_linearity: "swish".into(),
            add_adapter_in_feed_forward: true,
            add_adapter_in_self_attention: true,
            add_adapters_in_decoder: true,
            add_layer_norm_before_adapter: false,
            add_layer_norm_after_adapter: true,
            shared_adapter_layer_norms: true,
            unfreeze_layer_norms: false,
            unfreeze_lm_head: false,
            freeze_encoder: false,
            freeze_embeds: false,
            predict_with_generate: true,
            eval_beams: 1,
            evaluation_strategy: EvaluationStrategy::No,
            eval_steps: 500,
            logging_steps: 500,
            logging_first_step: false,
            save_steps: 500,
            save_total_limit: None,
            load_best_model_at_end: false,
            metric_for_best_model: "average_metrics".into(),
            greater_is_better: true,
            print_num_parameters: false,
            backend: BackendKind::Auto,
        }
    }
}

/// `BackendKind` as the strings `auto`, `wgpu`, `cpu` (`gpu` is read as `wgpu`).
mod backend_serde {
    use super::*;

    pub fn serialize<S: Serializer>(
        kind: &BackendKind,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(match kind {
            BackendKind::Auto => "auto",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cpu => "cpu",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<BackendKind, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(de::Error::custom)
    }
}

/// Keys of the seed's configs that this project deliberately does not implement, and why.
const SEED_KEYS_NOT_IMPLEMENTED: &[(&str, &str)] = &[
    ("task_embedding_dim", HYPER),
    ("projected_task_embedding_dim", HYPER),
    ("task_hidden_dim", HYPER),
    ("hidden_dim", HYPER),
    ("train_task_embeddings", HYPER),
    ("task_embedding_dir", HYPER),
    ("task_embeddings", HYPER),
    ("parametric_task_embedding", HYPER),
    ("unique_hyper_net", HYPER),
    ("efficient_unique_hyper_net", HYPER),
    ("unique_hyper_net_layer_norm", HYPER),
    ("conditional_layer_norm", HYPER),
    ("generate_classifier_weights", HYPER),
    ("freeze_model_but_task_embeddings", HYPER),
    (
        "train_adapters_blocks",
        "belongs to the seed's meta-adapter experiments (layer norms without adapter blocks), \
         which are not implemented",
    ),
    (
        "remove_original_layer_norms",
        "belongs to the seed's meta-adapter experiments (removing T5's own layer norms), \
         which are not implemented",
    ),
    (
        "sampling",
        "was the seed's switch for multi-task sampling; tasks are always sampled here, with \
         probability ∝ (n_i/N)^(1/temperature) (temperature 1 = proportional to size)",
    ),
    (
        "gcs_bucket",
        "is the seed's Google Cloud Storage upload, which is not implemented",
    ),
    (
        "do_finetune",
        "is the seed's few-shot fine-tuning on eval tasks, which is not implemented",
    ),
    (
        "n_finetune",
        "is the seed's few-shot fine-tuning on eval tasks, which is not implemented",
    ),
    (
        "eval_output_dir",
        "is not implemented: evaluation results are written under `output_dir`",
    ),
    (
        "cache_dir",
        "is not implemented: downloads go to the Hugging Face cache (set HF_HOME to move it)",
    ),
    (
        "config_name",
        "is not implemented: the model's config.json comes from `model_name_or_path`",
    ),
    ("adafactor", "is not implemented: the optimizer is AdamW"),
    (
        "sortish_sampler",
        "is not implemented: batches come from the multi-task sampler",
    ),
];

const HYPER: &str = "belongs to the seed's meta-adapter/HyperFormer (adapters generated from task \
                     embeddings by a hypernetwork), which is not implemented";

impl RunConfig {
    /// Reads, parses and validates a run config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_str(&text, path)
    }

    /// Parses and validates a run config; `path` only labels the errors.
    pub fn from_str(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // 1. Well-formed JSON without duplicated keys, as a tree.
        let value = parse_strict(text).map_err(|source| {
            if source.is_data() {
                Error::config(path, source.to_string())
            } else {
                Error::Json {
                    path: path.into(),
                    source,
                }
            }
        })?;
        // 2. Only known keys.
        let Value::Object(object) = &value else {
            return Err(Error::config(
                path,
                "a run config must be a JSON object of `key: value` pairs",
            ));
        };
        check_keys(object, text).map_err(|msg| Error::config(path, msg))?;
        // 3. Types, naming the key at fault.
        let config: RunConfig = serde_json::from_str(text)
            .map_err(|err| Error::config(path, type_error_message(object, &err)))?;
        // 4. Values.
        config.check().map_err(|msg| Error::config(path, msg))?;
        Ok(config)
    }

    /// Checks that the values make a coherent run. Task names are not looked up here (the
    /// task registry does that).
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Error::Invalid)
    }

    /// The evaluation tasks: `eval_tasks`, or `tasks` when unset.
    pub fn eval_task_names(&self) -> &[String] {
        self.eval_tasks.as_deref().unwrap_or(&self.tasks)
    }

    /// The seed for data subsampling and splits: `data_seed`, or `seed` when unset.
    pub fn effective_data_seed(&self) -> u64 {
        self.data_seed.unwrap_or(self.seed)
    }

    /// The trained task whose adapter evaluates `eval_task`: its `adapters` entry, else the task
    /// itself when it was trained on, else `None`.
    pub fn adapter_for(&self, eval_task: &str) -> Option<&str> {
        if let Some(name) = self.adapters.as_ref().and_then(|m| m.get(eval_task)) {
            return Some(name);
        }
        self.tasks
            .iter()
            .find(|t| t.as_str() == eval_task)
            .map(String::as_str)
    }

    /// The custom task named `name`, if the config defines one.
    pub fn custom_task(&self, name: &str) -> Option<&CustomTaskConfig> {
        self.custom_tasks.iter().find(|t| t.name == name)
    }

    /// `n_train`/`n_val`/`n_test` as an optional cap (-1 → `None`).
    pub fn limit(n: i64) -> Option<usize> {
        usize::try_from(n).ok()
    }

    /// Examples per optimizer step: batch size × gradient accumulation.
    pub fn examples_per_step(&self) -> usize {
        self.per_device_train_batch_size.max(1) * self.gradient_accumulation_steps.max(1)
    }

    /// Optimizer steps in one epoch over `num_train_examples` (all tasks together):
    /// `ceil(examples / (batch × accumulation))`.
    pub fn steps_per_epoch(&self, num_train_examples: usize) -> usize {
        num_train_examples.div_ceil(self.examples_per_step())
    }

    /// Total optimizer steps: `max_steps` when > 0, else
    /// `ceil(num_train_epochs × ceil(examples / (batch × accumulation)))`.
    pub fn total_steps(&self, num_train_examples: usize) -> usize {
        if self.max_steps > 0 {
            return self.max_steps as usize;
        }
        let per_epoch = self.steps_per_epoch(num_train_examples) as f64;
        (self.num_train_epochs.max(0.0) * per_epoch).ceil() as usize
    }

    /// A copy with the implicit defaults written out (`eval_tasks`, `data_seed`).
    pub fn resolved(&self) -> RunConfig {
        let mut config = self.clone();
        config.eval_tasks = Some(self.eval_task_names().to_vec());
        config.data_seed = Some(self.effective_data_seed());
        config
    }

    /// The full config with every default filled in, as pretty JSON (saved as
    /// `output_dir/config.json`; it parses back to the same run).
    pub fn resolved_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(&self.resolved()).expect("a RunConfig serializes to JSON")
    }

    /// Every key a run config may hold, sorted.
    pub fn valid_keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(RunConfig::default()) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.sort();
        keys
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.model_name_or_path.trim().is_empty() {
            return Err(
                "`model_name_or_path` is required (a model directory, hub name or preset)".into(),
            );
        }
        if self.output_dir.as_os_str().is_empty() {
            return Err("`output_dir` is required".into());
        }
        if !(self.do_train || self.do_eval || self.do_test) {
            return Err("nothing to do: set `do_train`, `do_eval` or `do_test` to true".into());
        }

        // Tasks.
        if self.tasks.is_empty() {
            return Err("`tasks` is empty; name at least one task".into());
        }
        check_names("tasks", &self.tasks)?;
        if let Some(eval) = &self.eval_tasks {
            if eval.is_empty() {
                return Err("`eval_tasks` is empty; omit it to evaluate on `tasks`".into());
            }
            check_names("eval_tasks", eval)?;
        }
        let mut custom_names = BTreeSet::new();
        for task in &self.custom_tasks {
            task.check()?;
            if !custom_names.insert(task.name.as_str()) {
                return Err(format!("custom task `{}` is defined twice", task.name));
            }
            if self.do_train && self.tasks.contains(&task.name) && task.train_file.is_none() {
                return Err(format!(
                    "custom task `{}` is in `tasks` but has no `train_file`",
                    task.name
                ));
            }
        }
        if let Some(adapters) = &self.adapters {
            if !self.train_adapters {
                return Err(
                    "`adapters` maps eval tasks to trained adapters, but `train_adapters` is false"
                        .into(),
                );
            }
            let eval = self.eval_task_names();
            for (eval_task, adapter) in adapters {
                if !eval.contains(eval_task) {
                    return Err(format!(
                        "`adapters` maps `{eval_task}`, which is not an eval task ({})",
                        eval.join(", ")
                    ));
                }
                if !self.tasks.contains(adapter) {
                    return Err(format!(
                        "`adapters` maps `{eval_task}` to `{adapter}`, which is not a training task \
                         (adapters exist for: {})",
                        self.tasks.join(", ")
                    ));
                }
            }
        }
        for (key, n) in [
            ("n_train", self.n_train),
            ("n_val", self.n_val),
            ("n_test", self.n_test),
        ] {
            if n < -1 {
                return Err(format!("`{key}` must be -1 (all) or a count, got {n}"));
            }
        }
        for (key, n) in [
            ("max_source_length", self.max_source_length),
            ("max_target_length", self.max_target_length),
            ("val_max_target_length", self.val_max_target_length),
            ("test_max_target_length", self.test_max_target_length),
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "per_device_eval_batch_size",
                self.per_device_eval_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
            ("eval_beams", self.eval_beams),
            ("reduction_factor", self.reduction_factor),
            ("logging_steps", self.logging_steps),
        ] {
            if n == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
        }

        // Optimization.
        if self.do_train
            && self.max_steps <= 0
            && !(self.num_train_epochs > 0.0 && self.num_train_epochs.is_finite())
        {
            return Err(format!(
                "`num_train_epochs` must be positive when `max_steps` is not set, got {}",
                self.num_train_epochs
            ));
        }
        if !(self.learning_rate >= 0.0 && self.learning_rate.is_finite()) {
            return Err(format!(
                "`learning_rate` must be a non-negative number, got {}",
                self.learning_rate
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!(
                "`weight_decay` must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.adam_epsilon >= 0.0 && self.adam_epsilon.is_finite()) {
            return Err(format!(
                "`adam_epsilon` must be >= 0, got {}",
                self.adam_epsilon
            ));
        }
        for (key, beta) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return Err(format!("`{key}` must be in [0, 1), got {beta}"));
            }
        }
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return Err(format!(
                "`max_grad_norm` must be >= 0 (0 disables clipping), got {}",
                self.max_grad_norm
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "`label_smoothing` must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "`temperature` must be positive (1 = proportional to task size), got {}",
                self.temperature
            ));
        }

        // Adapters.
        match self.adapter_config_name.as_str() {
            "adapter" => {}
            name @ ("meta-adapter"
            | "parametric-meta-adapter"
            | "meta_adapter"
            | "hyperformer"
            | "hyperformer++") => {
                return Err(format!(
                "`adapter_config_name` `{name}` is the seed's meta-adapter/HyperFormer (adapters \
                     generated by a hypernetwork), which is not implemented; use `adapter`"
            ))
            }
            other => {
                return Err(format!(
                    "`adapter_config_name` `{other}` is unknown; the implemented one is `adapter`"
                ))
            }
        }
        if Activation::parse(&self.non_linearity.to_lowercase()).is_none() {
            return Err(format!(
                "`non_linearity` `{}` is not supported (relu, swish, silu, gelu, gelu_new, tanh)",
                self.non_linearity
            ));
        }
        if self.train_adapters
            && !self.add_adapter_in_feed_forward
            && !self.add_adapter_in_self_attention
        {
            return Err(
                "`train_adapters` is true but both `add_adapter_in_feed_forward` and \
                 `add_adapter_in_self_attention` are false: there would be no adapter"
                    .into(),
            );
        }

        // Evaluation and saving.
        if self.evaluation_strategy == EvaluationStrategy::Steps && self.eval_steps == 0 {
            return Err(
                "`eval_steps` must be at least 1 with `evaluation_strategy: \"steps\"`".into(),
            );
        }
        if self.save_total_limit == Some(0) {
            return Err(
                "`save_total_limit` must be at least 1 (null keeps every checkpoint)".into(),
            );
        }
        if self.load_best_model_at_end && self.evaluation_strategy == EvaluationStrategy::No {
            return Err(
                "`load_best_model_at_end` needs evaluations during training: set \
                 `evaluation_strategy` to \"steps\" or \"epoch\""
                    .into(),
            );
        }
        if self.metric_for_best_model.trim().is_empty() {
            return Err("`metric_for_best_model` is empty".into());
        }
        Ok(())
    }
}

fn first_duplicate(items: &[String]) -> Option<&str> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .find(|item| !seen.insert(item.as_str()))
        .map(String::as_str)
}

fn check_names(key: &str, names: &[String]) -> std::result::Result<(), String> {
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(format!("`{key}` contains an empty task name"));
    }
    if let Some(dup) = first_duplicate(names) {
        return Err(format!("`{key}` lists `{dup}` twice"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strict parsing: duplicated keys, unknown keys, type errors that name their key.
// ---------------------------------------------------------------------------------------------

/// Parses JSON into a tree, refusing a key that appears twice in one object.
fn parse_strict(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        path: String::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A `serde_json::Value` deserializer that errors on duplicate keys, naming their path.
struct StrictValue {
    path: String,
}

impl StrictValue {
    fn child_key(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Self { path }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = StrictValue {
                path: format!("{}[{}]", self.path, items.len()),
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child_key(&key);
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}`: a key may appear only once (the seed's parser silently \
                     kept the last value)",
                    child.path
                )));
            }
            let value = map.next_value_seed(child)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// ` at line L column C` of the first `"key":` in `text`, or nothing when not found.
fn location(text: &str, key: &str) -> String {
    let quoted = format!("\"{key}\"");
    let found = text
        .match_indices(&quoted)
        .find(|(at, _)| text[at + quoted.len()..].trim_start().starts_with(':'));
    match found {
        Some((at, _)) => {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |nl| nl + 1) + 1;
            format!(" at line {line} column {column}")
        }
        None => String::new(),
    }
}

/// Refuses unknown keys at the top level and in `custom_tasks` entries.
fn check_keys(object: &Map<String, Value>, text: &str) -> std::result::Result<(), String> {
    let valid = RunConfig::valid_keys();
    let valid_refs: Vec<&str> = valid.iter().map(String::as_str).collect();
    for key in object.keys() {
        if valid_refs.contains(&key.as_str()) {
            continue;
        }
        let at = location(text, key);
        if let Some((_, why)) = SEED_KEYS_NOT_IMPLEMENTED.iter().find(|(k, _)| *k == key) {
            let found = if at.is_empty() {
                String::new()
            } else {
                format!(" (found{at})")
            };
            return Err(format!("`{key}` {why}; remove it{found}"));
        }
        return Err(unknown_key_message(key, &at, "", &valid_refs));
    }
    if let Some(Value::Array(tasks)) = object.get("custom_tasks") {
        for (i, task) in tasks.iter().enumerate() {
            if let Value::Object(task) = task {
                for key in task.keys() {
                    if !CUSTOM_TASK_KEYS.contains(&key.as_str()) {
                        let at = location(text, key);
                        let prefix = format!("custom_tasks[{i}].");
                        return Err(unknown_key_message(key, &at, &prefix, CUSTOM_TASK_KEYS));
                    }
                }
            }
        }
    }
    Ok(())
}

fn unknown_key_message(key: &str, at: &str, prefix: &str, valid: &[&str]) -> String {
    let mut candidates: Vec<(&str, Option<&str>)> = valid.iter().map(|k| (*k, None)).collect();
    if prefix.is_empty() {
        candidates.extend(
            SEED_KEYS_NOT_IMPLEMENTED
                .iter()
                .map(|(k, why)| (*k, Some(*why))),
        );
    }
    let best = candidates
        .iter()
        .map(|(k, why)| (edit_distance(key, k), *k, *why))
        .min_by_key(|(d, _, _)| *d);
    let hint = match best {
        Some((d, close, why)) if d <= (key.chars().count() / 4).clamp(1, 3) => match why {
            None => format!(" (did you mean `{close}`?)"),
            Some(why) => format!(" (did you mean the seed's `{close}`? That key {why})"),
        },
        _ => String::new(),
    };
    format!(
        "unknown key `{prefix}{key}`{at}{hint}; valid keys: {}",
        valid.join(", ")
    )
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// serde's type error, prefixed with the key (found by deserializing one key at a time).
fn type_error_message(object: &Map<String, Value>, err: &serde_json::Error) -> String {
    for (key, value) in object {
        if key == "custom_tasks" {
            if let Value::Array(tasks) = value {
                for (i, task) in tasks.iter().enumerate() {
                    if serde_json::from_value::<CustomTaskConfig>(task.clone()).is_err() {
                        return format!("`custom_tasks[{i}]`: {err}");
                    }
                }
            }
        }
        let single = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if serde_json::from_value::<RunConfig>(single).is_err() {
            return format!("`{key}`: {err}");
        }
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "model_name_or_path": "t5-small",
        "output_dir": "outputs/x",
        "tasks": ["rte"],
        "do_train": true
    }"#;

    fn parse(text: &str) -> Result<RunConfig> {
        RunConfig::from_str(text, "configs/x.json")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// MINIMAL with extra `"key": value` lines.
    fn with(extra: &str) -> String {
        MINIMAL.replacen('{', &format!("{{\n{extra},"), 1)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.tasks, ["rte"]);
        assert_eq!(c.eval_task_names(), ["rte"]);
        assert_eq!(c.effective_data_seed(), 42);
        assert_eq!(c.max_steps, -1);
        assert_eq!(c.num_train_epochs, 3.0);
        assert_eq!(c.learning_rate, 3e-4);
        assert_eq!(c.lr_scheduler, LrScheduler::Linear);
        assert_eq!(c.per_device_eval_batch_size, 8);
        assert_eq!(c.reduction_factor, 16);
        assert_eq!(c.non_linearity, "swish");
        assert!(c.add_layer_norm_after_adapter && !c.add_layer_norm_before_adapter);
        assert_eq!(c.metric_for_best_model, "average_metrics");
        assert_eq!(c.backend, BackendKind::Auto);
        assert_eq!(c.evaluation_strategy, EvaluationStrategy::No);
    }

    #[test]
    fn seed_style_config_parses() {
        // The seed's `configs/test.json`, less its not-implemented keys and its duplicate.
        let text = r#"{
        "print_num_parameters": true,
        "model_name_or_path": "t5-small", "tokenizer_name": "t5-small",
        "learning_rate": 1e-2, "output_dir": "outputs/test", "overwrite_output_dir": true,
        "max_source_length": 128, "max_target_length": 128,
        "val_max_target_length": 128, "test_max_target_length": 128,
        "num_train_epochs": 3, "max_steps": 1000, "warmup_steps": 500, "eval_steps": 200,
        "tasks": ["rte"], "eval_tasks": ["rte"], "label_smoothing": 0.1,
        "freeze_encoder": false, "freeze_embeds": false,
        "per_device_train_batch_size": 64, "per_device_eval_batch_size": 64,
        "save_steps": 1000, "save_total_limit": 1, "logging_first_step": true, "logging_steps": 200,
        "adapter_config_name": "adapter", "temperature": 10, "do_eval": true,
        "predict_with_generate": true, "do_train": true, "n_train": 500, "n_val": 500,
        "reduction_factor": 32, "non_linearity": "relu", "unfreeze_lm_head": false,
        "unfreeze_layer_norms": true, "train_adapters": true,
        "lr_scheduler": "constant_w_warmup", "evaluation_strategy": "steps", "backend": "cpu"
        }"#;
        let c = parse(text).unwrap();
        assert_eq!(c.temperature, 10.0);
        assert_eq!(c.num_train_epochs, 3.0);
        assert_eq!(c.save_total_limit, Some(1));
        assert_eq!(c.lr_scheduler, LrScheduler::ConstantWithWarmup);
        assert_eq!(c.evaluation_strategy, EvaluationStrategy::Steps);
        assert_eq!(c.backend, BackendKind::Cpu);
        assert_eq!(RunConfig::limit(c.n_train), Some(500));
        assert_eq!(RunConfig::limit(c.n_test), None);
        assert_eq!(c.total_steps(123_456), 1000);
    }

    #[test]
    fn unknown_key_lists_valid_keys_and_suggests() {
        let e = err(&with(r#""learning_rat": 0.1"#));
        assert!(
            e.starts_with("configs/x.json: unknown key `learning_rat`"),
            "{e}"
        );
        assert!(e.contains("did you mean `learning_rate`?"), "{e}");
        assert!(e.contains("valid keys: adam_beta1, "), "{e}");
        assert!(e.contains("warmup_steps"), "{e}");
        assert!(
            e.contains("`learning_rat` at line 2 column 1 (did you mean"),
            "{e}"
        );

        // The seed's misspelled key: close to a not-implemented key, not to a valid one.
        let e = err(&with(r#""parameteric_task_embedding": true"#));
        assert!(
            e.contains("unknown key `parameteric_task_embedding`"),
            "{e}"
        );
        assert!(
            e.contains("did you mean the seed's `parametric_task_embedding`? That key belongs"),
            "{e}"
        );
        assert!(e.contains("valid keys: "), "{e}");

        // Nothing close: no suggestion.
        let e = err(&with(r#""zzzzzzzzzz": 1"#));
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn seed_keys_not_implemented_say_so() {
        for key in [
            "task_embedding_dim",
            "projected_task_embedding_dim",
            "hidden_dim",
            "train_task_embeddings",
            "task_embedding_dir",
            "unique_hyper_net",
            "conditional_layer_norm",
            "train_adapters_blocks",
            "remove_original_layer_norms",
        ] {
            let e = err(&with(&format!(r#""{key}": 1"#)));
            assert!(e.contains(&format!("`{key}`")), "{e}");
            assert!(e.contains("not implemented"), "{e}");
        }
        let e = err(&with(r#""unique_hyper_net": false"#));
        assert!(
            e.contains("`unique_hyper_net` belongs to the seed's meta-adapter/HyperFormer"),
            "{e}"
        );
        assert!(e.contains("which is not implemented"), "{e}");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let e = err(&with(r#""do_train": false"#));
        assert!(
            e.starts_with("configs/x.json: duplicate key `do_train`"),
            "{e}"
        );
        assert!(e.contains("line "), "{e}");
        // Nested, too.
        let e = err(&with(
            r#""custom_tasks": [{"name": "a", "template": "{x}", "template": "{y}", "target_field": "y", "train_file": "a.jsonl"}]"#,
        ));
        assert!(
            e.contains("duplicate key `custom_tasks[0].template`"),
            "{e}"
        );
        // The same key in two different objects is fine.
        let ok = with(
            r#""adapters": {"mrpc": "rte"}, "train_adapters": true, "eval_tasks": ["rte", "mrpc"]"#,
        );
        parse(&ok).unwrap();
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err(&with(r#""learning_rate": "fast""#));
        assert!(e.contains("`learning_rate`"), "{e}");
        assert!(
            e.contains("invalid type: string \"fast\", expected f64"),
            "{e}"
        );
        assert!(e.contains("line 2"), "{e}");
        let e = err(&with(r#""per_device_train_batch_size": -4"#));
        assert!(e.contains("`per_device_train_batch_size`"), "{e}");
        let e = err(&with(r#""lr_scheduler": "polynomial""#));
        assert!(
            e.contains("`lr_scheduler`") && e.contains("unknown variant"),
            "{e}"
        );
        let e = err(&with(r#""backend": "tpu""#));
        assert!(
            e.contains("`backend`") && e.contains("unknown backend `tpu`"),
            "{e}"
        );
        let e = err(&with(
            r#""custom_tasks": [{"name": "a", "template": "{x}", "train_file": "a.jsonl"}]"#,
        ));
        assert!(
            e.contains("`custom_tasks[0]`: missing field `target_field`"),
            "{e}"
        );
        let e = err(&with(
            r#""custom_tasks": [{"name": "a", "template": "{x}", "target": "y", "train_file": "a.jsonl"}]"#,
        ));
        assert!(e.contains("unknown key `custom_tasks[0].target`"), "{e}");
        assert!(
            e.contains("did you mean `target_field`?") || e.contains("valid keys"),
            "{e}"
        );
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        let e = parse("{\"tasks\": [\"rte\",}").unwrap_err();
        assert!(matches!(e, Error::Json { .. }), "{e}");
        let e = err("[1, 2]");
        assert!(e.contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn validate_catches_bad_values() {
        let cases: &[(&str, &str)] = &[
            (
                r#""gradient_accumulation_steps": 0"#,
                "gradient_accumulation_steps",
            ),
            (r#""learning_rate": -0.001"#, "learning_rate"),
            (r#""temperature": 0"#, "temperature"),
            (r#""label_smoothing": 1.0"#, "label_smoothing"),
            (r#""adam_beta2": 1.0"#, "adam_beta2"),
            (r#""n_train": -2"#, "n_train"),
            (r#""non_linearity": "mish""#, "non_linearity"),
            (r#""save_total_limit": 0"#, "save_total_limit"),
            (
                r#""load_best_model_at_end": true"#,
                "load_best_model_at_end",
            ),
            (r#""eval_tasks": []"#, "eval_tasks"),
            (r#""eval_tasks": ["rte", "rte"]"#, "twice"),
            (r#""adapter_config_name": "madeup""#, "unknown"),
        ];
        for (extra, needle) in cases {
            let e = err(&with(extra));
            assert!(e.contains(needle), "{extra}: {e}");
        }
        let e = err(&with(r#""adapter_config_name": "meta-adapter""#));
        assert!(
            e.contains("meta-adapter") && e.contains("not implemented"),
            "{e}"
        );

        let e = err(&MINIMAL.replace(r#"["rte"]"#, "[]"));
        assert!(e.contains("`tasks` is empty"), "{e}");
        let e = err(&MINIMAL.replace(r#""do_train": true"#, r#""do_train": false"#));
        assert!(e.contains("nothing to do"), "{e}");
        let e = err(r#"{"tasks": ["rte"], "output_dir": "o", "do_eval": true}"#);
        assert!(e.contains("`model_name_or_path` is required"), "{e}");

        // Built in code: `validate` gives `Error::Invalid`.
        let c = RunConfig {
            gradient_accumulation_steps: 0,
            ..parse(MINIMAL).unwrap()
        };
        assert!(matches!(c.validate(), Err(Error::Invalid(_))));
    }

    #[test]
    fn adapters_must_point_at_trained_tasks() {
        let ok = with(
            r#""tasks": ["rte", "mnli"], "eval_tasks": ["rte", "cb"], "train_adapters": true, "adapters": {"cb": "mnli"}"#,
        )
        .replacen(r#""tasks": ["rte"],"#, "", 1);
        let c = parse(&ok).unwrap();
        assert_eq!(c.adapter_for("cb"), Some("mnli"));
        assert_eq!(c.adapter_for("rte"), Some("rte"));
        assert_eq!(c.adapter_for("boolq"), None);

        let e = err(&with(
            r#""eval_tasks": ["rte", "cb"], "train_adapters": true, "adapters": {"cb": "mnli"}"#,
        ));
        assert!(e.contains("`mnli`, which is not a training task"), "{e}");
        let e = err(&with(
            r#""train_adapters": true, "adapters": {"cb": "rte"}"#,
        ));
        assert!(e.contains("`cb`, which is not an eval task"), "{e}");
        let e = err(&with(r#""adapters": {"rte": "rte"}"#));
        assert!(e.contains("`train_adapters` is false"), "{e}");
    }

    #[test]
    fn eval_only_tasks_are_allowed() {
        let c = parse(&with(r#""eval_tasks": ["rte", "some_unknown_task"]"#)).unwrap();
        assert_eq!(c.eval_task_names(), ["rte", "some_unknown_task"]);
    }

    #[test]
    fn custom_tasks() {
        let text = with(
            r#""custom_tasks": [{
                "name": "my_nli", "train_file": "data/train.tsv", "validation_file": "data/dev.tsv",
                "format": "tsv", "template": "premise: {premise} hypothesis: {hypothesis}",
                "target_field": "label", "labels": ["yes", "no"], "metrics": ["accuracy", "f1"]
            }, {
                "name": "echo", "test_file": "echo.jsonl", "template": "echo: {text}", "target_field": "text"
            }]"#,
        );
        let c = parse(&text).unwrap();
        let nli = c.custom_task("my_nli").unwrap();
        assert_eq!(nli.format, DataFormat::Tsv);
        assert_eq!(nli.placeholders().unwrap(), ["premise", "hypothesis"]);
        let echo = c.custom_task("echo").unwrap();
        assert_eq!(echo.format, DataFormat::Jsonl);
        assert_eq!(echo.metrics, ["accuracy"]);
        assert_eq!(echo.labels, None);

        let bad = |task: &str| err(&with(&format!(r#""custom_tasks": [{task}]"#)));
        let e =
            bad(r#"{"name": "a", "template": "x: {x", "target_field": "y", "train_file": "a"}"#);
        assert!(e.contains("without a `}`"), "{e}");
        let e =
            bad(r#"{"name": "a", "template": "x: {}", "target_field": "y", "train_file": "a"}"#);
        assert!(e.contains("must be a field name"), "{e}");
        let e =
            bad(r#"{"name": "a b", "template": "{x}", "target_field": "y", "train_file": "a"}"#);
        assert!(e.contains("custom task name `a b`"), "{e}");
        let e = bad(r#"{"name": "a", "template": "{x}", "target_field": "y"}"#);
        assert!(e.contains("has no data"), "{e}");
        let e = bad(
            r#"{"name": "a", "template": "{x}", "target_field": "y", "train_file": "a", "format": "csv"}"#,
        );
        assert!(e.contains("unknown variant `csv`"), "{e}");
        let e = bad(
            r#"{"name": "a", "template": "{x}", "target_field": "y", "train_file": "a"}, {"name": "a", "template": "{x}", "target_field": "y", "train_file": "b"}"#,
        );
        assert!(e.contains("defined twice"), "{e}");
        let e = err(&with(
            r#""tasks": ["mine"], "custom_tasks": [{"name": "mine", "template": "{x}", "target_field": "y", "test_file": "t"}]"#,
        )
        .replacen(r#""tasks": ["rte"],"#, "", 1));
        assert!(e.contains("has no `train_file`"), "{e}");
    }

    #[test]
    fn custom_task_keys_match_the_struct() {
        let task = CustomTaskConfig {
            name: "a".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "{x}".into(),
            target_field: "y".into(),
            labels: None,
            metrics: default_metrics(),
        };
        let Value::Object(map) = serde_json::to_value(task).unwrap() else {
            panic!("not an object")
        };
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut expected = CUSTOM_TASK_KEYS.to_vec();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn not_implemented_keys_are_not_valid_keys() {
        let valid = RunConfig::valid_keys();
        for (key, _) in SEED_KEYS_NOT_IMPLEMENTED {
            assert!(!valid.iter().any(|k| k == key), "{key}");
        }
        assert!(valid.len() > 60, "{valid:?}");
    }

    #[test]
    fn resolved_json_round_trips() {
        let c = parse(&with(r#""seed": 7, "lr_scheduler": "cosine""#)).unwrap();
        let json = c.resolved_json();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["eval_tasks"], serde_json::json!(["rte"]));
        assert_eq!(value["data_seed"], 7);
        assert_eq!(value["backend"], "auto");
        assert_eq!(value["lr_scheduler"], "cosine");
        assert_eq!(value["warmup_steps"], 0);
        let back = parse(&json).unwrap();
        assert_eq!(back, c.resolved());
        assert_eq!(back.resolved_json(), json);
    }

    #[test]
    fn total_steps_from_epochs() {
        let mut c = parse(MINIMAL).unwrap();
        c.per_device_train_batch_size = 8;
        c.gradient_accumulation_steps = 2;
        c.num_train_epochs = 3.0;
        // ceil(100 / 16) = 7 steps per epoch.
        assert_eq!(c.steps_per_epoch(100), 7);
        assert_eq!(c.total_steps(100), 21);
        c.num_train_epochs = 0.5;
        assert_eq!(c.total_steps(100), 4);
        assert_eq!(c.total_steps(0), 0);
        c.max_steps = 10;
        assert_eq!(c.total_steps(100), 10);
        c.max_steps = 0;
        assert_eq!(c.total_steps(100), 4);
    }

    #[test]
    fn from_file_reads_and_labels_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(RunConfig::from_file(&path).unwrap().tasks, ["rte"]);
        std::fs::write(&path, with(r#""tasks": ["mrpc"]"#)).unwrap();
        let e = RunConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: duplicate key `tasks`", path.display())),
            "{e}"
        );
        let missing = dir.path().join("missing.json");
        assert!(matches!(
            RunConfig::from_file(&missing),
            Err(Error::Io { .. })
        ));
    }

    /// Every shipped config (except `configs/test*.json`, written and tested elsewhere) parses.
    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".json") || name.starts_with("test") {
                continue;
            }
            let c = RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(c.do_train, "{name}");
            seen.push(name);
        }
        seen.sort();
        for expected in [
            "glue-t5-base-adapters.json",
            "glue-t5-small-adapters.json",
            "glue-t5-small-full.json",
        ] {
            assert!(
                seen.iter().any(|s| s == expected),
                "{expected} missing: {seen:?}"
            );
        }
    }
}
