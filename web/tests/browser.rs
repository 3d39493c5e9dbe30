//! The demo's engine in a real browser (headless Chromium through wasm-bindgen-test): the
//! fixture model loaded from bytes generates the ids transformers generated, on the CPU (wasm)
//! and on WebGPU; adapters switch without reloading the backbone; bad files are error values; a
//! hypernetwork's generated adapters (per task, and blends at both ends) generate the ids
//! PyTorch generated.
//! Run: `wasm-pack test --headless --chrome web` (flags in `web/webdriver.json`).
#![cfg(target_arch = "wasm32")]

use serde_json::Value;
use t5_web::Demo;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/t5-v1_1/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../tests/fixtures/t5-v1_1/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../tests/fixtures/t5-v1_1/tokenizer.json");
const GOLDEN: &str = include_str!("../../tests/fixtures/t5-v1_1/golden.json");
const ADAPTER_CONFIG: &[u8] =
    include_bytes!("../../tests/fixtures/adapters/houlsby-v1_1/adapter_config.json");
const ADAPTER_WEIGHTS: &[u8] =
    include_bytes!("../../tests/fixtures/adapters/houlsby-v1_1/adapter.safetensors");
const ADAPTER_GOLDEN: &str = include_str!("../../tests/fixtures/adapters/houlsby-v1_1/golden.json");
/// What the fixtures generated with.
const MAX_NEW_TOKENS: usize = 16;

/// Python's greedy ids of each text: without the decoder start token and the padding after EOS.
fn expected(golden: &str, key: &str) -> (Vec<String>, Vec<Vec<u32>>) {
    let g: Value = serde_json::from_str(golden).unwrap();
    (texts(&g), greedy_rows(&g[key]))
}

fn texts(golden: &Value) -> Vec<String> {
    golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Rows of generated ids, each without its decoder start token and the padding after EOS.
fn greedy_rows(rows: &Value) -> Vec<Vec<u32>> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row: Vec<u32> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let end = row
                .iter()
                .position(|&t| t == 1)
                .map_or(row.len(), |p| p + 1);
            row[1..end].to_vec()
        })
        .collect()
}

async fn load(backend: &str) -> Demo {
    Demo::load(
        CONFIG.to_vec(),
        WEIGHTS.to_vec(),
        TOKENIZER.to_vec(),
        backend.to_string(),
    )
    .await
    .unwrap_or_else(|_| panic!("loading the fixture model on {backend}"))
}

async fn greedy(demo: &Demo, text: &str) -> Vec<u32> {
    match demo.generate_output(text, MAX_NEW_TOKENS, 1).await {
        Ok(out) => out.ids,
        Err(_) => panic!("generation failed on {}", demo.backend()),
    }
}

/// Greedy ids equal transformers' for the backbone and for the adapter; switching to the
/// adapter changes the output, switching back restores it exactly.
async fn backbone_and_adapter_match_python(backend: &str) {
    let demo = load(backend).await;
    let (texts, base) = expected(GOLDEN, "greedy_single");
    for (text, want) in texts.iter().zip(&base) {
        assert_eq!(&greedy(&demo, text).await, want, "{backend}: {text}");
    }

    let name = demo
        .add_adapter(None, ADAPTER_CONFIG, ADAPTER_WEIGHTS.to_vec())
        .unwrap_or_else(|_| panic!("adapter loads"));
    assert_eq!(demo.tasks(), vec![name.clone()]);
    demo.set_task_output(Some(&name)).await.ok().unwrap();
    let (adapter_texts, adapted) = expected(ADAPTER_GOLDEN, "greedy");
    assert_eq!(adapter_texts, texts);
    for (i, (text, want)) in texts.iter().zip(&adapted).enumerate() {
        let got = greedy(&demo, text).await;
        assert_eq!(&got, want, "{backend} with adapter: {text}");
        if i == 0 {
            assert_ne!(got, base[0], "the adapter changes the output");
        }
    }
    demo.set_task_output(None).await.ok().unwrap();
    assert_eq!(
        greedy(&demo, &texts[0]).await,
        base[0],
        "{backend}: back to the backbone"
    );
    demo.set_task_output(Some(&name)).await.ok().unwrap();
    assert_eq!(
        greedy(&demo, &texts[0]).await,
        adapted[0],
        "{backend}: and to the adapter"
    );
}

