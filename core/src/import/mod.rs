//! `native import`: a checkpoint the seed saved (ruse `seq2seq/`, rabeehk/hyperformer) turned into
//! this toolkit's directories. The seed's HF Trainer writes one `pytorch_model.bin` (or its
//! shards) holding the backbone and, inside the same state dict, either every task's adapter or
//! one of HyperFormer's hypernetworks, under the seed's module names (hyperformer's
//! `third_party/models/modeling_t5.py`, `adapters/adapter_controller.py`). Per-task adapters:
//!
//! | seed key (`{pos}` = `{encoder,decoder}.block.{i}.layer.{j}`) | ours (adapter directory of `<task>`) |
//! |---|---|
//! | `{pos}.adapter_controller.adapters.<task>.down_sampler.{weight,bias}` | `{pos}.adapter.down.*` |
//! | `{pos}.adapter_controller.adapters.<task>.up_sampler.{weight,bias}` | `{pos}.adapter.up.*` |
//! | `{pos}.adapter_controller.pre_layer_norm.{weight,bias}` (shared) | `{pos}.adapter.pre_layer_norm.*` |
//! | `{pos}.adapter_controller.post_layer_norm.{weight,bias}` (shared) | `{pos}.adapter.post_layer_norm.*` |
//!
//! The output is `DIR/model/` (a model directory: the backbone as safetensors) and
//! `DIR/adapters/<task>/` (an adapter directory per task, this project's `seed` kind), the
//! layout of a training run's outputs. The adapter options come from the tensors (which
//! sublayers, the bottleneck, the norms) and, for the activation, from the seed's run config when
//! one sits next to the checkpoint (a JSON file with `tasks` and `model_name_or_path`); it is
//! copied to `DIR/run.json` pointing at the imported model.
//!
//! A checkpoint with a hypernetwork (`adapter_config_name: "meta-adapter"`, with or without
//! `unique_hyper_net` / `efficient_unique_hyper_net`: meta-adapter, HyperFormer, HyperFormer++)
//! becomes `DIR/model/` and `DIR/hypernetwork/`, a hypernetwork directory whose names and options
//! [`hyper`] derives (its table maps every HyperFormer module name); `DIR/run.json` then carries
//! the hypernetwork keys as the tensors have them and `hypernetwork: DIR/hypernetwork`.
//! Keys that are none of the above are listed in the report, never dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::adapter::config::{BottleneckConfig, SeedAdapterConfig};
use crate::adapter::format::{load_adapter, NativeAdapterConfig, FORMAT_VERSION};
use crate::adapter::hyper::HyperNetworkConfig;
use crate::adapter::set::{has_adapter, num_positions, position_name};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, CONFIG_FILE, TOKENIZER_FILE};
use crate::io::{file_inside, write_atomic};
use crate::model_dir::{save_pretrained, ModelDir};
use crate::train::config::RunConfig;
use crate::weights::{write_safetensors, Weights};
use crate::T5ForConditionalGeneration;

mod hyper;

/// What an import wrote and what it could not place.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The backbone's model directory.
    pub model: PathBuf,
    /// Each task's adapter directory.
    pub adapters: Vec<(String, PathBuf)>,
    /// The hypernetwork directory and its config, for a HyperFormer checkpoint.
    pub hypernetwork: Option<(PathBuf, HyperNetworkConfig)>,
    /// The seed's run config it read, and the run config it wrote.
    pub run_config: Option<(PathBuf, PathBuf)>,
    /// Tensors of the checkpoint that are neither the backbone's nor an adapter's.
    pub unknown: Vec<String>,
    /// Lines worth reading: assumed options, a run config that needs editing.
    pub notes: Vec<String>,
}

/// One adapted sublayer's tensors: per task `down`/`up`, shared norms.
#[derive(Default)]
struct Position {
    tasks: BTreeMap<String, BTreeSet<String>>,
    norms: BTreeSet<String>,
}

