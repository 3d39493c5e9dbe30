//! One backbone and its per-task adapters on one burn backend: what the page runs. The adapters
//! are loaded ones, or generated in the page by a hypernetwork from a task's embedding (or a
//! blend of two).

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use t5_core::adapter::hyper::{load_hypernetwork_from_bytes, HyperNetwork};
use t5_core::adapter::{load_adapter_from_bytes, AdapterSet, Adapters};
use t5_core::files::{CONFIG_FILE, TASK_EMBEDDINGS, TOKENIZER_FILE, WEIGHTS_FILE};
use t5_core::generation::limits::{
    check_memory, truncate_source, DEFAULT_MAX_SOURCE_LENGTH, MAX_TOKENS,
};
use t5_core::generation::{generate_async, synthetic_inputs, GenerationConfig};
use t5_core::weights::Weights;
use t5_core::{Error, Result, T5Config, T5ForConditionalGeneration, T5Tokenizer};

/// A loaded backbone with the adapters attached so far and at most one hypernetwork; `task`
/// picks the adapter that runs (none: the plain backbone).
pub struct Engine<B: Backend> {
    model: T5ForConditionalGeneration<B>,
    tokenizer: T5Tokenizer,
    config: T5Config,
    /// The adapters loaded from files.
    adapters: AdapterSet<B>,
    hyper: Option<HyperNetwork<B>>,
    /// The adapter the hypernetwork generated last (one task, with its own shared norms).
    generated: AdapterSet<B>,
    task: Option<String>,
    device: B::Device,
}

/// One generation's result.
pub struct Output {
    pub text: String,
    /// New tokens, up to and including EOS.
    pub ids: Vec<u32>,
    /// The input's length in tokens when it was longer than [`DEFAULT_MAX_SOURCE_LENGTH`] and
    /// cut to it.
    pub truncated_from: Option<usize>,
}

/// The memory a generation in the page may plan for: wasm32 addresses 4 GiB at most, and a
/// failed allocation there kills the worker without a message.
fn page_memory() -> Option<u64> {
    cfg!(target_arch = "wasm32").then_some(4 << 30)
}

impl<B: t5_core::fused::FusedOps> Engine<B> {
    /// From the bytes of `config.json`, `model.safetensors` and `tokenizer.json`.
    pub fn load(
        config_json: &[u8],
        safetensors: Vec<u8>,
        tokenizer_json: &[u8],
        device: B::Device,
    ) -> Result<Self> {
        let text = std::str::from_utf8(config_json)
            .map_err(|e| Error::Invalid(format!("{CONFIG_FILE}: not UTF-8 text: {e}")))?;
        let config = T5Config::from_json(text, std::path::Path::new(CONFIG_FILE))?;
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
            hyper: None,
            generated: AdapterSet::default(),
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
        match name {
            Some(name) => adapter.name = name.to_string(),
            // PEFT files name no task: each LoRA or (IA)³ adapter dropped on the page gets a
            // name of its own.
            None if adapter.lora.is_some() => adapter.name = self.free_name("lora"),
            None if adapter.ia3.is_some() => adapter.name = self.free_name("ia3"),
            None => {}
        }
        let name = adapter.name.clone();
        if self.is_hyper_task(&name) {
            return Err(Error::Invalid(format!(
                "`{name}` is a task of the loaded hypernetwork; give the adapter another name"
            )));
        }
        if self.adapters.index(&name).is_ok() {
            self.adapters.remove(&name)?;
        }
        self.adapters.insert(adapter);
        Ok(name)
    }

    /// `base`, or `base-2`, `base-3`, ...: the first name no adapter or task has.
    fn free_name(&self, base: &str) -> String {
        (1..)
            .map(|i| {
                if i == 1 {
                    base.to_string()
                } else {
                    format!("{base}-{i}")
                }
            })
            .find(|n| self.adapters.index(n).is_err() && !self.is_hyper_task(n))
            .expect("a free name")
    }

    /// The attached adapters' names, then the hypernetwork's tasks.
    pub fn tasks(&self) -> Vec<String> {
        let attached = self.adapters.names().into_iter().map(String::from);
        attached.chain(self.hyper_tasks()).collect()
    }

