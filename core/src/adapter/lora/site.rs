//! The linear layers of T5 that LoRA adapts, numbered per model: `site = 11 * layer + target`,
//! with encoder block `i` as layer `i` and decoder block `i` as layer `num_layers + i` (the
//! numbering of bottleneck positions, [`crate::adapter::set::position`]).

use crate::config::T5Config;

/// One linear layer of a T5 block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Q,
    K,
    V,
    O,
    CrossQ,
    CrossK,
    CrossV,
    CrossO,
    /// `wi` (ungated) or `wi_0` (gated feed-forward).
    Wi,
    /// `wi_1`, the gated feed-forward's linear gate.
    Wi1,
    Wo,
}

pub const TARGETS: [Target; 11] = [
    Target::Q,
    Target::K,
    Target::V,
    Target::O,
    Target::CrossQ,
    Target::CrossK,
    Target::CrossV,
    Target::CrossO,
    Target::Wi,
    Target::Wi1,
    Target::Wo,
];

impl Target {
    /// The self-attention target of the same projection (`CrossK` -> `K`).
    pub fn cross(self, cross: bool) -> Self {
        match (cross, self) {
            (false, t) => t,
            (true, Target::Q) => Target::CrossQ,
            (true, Target::K) => Target::CrossK,
            (true, Target::V) => Target::CrossV,
            (true, Target::O) => Target::CrossO,
            (true, t) => t,
        }
    }
}

pub fn site(layer: usize, target: Target) -> usize {
    TARGETS.len() * layer + target as usize
}

pub fn num_sites(model: &T5Config) -> usize {
    TARGETS.len() * (model.num_layers + model.num_decoder_layers())
}

/// HF's module name of `site` (`decoder.block.0.layer.1.EncDecAttention.q`), or `None` where
/// the model has no such layer (cross-attention in the encoder, `wi_1` without a gate).
pub fn site_name(model: &T5Config, site: usize) -> Option<String> {
    let (layer, target) = (site / TARGETS.len(), TARGETS[site % TARGETS.len()]);
    let decoder = layer >= model.num_layers;
    let block = if decoder {
        format!("decoder.block.{}", layer - model.num_layers)
    } else {
        format!("encoder.block.{layer}")
    };
    let gated = model.feed_forward().map(|f| f.gated).unwrap_or(false);
    let ff = if decoder { "layer.2" } else { "layer.1" };
    let name = match target {
        Target::Q | Target::K | Target::V | Target::O => {
            format!("layer.0.SelfAttention.{}", projection(target))
        }
        Target::CrossQ | Target::CrossK | Target::CrossV | Target::CrossO if decoder => {
            format!("layer.1.EncDecAttention.{}", projection(target))
        }
        Target::Wi if gated => format!("{ff}.DenseReluDense.wi_0"),
        Target::Wi => format!("{ff}.DenseReluDense.wi"),
        Target::Wi1 if gated => format!("{ff}.DenseReluDense.wi_1"),
        Target::Wo => format!("{ff}.DenseReluDense.wo"),
        _ => return None,
    };
    Some(format!("{block}.{name}"))
}

fn projection(target: Target) -> &'static str {
    match target {
        Target::Q | Target::CrossQ => "q",
        Target::K | Target::CrossK => "k",
        Target::V | Target::CrossV => "v",
        _ => "o",
    }
}

/// `(d_in, d_out)` of the layer at `site`.
pub fn site_dims(model: &T5Config, site: usize) -> (usize, usize) {
    let (d, inner, ff) = (model.d_model, model.inner_dim(), model.d_ff);
    match TARGETS[site % TARGETS.len()] {
        Target::O | Target::CrossO => (inner, d),
        Target::Wi | Target::Wi1 => (d, ff),
        Target::Wo => (ff, d),
        _ => (d, inner),
    }
}

/// Every site of `model` with its name.
pub fn sites(model: &T5Config) -> impl Iterator<Item = (usize, String)> + '_ {
    (0..num_sites(model)).filter_map(|s| site_name(model, s).map(|n| (s, n)))
}
