//! The tensors of PHM (Compacter) adapters in adapter files, under the `adapters` library's
//! names: per projection `{projection}.phm_rule` (or `.phm_rule_left` / `_right`) unless the
//! rule is shared, `{projection}.W` (or `.W_left` / `_right`) unless `W` is shared, and `.b`;
//! per adapter `shared_parameters.{name}.phm_rule` (or `_left` / `_right`) and
//! `.W_down`, `.W_up` (or their `_left` / `_right`).
//!
//! adapters 1.3.0 does not write the `shared_parameters` of a T5 model (its save filter wants
//! `.shared_parameters.{name}.` with a leading dot, and T5ForConditionalGeneration holds them at
//! the top level): a file without them is refused, since the library re-initializes them at
//! random when it loads one. Files written here carry them.

use std::path::Path;

use burn::prelude::*;

use super::phm::{Factored, PhmConfig, PhmLinear, PhmShared};
use crate::error::{Error, Result};
use crate::weights::Weights;

/// `[n, a, b]`, factorized as `[n, a, rank]` · `[n, rank, b]` when `factorized`, read as
/// `{key}` or `{key}_left` / `{key}_right`.
fn take_factored<B: Backend>(
    w: &mut Weights,
    key: &str,
    [n, a, b]: [usize; 3],
    factorized: Option<usize>,
    device: &B::Device,
) -> Result<Factored<B>> {
    Ok(match factorized {
        None => Factored::full(w.take(key, [n, a, b], device)?),
        Some(rank) => Factored::factors(
            w.take(&format!("{key}_left"), [n, a, rank], device)?,
            w.take(&format!("{key}_right"), [n, rank, b], device)?,
        ),
    })
}

fn rule_rank(c: &PhmConfig) -> Option<usize> {
    c.factorized_phm_rule.then_some(1)
}

fn w_rank(c: &PhmConfig) -> Option<usize> {
    c.factorized_phm_w.then_some(c.phm_rank)
}

/// The PHM projection `d_in` -> `d_out` stored under `prefix`.
pub fn take_phm_linear<B: Backend>(
    w: &mut Weights,
    prefix: &str,
    c: &PhmConfig,
    (d_in, d_out): (usize, usize),
    device: &B::Device,
) -> Result<PhmLinear<B>> {
    let n = c.phm_dim;
    let rule = (!c.shared_phm_rule)
        .then(|| {
            take_factored(
                w,
                &format!("{prefix}.phm_rule"),
                [n, n, n],
                rule_rank(c),
                device,
            )
        })
        .transpose()?;
    let weight = (!c.shared_w_phm)
        .then(|| {
            let shape = [n, d_in / n, d_out / n];
            take_factored(w, &format!("{prefix}.W"), shape, w_rank(c), device)
        })
        .transpose()?;
    let bias = c
        .phm_bias
        .then(|| w.take(&format!("{prefix}.b"), [d_out], device))
        .transpose()?
        .map(burn::module::Param::from_tensor);
    Ok(PhmLinear {
        rule,
        w: weight,
        bias,
    })
}

/// The parameters shared across layers, under `prefix` (`shared_parameters.{name}`), for an
/// adapter of `d_model` -> `bottleneck`; `None` when nothing is shared.
pub fn take_phm_shared<B: Backend>(
    w: &mut Weights,
    prefix: &str,
    c: &PhmConfig,
    (d_model, bottleneck): (usize, usize),
    weights_path: &Path,
    device: &B::Device,
) -> Result<Option<PhmShared<B>>> {
    if !c.shared_phm_rule && !c.shared_w_phm {
        return Ok(None);
    }
    let probe = if c.shared_phm_rule {
        "phm_rule"
    } else {
        "W_down"
    };
    let any = [
        format!("{prefix}.{probe}"),
        format!("{prefix}.{probe}_left"),
    ];
    if !any.iter().any(|k| w.contains(k)) {
        return Err(Error::checkpoint(
            weights_path,
            format!(
                "no `{prefix}.{probe}`: this Compacter shares parameters across layers \
                 (`shared_phm_rule` / `shared_W_phm`) and the file lacks them (adapters 1.3.0 \
                 does not save them for T5 models; without them the adapter cannot be \
                 reproduced)"
            ),
        ));
    }
    let n = c.phm_dim;
    let rule = c
        .shared_phm_rule
        .then(|| {
            take_factored(
                w,
                &format!("{prefix}.phm_rule"),
                [n, n, n],
                rule_rank(c),
                device,
            )
        })
        .transpose()?;
    let (a, b) = (d_model / n, bottleneck / n);
    let mut side = |key: &str, shape| {
        c.shared_w_phm
            .then(|| take_factored(w, &format!("{prefix}.{key}"), shape, w_rank(c), device))
            .transpose()
    };
    let w_down = side("W_down", [n, a, b])?;
    let w_up = side("W_up", [n, b, a])?;
    Ok(Some(PhmShared { rule, w_down, w_up }))
}

/// A tensor under its file name.
pub type Named<B, const D: usize> = (String, Tensor<B, D>);

/// `(name, tensor)` of every stored tensor of a PHM projection under `prefix`: 3-D tensors as
/// they are, the bias as `[d_out]`.
pub fn phm_linear_tensors<B: Backend>(
    prefix: &str,
    p: &PhmLinear<B>,
) -> (Vec<Named<B, 3>>, Option<Named<B, 1>>) {
    let mut blocks = Vec::new();
    for (key, f) in [("phm_rule", &p.rule), ("W", &p.w)] {
        for (suffix, t) in f.iter().flat_map(Factored::stored) {
            blocks.push((format!("{prefix}.{key}{suffix}"), t));
        }
    }
    let bias = p.bias.as_ref().map(|b| (format!("{prefix}.b"), b.val()));
    (blocks, bias)
}

/// `(name, tensor)` of every shared tensor under `prefix`.
pub fn phm_shared_tensors<B: Backend>(prefix: &str, s: &PhmShared<B>) -> Vec<Named<B, 3>> {
    let mut out = Vec::new();
    for (key, f) in [
        ("phm_rule", &s.rule),
        ("W_down", &s.w_down),
        ("W_up", &s.w_up),
    ] {
        for (suffix, t) in f.iter().flat_map(Factored::stored) {
            out.push((format!("{prefix}.{key}{suffix}"), t));
        }
    }
    out
}
