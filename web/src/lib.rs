//! The browser side: `core`'s T5 compiled to wasm. The demo page (Web Worker, task selector,
//! adapter switching) builds on this; for now it exposes loading a model from bytes and greedy
//! generation, on the CPU backend.

use std::sync::Arc;

use t5_core::checkpoint::Weights;
use t5_core::generation::{generate, GenerationConfig};
use t5_core::{T5Config, T5ForConditionalGeneration, T5Tokenizer};
use wasm_bindgen::prelude::*;

type Cpu = t5_core::backend::Cpu;

/// A T5 model and its tokenizer, loaded from the bytes of `config.json`, `model.safetensors`
/// and `tokenizer.json`.
#[wasm_bindgen]
pub struct Model {
    model: T5ForConditionalGeneration<Cpu>,
    tokenizer: T5Tokenizer,
    config: T5Config,
}

#[wasm_bindgen]
impl Model {
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &[u8],
        safetensors: Vec<u8>,
        tokenizer_json: &[u8],
    ) -> Result<Model, JsError> {
        let config: T5Config = serde_json::from_slice(config_json)
            .map_err(|e| JsError::new(&format!("config.json: {e}")))?;
        config
            .validate()
            .map_err(|e| JsError::new(&format!("config.json: {e}")))?;
        let mut weights =
            Weights::from_buffers(vec![("model.safetensors".into(), Arc::from(safetensors))])?;
        let model = T5ForConditionalGeneration::load(&config, &mut weights, &Default::default())?;
        let tokenizer = T5Tokenizer::from_bytes(tokenizer_json)?;
        Ok(Model {
            model,
            tokenizer,
            config,
        })
    }

    /// Greedy ids of `text` (without the decoder start token, up to and including EOS).
    pub fn generate_ids(&self, text: &str, max_new_tokens: usize) -> Result<Vec<u32>, JsError> {
        let ids = self.tokenizer.encode(text)?;
        let mut config = GenerationConfig::for_model(&self.config);
        config.max_new_tokens = max_new_tokens;
        Ok(generate(&self.model, &[ids], &config, None)?.remove(0))
    }

    /// Greedy output text of `text`.
    pub fn generate(&self, text: &str, max_new_tokens: usize) -> Result<String, JsError> {
        let ids = self.generate_ids(text, max_new_tokens)?;
        Ok(self.tokenizer.decode(&ids)?)
    }
}
