//! The model export: writing a model back as a Hugging Face model directory (`config.json` +
//! `model.safetensors`, HF key names, PyTorch layouts), so fine-tuned weights load in
//! transformers and in `native generate`.

use std::path::Path;

use burn::nn::Linear;
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::model::attention::Attention;
use crate::model::layer_norm::LayerNorm;
use crate::model::T5ForConditionalGeneration;
use crate::weights::write_safetensors;

type Named = Vec<(String, Vec<usize>, Vec<f32>)>;

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.into_data().convert::<f32>().into_vec().expect("f32 data"),
    )
}

fn linear<B: Backend>(out: &mut Named, name: &str, l: &Linear<B>) {
    // burn keeps [in, out]; PyTorch's Linear is [out, in].
    let (shape, values) = host(l.weight.val().transpose());
    out.push((format!("{name}.weight"), shape, values));
}

fn norm<B: Backend>(out: &mut Named, name: &str, ln: &LayerNorm<B>) {
    let (shape, values) = host(ln.weight.val());
    out.push((format!("{name}.weight"), shape, values));
}

fn attention<B: Backend>(out: &mut Named, name: &str, a: &Attention<B>) {
    for (p, l) in [("q", &a.q), ("k", &a.k), ("v", &a.v), ("o", &a.o)] {
        linear(out, &format!("{name}.{p}"), l);
    }
    if let Some(bias) = &a.relative_attention_bias {
        let (shape, values) = host(bias.relative_attention_bias.weight.val());
        out.push((
            format!("{name}.relative_attention_bias.weight"),
            shape,
            values,
        ));
    }
}

/// Every tensor of `model` under its HF name.
pub fn hf_tensors<B: Backend>(model: &T5ForConditionalGeneration<B>) -> Named {
    let mut out = Vec::new();
    let (shape, values) = host(model.shared.weight.val());
    out.push(("shared.weight".to_string(), shape, values));
    for (stack_name, stack) in [("encoder", &model.encoder), ("decoder", &model.decoder)] {
        for (i, block) in stack.block.iter().enumerate() {
            let b = format!("{stack_name}.block.{i}");
            attention(
                &mut out,
                &format!("{b}.layer.0.SelfAttention"),
                &block.self_attention.self_attention,
            );
            norm(
                &mut out,
                &format!("{b}.layer.0.layer_norm"),
                &block.self_attention.layer_norm,
            );
            let ff = if let Some(cross) = &block.cross_attention {
                attention(
                    &mut out,
                    &format!("{b}.layer.1.EncDecAttention"),
                    &cross.enc_dec_attention,
                );
                norm(
                    &mut out,
                    &format!("{b}.layer.1.layer_norm"),
                    &cross.layer_norm,
                );
                2
            } else {
                1
            };
            let d = &block.feed_forward.dense_relu_dense;
            let f = format!("{b}.layer.{ff}.DenseReluDense");
            match &d.wi_1 {
                Some(gate) => {
                    linear(&mut out, &format!("{f}.wi_0"), &d.wi);
                    linear(&mut out, &format!("{f}.wi_1"), gate);
                }
                None => linear(&mut out, &format!("{f}.wi"), &d.wi),
            }
            linear(&mut out, &format!("{f}.wo"), &d.wo);
            norm(
                &mut out,
                &format!("{b}.layer.{ff}.layer_norm"),
                &block.feed_forward.layer_norm,
            );
        }
        norm(
            &mut out,
            &format!("{stack_name}.final_layer_norm"),
            &stack.final_layer_norm,
        );
    }
    if let Some(head) = &model.lm_head {
        linear(&mut out, "lm_head", head);
    }
    out
}

/// Writes `config.json` and `model.safetensors` (and copies `tokenizer.json` when given) into
/// `dir`, each file atomically.
pub fn save_pretrained<B: Backend>(
    model: &T5ForConditionalGeneration<B>,
    tokenizer: Option<&Path>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    write_safetensors(&dir.join(WEIGHTS_FILE), &hf_tensors(model), Some(metadata))?;
    let mut config = serde_json::to_value(&model.config).expect("serializable config");
    config["architectures"] = serde_json::json!(["T5ForConditionalGeneration"]);
    config["is_encoder_decoder"] = serde_json::json!(true);
    let text = serde_json::to_string_pretty(&config).expect("serializable");
    crate::io::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
    if let Some(tok) = tokenizer {
        let bytes = std::fs::read(tok).map_err(|e| Error::io(tok, e))?;
        crate::io::write_atomic(&dir.join(TOKENIZER_FILE), &bytes)?;
    }
    Ok(())
}
