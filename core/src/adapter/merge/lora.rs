//! PEFT's `LoraModel.add_weighted_adapter` (peft 0.21.2, `peft/tuners/lora/model.py`): several
//! LoRAs of one model combined into a new PEFT LoRA.
//!
//! The new config is the first input's with `r` (and `lora_alpha`, so the scaling is 1 unless
//! the first used rsLoRA) set to the new rank, `target_modules` the union of the inputs' (a
//! list's union, or regexes joined as `(a)|(b)`), and no rank or alpha patterns. Each module it
//! targets combines the inputs that adapt that module:
//! - `linear`, `ties`, `dare_linear`, `dare_ties`, `magnitude_prune`: `A` and `B` each combined
//!   with `merge_utils` (all ranks equal), the weight `w·scaling` split as `sign·sqrt(|·|)` on
//!   `A` and `sqrt(|·|)` on `B`;
//! - `cat`: `A` rows `w·scaling·Aᵢ` and `B` columns `Bᵢ` stacked (rank the sum of the ranks);
//! - `svd` and the `*_svd` variants: the updates `scaling·Bᵢ Aᵢ` combined, then factored at
//!   `svd_rank` (default the largest input rank) by [`super::svd::factor`].

use std::collections::BTreeSet;

use burn::prelude::*;
use serde_json::{json, Value};

use super::svd;
use super::task_arithmetic::{combine, MajoritySign, Method};
use crate::adapter::lora::{new_peft_config, parse_peft_config, site_dims, LoraConfig, Modules};
use crate::adapter::{AdapterFormat, TaskAdapter};
use crate::config::T5Config;

/// `add_weighted_adapter`'s `combination_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combination {
    Linear,
    Cat,
    Svd,
    Ties,
    TiesSvd,
    DareLinear,
    DareLinearSvd,
    DareTies,
    DareTiesSvd,
    MagnitudePrune,
    MagnitudePruneSvd,
}

impl Combination {
    /// The `merge_utils` function, and whether the result is factored by SVD (`None`: `cat`).
    fn method(self) -> Option<(Method, bool)> {
        use Combination::*;
        Some(match self {
            Cat => return None,
            Linear => (Method::TaskArithmetic, false),
            Svd => (Method::TaskArithmetic, true),
            Ties => (Method::Ties, false),
            TiesSvd => (Method::Ties, true),
            DareLinear => (Method::DareLinear, false),
            DareLinearSvd => (Method::DareLinear, true),
            DareTies => (Method::DareTies, false),
            DareTiesSvd => (Method::DareTies, true),
            MagnitudePrune => (Method::MagnitudePrune, false),
            MagnitudePruneSvd => (Method::MagnitudePrune, true),
        })
    }
}

/// The arguments of `add_weighted_adapter` besides the adapters.
#[derive(Clone, Debug)]
pub struct LoraMerge {
    pub combination: Combination,
    /// One per input; negative weights subtract.
    pub weights: Vec<f64>,
    /// `svd_rank` (default: the largest input rank).
    pub svd_rank: Option<usize>,
    /// `svd_clamp`: the quantile at which the factors are clamped.
    pub svd_clamp: Option<f64>,
    /// `density`, needed by the pruning combinations.
    pub density: Option<f64>,
    pub majority_sign: MajoritySign,
}