/// A PEFT LoRA dropped on the page (its files name no task): attached as `lora`, then `lora-2`,
/// generating the ids PEFT generated.
#[wasm_bindgen_test]
async fn a_peft_lora_generates_the_ids_peft_generates() {
    let demo = load("cpu").await;
    let config = include_bytes!("../../tests/fixtures/peft/lora-v1_1/adapter_config.json");
    let weights = include_bytes!("../../tests/fixtures/peft/lora-v1_1/adapter_model.safetensors");
    let golden = include_str!("../../tests/fixtures/peft/lora-v1_1/golden.json");
    let name = demo
        .add_adapter(None, config, weights.to_vec())
        .ok()
        .unwrap();
    assert_eq!(name, "lora");
    let again = demo
        .add_adapter(None, config, weights.to_vec())
        .ok()
        .unwrap();
    assert_eq!(again, "lora-2");
    demo.set_task_output(Some(&name)).await.ok().unwrap();
    let (texts, want) = expected(golden, "greedy");
    for (text, want) in texts.iter().zip(&want) {
        assert_eq!(&greedy(&demo, text).await, want, "LoRA: {text}");
    }
}

/// An (IA)³ adapter saved by PEFT (attached as `ia3`) and a Compacter++ saved by the adapters
/// library (attached under its name) generate the ids their libraries generated.
#[wasm_bindgen_test]
async fn ia3_and_compacter_adapters_generate_their_libraries_ids() {
    let demo = load("cpu").await;
    let cases: [(&[u8], &[u8], &str, &str); 2] = [
        (
            include_bytes!("../../tests/fixtures/ia3/ia3-v1_1/adapter_config.json"),
            include_bytes!("../../tests/fixtures/ia3/ia3-v1_1/adapter_model.safetensors"),
            include_str!("../../tests/fixtures/ia3/ia3-v1_1/golden.json"),
            "ia3",
        ),
        (
            include_bytes!("../../tests/fixtures/compacter/compacterpp-v1_1/adapter_config.json"),
            include_bytes!("../../tests/fixtures/compacter/compacterpp-v1_1/adapter.safetensors"),
            include_str!("../../tests/fixtures/compacter/compacterpp-v1_1/golden.json"),
            "ah_compacterpp",
        ),
    ];
    for (config, weights, golden, want_name) in cases {
        let name = demo
            .add_adapter(None, config, weights.to_vec())
            .ok()
            .unwrap();
        assert_eq!(name, want_name);
        demo.set_task_output(Some(&name)).await.ok().unwrap();
        let (texts, want) = expected(golden, "greedy");
        for (text, want) in texts.iter().zip(&want) {
            assert_eq!(&greedy(&demo, text).await, want, "{name}: {text}");
        }
    }
}

#[wasm_bindgen_test]
async fn cpu_generates_the_ids_transformers_generates() {
    backbone_and_adapter_match_python("cpu").await;
}

#[wasm_bindgen_test]
async fn webgpu_generates_the_ids_transformers_generates() {
    // web/webdriver.json starts Chromium with --enable-unsafe-webgpu, which gives an adapter
    // (SwiftShader when there is no GPU); without one this test fails rather than skips.
    let demo = load("webgpu").await;
    assert!(demo.backend().starts_with("WebGPU"), "{}", demo.backend());
    drop(demo);
    backbone_and_adapter_match_python("webgpu").await;
}

