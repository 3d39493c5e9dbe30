//! (IA)³ against HF PEFT 0.21.2 and the `adapters` library 1.3.0
//! (`tests/fixtures/make_ia3_fixtures.py`): logits, loss, the gradient of every vector and
//! greedy ids, on the CPU backend and on wgpu; a batch whose rows use two (IA)³ adapters and a
//! LoRA; saving in each library's format; merging; configs and files that are refused.

mod common;

use std::path::PathBuf;

use burn::prelude::*;
use common::*;
use t5_core::adapter::ia3::peft::tensor_name;
use t5_core::adapter::lora::site_name;
use t5_core::adapter::{load_adapter, save_adapter, AdapterSet, Adapters};
use t5_core::checkpoint::ModelDir;

fn ia3_dir() -> PathBuf {
    fixtures().join("ia3")
}

/// (directory under `ia3/`, base model): PEFT's, and one of the `adapters` library.
const CASES: [(&str, &str); 4] = [
    ("ia3-v1_0", "t5-v1_0"),
    ("ia3-v1_1", "t5-v1_1"),
    ("ia3-v1_0-b", "t5-v1_0"),
    ("adapterhub-ia3-v1_1", "t5-v1_1"),
];

fn forward_and_grads_match<B: t5_core::fused::FusedAutodiff>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(ia3_dir().join(case).join("golden.json"));
        let mut dir = ModelDir::open(model_dir(base)).unwrap();
        dir.config.dropout_rate = 0.0;
        let model = dir.load_model::<B>(device).unwrap().no_grad();
        let mut set = AdapterSet::default();
        set.insert(load_adapter::<B>(&ia3_dir().join(case), &dir.config, device).unwrap());
        let adapters = Adapters::task(&set, &set.tasks[0].name).unwrap();

        let ids = int_tensor::<B>(&g.ints("input_ids"), device);
        let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
        let labels = int_tensor::<B>(&g.ints("labels"), device);
        let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
        let loss = host(out.loss.clone())[0];
        check_logits(out.logits, loss, &g, case);

        let grads = out.loss.backward();
        let full = g.get("grads").as_object().unwrap();
        let norms = g.get("grad_norm").as_object().unwrap();
        let sums = g.get("grad_sum").as_object().unwrap();
        let task = &set.tasks[0];
        let mut seen = 0;
        for (site, v) in task.scales.iter().enumerate() {
            let Some(v) = v else { continue };
            let name = tensor_name(&task.format, &site_name(&dir.config, site).unwrap());
            let values = host(v.l.val().grad(&grads).expect("a vector has a gradient"));
            let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
            let sum = values.iter().sum::<f32>();
            let want = |m: &serde_json::Map<String, serde_json::Value>| {
                m.get(&name)
                    .unwrap_or_else(|| panic!("{case}: no golden {name}"))
                    .as_f64()
                    .unwrap() as f32
            };
            close(norm, want(norms), &format!("{case}: grad norm of {name}"));
            close(sum, want(sums), &format!("{case}: grad sum of {name}"));
            if let Some(want) = full.get(&name) {
                let diff = max_abs_diff(&values, &flatten_f32(want).0);
                assert!(diff <= TOL, "{case}: gradient of {name} differs by {diff}");
            }
            seen += 1;
        }
        assert_eq!(seen, norms.len(), "{case}: number of vectors");
    }
}

fn greedy_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(ia3_dir().join(case).join("golden.json"));
        adapter_greedy_matches::<B>(&ia3_dir().join(case), base, &g, device);
    }
}

/// One batch whose rows use two (IA)³ adapters and a LoRA equals each row run alone through
/// its adapter in PEFT, in a forward pass and in greedy generation; beam search keeps each row
/// on its adapter.
fn mixed_batch_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    let g = json(ia3_dir().join("golden_mixed.json"));
    let dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    let model = dir.load_model::<B>(device).unwrap();
    let mut set = AdapterSet::default();
    for path in [
        ia3_dir().join("ia3-v1_0"),
        ia3_dir().join("ia3-v1_0-b"),
        fixtures().join("peft/lora-v1_0-b"),
    ] {
        set.insert(load_adapter::<B>(&path, &dir.config, device).unwrap());
    }
    let rows: Vec<String> = g.texts("adapter_names");
    let names: Vec<Option<&str>> = rows.iter().map(|n| Some(n.as_str())).collect();
    check_mixed_batch(&model, &set, &names, &g, "mixed (IA)³ and LoRA batch");
}

mod cpu {
    type B = t5_core::backend::Cpu;

    #[test]
    fn forward_and_grads_match() {
        super::forward_and_grads_match::<burn::backend::Autodiff<B>>(&Default::default());
    }

    #[test]
    fn greedy_matches() {
        super::greedy_matches::<B>(&Default::default());
    }

    #[test]
    fn mixed_batch_matches() {
        super::mixed_batch_matches::<B>(&Default::default());
    }
}

mod wgpu {
    type B = t5_core::backend::Wgpu;

    #[test]
    fn forward_and_grads_match() {
        super::forward_and_grads_match::<burn::backend::Autodiff<B>>(&Default::default());
    }

    #[test]
    fn greedy_matches() {
        super::greedy_matches::<B>(&Default::default());
    }

    #[test]
    fn mixed_batch_matches() {
        super::mixed_batch_matches::<B>(&Default::default());
    }
}