/// A merged LoRA: PEFT's `adapter_config.json` and the tensors of `adapter_model.safetensors`
/// (PEFT's names and `[out, in]` layout).
pub struct MergedLora {
    pub config: Value,
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// DARE's masks, asked for by name (`{module}.lora_{A|B}.{i}`, or `{module}.delta.{i}` for the
/// SVD variants; `i` is the input's index) and length, in PEFT's drawing order.
pub type NamedMasks<'a> = dyn FnMut(&str, usize) -> Vec<bool> + 'a;

/// One input's pair at one module in PEFT's layout: `A [r, d_in]`, `B [d_out, r]`, scaling.
struct Pair {
    input: usize,
    r: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    scaling: f64,
}

/// `inputs` (LoRAs of `model`) combined as `options` say; errors are one line.
pub fn merge_loras<B: Backend>(
    inputs: &[&TaskAdapter<B>],
    model: &T5Config,
    options: &LoraMerge,
    masks: &mut NamedMasks<'_>,
) -> Result<MergedLora, String> {
    let configs: Vec<&LoraConfig> = inputs
        .iter()
        .map(|t| {
            t.lora
                .as_ref()
                .ok_or_else(|| format!("`{}` is not a LoRA", t.name))
        })
        .collect::<Result<_, _>>()?;
    if configs.is_empty() || options.weights.len() != inputs.len() {
        return Err(format!(
            "{} weights for {} adapters: give one weight per adapter",
            options.weights.len(),
            inputs.len()
        ));
    }
    if let Some(d) = options.density {
        if d.is_nan() || d < 0.0 {
            return Err(format!("density must be at least 0, got {d}"));
        }
    }
    // PEFT: a single adapter can only be merged linearly.
    let combination = if inputs.len() == 1 {
        Combination::Linear
    } else {
        options.combination
    };
    let ranks: Vec<usize> = configs
        .iter()
        .map(|c| c.rank_pattern.values().copied().fold(c.r, usize::max))
        .collect();
    let new_rank = match combination.method() {
        None => ranks.iter().sum(),
        Some((_, true)) => options
            .svd_rank
            .unwrap_or_else(|| ranks.iter().copied().max().unwrap_or(1)),
        Some((_, false)) => {
            if ranks.iter().any(|&r| r != ranks[0]) {
                return Err(format!(
                    "ranks {ranks:?} differ: {combination:?} needs all adapters at the same r (use cat or svd)"
                ));
            }
            ranks[0]
        }
    };
    if let Some((method, _)) = combination.method() {
        if method != Method::TaskArithmetic && options.density.is_none() {
            return Err(format!("{combination:?} prunes: give a density (0 to 1)"));
        }
    }
    let config = new_config(inputs[0], &configs, new_rank)?;
    let out = parse_peft_config(&config)?;
    let mut tensors = Vec::new();
    for site in out.sites(model)? {
        let pairs = pairs_at(inputs, site.site);
        if pairs.is_empty() {
            return Err(format!(
                "no input adapts {} (PEFT: no matching LoRAs)",
                site.name
            ));
        }
        let (d_in, d_out) = site_dims(model, site.site);
        let (a, b) = match combination.method() {
            None => cat(&pairs, &options.weights, new_rank, d_in, d_out),
            Some((method, false)) => {
                linear(&pairs, &options.weights, method, options, &site.name, masks)?
            }
            Some((method, true)) => {
                let delta =
                    combined_delta(&pairs, (d_in, d_out), method, options, &site.name, masks);
                svd::factor(&delta, d_out, d_in, new_rank, options.svd_clamp)
                    .map_err(|e| format!("{}: {e}", site.name))?
            }
        };
        let r = a.len() / d_in;
        let prefix = format!("base_model.model.{}", site.name);
        tensors.push((format!("{prefix}.lora_A.weight"), vec![r, d_in], a));
        tensors.push((format!("{prefix}.lora_B.weight"), vec![d_out, r], b));
    }
    Ok(MergedLora { config, tensors })
}

/// The first input's PEFT config with the new rank, the union of the targets and no patterns.
fn new_config<B: Backend>(
    first: &TaskAdapter<B>,
    configs: &[&LoraConfig],
    r: usize,
) -> Result<Value, String> {
    let mut config = match &first.format {
        AdapterFormat::Peft { config } => config.clone(),
        _ => new_peft_config(configs[0], None),
    };
    let targets = match configs[0].target_modules {
        Modules::Names(_) => {
            let mut union = BTreeSet::new();
            for c in configs {
                let Modules::Names(names) = &c.target_modules else {
                    return Err(MIXED_TARGETS.into());
                };
                union.extend(names.iter().cloned());
            }
            json!(union)
        }
        Modules::Regex(_) => {
            let mut parts = Vec::new();
            for c in configs {
                let Modules::Regex(pattern) = &c.target_modules else {
                    return Err(MIXED_TARGETS.into());
                };
                parts.push(format!("({pattern})"));
            }
            json!(parts.join("|"))
        }
    };
    let map = config
        .as_object_mut()
        .ok_or("the PEFT config is not an object")?;
    map.insert("r".into(), json!(r));
    map.insert("lora_alpha".into(), json!(r));
    map.insert("target_modules".into(), targets);
    map.insert("alpha_pattern".into(), json!({}));
    map.insert("rank_pattern".into(), json!({}));
    Ok(config)
}

const MIXED_TARGETS: &str =
    "`target_modules` mixes a list and a regex across the adapters (PEFT refuses to combine them)";

/// Every input's pair at `site`, PEFT's layout.
fn pairs_at<B: Backend>(inputs: &[&TaskAdapter<B>], site: usize) -> Vec<Pair> {
    let host = |t: Tensor<B, 2>| -> Vec<f32> {
        t.transpose()
            .into_data()
            .convert::<f32>()
            .into_vec()
            .expect("f32")
    };
    inputs
        .iter()
        .enumerate()
        .filter_map(|(input, t)| {
            let l = t.linears.get(site)?.as_ref()?;
            Some(Pair {
                input,
                r: l.rank(),
                a: host(l.a.val()),
                b: host(l.b.val()),
                scaling: l.scaling,
            })
        })
        .collect()
}

/// `cat`: scaled `A` rows and `B` columns side by side, zero-padded to `rank`.
fn cat(
    pairs: &[Pair],
    weights: &[f64],
    rank: usize,
    d_in: usize,
    d_out: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut a = vec![0.0f32; rank * d_in];
    let mut b = vec![0.0f32; d_out * rank];
    let mut row = 0;
    for p in pairs {
        // torch: `A * weight * scaling`, two f32 products.
        let (w, s) = (weights[p.input] as f32, p.scaling as f32);
        for k in 0..p.r {
            for j in 0..d_in {
                a[(row + k) * d_in + j] = p.a[k * d_in + j] * w * s;
            }
            for i in 0..d_out {
                b[i * rank + row + k] = p.b[i * p.r + k];
            }
        }
        row += p.r;
    }
    (a, b)
}

/// The `merge_utils` combination of the `A`s and of the `B`s.
fn linear(
    pairs: &[Pair],
    weights: &[f64],
    method: Method,
    options: &LoraMerge,
    module: &str,
    masks: &mut NamedMasks<'_>,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    if pairs.iter().any(|p| p.r != pairs[0].r) {
        return Err(format!(
            "{module}: the adapters' ranks differ here (rank_pattern)"
        ));
    }
    let (mut wa, mut wb) = (Vec::new(), Vec::new());
    for p in pairs {
        let ws = weights[p.input] * p.scaling;
        let root = ws.abs().sqrt();
        wa.push((if ws >= 0.0 { root } else { -root }) as f32);
        wb.push(root as f32);
    }
    let density = options.density.unwrap_or(1.0);
    let mut side = |which: &str, tensors: Vec<Vec<f32>>, w: &[f32]| {
        let mut named =
            |i: usize, n: usize| masks(&format!("{module}.lora_{which}.{}", pairs[i].input), n);
        combine(
            &tensors,
            w,
            method,
            density,
            options.majority_sign,
            &mut named,
        )
    };
    let a = side("A", pairs.iter().map(|p| p.a.clone()).collect(), &wa);
    let b = side("B", pairs.iter().map(|p| p.b.clone()).collect(), &wb);
    Ok((a, b))
}

/// The inputs' updates `scaling · B A` (`[d_out, d_in]`) combined by `method`.
fn combined_delta(
    pairs: &[Pair],
    (d_in, d_out): (usize, usize),
    method: Method,
    options: &LoraMerge,
    module: &str,
    masks: &mut NamedMasks<'_>,
) -> Vec<f32> {
    let deltas: Vec<Vec<f32>> = pairs
        .iter()
        .map(|p| {
            let mut d = vec![0.0f32; d_out * d_in];
            for i in 0..d_out {
                for j in 0..d_in {
                    let v: f32 = (0..p.r).map(|k| p.b[i * p.r + k] * p.a[k * d_in + j]).sum();
                    d[i * d_in + j] = v * p.scaling as f32;
                }
            }
            d
        })
        .collect();
    let weights: Vec<f32> = pairs
        .iter()
        .map(|p| options.weights[p.input] as f32)
        .collect();
    let mut named = |i: usize, n: usize| masks(&format!("{module}.delta.{}", pairs[i].input), n);
    combine(
        &deltas,
        &weights,
        method,
        options.density.unwrap_or(1.0),
        options.majority_sign,
        &mut named,
    )
}