#[wasm_bindgen_test]
async fn bad_files_are_error_values_and_change_nothing() {
    let demo = load("cpu").await;
    let (texts, base) = expected(GOLDEN, "greedy_single");
    // A truncated adapter.safetensors.
    let cut = ADAPTER_WEIGHTS[..ADAPTER_WEIGHTS.len() / 2].to_vec();
    assert!(demo.add_adapter(None, ADAPTER_CONFIG, cut).is_err());
    // A config that is not JSON, and an adapter made for another model.
    assert!(demo
        .add_adapter(None, b"{not json", ADAPTER_WEIGHTS.to_vec())
        .is_err());
    let other = include_bytes!("../../tests/fixtures/adapters/pfeiffer-v1_0/adapter.safetensors");
    let other_config =
        include_bytes!("../../tests/fixtures/adapters/pfeiffer-v1_0/adapter_config.json");
    assert!(demo
        .add_adapter(None, other_config, other.to_vec())
        .is_err());
    assert!(demo.tasks().is_empty());
    // An unknown task, and a corrupt backbone.
    assert!(demo.set_task_output(Some("nope")).await.is_err());
    assert_eq!(greedy(&demo, &texts[0]).await, base[0]);
    let broken = Demo::load(
        CONFIG.to_vec(),
        WEIGHTS[..1000].to_vec(),
        TOKENIZER.to_vec(),
        "cpu".into(),
    )
    .await;
    assert!(broken.is_err());
}

/// The `tokenizer.json` files on which the fuzzers found `tokenizers` panicking: a panic aborts
/// in wasm (a dead worker), so these must be refused before `tokenizers` loads them.
#[wasm_bindgen_test]
async fn tokenizers_that_crash_the_tokenizers_crate_are_error_values() {
    let files: [&[u8]; 3] = [
        include_bytes!(
            "../../fuzz/regressions/tokenizer_json/crash-9b20c8bd8045615800a57be4a378ec8ab97a0a0d"
        ),
        include_bytes!(
            "../../fuzz/regressions/tokenizer_json/crash-c3fb4f52a6dbba00dd7a28ee90fadc09cd336705"
        ),
        include_bytes!(
            "../../fuzz/regressions/tokenizer_json/crash-c66e6c43f416d7eaeb491b40ea7f06b27db002c0"
        ),
    ];
    for tokenizer in files {
        let demo = Demo::load(
            CONFIG.to_vec(),
            WEIGHTS.to_vec(),
            tokenizer.to_vec(),
            "cpu".into(),
        );
        let e = message(
            demo.await
                .err()
                .expect("a malformed tokenizer.json is refused"),
        );
        assert!(e.contains("tokenizer"), "{e}");
    }
}

/// Issue 14 in the page: a huge input is cut to T5's source length and said so (not a dead
/// worker), options out of range and nonsense configs are error values naming the key.
#[wasm_bindgen_test]
async fn huge_inputs_are_cut_and_bad_numbers_are_error_values() {
    let demo = load("cpu").await;
    let huge = format!(
        "translate English to German: {}",
        "the cat sat on the mat. ".repeat(4200)
    );
    let out = demo
        .generate_output(&huge, 4, 1)
        .await
        .unwrap_or_else(|_| panic!("a huge input generates"));
    assert!(
        out.truncated_from.is_some_and(|n| n > 512),
        "{:?}",
        out.truncated_from
    );
    let err = demo
        .generate_output("hi", 4, 100_000)
        .await
        .err()
        .map(message);
    assert!(
        err.as_deref().is_some_and(|e| e.contains("`num_beams`")),
        "{err:?}"
    );
    let err = demo
        .benchmark_output(1_000_000, 4, 1)
        .await
        .err()
        .map(message);
    assert!(
        err.as_deref().is_some_and(|e| e.contains("source length")),
        "{err:?}"
    );
    let config = std::str::from_utf8(CONFIG).unwrap();
    for (from, to, key) in [
        ("\"num_layers\": 2", "\"num_layers\": 0", "`num_layers`"),
        (
            "\"num_layers\": 2",
            "\"num_layers\": \"two\"",
            "`num_layers`",
        ),
    ] {
        assert!(config.contains(from), "{from}");
        let bad = config.replace(from, to).into_bytes();
        let loaded = Demo::load(bad, WEIGHTS.to_vec(), TOKENIZER.to_vec(), "cpu".into()).await;
        let err = loaded.err().map(message);
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("config.json") && e.contains(key)),
            "{err:?}"
        );
    }
}

