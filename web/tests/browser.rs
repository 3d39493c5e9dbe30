//! The demo's engine in a real browser (headless Chromium through wasm-bindgen-test): the
//! fixture model loaded from bytes generates the ids transformers generated, on the CPU (wasm)
//! and on WebGPU; adapters switch without reloading the backbone; bad files are error values.
//! Run: `wasm-pack test --headless --chrome web` (flags in `web/webdriver.json`).
#![cfg(target_arch = "wasm32")]

use serde_json::Value;
use t5_web::Demo;
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
    let texts = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let ids = g[key]
        .as_array()
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
        .collect();
    (texts, ids)
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
    demo.set_task(Some(name.clone())).ok().unwrap();
    let (adapter_texts, adapted) = expected(ADAPTER_GOLDEN, "greedy");
    assert_eq!(adapter_texts, texts);
    for (i, (text, want)) in texts.iter().zip(&adapted).enumerate() {
        let got = greedy(&demo, text).await;
        assert_eq!(&got, want, "{backend} with adapter: {text}");
        if i == 0 {
            assert_ne!(got, base[0], "the adapter changes the output");
        }
    }
    demo.set_task(None).ok().unwrap();
    assert_eq!(
        greedy(&demo, &texts[0]).await,
        base[0],
        "{backend}: back to the backbone"
    );
    demo.set_task(Some(name)).ok().unwrap();
    assert_eq!(
        greedy(&demo, &texts[0]).await,
        adapted[0],
        "{backend}: and to the adapter"
    );
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
    assert!(demo.set_task(Some("nope".into())).is_err());
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
