//! The hypernetworks of a HyperFormer checkpoint (meta-adapter, HyperFormer, HyperFormer++) turned
//! into a hypernetwork directory ([`crate::adapter::hyper::format`]). HyperFormer's module names
//! (rabeehk/hyperformer: `adapters/adapter_utils.py`, `adapter_modeling.py`,
//! `adapter_controller.py`, `third_party/models/modeling_t5.py`) and ours
//! (`docs/HYPERNETWORKS.md`, section 9); `G` is `weight_generator` or `bias_generator`, `L` is
//! `weight` or `bias`, `{pos}` an adapted sublayer `{encoder,decoder}.block.{i}.layer.{j}`,
//! `{stack}` is `encoder` or `decoder`, `{kind}` is `feed_forward` or `self_attention`:
//!
//! | HyperFormer's key | ours |
//! |---|---|
//! | `task_embedding_controller.task_to_embeddings.<task>` | `<task>` in `task_embeddings.safetensors` |
//! | `task_embedding_controller.task_hyper_net.task_embeding_generator.{0,2}.L` | `task_projector.{hidden,out}.L` |
//! | `{pos}.adapter_controller.meta_{up,down}_sampler.G.0.L` | `{pos}.{up,down}.G.L` |
//! | `{pos}.adapter_controller.{pre,post}_layernorm_hypernet.G.L` | `{pos}.{pre,post}_layer_norm.G.L` |
//! | `{pos}.adapter_controller.{pre,post}_layer_norm.L` (not conditional) | `{pos}.{pre,post}_layer_norm.L` |
//! | `{stack}.adapter_layers_hyper_net.layer_id_embeddings.weight` | `{stack}.layer_embeddings.weight` |
//! | `{stack}.adapter_layers_hyper_net.adapters_block_type.weight` (HyperFormer++) | `{stack}.position_embeddings.weight` |
//! | `{stack}.adapter_layers_hyper_net.task_hypernet.task_embeding_generator.{0,2}.L` | `{stack}.input_projector.{hidden,out}.L` |
//! | `{stack}.adapter_layers_hyper_net.LayerNorm.L` | `{stack}.input_norm.L` |
//! | `{stack}.adapter_layers_hyper_net.{kind}_{up,down}_sampler_hyper_net.G.0.L` | `{stack}.{kind}.{up,down}.G.L` |
//! | `{stack}.adapter_layers_hyper_net.{kind}_{pre,post}_layernorm_hypernet.G.L` | `{stack}.{kind}.{pre,post}_layer_norm.G.L` |
//! | `{stack}.adapter_layers_hyper_net.{up,down}_sampler_hyper_net.G.0.L` (HyperFormer++) | `{stack}.{up,down}.G.L` |
//! | `{stack}.adapter_layers_hyper_net.{pre,post}_layernorm_hypernet.G.L` (HyperFormer++) | `{stack}.{pre,post}_layer_norm.G.L` |
//!
//! The layouts agree (HyperFormer's generated `[input_dim, output_dim]` is F.linear's
//! `[out, in]`, as ours), so tensors are copied as they are. The options come from the tensors'
//! names and shapes; what they cannot say (the activation, whether the embeddings trained) from
//! the seed's run config, else HyperFormer's defaults with a note.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::prelude::*;

use crate::adapter::config::SeedAdapterConfig;
use crate::adapter::hyper::{load_hypernetwork, HyperConfig, HyperNetworkConfig, Variant};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{HYPER_CONFIG, HYPER_WEIGHTS, TASK_EMBEDDINGS};
use crate::io::write_atomic;
use crate::weights::{write_safetensors, Weights};

/// Key parts found only in HyperFormer's hypernetwork modules.
const HYPER_KEYS: [&str; 5] = [
    "task_embedding_controller.",
    "adapter_layers_hyper_net.",
    ".layer_hyper_net.",
    ".meta_up_sampler.",
    ".meta_down_sampler.",
];

const EMBEDDINGS: &str = "task_embedding_controller.task_to_embeddings.";

/// Whether the checkpoint holds one of HyperFormer's hypernetworks.
pub(super) fn present(weights: &Weights) -> bool {
    weights
        .names()
        .iter()
        .any(|n| HYPER_KEYS.iter().any(|k| n.contains(k)))
}