// ------------------------------------------------------------------ hypernetworks --

/// A backbone fixture's `config.json`, `model.safetensors`, `tokenizer.json`.
type Backbone = (&'static [u8], &'static [u8], &'static [u8]);

const T5_V1_0: Backbone = (
    include_bytes!("../../tests/fixtures/t5-v1_0/config.json"),
    include_bytes!("../../tests/fixtures/t5-v1_0/model.safetensors"),
    include_bytes!("../../tests/fixtures/t5-v1_0/tokenizer.json"),
);
const T5_V1_1: Backbone = (CONFIG, WEIGHTS, TOKENIZER);

/// A hypernetwork fixture's three files and its `golden.json`.
struct Hyper {
    config: &'static [u8],
    weights: &'static [u8],
    embeddings: &'static [u8],
    golden: &'static str,
}

macro_rules! hyper_fixture {
    ($case:literal) => {
        Hyper {
            config: include_bytes!(concat!(
                "../../tests/fixtures/hyper/",
                $case,
                "/hypernetwork_config.json"
            )),
            weights: include_bytes!(concat!(
                "../../tests/fixtures/hyper/",
                $case,
                "/hypernetwork.safetensors"
            )),
            embeddings: include_bytes!(concat!(
                "../../tests/fixtures/hyper/",
                $case,
                "/task_embeddings.safetensors"
            )),
            golden: include_str!(concat!(
                "../../tests/fixtures/hyper/",
                $case,
                "/golden.json"
            )),
        }
    };
}

/// HyperFormer++ on t5-v1_0: its tasks' greedy ids are alike.
const HYPERFORMER_PP: Hyper = hyper_fixture!("hyperformer++");
/// HyperFormer++ with a task projector on t5-v1_1: its tasks' greedy ids differ.
const HYPERFORMER_PP_OPTIONS: Hyper = hyper_fixture!("hyperformer++-options");

async fn load_backbone((config, weights, tokenizer): Backbone) -> Demo {
    Demo::load(
        config.to_vec(),
        weights.to_vec(),
        tokenizer.to_vec(),
        "cpu".into(),
    )
    .await
    .unwrap_or_else(|_| panic!("loading a fixture backbone"))
}

fn load_hyper(demo: &Demo, h: &Hyper) -> Result<Vec<String>, String> {
    demo.load_hypernetwork(h.config.to_vec(), h.weights.to_vec(), h.embeddings.to_vec())
        .map_err(message)
}

fn message(e: JsError) -> String {
    use wasm_bindgen::JsCast;
    String::from(JsValue::from(e).unchecked_into::<js_sys::Error>().message())
}

async fn greedy_all(demo: &Demo, texts: &[String]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for text in texts {
        out.push(greedy(demo, text).await);
    }
    out
}

/// Choosing each task generates its adapter, whose greedy ids equal PyTorch's; the blends at
/// α = 0 and α = 1 generate exactly the two tasks' ids.
async fn generated_adapters_match_pytorch(backbone: Backbone, h: &Hyper, tasks_differ: bool) {
    let demo = load_backbone(backbone).await;
    let g: Value = serde_json::from_str(h.golden).unwrap();
    let case = g["case"].as_str().unwrap().to_string();
    let tasks = load_hyper(&demo, h).unwrap();
    assert_eq!(tasks, ["rte", "sst2"], "{case}");
    assert_eq!(demo.tasks(), tasks, "{case}");
    let texts = texts(&g);
    let base = greedy_all(&demo, &texts).await;
    let mut per_task = Vec::new();
    for task in &tasks {
        let ms = demo.set_task_output(Some(task)).await.ok().unwrap();
        assert!(ms.is_some_and(|ms| ms >= 0.0), "{case}/{task}: {ms:?}");
        let got = greedy_all(&demo, &texts).await;
        assert_eq!(
            got,
            greedy_rows(&g["runs"][task]["greedy"]),
            "{case}/{task}"
        );
        assert_ne!(got, base, "{case}/{task}: the adapter changes the output");
        per_task.push(got);
    }
    assert_eq!(per_task[0] != per_task[1], tasks_differ, "{case}");
    for (alpha, want) in [(0.0, &per_task[0]), (1.0, &per_task[1])] {
        let out = demo.blend_output("rte", "sst2", alpha).await.ok().unwrap();
        assert_eq!(out.name, format!("blend(rte,sst2,{alpha:.2})"));
        assert_eq!(
            &greedy_all(&demo, &texts).await,
            want,
            "{case}: {}",
            out.name
        );
    }
    let mid = demo.blend_output("rte", "sst2", 0.5).await.ok().unwrap();
    assert_eq!(mid.name, "blend(rte,sst2,0.50)");
    demo.set_task_output(None).await.ok().unwrap();
    assert_eq!(
        greedy_all(&demo, &texts).await,
        base,
        "{case}: back to the backbone"
    );
}

#[wasm_bindgen_test]
async fn generated_adapters_generate_the_ids_pytorch_generates() {
    generated_adapters_match_pytorch(T5_V1_0, &HYPERFORMER_PP, false).await;
    generated_adapters_match_pytorch(T5_V1_1, &HYPERFORMER_PP_OPTIONS, true).await;
}

#[wasm_bindgen_test]
async fn hypernetwork_errors_name_the_file_or_task() {
    let demo = load_backbone(T5_V1_0).await;
    let h = &HYPERFORMER_PP;
    let blend = demo.blend_output("rte", "sst2", 0.5).await.map(|_| ());
    assert!(message(blend.unwrap_err()).contains("no hypernetwork"));
    // A truncated hypernetwork.safetensors, a config that is not JSON, and a hypernetwork made
    // for another backbone: each names its file and changes nothing.
    let weights = HYPERFORMER_PP.weights;
    let cut = Hyper {
        weights: &weights[..weights.len() / 2],
        ..HYPERFORMER_PP
    };
    let err = load_hyper(&demo, &cut).unwrap_err();
    assert!(err.contains("hypernetwork.safetensors"), "{err}");
    let not_json = Hyper {
        config: b"{not json",
        ..HYPERFORMER_PP
    };
    let err = load_hyper(&demo, &not_json).unwrap_err();
    assert!(err.contains("hypernetwork_config.json"), "{err}");
    let err = load_hyper(&demo, &HYPERFORMER_PP_OPTIONS).unwrap_err();
    assert!(err.contains("hypernetwork_config.json"), "{err}");
    assert!(demo.tasks().is_empty());

    load_hyper(&demo, h).unwrap();
    demo.set_task_output(Some("rte")).await.ok().unwrap();
    let err = message(demo.set_task_output(Some("nope")).await.unwrap_err());
    assert!(err.contains("`nope`") && err.contains("rte, sst2"), "{err}");
    let err = demo.blend_output("rte", "nope", 0.5).await.map(|_| ());
    assert!(message(err.unwrap_err()).contains("`nope`"));
    let err = demo.blend_output("rte", "sst2", 1.5).await.map(|_| ());
    assert!(message(err.unwrap_err()).contains("alpha"));
    // Still on rte.
    let g: Value = serde_json::from_str(h.golden).unwrap();
    let rte = greedy_rows(&g["runs"]["rte"]["greedy"]);
    assert_eq!(greedy(&demo, &texts(&g)[2]).await, rte[2]);
}
