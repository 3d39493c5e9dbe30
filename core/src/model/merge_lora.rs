//! Folding a LoRA into the backbone (PEFT's `merge_and_unload`): `W += scaling · B A` at every
//! adapted layer, so that the plain model computes what the model with the LoRA did.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::T5ForConditionalGeneration;
use crate::adapter::lora::site::{Target, TARGETS};
use crate::adapter::TaskAdapter;
use crate::error::{Error, Result};

/// `model` with `adapter`'s LoRA folded into its weights.
pub fn merge_lora<B: Backend>(
    mut model: T5ForConditionalGeneration<B>,
    adapter: &TaskAdapter<B>,
) -> Result<T5ForConditionalGeneration<B>> {
    if adapter.lora.is_none() {
        return Err(Error::Invalid(format!(
            "`{}` is not a LoRA: only a LoRA folds into the backbone's weights",
            adapter.name
        )));
    }
    for (site, lora) in adapter.linears.iter().enumerate() {
        let Some(lora) = lora else { continue };
        let linear = linear_mut(&mut model, site).ok_or_else(|| {
            Error::Invalid(format!("the model has no linear layer at LoRA site {site}"))
        })?;
        let merged = linear.weight.val() + lora.merged_delta();
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
