//! A run's setup, everything before the first step: the tokenizer and the backbone (a model
//! directory or a built-in preset), the data, what trains (frozen parts, fresh adapters) with its
//! optimizers; and the schedule, the multi-task sampler and the number of steps.

use std::path::PathBuf;

use burn::prelude::*;

use super::adapters::RunAdapters;
use super::config::RunConfig;
use super::data::{prepare_data, TaskData};
use super::hypernetwork::hypernetwork;
use super::sampler::MultiTaskSampler;
use super::summary::ParameterSummary;
use super::trainable::Trainable;
use crate::adapter::{AdapterSet, BottleneckConfig, TaskAdapter};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::TOKENIZER_FILE;
use crate::fused::{FusedAutodiff, FusedOps};
use crate::generation::limits::{check_memory, memory_for};
use crate::model::{FreezeOptions, T5ForConditionalGeneration};
use crate::model_dir::ModelDir;
use crate::tokenizer::T5Tokenizer;

/// Everything a run starts from.
pub struct Setup<B: FusedAutodiff> {
    /// The backbone's config: the model directory's `config.json`, or a preset's.
    pub model_config: T5Config,
    pub tokenizer: T5Tokenizer,
    /// The tokenizer's file, copied into the model export.
    pub tokenizer_file: PathBuf,
    /// Every task of the run: the training tasks first, in `tasks` order, then the other
    /// evaluation tasks.
    pub data: Vec<TaskData>,
    pub trainable: Trainable<B>,
    /// How much of the model trains (printed at the start).
    pub parameters: ParameterSummary,
}

/// How training goes through the data.
pub struct Schedule {
    /// Draws each batch's task and examples.
    pub sampler: MultiTaskSampler,
    /// Training examples of all tasks together.
    pub total_examples: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// The sampler over the training tasks (the first `tasks.len()` entries of `data`).
    pub fn new(config: &RunConfig, data: &[TaskData]) -> Result<Self> {
        let sizes: Vec<usize> = data[..config.tasks.len()]
            .iter()
            .map(|t| t.train.len())
            .collect();
        let total_examples = sizes.iter().sum();
        Ok(Self {
            sampler: MultiTaskSampler::new(&sizes, config.temperature, config.seed)?,
            total_examples,
            total_steps: config.total_steps(total_examples),
        })
    }
}

impl<B: FusedAutodiff> Setup<B> {
    pub fn new(config: &RunConfig, device: &B::Device) -> Result<Self> {
        let model_dir = match preset(&config.model_name_or_path, 0) {
            Some(_) if config.tokenizer_name.is_none() => {
                return Err(Error::Invalid(format!(
                    "preset `{}` needs `tokenizer_name`",
                    config.model_name_or_path
                )))
            }
            Some(_) => None,
            None => Some(ModelDir::resolve(&config.model_name_or_path)?),
        };
        let (tokenizer, tokenizer_file) = load_tokenizer(config, model_dir.as_ref())?;
        // Initialization draws from the backend's generator: seed it first.
        B::seed(device, config.seed);
        let (model, model_config) = match &model_dir {
            Some(dir) => (dir.load_model::<B>(device)?, dir.config.clone()),
            None => {
                // A vocabulary rounded up to a multiple of 64, as HF pads embedding tables.
                let vocab = tokenizer.vocab_size().div_ceil(64) * 64;
                let c = preset(&config.model_name_or_path, vocab).expect("a preset");
                (T5ForConditionalGeneration::init(&c, device), c)
            }
        };
        let data = prepare_data(config, &tokenizer, model_config.eos_token_id as u32)?;
        check_batch_memory(config, &model_config, &data, memory_for::<B>(device))?;
        let model = model.freeze(freeze_options(config));
        let adapters = run_adapters(config, &model_config, device)?;
        let backbone_trainable = model.num_trainable_params();
        let parameters = ParameterSummary::new(&model, &adapters, backbone_trainable);
        Ok(Self {
            model_config,
            tokenizer,
            tokenizer_file,
            data,
            trainable: Trainable::new(model, adapters, backbone_trainable > 0, config),
            parameters,
        })
    }
}

