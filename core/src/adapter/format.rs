//! Adapter directories: one task's adapter as `adapter_config.json` + `adapter.safetensors`, in
//! this project's format (the seed's adapter) or in the `adapters` library's (AdapterHub) format
//! for T5. (Not a model directory, [`crate::model_dir`], nor a training checkpoint,
//! [`crate::train::checkpoint`], although the latter holds one adapter directory per task.)
//!
//! Tensor names follow the sublayer they adapt (`{encoder,decoder}.block.{i}.layer.{j}`), with
//! PyTorch's `[out, in]` layout for linear weights:
//!
//! | format | down | up | norm before | norm after |
//! |---|---|---|---|---|
//! | native | `.adapter.down.{weight,bias}` | `.adapter.up.*` | `.adapter.pre_layer_norm.*` | `.adapter.post_layer_norm.*` |
//! | AdapterHub | `.adapters.{name}.adapter_down.0.*` (`.1` after a norm) | `.adapters.{name}.adapter_up.*` | `.adapters.{name}.adapter_norm_before.*` (also `adapter_down.0`) | `.adapters.{name}.adapter_norm_after.*` |

use std::path::Path;

use burn::module::Param;
use burn::nn::{DropoutConfig, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::bottleneck::{AdapterLayerNorm, AdapterNorms, Bottleneck, Projection};
use super::config::{BottleneckConfig, SeedAdapterConfig};
use super::linear_format::{build_linear, linear_config, save_linear};
use super::lora;
use super::phm_files::{phm_linear_tensors, phm_shared_tensors, take_phm_linear, take_phm_shared};
use super::set::{
    has_adapter, num_positions, position_name, AdapterFormat, AdapterSet, TaskAdapter,
};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::io::{file_inside, key_place, parse_json};
use crate::weights::{write_safetensors, Weights};
/// Version of this project's adapter format.
pub const FORMAT_VERSION: u32 = 1;

/// This project's `adapter_config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeAdapterConfig {
    /// Always `t5-adapters`.
    pub format: String,
    pub format_version: u32,
    /// `seed` (the seed project's adapter) or `bottleneck` (any other setting).
    pub kind: String,
    pub task: String,
    pub d_model: usize,
    pub num_layers: usize,
    pub num_decoder_layers: usize,
    /// The seed's options (its option names, as top-level keys) when `kind` is `seed`.
    #[serde(flatten)]
    pub seed: Option<SeedAdapterConfig>,
    /// The full bottleneck settings when `kind` is `bottleneck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottleneck: Option<BottleneckConfig>,
    /// Whether the norms were shared across tasks while training.
    #[serde(default)]
    pub shared_layer_norms: bool,
}

/// Tensor name pieces of one format.
struct Names {
    down: String,
    down_after_norm: String,
    up: String,
    before: String,
    after: String,
}

fn names(format: &AdapterFormat, config: &BottleneckConfig) -> Names {
    match format {
        AdapterFormat::Native => Names {
            down: "adapter.down".into(),
            down_after_norm: "adapter.down".into(),
            up: "adapter.up".into(),
            before: "adapter.pre_layer_norm".into(),
            after: "adapter.post_layer_norm".into(),
        },
        // A PEFT LoRA has no bottleneck tensors.
        AdapterFormat::Peft { .. } => names(&AdapterFormat::Native, config),
        AdapterFormat::AdapterHub { name, .. } => {
            let p = format!("adapters.{name}");
            Names {
                down: format!("{p}.adapter_down.0"),
                down_after_norm: format!(
                    "{p}.adapter_down.{}",
                    if config.ln_before { 1 } else { 0 }
                ),
                up: format!("{p}.adapter_up"),
                before: format!("{p}.adapter_norm_before"),
                after: format!("{p}.adapter_norm_after"),
            }
        }
    }
}