    /// The loaded hypernetwork's tasks (none without one).
    pub fn hyper_tasks(&self) -> Vec<String> {
        self.hyper
            .as_ref()
            .map_or_else(Vec::new, |h| h.embeddings.names.clone())
    }

    fn is_hyper_task(&self, name: &str) -> bool {
        self.hyper
            .as_ref()
            .is_some_and(|h| h.embeddings.names.iter().any(|n| n == name))
    }

    /// Routes generation through `task`'s adapter (`None`: the backbone alone). The backbone
    /// is untouched: switching to an attached adapter is a lookup; a hypernetwork task has its
    /// adapter generated now, and the milliseconds that took (device work included) are
    /// returned.
    pub async fn set_task(&mut self, task: Option<&str>) -> Result<Option<f64>> {
        let Some(task) = task else {
            self.task = None;
            return Ok(None);
        };
        if self.is_hyper_task(task) {
            let start = now_ms();
            let raw = self.hypernetwork()?.embeddings.raw(&[task])?;
            return self.activate(raw, task, start).await.map(Some);
        }
        if self.adapters.index(task).is_err() && self.generated.index(task).is_err() {
            return Err(self.unknown_task(task));
        }
        self.task = Some(task.to_string());
        Ok(None)
    }

    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    fn unknown_task(&self, task: &str) -> Error {
        let list = |names: Vec<String>| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let attached = self
            .adapters
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        Error::Invalid(format!(
            "unknown task `{task}`; attached adapters: {}; hypernetwork tasks: {}",
            list(attached),
            list(self.hyper_tasks())
        ))
    }

    /// Loads a hypernetwork from the bytes of `hypernetwork_config.json`,
    /// `hypernetwork.safetensors` and `task_embeddings.safetensors`, checked against the
    /// backbone; its tasks join [`Engine::tasks`]. It replaces the hypernetwork loaded before,
    /// and the adapter that one generated. Returns its tasks. A bad file, or a task named like
    /// an attached adapter, is an error and leaves the engine as it was.
    pub fn load_hypernetwork(
        &mut self,
        config_json: Vec<u8>,
        hypernetwork: Vec<u8>,
        task_embeddings: Vec<u8>,
    ) -> Result<Vec<String>> {
        let hyper = load_hypernetwork_from_bytes::<B>(
            config_json,
            hypernetwork,
            task_embeddings,
            &self.config,
            &self.device,
        )?;
        let tasks = hyper.embeddings.names.clone();
        if let Some(clash) = tasks.iter().find(|t| self.adapters.index(t).is_ok()) {
            return Err(Error::Invalid(format!(
                "{TASK_EMBEDDINGS}: task `{clash}` has the name of an attached adapter"
            )));
        }
        if self
            .task
            .as_deref()
            .is_some_and(|t| self.generated.index(t).is_ok())
        {
            self.task = None;
        }
        self.generated = AdapterSet::default();
        self.hyper = Some(hyper);
        Ok(tasks)
    }

    fn hypernetwork(&self) -> Result<&HyperNetwork<B>> {
        self.hyper
            .as_ref()
            .ok_or_else(|| Error::Invalid("no hypernetwork is loaded".into()))
    }