/// Imports the checkpoint directory `src` into `out` (created; existing files are replaced).
pub fn import_seed<B: Backend>(src: &Path, out: &Path, device: &B::Device) -> Result<ImportReport> {
    let dir = ModelDir::open(src)?;
    let config = &dir.config;
    let mut weights = Weights::from_dir(src)?;
    let model = T5ForConditionalGeneration::<B>::load(config, &mut weights, device)?;
    let mut report = ImportReport {
        model: out.join("model"),
        ..Default::default()
    };
    let tokenizer = file_inside(src, TOKENIZER_FILE, None)?;
    save_pretrained(
        &model,
        tokenizer.is_file().then_some(tokenizer.as_path()),
        &report.model,
    )?;
    if !tokenizer.is_file() {
        report.notes.push(format!(
            "{}: no tokenizer.json; copy one into {} (transformers: \
             `T5TokenizerFast.from_pretrained(name).save_pretrained(dir)`)",
            src.display(),
            report.model.display()
        ));
    }
    let seed_run = find_run_config(src)?;
    if hyper::present(&weights) {
        let path = out.join("hypernetwork");
        let run = seed_run.as_ref().map(|(_, v)| v);
        let hyper = hyper::import_hypernetwork::<B>(
            &mut weights,
            config,
            run,
            &path,
            &mut report.notes,
            device,
        )?;
        report.hypernetwork = Some((path, hyper));
    }
    let (positions, unknown) = sort_keys(&weights, config);
    report.unknown = unknown;
    let options = adapter_options(
        &weights,
        &positions,
        config,
        seed_run.as_ref(),
        &mut report.notes,
    )?;
    if let Some(options) = &options {
        for task in tasks_of(&positions) {
            let path = out.join("adapters").join(&task);
            write_adapter(&mut weights, &positions, &task, options, config, &path)?;
            // Read back as any adapter directory is: proves the files whole and consistent.
            load_adapter::<B>(&path, config, device)?;
            report.adapters.push((task, path));
        }
    }
    if let Some((path, value)) = seed_run {
        report.run_config = Some((path.clone(), write_run_config(value, out, &mut report)?));
    }
    Ok(report)
}

/// Splits the tensors no backbone part took into adapter positions and unknown keys.
fn sort_keys(weights: &Weights, config: &T5Config) -> (BTreeMap<String, Position>, Vec<String>) {
    let tied = |n: &str| {
        matches!(
            n,
            "encoder.embed_tokens.weight" | "decoder.embed_tokens.weight"
        ) || (n == "lm_head.weight" && config.tie_word_embeddings)
            || n == "shared.weight"
            || n.ends_with("EncDecAttention.relative_attention_bias.weight")
    };
    let mut positions: BTreeMap<String, Position> = BTreeMap::new();
    let mut unknown = Vec::new();
    for name in weights.untaken() {
        if tied(name) {
            continue;
        }
        let Some((pos, rest)) = name.split_once(".adapter_controller.") else {
            unknown.push(name.to_string());
            continue;
        };
        let entry = positions.entry(pos.to_string()).or_default();
        if let Some(task_rest) = rest.strip_prefix("adapters.") {
            if let Some((task, leaf)) = task_rest.split_once('.') {
                if matches!(
                    leaf,
                    "down_sampler.weight"
                        | "down_sampler.bias"
                        | "up_sampler.weight"
                        | "up_sampler.bias"
                ) {
                    entry
                        .tasks
                        .entry(task.to_string())
                        .or_default()
                        .insert(leaf.to_string());
                    continue;
                }
            }
        } else if matches!(
            rest,
            "pre_layer_norm.weight"
                | "pre_layer_norm.bias"
                | "post_layer_norm.weight"
                | "post_layer_norm.bias"
        ) {
            entry.norms.insert(rest.to_string());
            continue;
        }
        unknown.push(name.to_string());
    }
    (positions, unknown)
}

fn tasks_of(positions: &BTreeMap<String, Position>) -> BTreeSet<String> {
    positions
        .values()
        .flat_map(|p| p.tasks.keys().cloned())
        .collect()
}