/// Reads an adapter directory of either format and checks it against the backbone `model`.
pub fn load_adapter<B: Backend>(
    dir: &Path,
    model: &T5Config,
    device: &B::Device,
) -> Result<TaskAdapter<B>> {
    if !dir.is_dir() {
        return Err(Error::MissingFiles(format!(
            "{}: not an adapter directory",
            dir.display()
        )));
    }
    let config_path = file_inside(dir, ADAPTER_CONFIG, None)?;
    if !config_path.is_file() {
        return Err(Error::MissingFiles(format!(
            "{}: no {ADAPTER_CONFIG}",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let value: Value = parse_json(&text, &config_path)?;
    if let Some(parts) = linear_config(&value, &config_path, model)? {
        let weights_path = file_inside(dir, parts.weights_file, None)?;
        if !weights_path.is_file() {
            return Err(Error::MissingFiles(format!(
                "{}: no {} (.bin files are not read; save with safetensors)",
                dir.display(),
                parts.weights_file
            )));
        }
        let weights = Weights::from_file(&weights_path)?;
        let name = (parts.name.clone()).unwrap_or_else(|| lora::peft::task_name(Some(dir)));
        return build_linear(parts, &name, weights, &weights_path, model, device);
    }
    let parsed = parse_config(&text, &config_path, model)?;
    let weights_path = file_inside(dir, ADAPTER_WEIGHTS, None)?;
    if !weights_path.is_file() {
        let hint = if dir.join("pytorch_adapter.bin").is_file() {
            " (pytorch_adapter.bin is not read; save with `save_adapter(..., use_safetensors=True)`)"
        } else {
            ""
        };
        return Err(Error::MissingFiles(format!(
            "{}: no {ADAPTER_WEIGHTS}{hint}",
            dir.display()
        )));
    }
    let weights = Weights::from_file(&weights_path)?;
    build(parsed, weights, &weights_path, model, device)
}

/// [`load_adapter`] from the bytes of `adapter_config.json` and `adapter.safetensors` (the
/// browser's files); errors name those two files.
pub fn load_adapter_from_bytes<B: Backend>(
    config_json: &[u8],
    safetensors: Vec<u8>,
    model: &T5Config,
    device: &B::Device,
) -> Result<TaskAdapter<B>> {
    let config_path = Path::new(ADAPTER_CONFIG);
    let text = std::str::from_utf8(config_json)
        .map_err(|e| Error::config(config_path, format!("not UTF-8 text: {e}")))?;
    let value: Value = parse_json(text, config_path)?;
    if let Some(parts) = linear_config(&value, config_path, model)? {
        let weights_path = Path::new(parts.weights_file);
        let weights = Weights::from_buffers(vec![(
            weights_path.into(),
            std::sync::Arc::from(safetensors),
        )])?;
        let name = (parts.name.clone()).unwrap_or_else(|| lora::peft::task_name(None));
        return build_linear(parts, &name, weights, weights_path, model, device);
    }
    let parsed = parse_config(text, config_path, model)?;
    let weights = Weights::from_buffers(vec![(
        ADAPTER_WEIGHTS.into(),
        std::sync::Arc::from(safetensors),
    )])?;
    build(parsed, weights, Path::new(ADAPTER_WEIGHTS), model, device)
}

/// The down- and up-projection of the adapter at `at` (`d` -> `r` -> `d`): linear layers, or
/// PHM layers for a Compacter.
fn take_projections<B: Backend>(
    w: &mut Weights,
    at: &str,
    n: &Names,
    config: &BottleneckConfig,
    (d, r): (usize, usize),
    device: &B::Device,
) -> Result<(Projection<B>, Projection<B>)> {
    let (down, up) = (
        format!("{at}.{}", n.down_after_norm),
        format!("{at}.{}", n.up),
    );
    if let Some(phm) = &config.phm {
        return Ok((
            Projection::Phm(take_phm_linear(w, &down, phm, (d, r), device)?),
            Projection::Phm(take_phm_linear(w, &up, phm, (r, d), device)?),
        ));
    }
    let mut linear = |name: &str, i: usize, o: usize| -> Result<Projection<B>> {
        let weight = w.take_linear(&format!("{name}.weight"), i, o, device)?;
        let bias = w.take(&format!("{name}.bias"), [o], device)?;
        Ok(Projection::Linear(Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        }))
    };
    Ok((linear(&down, d, r)?, linear(&up, r, d)?))
}

/// What an adapter config says: its task name, bottleneck options and file format.
struct ParsedConfig {
    task: String,
    config: BottleneckConfig,
    format: AdapterFormat,
    activation: crate::config::Activation,
}

/// The text of an `adapter_config.json` (`config_path` labels the errors, which name the key
/// at fault and, for a wrong type, its line).
fn parse_config(text: &str, config_path: &Path, model: &T5Config) -> Result<ParsedConfig> {
    let bad = |msg: String| Error::config(config_path, msg);
    let value: Value = parse_json(text, config_path)?;
    let (task, config, format) = if value.get("format").and_then(Value::as_str)
        == Some("t5-adapters")
    {
        let native = parse_native(text, &value, config_path)?;
        if native.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} is not supported (this build reads version {FORMAT_VERSION})",
                native.format_version
            )));
        }
        check_dims(
            native.d_model,
            Some((native.num_layers, native.num_decoder_layers)),
            model,
        )
        .map_err(bad)?;
        let config = match (native.kind.as_str(), &native.seed, native.bottleneck) {
            ("seed", Some(seed), _) => BottleneckConfig::seed(seed, model),
            ("bottleneck", _, Some(b)) => b,
            (kind, _, _) => {
                return Err(bad(format!(
                    "kind `{kind}` without its options (seed options or `bottleneck`)"
                )))
            }
        };
        (native.task, config, AdapterFormat::Native)
    } else if value.get("config").is_some() {
        let (name, config) = parse_adapterhub(&value, text, model).map_err(bad)?;
        (
            name.clone(),
            config,
            AdapterFormat::AdapterHub {
                name,
                config: value,
            },
        )
    } else {
        return Err(bad(
            "neither a t5-adapters nor an AdapterHub (`adapters` library) adapter config".into(),
        ));
    };
    config.validate(model).map_err(bad)?;
    let activation = config.activation().map_err(bad)?;
    Ok(ParsedConfig {
        task,
        config,
        format,
        activation,
    })
}

