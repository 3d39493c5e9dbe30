//! The browser side: `core`'s T5 and adapters compiled to wasm. The page (`index.html`,
//! `web/www/`) runs this in a Web Worker: one backbone is loaded once, per-task adapters are
//! attached and switched without reloading it, or generated in the page by a hypernetwork from
//! a task's embedding or a blend of two, on WebGPU when the browser offers an adapter and
//! on the CPU (burn's Flex, compiled to wasm) otherwise.

mod engine;

use std::cell::RefCell;
use std::rc::Rc;

use t5_core::generation::limits::DEFAULT_MAX_SOURCE_LENGTH;
use wasm_bindgen::prelude::*;

pub use engine::{Engine, Output};

type Cpu = t5_core::backend::Cpu;
type Gpu = t5_core::backend::Wgpu;

/// The engine on the backend the page chose.
// A page holds one, for its whole life: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum AnyEngine {
    Cpu(Engine<Cpu>),
    Gpu(Engine<Gpu>),
}

/// Runs `$body` with `$e` bound to the engine, whatever its backend.
macro_rules! with_engine {
    ($any:expr, $e:ident => $body:expr) => {
        match $any {
            AnyEngine::Cpu($e) => $body,
            AnyEngine::Gpu($e) => $body,
        }
    };
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A backbone with its adapters, as the page sees it.
#[wasm_bindgen]
pub struct Demo {
    engine: Rc<RefCell<AnyEngine>>,
    backend: String,
}

/// What one generation produced.
#[wasm_bindgen(getter_with_clone)]
pub struct Generation {
    /// The decoded output text.
    pub text: String,
    /// The new token ids, up to and including EOS.
    pub ids: Vec<u32>,
    /// Set when the input was cut to T5's source length: what happened, for the page to show.
    pub note: Option<String>,
}

/// An adapter a hypernetwork generated.
#[wasm_bindgen(getter_with_clone)]
pub struct Generated {
    /// The name it runs under, e.g. `blend(rte,sst2,0.30)`.
    pub name: String,
    /// Milliseconds the generation took, the device's work included.
    pub ms: f64,
}

#[wasm_bindgen]
impl Demo {
    /// Loads a backbone from the bytes of `config.json`, `model.safetensors` and
    /// `tokenizer.json` on `backend`: `"webgpu"` (the caller has checked that
    /// `navigator.gpu.requestAdapter()` gives an adapter) or `"cpu"`.
    pub async fn load(
        config_json: Vec<u8>,
        safetensors: Vec<u8>,
        tokenizer_json: Vec<u8>,
        backend: String,
    ) -> Result<Demo, JsError> {
        console_error_panic_hook();
        let (engine, backend) = match backend.as_str() {
            "webgpu" => {
                let device = burn::backend::wgpu::WgpuDevice::default();
                let name = init_webgpu(&device).await;
                let engine = Engine::load(&config_json, safetensors, &tokenizer_json, device)
                    .map_err(js_error)?;
                (AnyEngine::Gpu(engine), name)
            }
            "cpu" => {
                let engine = Engine::load(
                    &config_json,
                    safetensors,
                    &tokenizer_json,
                    Default::default(),
                )
                .map_err(js_error)?;
                (AnyEngine::Cpu(engine), "CPU (wasm)".to_string())
            }
            other => {
                return Err(JsError::new(&format!(
                    "unknown backend `{other}`; use webgpu or cpu"
                )))
            }
        };
        Ok(Demo {
            engine: Rc::new(RefCell::new(engine)),
            backend,
        })
    }

    /// The backend that runs: `WebGPU (<adapter>)` or `CPU (wasm)`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The backbone's `config.json` as the model read it.
    #[wasm_bindgen(getter)]
    pub fn model_summary(&self) -> String {
        let engine = self.engine.borrow();
        let c = with_engine!(&*engine, e => e.config().clone());
        format!(
            "{} · d_model {} · {}+{} layers · vocab {}",
            c.model_type,
            c.d_model,
            c.num_layers,
            c.num_decoder_layers(),
            c.vocab_size
        )
    }

    /// Attaches an adapter from the bytes of `adapter_config.json` and `adapter.safetensors`
    /// (this toolkit's format or AdapterHub's); `name` overrides the task name in its config.
    /// Returns the name. A bad or mismatched file is an error and changes nothing.
    pub fn add_adapter(
        &self,
        name: Option<String>,
        config_json: &[u8],
        safetensors: Vec<u8>,
    ) -> Result<String, JsError> {
        let mut engine = self.engine.try_borrow_mut().map_err(|_| busy())?;
        with_engine!(&mut *engine, e => e.add_adapter(name.as_deref(), config_json, safetensors))
            .map_err(js_error)
    }

    /// The attached adapters, then the loaded hypernetwork's tasks.
    pub fn tasks(&self) -> Vec<String> {
        let engine = self.engine.borrow();
        with_engine!(&*engine, e => e.tasks())
    }

    /// Loads a hypernetwork from the bytes of `hypernetwork_config.json`,
    /// `hypernetwork.safetensors` and `task_embeddings.safetensors`; it must fit the backbone.
    /// Its tasks join `tasks()` (each adapter is generated when the task is chosen) and replace
    /// those of a hypernetwork loaded before. Returns its tasks. A bad file is an error naming
    /// it and changes nothing.
    pub fn load_hypernetwork(
        &self,
        config_json: Vec<u8>,
        hypernetwork: Vec<u8>,
        task_embeddings: Vec<u8>,
    ) -> Result<Vec<String>, JsError> {
        let mut engine = self.engine.try_borrow_mut().map_err(|_| busy())?;
        with_engine!(&mut *engine, e => e.load_hypernetwork(config_json, hypernetwork, task_embeddings))
            .map_err(js_error)
    }

    /// Switches to `task`'s adapter (`undefined`: the backbone alone). Resolves to the
    /// milliseconds its generation took for a hypernetwork task, `undefined` for an attached
    /// adapter (a lookup).
    pub fn set_task(&self, task: Option<String>) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let ms = switch(&engine, task.as_deref())
                .await
                .map_err(JsValue::from)?;
            Ok(ms.map_or(JsValue::UNDEFINED, JsValue::from_f64))
        })
    }

    /// Generates the adapter of `(1-alpha)·e_a + alpha·e_b` from the raw task embeddings of
    /// `task_a` and `task_b` (alpha in 0..1; 0 and 1 give exactly the two tasks' adapters) and
    /// switches to it; resolves to a [`Generated`] named `blend(a,b,alpha)`.
    pub fn blend(&self, task_a: String, task_b: String, alpha: f64) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let out = mix(&engine, &task_a, &task_b, alpha)
                .await
                .map_err(JsValue::from)?;
            Ok(out.into())
        })
    }

    /// Times greedy generation of `new_tokens` tokens from a synthetic `src_len`-token input,
    /// `repeats` times after one warm-up run; resolves to the seconds of each run.
    pub fn benchmark(&self, src_len: usize, new_tokens: usize, repeats: usize) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let seconds = bench(&engine, src_len, new_tokens, repeats)
                .await
                .map_err(JsValue::from)?;
            Ok(js_sys::Float64Array::from(seconds.as_slice()).into())
        })
    }

    /// Generates for `text` with the current adapter; resolves to a [`Generation`].
    pub fn generate(
        &self,
        text: String,
        max_new_tokens: usize,
        num_beams: usize,
    ) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let out = run(&engine, &text, max_new_tokens, num_beams)
                .await
                .map_err(JsValue::from)?;
            let note = out.truncated_from.map(|n| {
                format!(
                    "The input has {n} tokens: only its first {} and </s> were used (T5's \
                     {DEFAULT_MAX_SOURCE_LENGTH}-token source length).",
                    DEFAULT_MAX_SOURCE_LENGTH - 1
                )
            });
            Ok(Generation {
                text: out.text,
                ids: out.ids,
                note,
            }
            .into())
        })
    }
}