/// The seed's adapter options that the tensors imply; `None` without adapters. The activation is
/// not in the tensors: the run config's `non_linearity`, else the seed's default (a note says so).
fn adapter_options(
    weights: &Weights,
    positions: &BTreeMap<String, Position>,
    config: &T5Config,
    run: Option<&(PathBuf, serde_json::Value)>,
    notes: &mut Vec<String>,
) -> Result<Option<SeedAdapterConfig>> {
    let Some((pos, first)) = positions.iter().find(|(_, p)| !p.tasks.is_empty()) else {
        return Ok(None);
    };
    let task = first.tasks.keys().next().expect("a task");
    let down = format!("{pos}.adapter_controller.adapters.{task}.down_sampler.weight");
    let bottleneck = match weights.shape(&down) {
        Some([rows, cols])
            if *cols == config.d_model && *rows > 0 && config.d_model.is_multiple_of(*rows) =>
        {
            *rows
        }
        other => {
            return Err(Error::checkpoint(
                weights.origin(),
                format!(
                "`{down}` has shape {other:?}; a seed adapter's is [d_model / reduction_factor, \
                     d_model] with d_model {}",
                config.d_model
            ),
            ))
        }
    };
    let seed_default = SeedAdapterConfig::default();
    let run_activation = run.and_then(|(_, v)| v.get("non_linearity")?.as_str().map(String::from));
    let non_linearity = run_activation.unwrap_or_else(|| {
        notes.push(format!(
            "no seed run config with `non_linearity` next to the checkpoint: the adapters' \
             activation is taken to be the seed's default, `{}` (edit non_linearity in each \
             adapter_config.json if the run used another)",
            seed_default.non_linearity
        ));
        seed_default.non_linearity
    });
    let any_pos = |pred: &dyn Fn(&str) -> bool| positions.keys().any(|p| pred(p));
    let any_norm = |n: &str| positions.values().any(|p| p.norms.contains(n));
    Ok(Some(SeedAdapterConfig {
        reduction_factor: config.d_model / bottleneck,
        non_linearity,
        add_adapter_in_feed_forward: any_pos(&|p| {
            p.ends_with(".layer.1") || p.ends_with(".layer.2")
        }),
        add_adapter_in_self_attention: any_pos(&|p| p.ends_with(".layer.0")),
        add_adapters_in_decoder: any_pos(&|p| p.starts_with("decoder.")),
        add_layer_norm_before_adapter: any_norm("pre_layer_norm.weight"),
        add_layer_norm_after_adapter: any_norm("post_layer_norm.weight"),
    }))
}