/// The adapter's tensors from `w`, checked against the backbone `model`.
fn build<B: Backend>(
    parsed: ParsedConfig,
    mut w: Weights,
    weights_path: &Path,
    model: &T5Config,
    device: &B::Device,
) -> Result<TaskAdapter<B>> {
    let ParsedConfig {
        task,
        config,
        format,
        activation,
    } = parsed;
    let n = names(&format, &config);
    let d = model.d_model;
    let r = config.bottleneck(d);
    let mut positions = Vec::with_capacity(num_positions(model));
    for p in 0..num_positions(model) {
        if !has_adapter(&config, p) {
            positions.push(None);
            continue;
        }
        let at = position_name(model, p);
        let missing = |e: Error| {
            match e {
            Error::Checkpoint { path, msg } if msg.starts_with("missing tensor") => Error::Checkpoint {
                path,
                msg: format!("{msg}; the config puts an adapter at {at} (an adapter made for another model?)"),
            },
            other => other,
        }
        };
        let norm = |w: &mut Weights, name: &str| -> Result<AdapterLayerNorm<B>> {
            Ok(AdapterLayerNorm {
                weight: Param::from_tensor(w.take(&format!("{at}.{name}.weight"), [d], device)?),
                bias: Param::from_tensor(w.take(&format!("{at}.{name}.bias"), [d], device)?),
                eps: 1e-5,
            })
        };
        let before = if config.ln_before {
            // AdapterHub stores the input norm twice (inside `adapter_down` and by name).
            let by_name = format!("{at}.{}.weight", n.before);
            let alias = matches!(format, AdapterFormat::AdapterHub { .. });
            let ln = if w.contains(&by_name) || !alias {
                norm(&mut w, &n.before)
            } else {
                norm(&mut w, &n.down)
            }
            .map_err(missing)?;
            if alias && w.contains(&format!("{at}.{}.weight", n.down)) && w.contains(&by_name) {
                let _ = norm(&mut w, &n.down)?;
            }
            Some(ln)
        } else {
            None
        };
        let (down, up) =
            take_projections(&mut w, &at, &n, &config, (d, r), device).map_err(missing)?;
        let after = if config.ln_after {
            Some(norm(&mut w, &n.after).map_err(missing)?)
        } else {
            None
        };
        positions.push(Some(Bottleneck {
            down,
            up,
            norms: AdapterNorms { before, after },
            dropout: DropoutConfig::new(config.dropout).init(),
        }));
    }
    let phm = match &config.phm {
        Some(c) => {
            let prefix = format!("shared_parameters.{task}");
            take_phm_shared(&mut w, &prefix, c, (d, r), weights_path, device)?
        }
        None => None,
    };
    let leftover = w.untaken();
    if !leftover.is_empty() {
        return Err(Error::checkpoint(
            weights_path,
            leftover_message(&leftover, model),
        ));
    }
    Ok(TaskAdapter {
        positions,
        linears: Vec::new(),
        scales: Vec::new(),
        phm,
        name: task,
        config,
        lora: None,
        ia3: None,
        activation,
        format,
        shared_norms: false,
    })
}