/// Takes the hypernetwork's tensors out of `weights` and writes them to `dir` as a hypernetwork
/// directory over `model`, read back by the hypernetwork loader before returning. Tensors of the
/// hypernetwork modules that no rule names stay in `weights` (the caller lists them).
pub(super) fn import_hypernetwork<B: Backend>(
    weights: &mut Weights,
    model: &T5Config,
    run: Option<&serde_json::Value>,
    dir: &Path,
    notes: &mut Vec<String>,
    device: &B::Device,
) -> Result<HyperNetworkConfig> {
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    let mut tasks: BTreeSet<String> = BTreeSet::new();
    for name in weights.names() {
        if let Some(task) = name.strip_prefix(EMBEDDINGS) {
            tasks.insert(task.to_string());
        } else if let Some(ours) = rename(name) {
            renamed.insert(ours, name.to_string());
        }
    }
    let config = infer_config(weights, &renamed, &tasks, model, run, notes)?;
    let mut tensors = Vec::new();
    for (ours, theirs) in &renamed {
        let shape = weights.shape(theirs).unwrap_or_default().to_vec();
        tensors.push((
            ours.clone(),
            shape.clone(),
            weights.take_values(theirs, &shape)?,
        ));
    }
    let mut embeddings = Vec::new();
    for task in &tasks {
        let name = format!("{EMBEDDINGS}{task}");
        let shape = weights.shape(&name).unwrap_or_default().to_vec();
        embeddings.push((
            task.clone(),
            shape.clone(),
            weights.take_values(&name, &shape)?,
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_safetensors(&dir.join(HYPER_WEIGHTS), &tensors, None)?;
    write_safetensors(&dir.join(TASK_EMBEDDINGS), &embeddings, None)?;
    let text = serde_json::to_string_pretty(&config).expect("serializable");
    write_atomic(&dir.join(HYPER_CONFIG), text.as_bytes())?;
    // Read back as any hypernetwork directory is: every tensor present, with the shapes the
    // config implies, and nothing else.
    load_hypernetwork::<B>(dir, model, device)?;
    Ok(config)
}

/// The options the tensors imply, completed from the seed's run config.
fn infer_config(
    weights: &Weights,
    renamed: &BTreeMap<String, String>,
    tasks: &BTreeSet<String>,
    model: &T5Config,
    run: Option<&serde_json::Value>,
    notes: &mut Vec<String>,
) -> Result<HyperNetworkConfig> {
    let origin = weights.origin();
    let rows = |ours: &str| -> Option<usize> {
        let theirs = renamed.get(ours)?;
        weights.shape(theirs).and_then(|s| s.first().copied())
    };
    let has = |ours: &str| renamed.contains_key(ours);
    let Some(first) = tasks.first() else {
        return Err(Error::checkpoint(
            &origin,
            format!("a hypernetwork without task embeddings (no `{EMBEDDINGS}<task>`)"),
        ));
    };
    let t = match weights.shape(&format!("{EMBEDDINGS}{first}")) {
        Some([t]) => *t,
        other => {
            return Err(Error::checkpoint(
                &origin,
                format!("task embedding `{first}` has shape {other:?}, not [task_embedding_dim]"),
            ))
        }
    };
    let variant = if has("encoder.position_embeddings.weight") {
        Variant::HyperFormerPlusPlus
    } else if has("encoder.layer_embeddings.weight") {
        Variant::HyperFormer
    } else {
        Variant::MetaAdapter
    };
    let run_key = |key: &str| run.and_then(|v| v.get(key));
    let run_bool = |key: &str| run_key(key).and_then(serde_json::Value::as_bool);
    let run_usize = |key: &str| {
        run_key(key)
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
    };
    let mut hyper = HyperConfig {
        task_embedding_dim: Some(t),
        train_task_embeddings: has("task_projector.hidden.weight"),
        parametric_task_embedding: Some(run_bool("parametric_task_embedding").unwrap_or(true)),
        unique_hyper_net: variant == Variant::HyperFormer,
        efficient_unique_hyper_net: variant == Variant::HyperFormerPlusPlus,
        conditional_layer_norm: run_bool("conditional_layer_norm").unwrap_or(false),
        ..HyperConfig::default()
    };
    if let Some(h) = run_usize("task_hidden_dim") {
        hyper.task_hidden_dim = h;
    }
    if let Some(p) = run_usize("projected_task_embedding_dim") {
        hyper.projected_task_embedding_dim = p;
    }
    if let (Some(h), Some(p)) = (
        rows("task_projector.hidden.weight"),
        rows("task_projector.out.weight"),
    ) {
        (hyper.task_hidden_dim, hyper.projected_task_embedding_dim) = (h, p);
    }
    let mut adapter = SeedAdapterConfig::default();
    let down_bias = adapter_shape(renamed, variant, &rows, &mut hyper, &mut adapter);
    let d = model.d_model;
    match down_bias.as_deref().and_then(rows) {
        Some(b) if b > 0 && d.is_multiple_of(b) => adapter.reduction_factor = d / b,
        other => {
            return Err(Error::checkpoint(
                &origin,
                format!(
                    "the down-projection's bias generator makes {other:?} outputs; a \
                     hypernetwork's adapters have d_model / reduction_factor with d_model {d}"
                ),
            ))
        }
    }
    match run_key("non_linearity").and_then(serde_json::Value::as_str) {
        Some(a) => adapter.non_linearity = a.to_string(),
        None => notes.push(format!(
            "no seed run config with `non_linearity` next to the checkpoint: the generated \
             adapters' activation is taken to be HyperFormer's default, `{}` (edit \
             non_linearity in hypernetwork_config.json if the run used another)",
            adapter.non_linearity
        )),
    }
    let config = HyperNetworkConfig::new(&hyper, &adapter, model, tasks.iter().cloned().collect());
    config
        .validate(model)
        .map_err(|msg| Error::checkpoint(&origin, format!("the hypernetwork: {msg}")))?;
    Ok(config)
}

/// What the generators' names and shapes say of the generated adapters (sublayers, norms) and of
/// the unique generators' input; returns our name of a down-projection's bias generator, whose
/// outputs are the bottleneck.
fn adapter_shape(
    renamed: &BTreeMap<String, String>,
    variant: Variant,
    rows: &dyn Fn(&str) -> Option<usize>,
    hyper: &mut HyperConfig,
    adapter: &mut SeedAdapterConfig,
) -> Option<String> {
    let has = |ours: &str| renamed.contains_key(ours);
    if variant == Variant::MetaAdapter {
        let positions: Vec<&str> = renamed
            .keys()
            .filter_map(|n| n.strip_suffix(".up.weight_generator.weight"))
            .collect();
        let any = |pred: &dyn Fn(&str) -> bool| positions.iter().any(|p| pred(p));
        adapter.add_adapter_in_feed_forward = any(&|p| !p.ends_with(".layer.0"));
        adapter.add_adapter_in_self_attention = any(&|p| p.ends_with(".layer.0"));
        adapter.add_adapters_in_decoder = any(&|p| p.starts_with("decoder."));
        let norm = |which: &str| renamed.keys().any(|n| n.contains(which));
        adapter.add_layer_norm_before_adapter = norm(".pre_layer_norm.");
        adapter.add_layer_norm_after_adapter = norm(".post_layer_norm.");
        hyper.conditional_layer_norm = norm("_layer_norm.weight_generator.");
        positions
            .first()
            .map(|p| format!("{p}.down.bias_generator.weight"))
    } else {
        let (h, p) = (
            rows("encoder.input_projector.hidden.weight"),
            rows("encoder.input_projector.out.weight"),
        );
        if let (Some(h), Some(p)) = (h, p) {
            (hyper.task_hidden_dim, hyper.projected_task_embedding_dim) = (h, p);
        }
        hyper.unique_hyper_net_layer_norm = has("encoder.input_norm.weight");
        let prefix = if variant == Variant::HyperFormer {
            "encoder.feed_forward"
        } else {
            "encoder"
        };
        adapter.add_layer_norm_before_adapter =
            has(&format!("{prefix}.pre_layer_norm.weight_generator.weight"));
        adapter.add_layer_norm_after_adapter =
            has(&format!("{prefix}.post_layer_norm.weight_generator.weight"));
        Some(format!("{prefix}.down.bias_generator.weight"))
    }
}

/// Our name of one of HyperFormer's hypernetwork tensors (the module doc's table).
fn rename(name: &str) -> Option<String> {
    if let Some(rest) =
        name.strip_prefix("task_embedding_controller.task_hyper_net.task_embeding_generator.")
    {
        return projector("task_projector", rest);
    }
    if let Some((stack, rest)) = name.split_once(".adapter_layers_hyper_net.") {
        return matches!(stack, "encoder" | "decoder")
            .then(|| unique(stack, rest))
            .flatten();
    }
    let (pos, rest) = name.split_once(".adapter_controller.")?;
    let (module, tail) = rest.split_once('.')?;
    let ours = match module {
        "meta_up_sampler" => format!("up.{}", generator(tail, true)?),
        "meta_down_sampler" => format!("down.{}", generator(tail, true)?),
        "pre_layernorm_hypernet" => format!("pre_layer_norm.{}", generator(tail, false)?),
        "post_layernorm_hypernet" => format!("post_layer_norm.{}", generator(tail, false)?),
        "pre_layer_norm" | "post_layer_norm" if is_leaf(tail) => format!("{module}.{tail}"),
        _ => return None,
    };
    Some(format!("{pos}.{ours}"))
}

/// `{stack}.adapter_layers_hyper_net.<rest>` (HyperFormer and HyperFormer++).
fn unique(stack: &str, rest: &str) -> Option<String> {
    let (module, tail) = rest.split_once('.')?;
    match module {
        "layer_id_embeddings" if tail == "weight" => {
            return Some(format!("{stack}.layer_embeddings.weight"))
        }
        "adapters_block_type" if tail == "weight" => {
            return Some(format!("{stack}.position_embeddings.weight"))
        }
        "task_hypernet" => {
            let rest = tail.strip_prefix("task_embeding_generator.")?;
            return projector(&format!("{stack}.input_projector"), rest);
        }
        "LayerNorm" if is_leaf(tail) => return Some(format!("{stack}.input_norm.{tail}")),
        _ => {}
    }
    let (kind, generated) = if let Some(m) = module.strip_prefix("feed_forward_") {
        (".feed_forward", m)
    } else if let Some(m) = module.strip_prefix("self_attention_") {
        (".self_attention", m)
    } else {
        ("", module)
    };
    let (ours, sequential) = match generated {
        "up_sampler_hyper_net" => ("up", true),
        "down_sampler_hyper_net" => ("down", true),
        "pre_layernorm_hypernet" => ("pre_layer_norm", false),
        "post_layernorm_hypernet" => ("post_layer_norm", false),
        _ => return None,
    };
    Some(format!(
        "{stack}{kind}.{ours}.{}",
        generator(tail, sequential)?
    ))
}

/// `TaskHyperNet`'s `nn.Sequential(Linear, ReLU, Linear)`: `{0,2}.L` -> `{to}.{hidden,out}.L`.
fn projector(to: &str, rest: &str) -> Option<String> {
    let (index, leaf) = rest.split_once('.')?;
    let layer = match index {
        "0" => "hidden",
        "2" => "out",
        _ => return None,
    };
    is_leaf(leaf).then(|| format!("{to}.{layer}.{leaf}"))
}

/// `G.0.L` (an `nn.Sequential` of one Linear, `AdapterHyperNet`) or `G.L` (`LayerNormHyperNet`).
fn generator(rest: &str, sequential: bool) -> Option<String> {
    let (which, tail) = rest.split_once('.')?;
    if !matches!(which, "weight_generator" | "bias_generator") {
        return None;
    }
    let leaf = if sequential {
        tail.strip_prefix("0.")?
    } else {
        tail
    };
    is_leaf(leaf).then(|| format!("{which}.{leaf}"))
}

fn is_leaf(s: &str) -> bool {
    matches!(s, "weight" | "bias")
}

#[cfg(test)]
mod tests {
    use super::rename;

    #[test]
    fn hyperformer_names_map_to_ours() {
        for (theirs, ours) in [
            (
                "task_embedding_controller.task_hyper_net.task_embeding_generator.2.bias",
                "task_projector.out.bias",
            ),
            (
                "encoder.block.1.layer.1.adapter_controller.meta_up_sampler.weight_generator.0.weight",
                "encoder.block.1.layer.1.up.weight_generator.weight",
            ),
            (
                "decoder.block.0.layer.2.adapter_controller.post_layernorm_hypernet.bias_generator.bias",
                "decoder.block.0.layer.2.post_layer_norm.bias_generator.bias",
            ),
            (
                "decoder.block.0.layer.0.adapter_controller.pre_layer_norm.weight",
                "decoder.block.0.layer.0.pre_layer_norm.weight",
            ),
            (
                "decoder.adapter_layers_hyper_net.self_attention_down_sampler_hyper_net.bias_generator.0.weight",
                "decoder.self_attention.down.bias_generator.weight",
            ),
            (
                "encoder.adapter_layers_hyper_net.feed_forward_pre_layernorm_hypernet.weight_generator.bias",
                "encoder.feed_forward.pre_layer_norm.weight_generator.bias",
            ),
            (
                "encoder.adapter_layers_hyper_net.up_sampler_hyper_net.weight_generator.0.bias",
                "encoder.up.weight_generator.bias",
            ),
            (
                "encoder.adapter_layers_hyper_net.adapters_block_type.weight",
                "encoder.position_embeddings.weight",
            ),
            (
                "decoder.adapter_layers_hyper_net.task_hypernet.task_embeding_generator.0.weight",
                "decoder.input_projector.hidden.weight",
            ),
            (
                "decoder.adapter_layers_hyper_net.LayerNorm.bias",
                "decoder.input_norm.bias",
            ),
        ] {
            assert_eq!(rename(theirs).as_deref(), Some(ours), "{theirs}");
        }
        for other in [
            "encoder.block.0.layer.0.adapter_controller.adapters.rte.down_sampler.weight",
            "encoder.adapter_layers_hyper_net.extra.weight",
            "encoder.adapter_layers_hyper_net.up_sampler_hyper_net.weight_generator.1.weight",
            "shared.weight",
        ] {
            assert_eq!(rename(other), None, "{other}");
        }
    }
}
