//! Adapter merging against the Python libraries (`tests/fixtures/make_merge_fixtures.py`): every
//! PEFT `add_weighted_adapter` combination (tensors ≤ 1e-5, the SVD ones compared as `B·A`
//! since singular vectors have sign freedom; DARE replays the masks PEFT drew), the `adapters`
//! library's `average_adapter`, and the logits of the model with each merged adapter (≤ 1e-4).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use t5_core::adapter::merge::{
    average_bottlenecks, average_weights, merge_loras, save_averaged, save_merged_lora,
    seeded_masks, Combination, LoraMerge, MajoritySign,
};
use t5_core::adapter::{load_adapter, AdapterSet, Adapters, TaskAdapter};
use t5_core::backend::Cpu;
use t5_core::checkpoint::ModelDir;
use t5_core::weights::Weights;

type B = Cpu;

fn merge_dir() -> PathBuf {
    fixtures().join("merge")
}

fn base() -> ModelDir {
    ModelDir::open(model_dir("t5-v1_0")).unwrap()
}

fn load(dir: &Path) -> TaskAdapter<B> {
    load_adapter::<B>(dir, &base().config, &Default::default()).unwrap()
}

/// Every tensor of a safetensors file, by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let mut w = Weights::from_file(path).unwrap();
    let names: Vec<(String, Vec<usize>)> = w
        .names()
        .iter()
        .map(|n| (n.to_string(), w.shape(n).unwrap().to_vec()))
        .collect();
    names
        .into_iter()
        .map(|(n, shape)| {
            let v = w.take_values(&n, &shape).unwrap();
            (n, v)
        })
        .collect()
}

/// The masks PEFT drew (uint8), by name.
fn recorded_masks(path: &Path) -> BTreeMap<String, Vec<bool>> {
    if !path.is_file() {
        return BTreeMap::new();
    }
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().iter().map(|&b| b != 0).collect()))
        .collect()
}

/// The model's logits with `dir`'s adapter against `golden.json`.
fn logits_match(dir: &Path, golden: &Golden, what: &str) {
    let device = Default::default();
    let mut model_dir = base();
    model_dir.config.dropout_rate = 0.0;
    let model = model_dir.load_model::<B>(&device).unwrap();
    let mut set = AdapterSet::default();
    set.insert(load_adapter::<B>(dir, &model_dir.config, &device).unwrap());
    let adapters = Adapters::task(&set, &set.tasks[0].name).unwrap();
    let ids = int_tensor::<B>(&golden.ints("input_ids"), &device);
    let mask = int_tensor::<B>(&golden.ints("attention_mask"), &device);
    let labels = int_tensor::<B>(&golden.ints("labels"), &device);
    let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
    check_logits(out.logits, host(out.loss)[0], golden, what);
}

/// `B·A` per module of a PEFT LoRA's tensors.
fn products(
    t: &BTreeMap<String, Vec<f32>>,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    for (name, a) in t.iter().filter(|(n, _)| n.ends_with("lora_A.weight")) {
        let module = name.trim_end_matches(".lora_A.weight");
        let b = &t[&format!("{module}.lora_B.weight")];
        let (r, d_in) = (shapes[name][0], shapes[name][1]);
        let d_out = b.len() / r;
        let mut p = vec![0.0f32; d_out * d_in];
        for i in 0..d_out {
            for j in 0..d_in {
                p[i * d_in + j] = (0..r).map(|k| b[i * r + k] * a[k * d_in + j]).sum();
            }
        }
        out.insert(module.to_string(), p);
    }
    out
}

const PEFT_CASES: [(&str, Combination); 8] = [
    ("linear", Combination::Linear),
    ("cat", Combination::Cat),
    ("svd", Combination::Svd),
    ("ties", Combination::Ties),
    ("dare_linear", Combination::DareLinear),
    ("dare_ties", Combination::DareTies),
    ("magnitude_prune", Combination::MagnitudePrune),
    ("ties_svd", Combination::TiesSvd),
];

fn options(g: &Golden, combination: Combination) -> LoraMerge {
    let o = g.get("options");
    LoraMerge {
        combination,
        // Python floats: read as f64.
        weights: g
            .get("weights")
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .collect(),
        svd_rank: o["svd_rank"].as_u64().map(|r| r as usize),
        svd_clamp: None,
        density: o["density"].as_f64(),
        majority_sign: match o["majority_sign_method"].as_str() {
            Some("frequency") => MajoritySign::Frequency,
            _ => MajoritySign::Total,
        },
    }
}

#[test]
fn every_peft_combination_equals_add_weighted_adapter() {
    let (a, b) = (
        load(&merge_dir().join("lora-a")),
        load(&merge_dir().join("lora-b")),
    );
    let model = base().config;
    for (case, combination) in PEFT_CASES {
        let want_dir = merge_dir().join(format!("peft-{case}"));
        let g = json(want_dir.join("golden.json"));
        let opts = options(&g, combination);
        let recorded = recorded_masks(&want_dir.join("masks.safetensors"));
        let mut used = 0;
        let mut replay = |name: &str, n: usize| {
            let m = recorded
                .get(name)
                .unwrap_or_else(|| panic!("{case}: no mask {name}"));
            assert_eq!(m.len(), n, "{case}: mask {name}");
            used += 1;
            m.clone()
        };
        let merged = merge_loras(&[&a, &b], &model, &opts, &mut replay).unwrap();
        assert_eq!(used, recorded.len(), "{case}: masks drawn");

        let want_config = json(want_dir.join("adapter_config.json"));
        for key in ["r", "lora_alpha"] {
            assert_eq!(merged.config[key], *want_config.get(key), "{case}: {key}");
        }
        let set = |v: &serde_json::Value| -> BTreeSet<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            set(&merged.config["target_modules"]),
            set(want_config.get("target_modules")),
            "{case}: target_modules"
        );

        let want = tensors(&want_dir.join("adapter_model.safetensors"));
        let got: BTreeMap<String, Vec<f32>> = merged
            .tensors
            .iter()
            .map(|(n, _, v)| (n.clone(), v.clone()))
            .collect();
        let shapes: BTreeMap<String, Vec<usize>> = merged
            .tensors
            .iter()
            .map(|(n, s, _)| (n.clone(), s.clone()))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{case}: names"
        );
        let (got, want) = if case.ends_with("svd") {
            (products(&got, &shapes), products(&want, &shapes))
        } else {
            (got, want)
        };
        for (name, values) in &got {
            let diff = max_abs_diff(values, &want[name]);
            assert!(diff <= 1e-5, "{case}: {name} differs by {diff}");
        }

        let out = tempfile::tempdir().unwrap();
        save_merged_lora(&merged, out.path()).unwrap();
        logits_match(out.path(), &g, &format!("peft-{case}"));
    }
}

