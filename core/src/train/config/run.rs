//! The run config's schema: [`RunConfig`] with its defaults, the enums it uses, and what the
//! trainer asks of it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::adapter::hyper::HyperConfig;
use crate::adapter::ia3::{parse_peft_ia3, Ia3Config};
use crate::adapter::lora::{parse_peft_config, LoraConfig};
use crate::adapter::SeedAdapterConfig;
use crate::backend::BackendKind;
use crate::tasks::CustomTaskConfig;

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
    /// The adapter kind: `adapter` (one seed adapter per task), `meta-adapter` (adapters
    /// generated from task embeddings by a hypernetwork, configured by `hyper`), `lora` (one
    /// LoRA per task, configured by `lora`), `ia3` (one (IA)³ adapter per task, configured by
    /// `ia3`) or `compacter` / `compacter++` (one Compacter per task, configured by
    /// `compacter`).
    pub adapter_config_name: String,
    /// The adapters' shape (`reduction_factor`, `non_linearity`, `add_adapter_in_*`,
    /// `add_layer_norm_*_adapter`: top-level keys, as in the seed).
    #[serde(flatten)]
    pub adapter: SeedAdapterConfig,
    /// The hypernetwork of `meta-adapter` (`task_embedding_dim`, `unique_hyper_net`, ...:
    /// top-level keys, as in the seed).
    #[serde(flatten)]
    pub hyper: HyperConfig,
    /// The LoRA of `lora`: PEFT's `LoraConfig` keys (`r`, `lora_alpha`, `lora_dropout`,
    /// `target_modules`, `use_rslora`, `rank_pattern`, ...) in one object, read as PEFT's
    /// `adapter_config.json` is (options not implemented are refused by name).
    #[serde(deserialize_with = "lora_from_peft_keys")]
    pub lora: LoraConfig,
    /// The (IA)³ adapter of `ia3`: PEFT's `IA3Config` keys (`target_modules`,
    /// `feedforward_modules`, `exclude_modules`; PEFT's T5 defaults when absent).
    #[serde(deserialize_with = "ia3_from_peft_keys")]
    pub ia3: Ia3Config,
    /// The Compacter of `compacter` / `compacter++`: the `adapters` library's `BnConfig` keys
    /// (`reduction_factor`, `non_linearity`, `phm_dim`, `phm_rank`, `shared_phm_rule`,
    /// `factorized_phm_rule`, `shared_W_phm`, `factorized_phm_W`, `phm_c_init`, `phm_init_range`,
    /// `leave_out`, ...) set over its `CompacterConfig` / `CompacterPlusPlusConfig`.
    pub compacter: serde_json::Map<String, Value>,
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
            adapter: SeedAdapterConfig::default(),
            hyper: HyperConfig::default(),
            lora: LoraConfig::default(),
            ia3: Ia3Config::default(),
            compacter: serde_json::Map::new(),
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

impl RunConfig {
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
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The `lora` object of a run config: PEFT's `LoraConfig` keys, `peft_type` implied.
fn lora_from_peft_keys<'de, D: Deserializer<'de>>(d: D) -> Result<LoraConfig, D::Error> {
    let value = peft_keys(d, "LORA", "LoraConfig")?;
    parse_peft_config(&value).map_err(serde::de::Error::custom)
}

/// The `ia3` object of a run config: PEFT's `IA3Config` keys, `peft_type` implied.
fn ia3_from_peft_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Ia3Config, D::Error> {
    let value = peft_keys(d, "IA3", "IA3Config")?;
    parse_peft_ia3(&value).map_err(serde::de::Error::custom)
}

/// An object of PEFT config keys, with `peft_type` set to `peft_type` if absent.
fn peft_keys<'de, D: Deserializer<'de>>(
    d: D,
    peft_type: &str,
    class: &str,
) -> Result<Value, D::Error> {
    let mut value = Value::deserialize(d)?;
    let Value::Object(map) = &mut value else {
        return Err(serde::de::Error::custom(format!(
            "expected an object of PEFT `{class}` keys"
        )));
    };
    map.entry("peft_type").or_insert_with(|| peft_type.into());
    Ok(value)
}
