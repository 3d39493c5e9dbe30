//! Folding a LoRA or an (IA)³ adapter into the backbone (PEFT's `merge_and_unload`): at every
//! adapted layer `W += scaling · B A`, or `W` scaled by the (IA)³ vector along its output (or,
//! for a feed-forward module, its input), so that the plain model computes what the model with
//! the adapter did.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::T5ForConditionalGeneration;
use crate::adapter::lora::site::{Target, TARGETS};
use crate::adapter::TaskAdapter;
use crate::error::{Error, Result};

/// `model` with `adapter`'s LoRA or (IA)³ vectors folded into its weights.
pub fn merge_adapter<B: Backend>(
    mut model: T5ForConditionalGeneration<B>,
    adapter: &TaskAdapter<B>,
) -> Result<T5ForConditionalGeneration<B>> {
    if adapter.lora.is_none() && adapter.ia3.is_none() {
        return Err(Error::Invalid(format!(
            "`{}` is a bottleneck adapter: only a LoRA or an (IA)³ adapter folds into the backbone's weights",
            adapter.name
        )));
    }
    let missing = |site| {
        Error::Invalid(format!(
            "the model has no linear layer at adapter site {site}"
        ))
    };
    for (site, lora) in adapter.linears.iter().enumerate() {
        let Some(lora) = lora else { continue };
        let linear = linear_mut(&mut model, site).ok_or_else(|| missing(site))?;
        let merged = linear.weight.val() + lora.merged_delta();
        linear.weight = Param::from_tensor(merged.detach());
    }
    for (site, v) in adapter.scales.iter().enumerate() {
        let Some(v) = v else { continue };
        let linear = linear_mut(&mut model, site).ok_or_else(|| missing(site))?;
        // burn's weight is `[d_in, d_out]`: inputs are rows, outputs columns.
        let factor = v.factor();
        let factor = if v.feedforward {
            factor.unsqueeze_dim::<2>(1)
        } else {
            factor.unsqueeze_dim::<2>(0)
        };
        let merged = linear.weight.val() * factor;
        linear.weight = Param::from_tensor(merged.detach());
    }
    Ok(model)
}

/// The linear layer at `site` (see [`crate::adapter::lora::site`]).
fn linear_mut<B: Backend>(
    model: &mut T5ForConditionalGeneration<B>,
    site: usize,
) -> Option<&mut Linear<B>> {
    let (layer, target) = (site / TARGETS.len(), TARGETS[site % TARGETS.len()]);
    let num_layers = model.config.num_layers;
    let block = if layer < num_layers {
        model.encoder.block.get_mut(layer)?
    } else {
        model.decoder.block.get_mut(layer - num_layers)?
    };
    let attention = &mut block.self_attention.self_attention;
    let ff = &mut block.feed_forward.dense_relu_dense;
    Some(match target {
        Target::Q => &mut attention.q,
        Target::K => &mut attention.k,
        Target::V => &mut attention.v,
        Target::O => &mut attention.o,
        Target::Wi => &mut ff.wi,
        Target::Wi1 => ff.wi_1.as_mut()?,
        Target::Wo => &mut ff.wo,
        cross => {
            let cross_attention = &mut block.cross_attention.as_mut()?.enc_dec_attention;
            match cross {
                Target::CrossQ => &mut cross_attention.q,
                Target::CrossK => &mut cross_attention.k,
                Target::CrossV => &mut cross_attention.v,
                _ => &mut cross_attention.o,
            }
        }
    })
}