#[test]
fn bottleneck_average_equals_average_adapter() {
    let dir = merge_dir();
    let g = json(dir.join("bn-average").join("golden.json"));
    let (a, b) = (load(&dir.join("bn-a")), load(&dir.join("bn-b")));
    let given: Vec<f64> = g
        .get("weights")
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    let weights = average_weights(Some(&given), 2, true).unwrap();
    let avg = average_bottlenecks(&[&a, &b], &weights, "avg").unwrap();
    let out = tempfile::tempdir().unwrap();
    save_averaged(avg, &base().config, out.path()).unwrap();
    let got = tensors(&out.path().join("adapter.safetensors"));
    let want = tensors(&dir.join("bn-average").join("adapter.safetensors"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, values) in &got {
        let diff = max_abs_diff(values, &want[name]);
        assert!(diff <= 1e-5, "{name} differs by {diff}");
    }
    let config = json(out.path().join("adapter_config.json"));
    assert_eq!(config.get("name"), &serde_json::json!("avg"));
    logits_match(out.path(), &g, "bn-average");
}

/// This project's format in, this project's format out: the seed's two task adapters.
#[test]
fn a_native_average_stays_native_and_is_the_weighted_sum() {
    let dir = fixtures().join("adapters").join("seed-v1_0");
    let (rte, sst2) = (load(&dir.join("rte")), load(&dir.join("sst2")));
    let weights = average_weights(Some(&[3.0, -1.0]), 2, true).unwrap();
    let avg = average_bottlenecks(&[&rte, &sst2], &weights, "both").unwrap();
    let out = tempfile::tempdir().unwrap();
    save_averaged(avg, &base().config, out.path()).unwrap();
    let config = json(out.path().join("adapter_config.json"));
    assert_eq!(config.get("format"), &serde_json::json!("t5-adapters"));
    assert_eq!(config.get("task"), &serde_json::json!("both"));
    let got = tensors(&out.path().join("adapter.safetensors"));
    let x = tensors(&dir.join("rte").join("adapter.safetensors"));
    let y = tensors(&dir.join("sst2").join("adapter.safetensors"));
    assert_eq!(got.len(), x.len());
    for (name, values) in &got {
        let want: Vec<f32> = x[name]
            .iter()
            .zip(&y[name])
            .map(|(p, q)| 1.5 * p - 0.5 * q)
            .collect();
        assert!(max_abs_diff(values, &want) <= 1e-6, "{name}");
    }
}

#[test]
fn bad_combinations_are_refused_with_the_reason() {
    let peft = fixtures().join("peft");
    let (r4, r2) = (
        load(&peft.join("lora-v1_0")),
        load(&peft.join("lora-v1_0-b")),
    );
    let model = base().config;
    let mut masks = seeded_masks(0, 0.5);
    let mut opts = LoraMerge {
        combination: Combination::Linear,
        weights: vec![1.0, 1.0],
        svd_rank: None,
        svd_clamp: None,
        density: None,
        majority_sign: MajoritySign::Total,
    };
    let err = merge_loras(&[&r4, &r2], &model, &opts, &mut masks)
        .err()
        .unwrap();
    assert!(err.contains("ranks [4, 2] differ"), "{err}");
    opts.combination = Combination::Cat;
    let cat = merge_loras(&[&r4, &r2], &model, &opts, &mut masks).unwrap();
    assert_eq!(cat.config["r"], 6);
    let (a, b) = (
        load(&merge_dir().join("lora-a")),
        load(&merge_dir().join("lora-b")),
    );
    opts.combination = Combination::Ties;
    let err = merge_loras(&[&a, &b], &model, &opts, &mut masks)
        .err()
        .unwrap();
    assert!(err.contains("density"), "{err}");
    opts.weights = vec![1.0];
    assert!(merge_loras(&[&a, &b], &model, &opts, &mut masks).is_err());
    let bn = load(&merge_dir().join("bn-a"));
    let err = average_bottlenecks(&[&bn, &a], &[0.5, 0.5], "x")
        .err()
        .unwrap();
    assert!(err.contains("is a LoRA"), "{err}");
}

/// DARE's seeded masks: the same seed gives the same masks, and about `density` is kept.
#[test]
fn seeded_dare_masks_are_reproducible_and_keep_the_density() {
    let draw = |seed| seeded_masks(seed, 0.3)("m", 100_000);
    let (x, y, z) = (draw(7), draw(7), draw(8));
    assert_eq!(x, y);
    assert_ne!(x, z);
    let kept = x.iter().filter(|&&k| k).count() as f64 / x.len() as f64;
    assert!((kept - 0.3).abs() < 0.01, "kept {kept}");
}