/// Refuses batch sizes and lengths whose training or evaluation batches could not fit in
/// `available` bytes ([`check_memory`]), before the first step allocates them: the longest
/// examples of the data, in the largest batch the config asks for.
pub fn check_batch_memory(
    config: &RunConfig,
    model: &T5Config,
    data: &[TaskData],
    available: Option<u64>,
) -> Result<()> {
    let longest = |rows: &mut dyn Iterator<Item = &super::batch::Example>| {
        rows.fold((0, 0), |(s, t), e| {
            (s.max(e.input_ids.len()), t.max(e.labels.len()))
        })
    };
    let (src, tgt) = longest(&mut data.iter().flat_map(|d| d.train.iter()));
    let what = format!(
        "training batches (`per_device_train_batch_size` {})",
        config.per_device_train_batch_size
    );
    check_memory(
        model,
        config.per_device_train_batch_size,
        src,
        tgt,
        available,
        &what,
    )?;
    let (src, _) = longest(
        &mut data
            .iter()
            .flat_map(|d| d.validation.iter().chain(&d.test).map(|(e, _)| e)),
    );
    let rows = config.per_device_eval_batch_size * config.eval_beams;
    let tgt = config
        .val_max_target_length
        .max(config.test_max_target_length);
    let what = format!(
        "evaluation batches (`per_device_eval_batch_size` {} × `eval_beams` {})",
        config.per_device_eval_batch_size, config.eval_beams
    );
    check_memory(model, rows, src, tgt, available, &what)
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

/// The run's tokenizer and its file: `tokenizer_name` (a `tokenizer.json`, or a directory that
/// holds one) when set, else the model directory's.
pub fn load_tokenizer(
    config: &RunConfig,
    model_dir: Option<&ModelDir>,
) -> Result<(T5Tokenizer, PathBuf)> {
    match (&config.tokenizer_name, model_dir) {
        (Some(name), _) => {
            let path = PathBuf::from(name);
            let file = if path.is_dir() {
                crate::io::file_inside(&path, TOKENIZER_FILE, None)?
            } else {
                path
            };
            Ok((T5Tokenizer::from_file(&file)?, file))
        }
        (None, Some(dir)) => Ok((dir.load_tokenizer()?, dir.path.join(TOKENIZER_FILE))),
        (None, None) => Err(Error::Invalid("no tokenizer: set `tokenizer_name`".into())),
    }
}

/// Which parts of the backbone train.
fn freeze_options(config: &RunConfig) -> FreezeOptions {
    FreezeOptions {
        backbone: config.train_adapters,
        unfreeze_layer_norms: config.unfreeze_layer_norms,
        unfreeze_lm_head: config.unfreeze_lm_head,
        freeze_encoder: config.freeze_encoder,
        freeze_embeds: config.freeze_embeds,
    }
}

/// With `train_adapters`, fresh adapters: a hypernetwork for `meta-adapter` (none without
/// adapter blocks), else an adapter per training task (their layer norms shared when asked).
fn run_adapters<B: FusedOps>(
    config: &RunConfig,
    model_config: &T5Config,
    device: &B::Device,
) -> Result<RunAdapters<B>> {
    // The unique hypernetworks ignore `train_adapters_blocks`, as HyperFormer does.
    let blocks = config.hyper.train_adapters_blocks
        || config.adapter_config_name == "meta-adapter"
            && config.hyper.variant() != crate::adapter::hyper::Variant::MetaAdapter;
    if !config.train_adapters || !blocks {
        return Ok(RunAdapters::default());
    }
    if config.adapter_config_name == "meta-adapter" {
        return Ok(RunAdapters::Generated(hypernetwork(
            config,
            model_config,
            device,
        )?));
    }
    Ok(RunAdapters::PerTask(fresh_adapters(
        config,
        model_config,
        device,
    )?))
}

/// `Some(plus_plus)` for the Compacter kinds of `adapter_config_name`.
pub(crate) fn compacter_kind(name: &str) -> Option<bool> {
    match name {
        "compacter" => Some(false),
        "compacter++" => Some(true),
        _ => None,
    }
}

/// A fresh adapter per training task.
fn fresh_adapters<B: Backend>(
    config: &RunConfig,
    model_config: &T5Config,
    device: &B::Device,
) -> Result<AdapterSet<B>> {
    let mut set = AdapterSet::default();
    if config.adapter_config_name == "lora" {
        for name in &config.tasks {
            set.insert(TaskAdapter::init_lora(
                name,
                config.lora.clone(),
                model_config,
                device,
            )?);
        }
        return Ok(set);
    }
    if config.adapter_config_name == "ia3" {
        for name in &config.tasks {
            set.insert(TaskAdapter::init_ia3(
                name,
                config.ia3.clone(),
                model_config,
                device,
            )?);
        }
        return Ok(set);
    }
    if let Some(plus_plus) = compacter_kind(&config.adapter_config_name) {
        for name in &config.tasks {
            set.insert(crate::adapter::format::compacter_adapter(
                name,
                plus_plus,
                &config.compacter,
                model_config,
                device,
            )?);
        }
        return Ok(set);
    }
    let bottleneck = BottleneckConfig::seed(&config.adapter, model_config);
    for name in &config.tasks {
        set.insert(TaskAdapter::init(
            name,
            bottleneck.clone(),
            model_config,
            device,
        )?);
    }
    if config.shared_adapter_layer_norms {
        set.share_norms();
    }
    Ok(set)
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use super::*;
    use crate::adapter::hyper::Variant;

    /// A batch that could not fit in memory is refused before the first step, naming the key.
    #[test]
    fn batches_larger_than_memory_are_refused_by_key() {
        let model = preset("t5-tiny", 64).expect("a preset");
        let example = super::super::batch::Example {
            input_ids: vec![3; 4096],
            labels: vec![3; 16],
        };
        let task = crate::tasks::resolve(&["rte".to_string()], &[])
            .unwrap()
            .remove(0);
        let data = [TaskData {
            task,
            train: vec![example.clone()],
            validation: vec![(example, "x".into())],
            test: Vec::new(),
        }];
        let mut config = RunConfig {
            per_device_train_batch_size: 4096,
            ..RunConfig::default()
        };
        let err = check_batch_memory(&config, &model, &data, Some(1 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`per_device_train_batch_size` 4096") && err.contains("1.0 GiB available"),
            "{err}"
        );
        config.per_device_train_batch_size = 1;
        config.per_device_eval_batch_size = 64;
        let err = check_batch_memory(&config, &model, &data, Some(1 << 30))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`per_device_eval_batch_size` 64"), "{err}");
        config.per_device_eval_batch_size = 1;
        check_batch_memory(&config, &model, &data, Some(1 << 30)).unwrap();
        config.per_device_train_batch_size = 4096;
        check_batch_memory(&config, &model, &data, None).unwrap();
    }

    /// `train_adapters_blocks: false` is the seed's "layer norms only" baseline for `adapter` and
    /// `meta-adapter`; the unique hypernetworks ignore it, as HyperFormer does.
    #[test]
    fn without_adapter_blocks_nothing_but_the_backbone_trains() {
        type B = burn::backend::Autodiff<crate::backend::Cpu>;
        let model = preset("t5-tiny", 64).expect("a preset");
        let mut config = RunConfig {
            tasks: vec!["a".into(), "b".into()],
            train_adapters: true,
            ..RunConfig::default()
        };
        config.hyper.task_embedding_dim = Some(8);
        config.hyper.train_adapters_blocks = false;
        let adapters = |c: &RunConfig| run_adapters::<B>(c, &model, &Default::default()).unwrap();
        assert!(adapters(&config).is_empty(), "adapter");
        config.adapter_config_name = "meta-adapter".into();
        assert!(adapters(&config).is_empty(), "meta-adapter");
        config.hyper.efficient_unique_hyper_net = true;
        assert_eq!(config.hyper.variant(), Variant::HyperFormerPlusPlus);
        assert_eq!(adapters(&config).task_names(), ["a", "b"], "HyperFormer++");
    }
}
