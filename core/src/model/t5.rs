//! HF `T5ForConditionalGeneration`: shared embeddings, encoder, decoder and the LM head.

use burn::module::{Initializer, Param};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use super::cache::{DecoderCache, KeyValue};
use super::loss::{cross_entropy, IGNORE_INDEX};
use super::stack::{Stack, MASK_VALUE};
use crate::adapter::Adapters;
use crate::config::T5Config;
use crate::error::Result;
use crate::fused::{self, FusedOps};
use crate::kernels::small_rows_matmul;
use crate::layers::project;
use crate::weights::Weights;

/// The encoder-decoder with its language-model head.
#[derive(Module, Debug)]
pub struct T5ForConditionalGeneration<B: Backend> {
    /// `shared.weight`, `[vocab, d_model]`: input embeddings of both stacks (and the LM head when
    /// tied).
    pub shared: Embedding<B>,
    pub encoder: Stack<B>,
    pub decoder: Stack<B>,
    /// `lm_head.weight` when `tie_word_embeddings` is false (v1.1, flan-T5, mT5).
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    pub config: T5Config,
}

/// What the model returns for a batch with labels.
pub struct Seq2SeqOutput<B: Backend> {
    /// `[batch, tgt, vocab]`.
    pub logits: Tensor<B, 3>,
    /// `[1]`.
    pub loss: Tensor<B, 1>,
}

impl<B: Backend> T5ForConditionalGeneration<B> {
    /// A randomly initialized model, with HF's initialization (`_init_weights`).
    pub fn init(config: &T5Config, device: &B::Device) -> Self {
        let f = config.initializer_factor;
        let normal = |std: f64, shape: [usize; 2]| {
            Initializer::Normal { mean: 0.0, std }.init(shape, device)
        };
        Self {
            shared: Embedding {
                weight: normal(f, [config.vocab_size, config.d_model]),
            },
            encoder: Stack::init(config, false, device),
            decoder: Stack::init(config, true, device),
            lm_head: (!config.tie_word_embeddings).then(|| Linear {
                weight: normal(f, [config.d_model, config.vocab_size]),
                bias: None,
            }),
            config: config.clone(),
        }
    }

    /// Builds the model from HF tensors (`shared.weight`, `encoder.block.0...`), checking every
    /// shape against `config`. Tensors that were not used are reported through `tracing`.
    pub fn load(config: &T5Config, w: &mut Weights, device: &B::Device) -> Result<Self> {
        let c = config;
        // Some exports keep only the stack copies of the tied embedding.
        let shared_name = if w.contains("shared.weight") {
            "shared.weight"
        } else {
            "encoder.embed_tokens.weight"
        };
        let shared = Embedding {
            weight: Param::from_tensor(w.take(shared_name, [c.vocab_size, c.d_model], device)?),
        };
        let encoder = Stack::load(w, "encoder", c, false, device)?;
        let decoder = Stack::load(w, "decoder", c, true, device)?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            let weight = w.take_linear("lm_head.weight", c.d_model, c.vocab_size, device)?;
            Some(Linear {
                weight: Param::from_tensor(weight),
                bias: None,
            })
        };
        let ignorable = |n: &str| {
            matches!(
                n,
                "encoder.embed_tokens.weight"
                    | "decoder.embed_tokens.weight"
                    | "lm_head.weight"
                    | "shared.weight"
            ) || n.ends_with("EncDecAttention.relative_attention_bias.weight")
        };
        let unused: Vec<&str> = w.untaken().into_iter().filter(|n| !ignorable(n)).collect();
        if !unused.is_empty() {
            tracing::warn!(
                "{}: {} tensors not used by T5: {}",
                w.origin().display(),
                unused.len(),
                unused.join(", ")
            );
        }
        Ok(Self {
            shared,
            encoder,
            decoder,
            lm_head,
            config: config.clone(),
        })
    }

    pub fn device(&self) -> B::Device {
        self.shared.weight.device()
    }

    /// The additive padding mask: 0 where `attention_mask` is 1, a very negative value where 0.
    ///
    /// # Shapes
    /// - attention_mask: `[batch, seq]` -> `[batch, seq]`
    pub fn mask_bias(attention_mask: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        attention_mask.equal_elem(0).float() * MASK_VALUE
    }

    /// HF `_shift_right`: prepend `decoder_start_token_id`, drop the last label, and replace
    /// `-100` with the pad id.
    ///
    /// # Shapes
    /// - labels: `[batch, tgt]` -> `[batch, tgt]`
    pub fn shift_right(&self, labels: Tensor<B, 2, Int>) -> Tensor<B, 2, Int> {
        let [b, t] = labels.dims();
        let start = Tensor::<B, 2, Int>::full(
            [b, 1],
            self.config.decoder_start_token_id() as i64,
            &labels.device(),
        );
        let shifted = if t > 1 {
            Tensor::cat(vec![start, labels.slice([0..b, 0..t - 1])], 1)
        } else {
            start
        };
        let ignored = shifted.clone().equal_elem(IGNORE_INDEX);
        shifted.mask_fill(ignored, self.config.pad_token_id as i64)
    }
}