fn leftover_message(leftover: &[&str], model: &T5Config) -> String {
    // A block index past the model's depth means the adapter was made for a deeper model.
    for name in leftover {
        let parts: Vec<&str> = name.split('.').collect();
        if let [stack, "block", i, ..] = parts.as_slice() {
            if let Ok(i) = i.parse::<usize>() {
                let layers = if *stack == "encoder" {
                    model.num_layers
                } else {
                    model.num_decoder_layers()
                };
                if i >= layers {
                    return format!(
                        "tensor `{name}` is for {stack} block {i}, but the model has {layers} {stack} blocks; \
                         the adapter was made for another model"
                    );
                }
            }
        }
    }
    format!(
        "{} tensors that this adapter's config does not use, e.g. `{}`",
        leftover.len(),
        leftover[0]
    )
}

/// This project's config. serde reads the flattened seed options after the rest, and a wrong
/// type among them would lose its key: each option is tried alone first.
fn parse_native(text: &str, value: &Value, path: &Path) -> Result<NativeAdapterConfig> {
    if let Value::Object(object) = value {
        for (key, v) in object {
            let single = Value::Object(serde_json::Map::from_iter([(key.clone(), v.clone())]));
            if let Err(e) = serde_json::from_value::<SeedAdapterConfig>(single) {
                let place = key_place(text, key);
                return Err(Error::config(path, format!("`{key}`: {e}{place}")));
            }
        }
    }
    parse_json(text, path)
}

fn check_dims(
    d_model: usize,
    layers: Option<(usize, usize)>,
    model: &T5Config,
) -> std::result::Result<(), String> {
    if d_model != model.d_model {
        return Err(format!(
            "adapter is for d_model {d_model}, the model has d_model {}",
            model.d_model
        ));
    }
    if let Some((enc, dec)) = layers {
        if (enc, dec) != (model.num_layers, model.num_decoder_layers()) {
            return Err(format!(
                "adapter is for {enc} encoder + {dec} decoder layers, the model has {} + {}",
                model.num_layers,
                model.num_decoder_layers()
            ));
        }
    }
    Ok(())
}

/// AdapterHub's keys with the types we read them as: a value of another type is refused with
/// its key and line rather than read as the default.
fn check_adapterhub_types(
    value: &Value,
    config: &serde_json::Map<String, Value>,
    text: &str,
) -> std::result::Result<(), String> {
    const FLAGS: [&str; 12] = [
        "phm_layer",
        "is_parallel",
        "cross_adapter",
        "use_gating",
        "mh_adapter",
        "output_adapter",
        "original_ln_before",
        "original_ln_after",
        "adapter_residual_before_ln",
        "ln_before",
        "ln_after",
        "residual_before_ln",
    ];
    let typed = |key: &str, v: Option<&Value>, want: &str, ok: fn(&Value) -> bool| match v {
        Some(v) if !v.is_null() && !ok(v) => Err(format!(
            "`{key}` must be {want}, got {v}{}",
            key_place(text, key.rsplit('.').next().unwrap_or(key))
        )),
        _ => Ok(()),
    };
    for flag in FLAGS {
        let key = format!("config.{flag}");
        typed(&key, config.get(flag), "true or false", Value::is_boolean)?;
    }
    typed(
        "config.dropout",
        config.get("dropout"),
        "a number",
        Value::is_number,
    )?;
    typed(
        "config.non_linearity",
        config.get("non_linearity"),
        "a string",
        Value::is_string,
    )?;
    typed("name", value.get("name"), "a string", Value::is_string)?;
    typed(
        "hidden_size",
        value.get("hidden_size"),
        "a whole number",
        Value::is_u64,
    )
}

