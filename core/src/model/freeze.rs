//! Which backbone parameters train: all (full fine-tuning), none (adapters), or some (the T5
//! layer norms and/or the LM head beside adapters, a frozen encoder or embeddings).
//!
//! A frozen parameter does not require gradients, so autodiff records no weight-gradient work for
//! it and it costs no gradient memory; activations still carry gradients through it to the
//! adapters.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use super::layer_norm::LayerNorm;
use super::stack::Stack;
use super::t5::T5ForConditionalGeneration;

/// What to train of the backbone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreezeOptions {
    /// Freeze everything (adapter training), then unfreeze what follows.
    pub backbone: bool,
    pub unfreeze_layer_norms: bool,
    pub unfreeze_lm_head: bool,
    /// Full fine-tuning variants of the seed.
    pub freeze_encoder: bool,
    pub freeze_embeds: bool,
}

fn set_norm<B: Backend>(ln: LayerNorm<B>, train: bool) -> LayerNorm<B> {
    LayerNorm {
        weight: ln.weight.set_require_grad(train),
        ..ln
    }
}

fn map_norms<B: Backend>(mut stack: Stack<B>, train: bool) -> Stack<B> {
    stack.block = stack
        .block
        .into_iter()
        .map(|mut b| {
            b.self_attention.layer_norm = set_norm(b.self_attention.layer_norm, train);
            if let Some(mut c) = b.cross_attention.take() {
                c.layer_norm = set_norm(c.layer_norm, train);
                b.cross_attention = Some(c);
            }
            b.feed_forward.layer_norm = set_norm(b.feed_forward.layer_norm, train);
            b
        })
        .collect();
    stack.final_layer_norm = set_norm(stack.final_layer_norm, train);
    stack
}

impl<B: Backend> T5ForConditionalGeneration<B> {
    /// The model with `options` applied to its parameters' gradient requirements.
    pub fn freeze(self, options: FreezeOptions) -> Self {
        let mut model = if options.backbone {
            self.no_grad()
        } else {
            self
        };
        if options.freeze_encoder {
            model.encoder = model.encoder.no_grad();
        }
        if options.freeze_embeds {
            model.shared.weight = model.shared.weight.set_require_grad(false);
        }
        if options.backbone && options.unfreeze_layer_norms {
            model.encoder = map_norms(model.encoder, true);
            model.decoder = map_norms(model.decoder, true);
        }
        if options.backbone && options.unfreeze_lm_head {
            match model.lm_head.take() {
                Some(mut head) => {
                    head.weight = head.weight.set_require_grad(true);
                    model.lm_head = Some(head);
                }
                // Tied: the head is the shared embedding.
                None => model.shared.weight = model.shared.weight.set_require_grad(true),
            }
        }
        model
    }

    /// Number of parameters that require gradients.
    pub fn num_trainable_params(&self) -> usize {
        struct Count(usize);
        impl<B: Backend> ModuleVisitor<B> for Count {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if param.val().is_require_grad() {
                    self.0 += param.val().shape().num_elements();
                }
            }
        }
        let mut count = Count(0);
        self.visit(&mut count);
        count.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::T5Config;
    use burn::backend::Autodiff;

    #[test]
    fn freezing_selects_what_trains() {
        type B = Autodiff<crate::backend::Cpu>;
        let device = Default::default();
        let mut c = T5Config::t5_small();
        (
            c.vocab_size,
            c.d_model,
            c.d_ff,
            c.num_heads,
            c.d_kv,
            c.num_layers,
        ) = (10, 8, 16, 2, 4, 2);
        c.feed_forward_proj = "gated-gelu".into();
        c.tie_word_embeddings = false;
        let model = T5ForConditionalGeneration::<B>::init(&c, &device);
        let total = model.num_params();
        assert_eq!(model.num_trainable_params(), total);
        let frozen = model.clone().freeze(FreezeOptions {
            backbone: true,
            ..Default::default()
        });
        assert_eq!(frozen.num_trainable_params(), 0);
        // 2 encoder blocks x 2 norms + 2 decoder blocks x 3 norms + 2 final norms, d_model each.
        let norms = model.clone().freeze(FreezeOptions {
            backbone: true,
            unfreeze_layer_norms: true,
            ..Default::default()
        });
        assert_eq!(norms.num_trainable_params(), (4 + 6 + 2) * 8);
        let head = model.clone().freeze(FreezeOptions {
            backbone: true,
            unfreeze_lm_head: true,
            ..Default::default()
        });
        assert_eq!(head.num_trainable_params(), 8 * 10);
        let embeds = model.freeze(FreezeOptions {
            freeze_embeds: true,
            ..Default::default()
        });
        assert_eq!(embeds.num_trainable_params(), total - 10 * 8);
    }
}