impl<B: FusedOps> T5ForConditionalGeneration<B> {
    /// Cross-attention keys/values of every decoder layer, computed once per input.
    pub fn cross_attention_kv(
        &self,
        encoder_hidden: &Tensor<B, 3>,
        adapters: Option<&Adapters<B>>,
    ) -> Vec<KeyValue<B>> {
        self.decoder
            .block
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let layer = block
                    .cross_attention
                    .as_ref()
                    .expect("decoder blocks have cross-attention");
                let at = adapters.map(|a| (a, self.config.num_layers + i));
                let (key, value) =
                    layer
                        .enc_dec_attention
                        .project_kv(encoder_hidden.clone(), at, true);
                KeyValue { key, value }
            })
            .collect()
    }

    /// Vocabulary logits of decoder states.
    ///
    /// # Shapes
    /// - hidden: `[batch, tgt, d_model]` -> `[batch, tgt, vocab]`
    pub fn lm_logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.lm_head {
            Some(head) => project(head, hidden),
            None => {
                // Tied embeddings: HF rescales by d_model^-0.5 before the shared projection.
                let [b, t, d] = hidden.dims();
                let hidden = hidden.reshape([b * t, d]) * (d as f64).powf(-0.5);
                let table = self.shared.weight.val();
                let logits = match small_rows_matmul(&hidden, &table.clone().transpose()) {
                    Some(logits) => logits,
                    // `h Eᵀ` with the table's transpose as a strided view (no copy): the logits
                    // come out row-major, and the table's gradient in the table's layout.
                    None => fused::linear(hidden, table.transpose(), None),
                };
                logits.reshape([b, t, self.config.vocab_size])
            }
        }
    }

    /// # Shapes
    /// - input_ids, attention_mask: `[batch, src]` -> `[batch, src, d_model]`
    pub fn encode(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 3> {
        let embeds = fused::embedding(self.shared.weight.val(), input_ids);
        self.encoder
            .forward_encoder(embeds, Self::mask_bias(attention_mask), adapters)
    }

    /// Teacher-forced decoder states for a whole target sequence.
    ///
    /// # Shapes
    /// - decoder_input_ids: `[batch, tgt]`, encoder_hidden: `[batch, src, d_model]`,
    ///   attention_mask: `[batch, src]` -> `[batch, tgt, d_model]`
    pub fn decode(
        &self,
        decoder_input_ids: Tensor<B, 2, Int>,
        encoder_hidden: Tensor<B, 3>,
        attention_mask: Tensor<B, 2, Int>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 3> {
        let cross = self.cross_attention_kv(&encoder_hidden, adapters);
        let mut past = vec![None; self.decoder.block.len()];
        let embeds = fused::embedding(self.shared.weight.val(), decoder_input_ids);
        let adapters = adapters.map(|a| (a, self.config.num_layers));
        self.decoder.forward_decoder(
            embeds,
            &cross,
            Self::mask_bias(attention_mask),
            &mut past,
            0,
            adapters,
        )
    }

    /// Logits for `decoder_input_ids` given the source.
    ///
    /// # Shapes
    /// - input_ids, attention_mask: `[batch, src]`; decoder_input_ids: `[batch, tgt]`
    /// - output: `[batch, tgt, vocab]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        decoder_input_ids: Tensor<B, 2, Int>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 3> {
        let encoder_hidden = self.encode(input_ids, attention_mask.clone(), adapters);
        self.lm_logits(self.decode(decoder_input_ids, encoder_hidden, attention_mask, adapters))
    }

    /// Logits and loss for `labels` (`-100` marks padding), decoder inputs made by
    /// [`Self::shift_right`].
    pub fn forward_with_labels(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        labels: Tensor<B, 2, Int>,
        label_smoothing: f64,
        adapters: Option<&Adapters<B>>,
    ) -> Seq2SeqOutput<B> {
        let decoder_input_ids = self.shift_right(labels.clone());
        let logits = self.forward(input_ids, attention_mask, decoder_input_ids, adapters);
        let loss = cross_entropy(logits.clone(), labels, label_smoothing);
        Seq2SeqOutput { logits, loss }
    }

    /// Runs the encoder and prepares the cache for incremental decoding.
    ///
    /// # Shapes
    /// - input_ids, attention_mask: `[batch, src]`
    pub fn start_decoding(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        adapters: Option<&Adapters<B>>,
    ) -> DecoderCache<B> {
        let encoder_hidden = self.encode(input_ids, attention_mask.clone(), adapters);
        DecoderCache {
            self_attention: vec![None; self.decoder.block.len()],
            cross_attention: self.cross_attention_kv(&encoder_hidden, adapters),
            cross_bias: Self::mask_bias(attention_mask),
            len: 0,
        }
    }

    /// Feeds new decoder tokens and returns the logits of the **last** position only (the others
    /// are never needed while generating).
    ///
    /// # Shapes
    /// - ids: `[batch, new]` -> `[batch, vocab]`
    pub fn decode_step(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: &mut DecoderCache<B>,
        adapters: Option<&Adapters<B>>,
    ) -> Tensor<B, 2> {
        let [b, new] = ids.dims();
        let embeds = fused::embedding(self.shared.weight.val(), ids);
        let hidden = self.decoder.forward_decoder(
            embeds,
            &cache.cross_attention,
            cache.cross_bias.clone(),
            &mut cache.self_attention,
            cache.len,
            adapters.map(|a| (a, self.config.num_layers)),
        );
        cache.len += new;
        let last = hidden.slice([0..b, new - 1..new]);
        self.lm_logits(last).reshape([b, self.config.vocab_size])
    }
}
