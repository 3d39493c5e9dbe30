//! HF PEFT's (IA)³ directories: `adapter_config.json` (`peft_type: "IA3"`) and
//! `adapter_model.safetensors`, whose tensors are `base_model.model.{module}.ia3_l`: `[1, d_in]`
//! for a feed-forward module (the input is scaled), `[d_out, 1]` otherwise.

use burn::module::Param;
use burn::prelude::*;
use serde_json::{json, Map, Value};

use super::config::Ia3Config;
use super::vector::Ia3Vector;
use crate::adapter::lora::peft::{field, refuse_non_defaults, PREFIX};
use crate::adapter::lora::{num_sites, site_dims, Modules};
use crate::adapter::set::AdapterFormat;
use crate::config::T5Config;
use crate::error::Result;
use crate::weights::Weights;

/// Keys that carry no computation (or that we read); any other key must hold its default.
const READ_OR_INERT: [&str; 12] = [
    "peft_type",
    "target_modules",
    "exclude_modules",
    "feedforward_modules",
    "init_ia3_weights",
    "base_model_name_or_path",
    "revision",
    "task_type",
    "inference_mode",
    "peft_version",
    "auto_mapping",
    "ensure_weight_tying",
];

/// The (IA)³ settings of a PEFT config; options that change the computation and are not
/// implemented are refused by name.
pub fn parse_peft_ia3(value: &Value) -> std::result::Result<Ia3Config, String> {
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    refuse_non_defaults(map, &READ_OR_INERT, "only (IA)³ on linear layers is")?;
    Ok(Ia3Config {
        target_modules: field::<Modules>(map, "target_modules")?,
        exclude_modules: field(map, "exclude_modules")?,
        feedforward_modules: field(map, "feedforward_modules")?,
        alpha: 1.0,
    })
}

/// The file name of the vector at `module` in `format`.
pub fn tensor_name(format: &AdapterFormat, module: &str) -> String {
    match format {
        AdapterFormat::AdapterHub { name, .. } => {
            crate::adapter::lora::adapterhub::tensor_name(module, name, "B")
        }
        _ => format!("{PREFIX}{module}.ia3_l"),
    }
}

/// The file's shape of a vector of `d` values.
fn file_shape(feedforward: bool, d: usize) -> [usize; 2] {
    if feedforward {
        [1, d]
    } else {
        [d, 1]
    }
}

/// The vectors of `config` on `model` from the tensors in `w` (named as `format` names them),
/// indexed by site.
pub fn take_ia3<B: Backend>(
    w: &mut Weights,
    config: &Ia3Config,
    format: &AdapterFormat,
    model: &T5Config,
    device: &B::Device,
) -> Result<Vec<Option<Ia3Vector<B>>>> {
    let sites = config.sites(model).map_err(crate::error::Error::Invalid)?;
    let mut scales: Vec<Option<Ia3Vector<B>>> = (0..num_sites(model)).map(|_| None).collect();
    for s in sites {
        let (d_in, d_out) = site_dims(model, s.site);
        let d = if s.feedforward { d_in } else { d_out };
        let values = w.take_values(&tensor_name(format, &s.name), &file_shape(s.feedforward, d))?;
        let mut v = Ia3Vector::init(d, s.feedforward, config.alpha, device);
        v.l = Param::from_tensor(Tensor::from_data(TensorData::new(values, [d]), device));
        scales[s.site] = Some(v);
    }
    Ok(scales)
}

/// The file names (PEFT's, or AdapterHub's for `format`), file shapes and values of every
/// vector, in site order.
pub fn ia3_tensors<B: Backend>(
    scales: &[Option<Ia3Vector<B>>],
    format: &AdapterFormat,
    model: &T5Config,
) -> Vec<(String, Tensor<B, 2>)> {
    let mut out = Vec::new();
    for (site, v) in scales.iter().enumerate() {
        let (Some(v), Some(name)) = (v, crate::adapter::lora::site_name(model, site)) else {
            continue;
        };
        let [rows, cols] = file_shape(v.feedforward, v.l.dims()[0]);
        out.push((tensor_name(format, &name), v.l.val().reshape([rows, cols])));
    }
    out
}

/// A PEFT `adapter_config.json` for an (IA)³ adapter made here (so that PEFT loads it), with
/// the modules resolved for `model` as PEFT writes them.
pub fn new_peft_ia3_config(config: &Ia3Config, model: &T5Config) -> Value {
    let (targets, feedforward) = config.resolved(model);
    let mut map = Map::new();
    for (key, value) in [
        ("peft_type", json!("IA3")),
        ("task_type", json!("SEQ_2_SEQ_LM")),
        ("base_model_name_or_path", Value::Null),
        ("target_modules", json!(targets)),
        ("exclude_modules", json!(config.exclude_modules)),
        ("feedforward_modules", json!(feedforward)),
        ("fan_in_fan_out", json!(false)),
        ("init_ia3_weights", json!(true)),
        ("modules_to_save", Value::Null),
        ("inference_mode", json!(true)),
    ] {
        map.insert(key.into(), value);
    }
    Value::Object(map)
}