type Cpu = t5_core::backend::Cpu;

/// Saved here, an (IA)³ adapter is its library's files again: the same tensors under the same
/// names and shapes, and the config the library wrote.
#[test]
fn an_ia3_adapter_saves_back_in_its_format() {
    for (case, base, file) in [
        ("ia3-v1_1", "t5-v1_1", "adapter_model.safetensors"),
        ("adapterhub-ia3-v1_1", "t5-v1_1", "adapter.safetensors"),
    ] {
        let dir = ModelDir::open(model_dir(base)).unwrap();
        let src = ia3_dir().join(case);
        let mut set = AdapterSet::<Cpu>::default();
        set.insert(load_adapter(&src, &dir.config, &Default::default()).unwrap());
        let out = tempfile::tempdir().unwrap();
        let name = set.tasks[0].name.clone();
        save_adapter(&set, &name, &dir.config, out.path()).unwrap();
        same_safetensors(&src.join(file), &out.path().join(file));
        let read = |p: PathBuf| std::fs::read(p).unwrap();
        let config = |d: &std::path::Path| -> serde_json::Value {
            serde_json::from_slice(&read(d.join("adapter_config.json"))).unwrap()
        };
        assert_eq!(config(&src), config(out.path()), "{case}");
    }
}

fn load_err(adapter: &std::path::Path, base: &str) -> String {
    let dir = ModelDir::open(model_dir(base)).unwrap();
    load_adapter::<Cpu>(adapter, &dir.config, &Default::default())
        .expect_err("refused")
        .to_string()
}

/// An option that is not implemented is refused by name; another model's (IA)³ adapter, a
/// vector of the wrong size and a truncated file are one line naming the file.
#[test]
fn bad_ia3_configs_and_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        ia3_dir().join("unsupported/modules_to_save/adapter_config.json"),
        dir.path().join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("adapter_model.safetensors"), b"").unwrap();
    let err = load_err(dir.path(), "t5-v1_0");
    assert!(
        err.contains("`modules_to_save`") && err.contains("adapter_config.json"),
        "{err}"
    );

    // ia3-v1_1 scales decoder block 2 and wi_0 / wi_1, which t5-v1_0 lacks.
    let err = load_err(&ia3_dir().join("ia3-v1_1"), "t5-v1_0");
    assert!(err.contains("adapter_model.safetensors"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    // ia3-v1_0's vectors under a config that makes `k` a feed-forward module: wrong shapes.
    let src = ia3_dir().join("ia3-v1_0");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("adapter_config.json")).unwrap()).unwrap();
    config["feedforward_modules"] = serde_json::json!(["k", "wo"]);
    std::fs::write(dir.path().join("adapter_config.json"), config.to_string()).unwrap();
    let bytes = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
    std::fs::write(dir.path().join("adapter_model.safetensors"), &bytes).unwrap();
    let err = load_err(dir.path(), "t5-v1_0");
    assert!(
        err.contains("adapter_model.safetensors") && err.contains("SelfAttention.k.ia3_l"),
        "{err}"
    );

    std::fs::copy(
        src.join("adapter_config.json"),
        dir.path().join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("adapter_model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = load_err(dir.path(), "t5-v1_0");
    assert!(err.contains("adapter_model.safetensors"), "{err}");
}

/// An (IA)³ adapter folded into the backbone (PEFT's `merge_and_unload`): the merged weights
/// are PEFT's, and the plain merged model gives the logits of the model with the adapter.
#[test]
fn a_merged_ia3_adapter_is_the_model_with_the_adapter() {
    for (case, base) in CASES {
        let g = json(ia3_dir().join(case).join("golden.json"));
        let dir = ModelDir::open(model_dir(base)).unwrap();
        let device = Default::default();
        let model = dir.load_model::<Cpu>(&device).unwrap();
        let adapter = load_adapter::<Cpu>(&ia3_dir().join(case), &dir.config, &device).unwrap();
        let merged = t5_core::model::merge_adapter(model, &adapter).unwrap();
        let tensors = t5_core::model_dir::export::hf_tensors(&merged);
        let empty = serde_json::Map::new();
        let sums = g.0["merged_weight_sum"].as_object().unwrap_or(&empty);
        let norms = g.0["merged_weight_norm"].as_object().unwrap_or(&empty);
        let mut checked = 0;
        for (name, _, values) in &tensors {
            let Some(sum) = sums.get(name) else { continue };
            let got = values.iter().map(|&v| v as f64).sum::<f64>();
            close(
                got as f32,
                sum.as_f64().unwrap() as f32,
                &format!("{case}: merged {name} sum"),
            );
            let norm = values
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            close(
                norm as f32,
                norms[name].as_f64().unwrap() as f32,
                &format!("{case}: merged {name} norm"),
            );
            checked += 1;
        }
        assert_eq!(checked, sums.len(), "{case}: merged weights");
        let ids = int_tensor::<Cpu>(&g.ints("input_ids"), &device);
        let mask = int_tensor::<Cpu>(&g.ints("attention_mask"), &device);
        let labels = int_tensor::<Cpu>(&g.ints("labels"), &device);
        let out = merged.forward_with_labels(ids, mask, labels, 0.0, None);
        check_logits(out.logits, host(out.loss)[0], &g, &format!("{case} merged"));
    }
}
