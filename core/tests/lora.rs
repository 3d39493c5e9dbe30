//! LoRA against HF PEFT 0.21.2 (`tests/fixtures/make_peft_fixtures.py`): logits, loss, the
//! gradient of every LoRA tensor and greedy ids, on the CPU backend and on wgpu; a batch whose
//! rows use different LoRAs (and none) against PEFT's `adapter_names=`; saving in PEFT's format;
//! configs and files that are refused.

mod common;

use std::path::PathBuf;

use burn::prelude::*;
use common::*;
use t5_core::adapter::lora::lora_tensors;
use t5_core::adapter::{load_adapter, save_adapter, AdapterSet, Adapters};
use t5_core::checkpoint::ModelDir;

fn peft_dir() -> PathBuf {
    fixtures().join("peft")
}

/// (LoRA directory under `peft/`, base model): PEFT's, and one of the `adapters` library.
const CASES: [(&str, &str); 4] = [
    ("lora-v1_0", "t5-v1_0"),
    ("lora-v1_1", "t5-v1_1"),
    ("lora-v1_0-b", "t5-v1_0"),
    ("adapterhub-lora-v1_1", "t5-v1_1"),
];

fn forward_and_grads_match<B: t5_core::fused::FusedAutodiff>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(peft_dir().join(case).join("golden.json"));
        let mut dir = ModelDir::open(model_dir(base)).unwrap();
        // The reference ran in eval mode (no dropout) with gradients on.
        dir.config.dropout_rate = 0.0;
        let model = dir.load_model::<B>(device).unwrap().no_grad();
        let mut set = AdapterSet::default();
        let mut lora = load_adapter::<B>(&peft_dir().join(case), &dir.config, device).unwrap();
        for l in lora.linears.iter_mut().flatten() {
            l.dropout.prob = 0.0;
        }
        set.insert(lora);
        let adapters = Adapters::task(&set, &set.tasks[0].name).unwrap();

        let ids = int_tensor::<B>(&g.ints("input_ids"), device);
        let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
        let labels = int_tensor::<B>(&g.ints("labels"), device);
        let enc = model.encode(ids.clone(), mask.clone(), Some(&adapters));
        let (want, _) = g.floats("encoder_last_hidden_state_norm");
        let norms = host(enc.powi_scalar(2).sum_dim(2).sqrt());
        for (got, want) in norms.iter().zip(&want) {
            close(*got, *want, &format!("{case}: encoder norm"));
        }
        let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
        let loss = host(out.loss.clone())[0];
        check_logits(out.logits, loss, &g, case);

        let grads = out.loss.backward();
        let full = g.get("grads").as_object().unwrap();
        let norms = g.get("grad_norm").as_object().unwrap();
        let sums = g.get("grad_sum").as_object().unwrap();
        let task = &set.tasks[0];
        let named = lora_tensors(&task.linears, &task.format, &dir.config);
        assert_eq!(named.len(), norms.len(), "{case}: number of LoRA tensors");
        for (name, tensor) in named {
            let grad = tensor.grad(&grads).expect("a LoRA tensor has a gradient");
            // PEFT's layout is the transpose of burn's.
            let values = host(grad.transpose());
            let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
            let sum = values.iter().sum::<f32>();
            close(
                norm,
                norms[&name].as_f64().unwrap() as f32,
                &format!("{case}: grad norm of {name}"),
            );
            close(
                sum,
                sums[&name].as_f64().unwrap() as f32,
                &format!("{case}: grad sum of {name}"),
            );
            if let Some(want) = full.get(&name) {
                let (want, _) = flatten_f32(want);
                let diff = max_abs_diff(&values, &want);
                assert!(diff <= TOL, "{case}: gradient of {name} differs by {diff}");
            }
        }
        assert!(
            model.encoder.block[0]
                .self_attention
                .self_attention
                .q
                .weight
                .val()
                .grad(&grads)
                .is_none(),
            "{case}: the frozen backbone got a gradient"
        );
    }
}

fn greedy_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(peft_dir().join(case).join("golden.json"));
        adapter_greedy_matches::<B>(&peft_dir().join(case), base, &g, device);
    }
}

/// One batch whose rows use two LoRAs and the plain backbone equals PEFT's `adapter_names=`,
/// in a forward pass and in greedy generation; beam search keeps each row on its LoRA.
fn mixed_batch_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    let g = json(peft_dir().join("golden_mixed.json"));
    let dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    let model = dir.load_model::<B>(device).unwrap();
    let mut set = AdapterSet::default();
    for case in ["lora-v1_0", "lora-v1_0-b"] {
        set.insert(load_adapter::<B>(&peft_dir().join(case), &dir.config, device).unwrap());
    }
    let rows: Vec<String> = g.texts("adapter_names");
    let names: Vec<Option<&str>> = rows
        .iter()
        .map(|n| (n != "__base__").then_some(n.as_str()))
        .collect();
    check_mixed_batch(&model, &set, &names, &g, "mixed LoRA batch");
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

/// Saved here, a LoRA is its library's files again: the same tensors under the same names, and
/// the config the library wrote.
#[test]
fn a_lora_saves_back_in_its_format() {
    for (case, base, file) in [
        ("lora-v1_0", "t5-v1_0", "adapter_model.safetensors"),
        ("adapterhub-lora-v1_1", "t5-v1_1", "adapter.safetensors"),
    ] {
        saves_back(case, base, file);
    }
}