/// AdapterHub options we implement; any other non-default setting is refused by name.
fn parse_adapterhub(
    value: &Value,
    text: &str,
    model: &T5Config,
) -> std::result::Result<(String, BottleneckConfig), String> {
    let c = value["config"]
        .as_object()
        .ok_or_else(|| format!("`config` is not an object{}", key_place(text, "config")))?;
    check_adapterhub_types(value, c, text)?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or("no adapter `name`")?
        .to_string();
    if let Some(t) = value.get("model_type").and_then(Value::as_str) {
        if t != "t5" && t != "mt5" {
            return Err(format!("adapter is for model_type `{t}`, not t5"));
        }
    }
    if let Some(h) = value.get("hidden_size").and_then(Value::as_u64) {
        check_dims(h as usize, None, model)?;
    }
    if let Some(arch) = c.get("architecture").and_then(Value::as_str) {
        if arch != "bottleneck" {
            return Err(format!(
                "architecture `{arch}` is not supported (only bottleneck adapters are)"
            ));
        }
    }
    let flag = |k: &str| c.get(k).and_then(Value::as_bool).unwrap_or(false);
    for (key, what) in [
        ("is_parallel", "parallel adapters"),
        ("cross_adapter", "adapters after cross-attention"),
        ("use_gating", "gated adapters"),
    ] {
        if flag(key) {
            return Err(format!("option `{key}` ({what}) is not supported"));
        }
    }
    if c.get("inv_adapter").is_some_and(|v| !v.is_null()) {
        return Err("option `inv_adapter` (invertible adapters) is not supported".into());
    }
    if c.get("stochastic_depth")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        != 0.0
    {
        return Err("option `stochastic_depth` is not supported".into());
    }
    let scaling = match c.get("scaling") {
        None => 1.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(1.0),
        Some(other) => {
            return Err(format!(
                "option `scaling` = {other} is not supported (a number is)"
            ))
        }
    };
    let residual_before_ln = match c.get("residual_before_ln") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(format!(
                "option `residual_before_ln` = {other} is not supported (true or false is)"
            ))
        }
    };
    let leave_out = match c.get("leave_out") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or("`leave_out` must list layer numbers")
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("`leave_out` must list layer numbers".into()),
    };
    let reduction_factor = match c.get("reduction_factor") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::Object(_)) => {
            return Err("option `reduction_factor` per layer (a mapping) is not supported".into())
        }
        _ => return Err("no `reduction_factor`".into()),
    };
    let get_bool = |k: &str, default: bool| c.get(k).and_then(Value::as_bool).unwrap_or(default);
    let phm = flag("phm_layer")
        .then(|| serde_json::from_value(Value::Object(c.clone())))
        .transpose()
        .map_err(|e| format!("the PHM (Compacter) options: {e}"))?;
    Ok((
        name,
        BottleneckConfig {
            reduction_factor,
            non_linearity: c
                .get("non_linearity")
                .and_then(Value::as_str)
                .unwrap_or("relu")
                .to_string(),
            mh_adapter: get_bool("mh_adapter", false),
            output_adapter: get_bool("output_adapter", true),
            original_ln_before: get_bool("original_ln_before", false),
            original_ln_after: get_bool("original_ln_after", true),
            residual_before_ln,
            adapter_residual_before_ln: get_bool("adapter_residual_before_ln", false),
            ln_before: get_bool("ln_before", false),
            ln_after: get_bool("ln_after", false),
            scaling,
            dropout: c.get("dropout").and_then(Value::as_f64).unwrap_or(0.0),
            leave_out,
            dropout_after_adapter: false,
            phm,
        },
    ))
}