fn write_adapter(
    weights: &mut Weights,
    positions: &BTreeMap<String, Position>,
    task: &str,
    options: &SeedAdapterConfig,
    config: &T5Config,
    dir: &Path,
) -> Result<()> {
    let bottleneck = config.d_model / options.reduction_factor;
    let d = config.d_model;
    let expected = BottleneckConfig::seed(options, config);
    let mut tensors = Vec::new();
    for p in (0..num_positions(config)).filter(|&p| has_adapter(&expected, p)) {
        let pos = position_name(config, p);
        if !positions
            .get(&pos)
            .is_some_and(|x| x.tasks.contains_key(task))
        {
            return Err(Error::checkpoint(
                weights.origin(),
                format!("task `{task}` has no adapter at `{pos}`, where its other sublayers of the kind have one"),
            ));
        }
        let seed = format!("{pos}.adapter_controller");
        let mut put = |from: String, to: &str, shape: Vec<usize>| -> Result<()> {
            let values = weights.take_values(&from, &shape)?;
            tensors.push((format!("{pos}.adapter.{to}"), shape, values));
            Ok(())
        };
        let a = format!("{seed}.adapters.{task}");
        put(
            format!("{a}.down_sampler.weight"),
            "down.weight",
            vec![bottleneck, d],
        )?;
        put(
            format!("{a}.down_sampler.bias"),
            "down.bias",
            vec![bottleneck],
        )?;
        put(
            format!("{a}.up_sampler.weight"),
            "up.weight",
            vec![d, bottleneck],
        )?;
        put(format!("{a}.up_sampler.bias"), "up.bias", vec![d])?;
        for (on, norm) in [
            (options.add_layer_norm_before_adapter, "pre_layer_norm"),
            (options.add_layer_norm_after_adapter, "post_layer_norm"),
        ] {
            if on {
                for leaf in ["weight", "bias"] {
                    put(
                        format!("{seed}.{norm}.{leaf}"),
                        &format!("{norm}.{leaf}"),
                        vec![d],
                    )?;
                }
            }
        }
    }
    let native = NativeAdapterConfig {
        format: "t5-adapters".into(),
        format_version: FORMAT_VERSION,
        kind: "seed".into(),
        task: task.to_string(),
        d_model: config.d_model,
        num_layers: config.num_layers,
        num_decoder_layers: config.num_decoder_layers(),
        seed: Some(options.clone()),
        bottleneck: None,
        shared_layer_norms: true,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_safetensors(&dir.join(ADAPTER_WEIGHTS), &tensors, None)?;
    let text = serde_json::to_string_pretty(&native).expect("serializable");
    write_atomic(&dir.join(ADAPTER_CONFIG), text.as_bytes())
}

/// The seed's run config next to the checkpoint: a JSON file other than HF's own with the keys
/// `tasks` and `model_name_or_path`.
fn find_run_config(src: &Path) -> Result<Option<(PathBuf, serde_json::Value)>> {
    const HF_FILES: [&str; 6] = [
        CONFIG_FILE,
        TOKENIZER_FILE,
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "trainer_state.json",
    ];
    let mut names: Vec<String> = std::fs::read_dir(src)
        .map_err(|e| Error::io(src, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.ends_with(".json") && !n.ends_with(".index.json") && !HF_FILES.contains(&n.as_str())
        })
        .collect();
    names.sort();
    for name in names {
        let path = file_inside(src, &name, None)?;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if value.get("tasks").is_some() && value.get("model_name_or_path").is_some() {
            return Ok(Some((path, value)));
        }
    }
    Ok(None)
}

/// `out/run.json`: the seed's run config, training on from the imported model; checked by the
/// run config's reader (its complaints become notes: the file is still the user's to edit).
fn write_run_config(
    mut value: serde_json::Value,
    out: &Path,
    report: &mut ImportReport,
) -> Result<PathBuf> {
    let model = report.model.display().to_string();
    value["model_name_or_path"] = model.clone().into();
    if value.get("tokenizer_name").is_some() {
        value["tokenizer_name"] = model.into();
    }
    if let Some((dir, hyper)) = &report.hypernetwork {
        set_hyper_keys(&mut value, dir, hyper, &mut report.notes);
    }
    let path = out.join("run.json");
    let text = serde_json::to_string_pretty(&value).expect("serializable");
    write_atomic(&path, text.as_bytes())?;
    match RunConfig::load(&path) {
        Ok(loaded) => report.notes.extend(
            loaded
                .warnings
                .into_iter()
                .map(|w| format!("{}: {w}", path.display())),
        ),
        Err(e) => report
            .notes
            .push(format!("{e} (edit it before `native train`)")),
    }
    Ok(path)
}

/// The run config's hypernetwork keys as the imported tensors have them (a note for each value
/// the seed's run config had otherwise), and `hypernetwork` naming the imported directory, so
/// that `native train` starts from it.
fn set_hyper_keys(
    value: &mut serde_json::Value,
    dir: &Path,
    hyper: &HyperNetworkConfig,
    notes: &mut Vec<String>,
) {
    const KEYS: [&str; 16] = [
        "adapter_config_name",
        "unique_hyper_net",
        "efficient_unique_hyper_net",
        "task_embedding_dim",
        "projected_task_embedding_dim",
        "task_hidden_dim",
        "train_task_embeddings",
        "unique_hyper_net_layer_norm",
        "conditional_layer_norm",
        "add_layer_norm_before_adapter",
        "add_layer_norm_after_adapter",
        "reduction_factor",
        "non_linearity",
        "add_adapter_in_feed_forward",
        "add_adapter_in_self_attention",
        "add_adapters_in_decoder",
    ];
    let imported = serde_json::to_value(hyper).expect("serializable");
    for key in KEYS {
        let ours = &imported[key];
        if let Some(theirs) = value.get(key).filter(|v| *v != ours) {
            notes.push(format!(
                "the seed's run config has `{key}` {theirs}, the checkpoint's tensors {ours}: \
                 run.json has the tensors' value"
            ));
        }
        value[key] = ours.clone();
    }
    value["hypernetwork"] = dir.display().to_string().into();
}