fn saves_back(case: &str, base: &str, file: &str) {
    let dir = ModelDir::open(model_dir(base)).unwrap();
    let device = Default::default();
    let src = peft_dir().join(case);
    let mut set = AdapterSet::<Cpu>::default();
    set.insert(load_adapter(&src, &dir.config, &device).unwrap());
    let out = tempfile::tempdir().unwrap();
    let name = set.tasks[0].name.clone();
    save_adapter(&set, &name, &dir.config, out.path()).unwrap();
    same_safetensors(&src.join(file), &out.path().join(file));
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let config = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&read(d.join("adapter_config.json"))).unwrap()
    };
    assert_eq!(config(&src), config(out.path()));
}

fn load_err(adapter: &std::path::Path, base: &str) -> String {
    let dir = ModelDir::open(model_dir(base)).unwrap();
    load_adapter::<Cpu>(adapter, &dir.config, &Default::default())
        .expect_err("refused")
        .to_string()
}

/// PEFT options that change the computation and are not implemented are refused by name.
#[test]
fn unsupported_peft_options_are_refused_by_name() {
    for (case, key) in [
        ("dora", "use_dora"),
        ("bias_all", "bias"),
        ("layers_to_transform", "layers_to_transform"),
        ("modules_to_save", "modules_to_save"),
        ("init_pissa", "init_lora_weights"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            peft_dir()
                .join("unsupported")
                .join(case)
                .join("adapter_config.json"),
            dir.path().join("adapter_config.json"),
        )
        .unwrap();
        std::fs::write(dir.path().join("adapter_model.safetensors"), b"").unwrap();
        let err = load_err(dir.path(), "t5-v1_0");
        assert!(
            err.contains(&format!("`{key}`")) && err.contains("adapter_config.json"),
            "{case}: {err}"
        );
    }
    // `shared` is the embedding table: not a linear layer this LoRA adapts.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        peft_dir().join("unsupported/embedding/adapter_config.json"),
        dir.path().join("adapter_config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("adapter_model.safetensors"), b"").unwrap();
    let err = load_err(dir.path(), "t5-v1_0");
    assert!(
        err.contains("matches none of the model's linear layers"),
        "{err}"
    );
}

/// Another model's LoRA, a rank that does not match the config, and a truncated file are one
/// line naming the file and the mismatch.
#[test]
fn bad_lora_files_name_the_file_and_the_mismatch() {
    // lora-v1_1 targets decoder block 2, which t5-v1_0 lacks; its tensors have v1_1's names.
    let err = load_err(&peft_dir().join("lora-v1_1"), "t5-v1_0");
    assert!(err.contains("adapter_model.safetensors"), "{err}");
    assert!(!err.contains('\n'), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let src = peft_dir().join("lora-v1_0");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("adapter_config.json")).unwrap()).unwrap();
    config["r"] = 8.into();
    std::fs::write(dir.path().join("adapter_config.json"), config.to_string()).unwrap();
    std::fs::copy(
        src.join("adapter_model.safetensors"),
        dir.path().join("adapter_model.safetensors"),
    )
    .unwrap();
    let err = load_err(dir.path(), "t5-v1_0");
    assert!(
        err.contains("adapter_model.safetensors") && err.contains("lora_A"),
        "{err}"
    );

    let bytes = std::fs::read(src.join("adapter_model.safetensors")).unwrap();
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

/// A LoRA folded into the backbone (PEFT's `merge_and_unload`): the merged weights are PEFT's,
/// and the plain merged model gives the logits of the model with the LoRA.
#[test]
fn a_merged_lora_is_the_model_with_the_lora() {
    for (case, base) in CASES {
        let g = json(peft_dir().join(case).join("golden.json"));
        let dir = ModelDir::open(model_dir(base)).unwrap();
        let device = Default::default();
        let model = dir.load_model::<Cpu>(&device).unwrap();
        let lora = load_adapter::<Cpu>(&peft_dir().join(case), &dir.config, &device).unwrap();
        let merged = t5_core::model::merge_adapter(model, &lora).unwrap();
        let tensors = t5_core::model_dir::export::hf_tensors(&merged);
        // PEFT's merged weights (the `adapters` case is checked by its logits alone).
        let empty = serde_json::Map::new();
        let sums = g.0["merged_weight_sum"].as_object().unwrap_or(&empty);
        let norms = g.0["merged_weight_norm"].as_object().unwrap_or(&empty);
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
        }
        assert_eq!(
            tensors
                .iter()
                .filter(|(n, ..)| sums.contains_key(n))
                .count(),
            sums.len()
        );
        let ids = int_tensor::<Cpu>(&g.ints("input_ids"), &device);
        let mask = int_tensor::<Cpu>(&g.ints("attention_mask"), &device);
        let labels = int_tensor::<Cpu>(&g.ints("labels"), &device);
        let out = merged.forward_with_labels(ids, mask, labels, 0.0, None);
        check_logits(out.logits, host(out.loss)[0], &g, &format!("{case} merged"));
    }
}