/// A tensor of an adapter under its file name: linear weights in burn's `[in, out]` layout
/// (files hold PyTorch's `[out, in]`), vectors as they are.
pub enum NamedTensor<B: Backend> {
    Weight(Tensor<B, 2>),
    Vector(Tensor<B, 1>),
    /// A PHM rule or `W` block, stored as it is.
    Block(Tensor<B, 3>),
}

/// Every tensor of task `task` of `set` under the name its format gives it (shared norms
/// included), in file order.
pub fn named_tensors<B: Backend>(
    set: &AdapterSet<B>,
    task: usize,
    model: &T5Config,
) -> Vec<(String, NamedTensor<B>)> {
    let adapter = &set.tasks[task];
    let n = names(&adapter.format, &adapter.config);
    let mut out = Vec::new();
    for (p, b) in adapter.positions.iter().enumerate() {
        let Some(b) = b else { continue };
        let at = position_name(model, p);
        let norms = set.norms(task, p).expect("adapted position has norms");
        let mut push_norm = |key: &str, ln: &AdapterLayerNorm<B>| {
            out.push((
                format!("{at}.{key}.weight"),
                NamedTensor::Vector(ln.weight.val()),
            ));
            out.push((
                format!("{at}.{key}.bias"),
                NamedTensor::Vector(ln.bias.val()),
            ));
        };
        if let Some(ln) = &norms.before {
            push_norm(&n.before, ln);
            if matches!(adapter.format, AdapterFormat::AdapterHub { .. }) {
                push_norm(&n.down, ln);
            }
        }
        if let Some(ln) = &norms.after {
            push_norm(&n.after, ln);
        }
        for (key, projection) in [(&n.down_after_norm, &b.down), (&n.up, &b.up)] {
            match projection {
                Projection::Linear(linear) => {
                    out.push((
                        format!("{at}.{key}.weight"),
                        NamedTensor::Weight(linear.weight.val()),
                    ));
                    if let Some(bias) = &linear.bias {
                        out.push((format!("{at}.{key}.bias"), NamedTensor::Vector(bias.val())));
                    }
                }
                Projection::Phm(p) => {
                    let (blocks, bias) = phm_linear_tensors(&format!("{at}.{key}"), p);
                    out.extend(blocks.into_iter().map(|(k, t)| (k, NamedTensor::Block(t))));
                    out.extend(bias.map(|(k, t)| (k, NamedTensor::Vector(t))));
                }
            }
        }
    }
    if let Some(shared) = &adapter.phm {
        let prefix = format!("shared_parameters.{}", adapter.name);
        let tensors = phm_shared_tensors(&prefix, shared);
        out.extend(tensors.into_iter().map(|(k, t)| (k, NamedTensor::Block(t))));
    }
    out
}

/// Host values of a named tensor in the file layout: shape and data.
pub fn file_layout<B: Backend>(t: &NamedTensor<B>) -> (Vec<usize>, Vec<f32>) {
    let t2 = match t {
        NamedTensor::Weight(w) => w.clone().transpose(),
        NamedTensor::Vector(v) => v.clone().unsqueeze::<2>(),
        NamedTensor::Block(b) => {
            let values = b.clone().into_data().convert::<f32>().into_vec();
            return (b.dims().to_vec(), values.expect("f32"));
        }
    };
    let mut shape = t2.dims().to_vec();
    if matches!(t, NamedTensor::Vector(_)) {
        shape.remove(0);
    }
    (
        shape,
        t2.into_data().convert::<f32>().into_vec().expect("f32"),
    )
}

