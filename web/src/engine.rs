//! One backbone and its per-task adapters on one burn backend: what the page runs.

use std::sync::Arc;

use burn::prelude::*;
use t5_core::adapter::{load_adapter_from_bytes, AdapterSet, Adapters};
use t5_core::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use t5_core::generation::{generate_async, synthetic_inputs, GenerationConfig};
use t5_core::weights::Weights;
use t5_core::{Error, Result, T5Config, T5ForConditionalGeneration, T5Tokenizer};

/// A loaded backbone with the adapters attached so far; `task` picks the adapter that runs
/// (none: the plain backbone).
pub struct Engine<B: Backend> {
    model: T5ForConditionalGeneration<B>,
    tokenizer: T5Tokenizer,
    config: T5Config,
    adapters: AdapterSet<B>,
    task: Option<String>,
    device: B::Device,
}

/// One generation's result.
pub struct Output {
    pub text: String,
    /// New tokens, up to and including EOS.
    pub ids: Vec<u32>,
}

impl<B: t5_core::fused::FusedOps> Engine<B> {
    /// From the bytes of `config.json`, `model.safetensors` and `tokenizer.json`.
    pub fn load(
        config_json: &[u8],
        safetensors: Vec<u8>,
        tokenizer_json: &[u8],
        device: B::Device,
    ) -> Result<Self> {
        let config: T5Config = serde_json::from_slice(config_json)
            .map_err(|e| Error::Invalid(format!("{CONFIG_FILE}: {e}")))?;
        config
            .validate()
            .map_err(|e| Error::Invalid(format!("{CONFIG_FILE}: {e}")))?;
        let mut weights =
            Weights::from_buffers(vec![(WEIGHTS_FILE.into(), Arc::from(safetensors))])?;
        let model = T5ForConditionalGeneration::load(&config, &mut weights, &device)?;
        let tokenizer = T5Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| Error::Invalid(format!("{TOKENIZER_FILE}: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            config,
            adapters: AdapterSet::default(),
            task: None,
            device,
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// Attaches (or replaces) an adapter from `adapter_config.json` and `adapter.safetensors`;
    /// `name` overrides the task name in its config. Returns the name it is attached under. A
    /// bad file leaves the engine as it was.
    pub fn add_adapter(
        &mut self,
        name: Option<&str>,
        config_json: &[u8],
        safetensors: Vec<u8>,
    ) -> Result<String> {
        let mut adapter =
            load_adapter_from_bytes::<B>(config_json, safetensors, &self.config, &self.device)?;
        if let Some(name) = name {
            adapter.name = name.to_string();
        }
        let name = adapter.name.clone();
        if self.adapters.index(&name).is_ok() {
            self.adapters.remove(&name)?;
        }
        self.adapters.insert(adapter);
        Ok(name)
    }

    /// The attached adapters' names.
    pub fn tasks(&self) -> Vec<String> {
        self.adapters
            .names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Routes generation through `task`'s adapter (`None`: the backbone alone). The backbone
    /// is untouched: switching is a lookup.
    pub fn set_task(&mut self, task: Option<&str>) -> Result<()> {
        if let Some(t) = task {
            self.adapters.index(t)?;
        }
        self.task = task.map(String::from);
        Ok(())
    }

    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The current task's adapter for `generate` (`None`: the backbone alone).
    fn routing(&self) -> Result<Option<Adapters<'_, B>>> {
        self.task
            .as_deref()
            .map(|t| Adapters::task(&self.adapters, t))
            .transpose()
    }

    /// Greedy generation of exactly `new_tokens` tokens (EOS suppressed) from a synthetic input
    /// of `src_len` tokens with the current adapter: `native bench --model <dir> --batch 1
    /// --src-len <src_len> --new-tokens <new_tokens>` times the same work. Returns the seconds.
    pub async fn time_generation(&self, src_len: usize, new_tokens: usize) -> Result<f64> {
        let inputs = synthetic_inputs(1, src_len, self.config.vocab_size, 0);
        let mut config = GenerationConfig::for_model(&self.config);
        config.max_new_tokens = new_tokens;
        config.min_new_tokens = new_tokens;
        let adapters = self.routing()?;
        let start = now_ms();
        let out = generate_async(&self.model, &inputs, &config, adapters.as_ref()).await?;
        let seconds = (now_ms() - start) / 1000.0;
        if out[0].len() != new_tokens {
            return Err(Error::Invalid(format!(
                "generated {} tokens instead of {new_tokens}",
                out[0].len()
            )));
        }
        Ok(seconds)
    }

    /// Greedy (or beam) generation for one input text.
    pub async fn generate(
        &self,
        text: &str,
        max_new_tokens: usize,
        num_beams: usize,
    ) -> Result<Output> {
        let ids = self.tokenizer.encode(text)?;
        let mut config = GenerationConfig::for_model(&self.config);
        config.max_new_tokens = max_new_tokens;
        config.num_beams = num_beams.max(1);
        let adapters = self.routing()?;
        let ids = generate_async(&self.model, &[ids], &config, adapters.as_ref())
            .await?
            .remove(0);
        let text = self.tokenizer.decode(&ids)?;
        Ok(Output { text, ids })
    }
}

/// Milliseconds from a monotonic clock: `performance.now()` in a page or worker.
#[cfg(target_arch = "wasm32")]
fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            js_sys::Function::from(now).call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1000.0
}