    /// Generates and switches to the adapter of `(1-α)·e_a + α·e_b`, a blend of the two tasks'
    /// raw embeddings (before any projection, so α = 0 and α = 1 give exactly the two tasks'
    /// adapters), named `blend(a,b,α)` with α to two decimals. Returns the name and the
    /// milliseconds the generation took.
    pub async fn blend(&mut self, a: &str, b: &str, alpha: f64) -> Result<(String, f64)> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::Invalid(format!(
                "blend: alpha {alpha} is outside 0..1"
            )));
        }
        let start = now_ms();
        let e = self.hypernetwork()?.embeddings.raw(&[a, b])?;
        let raw =
            e.clone().narrow(0, 0, 1).mul_scalar(1.0 - alpha) + e.narrow(0, 1, 1).mul_scalar(alpha);
        let name = format!("blend({a},{b},{alpha:.2})");
        let ms = self.activate(raw, &name, start).await?;
        Ok((name, ms))
    }

    /// Generates the adapter of the raw embedding `raw` (`[1, t]`) as `name` and switches to
    /// it; the milliseconds since `start` once the device has computed every tensor.
    async fn activate(&mut self, raw: Tensor<B, 2>, name: &str, start: f64) -> Result<f64> {
        let set = self
            .hypernetwork()?
            .generate_from(raw, vec![name.to_string()]);
        computed(&set).await?;
        let ms = now_ms() - start;
        self.generated = set;
        self.task = Some(name.to_string());
        Ok(ms)
    }

    /// The current task's adapter for `generate` (`None`: the backbone alone).
    fn routing(&self) -> Result<Option<Adapters<'_, B>>> {
        let Some(task) = self.task.as_deref() else {
            return Ok(None);
        };
        let set = match self.generated.index(task) {
            Ok(_) => &self.generated,
            Err(_) => &self.adapters,
        };
        Adapters::task(set, task).map(Some)
    }

    /// Greedy generation of exactly `new_tokens` tokens (EOS suppressed) from a synthetic input
    /// of `src_len` tokens with the current adapter: `native bench --model <dir> --batch 1
    /// --src-len <src_len> --new-tokens <new_tokens>` times the same work. Returns the seconds.
    pub async fn time_generation(&self, src_len: usize, new_tokens: usize) -> Result<f64> {
        if !(1..=MAX_TOKENS).contains(&src_len) {
            return Err(Error::Invalid(format!(
                "benchmark: the source length must be in 1..={MAX_TOKENS}, got {src_len}"
            )));
        }
        let mut config = GenerationConfig::for_model(&self.config);
        config.max_new_tokens = new_tokens;
        config.min_new_tokens = new_tokens;
        self.check(&config, src_len)?;
        let inputs = synthetic_inputs(1, src_len, self.config.vocab_size, 0);
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

    /// Greedy (or beam) generation for one input text. An input longer than
    /// [`DEFAULT_MAX_SOURCE_LENGTH`] tokens is cut to it (its first tokens and `</s>`, as
    /// transformers' `truncation=True` and `native generate` do), and the output says so.
    pub async fn generate(
        &self,
        text: &str,
        max_new_tokens: usize,
        num_beams: usize,
    ) -> Result<Output> {
        let mut ids = self.tokenizer.encode(text)?;
        let eos = self.config.eos_token_id as u32;
        let truncated_from = truncate_source(&mut ids, DEFAULT_MAX_SOURCE_LENGTH, eos);
        let mut config = GenerationConfig::for_model(&self.config);
        config.max_new_tokens = max_new_tokens;
        config.num_beams = num_beams.max(1);
        self.check(&config, ids.len())?;
        let adapters = self.routing()?;
        let ids = generate_async(&self.model, &[ids], &config, adapters.as_ref())
            .await?
            .remove(0);
        let text = self.tokenizer.decode(&ids)?;
        Ok(Output {
            text,
            ids,
            truncated_from,
        })
    }

    /// The options in range and the generation within the page's memory, before it starts.
    fn check(&self, config: &GenerationConfig, src_len: usize) -> Result<()> {
        config
            .validate()
            .map_err(|(key, rule)| Error::Invalid(format!("`{key}` {rule}")))?;
        let what = format!(
            "generating from {src_len} tokens with {} beams and {} new tokens",
            config.num_beams, config.max_new_tokens
        );
        let rows = config.num_beams;
        check_memory(
            &self.config,
            rows,
            src_len,
            config.max_new_tokens,
            page_memory(),
            &what,
        )
    }
}

/// Waits until the device has computed every tensor of `set` (WebGPU and burn's fusion run
/// lazily), by reading back one number that depends on all of them.
async fn computed<B: Backend>(set: &AdapterSet<B>) -> Result<()> {
    struct Sum<B: Backend>(Option<Tensor<B, 1>>);
    impl<B: Backend> ModuleVisitor<B> for Sum<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let s = param.val().sum();
            self.0 = Some(match self.0.take() {
                Some(total) => total + s,
                None => s,
            });
        }
    }
    let mut sum = Sum(None);
    set.visit(&mut sum);
    if let Some(total) = sum.0 {
        total
            .into_data_async()
            .await
            .map_err(|e| Error::Invalid(format!("reading the generated adapter: {e:?}")))?;
    }
    Ok(())
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