/// Writes task `name` of `set` to `dir` in the format it came from (new adapters: this
/// project's). Files are written atomically.
pub fn save_adapter<B: Backend>(
    set: &AdapterSet<B>,
    name: &str,
    model: &T5Config,
    dir: &Path,
) -> Result<()> {
    let t = set.index(name)?;
    let adapter = &set.tasks[t];
    if adapter.lora.is_some() || adapter.ia3.is_some() {
        return save_linear(adapter, model, dir);
    }
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = named_tensors(set, t, model)
        .into_iter()
        .map(|(name, tensor)| {
            let (shape, values) = file_layout(&tensor);
            (name, shape, values)
        })
        .collect();
    let config = match &adapter.format {
        AdapterFormat::AdapterHub { config, .. } | AdapterFormat::Peft { config } => config.clone(),
        AdapterFormat::Native => {
            let seed = adapter.config.seed_options(model);
            let native = NativeAdapterConfig {
                format: "t5-adapters".into(),
                format_version: FORMAT_VERSION,
                kind: if seed.is_some() { "seed" } else { "bottleneck" }.into(),
                task: adapter.name.clone(),
                d_model: model.d_model,
                num_layers: model.num_layers,
                num_decoder_layers: model.num_decoder_layers(),
                bottleneck: seed.is_none().then(|| adapter.config.clone()),
                seed,
                shared_layer_norms: adapter.shared_norms,
            };
            serde_json::to_value(native).expect("serializable")
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_safetensors(&dir.join(ADAPTER_WEIGHTS), &tensors, None)?;
    let text = serde_json::to_string_pretty(&config).expect("serializable");
    crate::io::write_atomic(&dir.join(ADAPTER_CONFIG), text.as_bytes())
}

/// A fresh AdapterHub config for `config` (so a new adapter can be saved for Python).
pub fn adapterhub_config(name: &str, config: &BottleneckConfig, model: &T5Config) -> Value {
    let mut value = json!({
        "config": {
            "adapter_residual_before_ln": config.adapter_residual_before_ln,
            "cross_adapter": false, "dropout": config.dropout, "inv_adapter": null,
            "is_parallel": false, "leave_out": config.leave_out, "ln_after": config.ln_after,
            "ln_before": config.ln_before, "mh_adapter": config.mh_adapter,
            "non_linearity": config.non_linearity, "original_ln_after": config.original_ln_after,
            "original_ln_before": config.original_ln_before, "output_adapter": config.output_adapter,
            "phm_layer": config.phm.is_some(), "reduction_factor": config.reduction_factor,
            "residual_before_ln": config.residual_before_ln, "scaling": config.scaling,
            "use_gating": false, "init_weights": "bert", "stochastic_depth": 0.0
        },
        "hidden_size": model.d_model,
        "model_class": "T5ForConditionalGeneration",
        "model_name": "t5",
        "model_type": model.model_type,
        "name": name,
        "version": "adapters.1.3.0"
    });
    if let (Some(phm), Value::Object(c)) = (&config.phm, &mut value["config"]) {
        if let Ok(Value::Object(keys)) = serde_json::to_value(phm) {
            c.extend(keys);
        }
    }
    value
}

/// A new Compacter (`plus_plus`: Compacter++) for task `name`: the library's config with the
/// keys of `overrides` (AdapterHub `BnConfig` keys) set, checked as a loaded config is, in the
/// library's format.
pub fn compacter_adapter<B: Backend>(
    name: &str,
    plus_plus: bool,
    overrides: &serde_json::Map<String, Value>,
    model: &T5Config,
    device: &B::Device,
) -> Result<TaskAdapter<B>> {
    let mut value = adapterhub_config(name, &BottleneckConfig::compacter(plus_plus), model);
    if let Value::Object(c) = &mut value["config"] {
        c.extend(overrides.clone());
    }
    let text = value.to_string();
    let (_, config) = parse_adapterhub(&value, &text, model)
        .map_err(|e| Error::Invalid(format!("`compacter`: {e}")))?;
    config
        .validate(model)
        .map_err(|e| Error::Invalid(format!("`compacter`: {e}")))?;
    let mut adapter = TaskAdapter::init(name, config, model, device)?;
    adapter.format = AdapterFormat::AdapterHub {
        name: name.to_string(),
        config: value,
    };
    Ok(adapter)
}