impl Demo {
    /// [`Demo::set_task`] for Rust callers (the wasm tests): the generation's milliseconds
    /// for a hypernetwork task.
    pub async fn set_task_output(&self, task: Option<&str>) -> Result<Option<f64>, JsError> {
        switch(&self.engine, task).await
    }

    /// [`Demo::blend`] for Rust callers.
    pub async fn blend_output(
        &self,
        task_a: &str,
        task_b: &str,
        alpha: f64,
    ) -> Result<Generated, JsError> {
        mix(&self.engine, task_a, task_b, alpha).await
    }

    /// [`Demo::benchmark`]'s work, for Rust callers.
    pub async fn benchmark_output(
        &self,
        src_len: usize,
        new_tokens: usize,
        repeats: usize,
    ) -> Result<Vec<f64>, JsError> {
        bench(&self.engine, src_len, new_tokens, repeats).await
    }

    /// [`Demo::generate`] for Rust callers (the wasm tests).
    pub async fn generate_output(
        &self,
        text: &str,
        max_new_tokens: usize,
        num_beams: usize,
    ) -> Result<Output, JsError> {
        run(&self.engine, text, max_new_tokens, num_beams).await
    }
}

/// Seconds of each of `repeats` timed generations, after one untimed run (WebGPU compiles its
/// shaders on first use).
// The borrow is the engine's lock: held across the awaits, it makes a call that would change the
// engine meanwhile (its `try_borrow_mut`) answer "busy".
#[allow(clippy::await_holding_refcell_ref)]
async fn bench(
    engine: &RefCell<AnyEngine>,
    src_len: usize,
    new_tokens: usize,
    repeats: usize,
) -> Result<Vec<f64>, JsError> {
    let engine = engine.try_borrow().map_err(|_| busy())?;
    let mut seconds = Vec::new();
    for i in 0..=repeats {
        let s = with_engine!(&*engine, e => e.time_generation(src_len, new_tokens).await)
            .map_err(js_error)?;
        if i > 0 {
            seconds.push(s);
        }
    }
    Ok(seconds)
}

