//! The `adapters` library's `average_adapter` (adapters 1.3.0, `model_mixin.py` and
//! `methods/adapter_layer_base.py`) for bottleneck adapters: every parameter of the new adapter
//! (down and up projections with their biases, the LayerNorms) is `Σ wᵢ pᵢ`, with the weights
//! divided by their sum unless `normalize_weights=False`, and equal weights `1/n` when none
//! are given. The adapters must share one config (dropout aside, as the library compares them).

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::super::bottleneck::{AdapterLayerNorm, Bottleneck, Projection};
use crate::adapter::{AdapterFormat, TaskAdapter};

/// `average_adapter`'s weights: `None` gives each adapter `1/n`; `normalize` divides by the sum.
pub fn average_weights(
    weights: Option<&[f64]>,
    n: usize,
    normalize: bool,
) -> Result<Vec<f64>, String> {
    let Some(weights) = weights else {
        return Ok(vec![1.0 / n as f64; n]);
    };
    if weights.len() != n {
        return Err(format!(
            "{} weights for {n} adapters: give one weight per adapter",
            weights.len()
        ));
    }
    if !normalize {
        return Ok(weights.to_vec());
    }
    let sum: f64 = weights.iter().sum();
    if sum == 0.0 {
        return Err(
            "the weights sum to 0, so they cannot be normalized (pass --no-normalize)".into(),
        );
    }
    Ok(weights.iter().map(|w| w / sum).collect())
}

/// The average of `inputs` (bottleneck adapters of one model with one config) with `weights`
/// (already normalized: [`average_weights`]), named `name`, in the first input's format.
pub fn average_bottlenecks<B: Backend>(
    inputs: &[&TaskAdapter<B>],
    weights: &[f64],
    name: &str,
) -> Result<TaskAdapter<B>, String> {
    let first = inputs.first().ok_or("no adapters to average")?;
    for t in inputs {
        if t.lora.is_some() || t.ia3.is_some() {
            return Err(format!(
                "`{}` is a LoRA or (IA)³ adapter, not a bottleneck adapter",
                t.name
            ));
        }
        if t.config.phm.is_some() {
            return Err(format!(
                "`{}` is a Compacter: averaging PHM adapters is not implemented",
                t.name
            ));
        }
        let (mut a, mut b) = (first.config.clone(), t.config.clone());
        (a.dropout, b.dropout) = (0.0, 0.0);
        if a != b {
            return Err(format!(
                "`{}` and `{}` have different configs (the library averages adapters of one config only)",
                first.name, t.name
            ));
        }
    }
    let mut out = (*first).clone();
    for (p, slot) in out.positions.iter_mut().enumerate() {
        let Some(b) = slot else { continue };
        let at: Vec<&Bottleneck<B>> = inputs
            .iter()
            .map(|t| t.positions.get(p).and_then(Option::as_ref))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("the adapters differ in where they sit (position {p})"))?;
        b.down = Projection::Linear(linear(at.iter().map(|x| plain(&x.down)), weights));
        b.up = Projection::Linear(linear(at.iter().map(|x| plain(&x.up)), weights));
        if b.norms.before.is_some() {
            b.norms.before = Some(norm(
                at.iter().filter_map(|x| x.norms.before.as_ref()),
                weights,
            ));
        }
        if b.norms.after.is_some() {
            b.norms.after = Some(norm(
                at.iter().filter_map(|x| x.norms.after.as_ref()),
                weights,
            ));
        }
    }
    out.name = name.to_string();
    if let AdapterFormat::AdapterHub { name: n, config } = &mut out.format {
        *n = name.to_string();
        config["name"] = serde_json::json!(name);
    }
    Ok(out)
}

/// The linear layer of a projection of an adapter checked to have no PHM layers.
fn plain<B: Backend>(p: &Projection<B>) -> &Linear<B> {
    p.as_linear().expect("checked above: no PHM layers")
}

/// `Σ wᵢ tᵢ` (the library's `avg += weight * v`, in the tensors' f32).
fn weighted<B: Backend, const D: usize>(
    tensors: impl Iterator<Item = Tensor<B, D>>,
    weights: &[f64],
) -> Param<Tensor<B, D>> {
    let sum = tensors
        .zip(weights)
        .map(|(t, &w)| t * w)
        .reduce(|a, b| a + b)
        .expect("at least one adapter");
    Param::from_tensor(sum)
}

fn linear<'a, B: Backend>(
    linears: impl Iterator<Item = &'a Linear<B>> + Clone,
    weights: &[f64],
) -> Linear<B> {
    Linear {
        weight: weighted(linears.clone().map(|l| l.weight.val()), weights),
        bias: linears
            .clone()
            .map(|l| l.bias.as_ref().map(|b| b.val()))
            .collect::<Option<Vec<_>>>()
            .map(|biases| weighted(biases.into_iter(), weights)),
    }
}

fn norm<'a, B: Backend>(
    norms: impl Iterator<Item = &'a AdapterLayerNorm<B>> + Clone,
    weights: &[f64],
) -> AdapterLayerNorm<B> {
    let eps = norms.clone().next().map_or(1e-5, |n| n.eps);
    AdapterLayerNorm {
        weight: weighted(norms.clone().map(|n| n.weight.val()), weights),
        bias: weighted(norms.map(|n| n.bias.val()), weights),
        eps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_normalized_by_their_sum_unless_asked_not_to() {
        assert_eq!(average_weights(None, 4, true).unwrap(), vec![0.25; 4]);
        let w = average_weights(Some(&[0.75, -0.25]), 2, true).unwrap();
        assert_eq!(w, vec![1.5, -0.5]);
        assert_eq!(
            average_weights(Some(&[0.75, -0.25]), 2, false).unwrap(),
            vec![0.75, -0.25]
        );
        assert!(average_weights(Some(&[1.0, -1.0]), 2, true)
            .unwrap_err()
            .contains("sum to 0"));
        assert!(average_weights(Some(&[1.0]), 2, true).is_err());
    }
}