// The borrow is the engine's lock, as in `bench`.
#[allow(clippy::await_holding_refcell_ref)]
async fn run(
    engine: &RefCell<AnyEngine>,
    text: &str,
    max_new_tokens: usize,
    num_beams: usize,
) -> Result<Output, JsError> {
    let engine = engine.try_borrow().map_err(|_| busy())?;
    with_engine!(&*engine, e => e.generate(text, max_new_tokens, num_beams).await).map_err(js_error)
}

// The mutable borrow is the engine's lock, as in `bench`: a generation or a switch meanwhile
// answers "busy".
#[allow(clippy::await_holding_refcell_ref)]
async fn switch(engine: &RefCell<AnyEngine>, task: Option<&str>) -> Result<Option<f64>, JsError> {
    let mut engine = engine.try_borrow_mut().map_err(|_| busy())?;
    with_engine!(&mut *engine, e => e.set_task(task).await).map_err(js_error)
}

// The borrow is the engine's lock, as in `switch`.
#[allow(clippy::await_holding_refcell_ref)]
async fn mix(
    engine: &RefCell<AnyEngine>,
    a: &str,
    b: &str,
    alpha: f64,
) -> Result<Generated, JsError> {
    let mut engine = engine.try_borrow_mut().map_err(|_| busy())?;
    let (name, ms) =
        with_engine!(&mut *engine, e => e.blend(a, b, alpha).await).map_err(js_error)?;
    Ok(Generated { name, ms })
}

thread_local! {
    /// The WebGPU adapter's name once burn's runtime is set up (it can be set up only once).
    static WEBGPU: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets up burn's wgpu runtime on the browser's WebGPU adapter, once per page or worker.
async fn init_webgpu(device: &burn::backend::wgpu::WgpuDevice) -> String {
    if let Some(name) = WEBGPU.with(|w| w.borrow().clone()) {
        return name;
    }
    let setup = burn::backend::wgpu::init_setup_async::<burn::backend::wgpu::graphics::WebGpu>(
        device,
        Default::default(),
    )
    .await;
    let info = setup.adapter.get_info();
    let name = if info.name.is_empty() {
        "WebGPU".to_string()
    } else {
        format!("WebGPU ({})", info.name)
    };
    WEBGPU.with(|w| *w.borrow_mut() = Some(name.clone()));
    name
}

fn busy() -> JsError {
    JsError::new("the model is busy; wait for the running generation to finish")
}

/// Panics show in the console with their message instead of `unreachable`.
fn console_error_panic_hook() {
    static SET: std::sync::Once = std::sync::Once::new();
    SET.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            web_sys::console::error_1(&JsValue::from_str(&info.to_string()));
        }));
    });
}
