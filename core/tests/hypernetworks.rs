//! Hypernetwork adapters (meta-adapter, HyperFormer, HyperFormer++) against the committed
//! PyTorch reference (`tests/fixtures/make_hyper_fixtures.py`): the generated adapters, logits,
//! loss, the gradients of every hypernetwork tensor and task embedding, and greedy ids, for one
//! task per batch and for a batch whose rows have different tasks; on the CPU backend and on
//! wgpu. Also parameter counts, the `.npy` task embeddings, round trips and bad files.

mod common;

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::*;
use t5_core::adapter::hyper::npy::read_npy;
use t5_core::adapter::hyper::{load_hypernetwork, save_hypernetwork, HyperNetwork};
use t5_core::adapter::{load_adapter, Adapters};
use t5_core::checkpoint::ModelDir;
use t5_core::generation::{generate, GenerationConfig};
use t5_core::weights::Weights;

const CASES: [&str; 5] = [
    "meta-adapter",
    "meta-adapter-taskdir",
    "hyperformer",
    "hyperformer++",
    "hyperformer++-options",
];
const RUNS: [&str; 3] = ["rte", "sst2", "mixed"];

fn case_dir(case: &str) -> PathBuf {
    fixtures().join("hyper").join(case)
}

fn golden(case: &str) -> Golden {
    json(case_dir(case).join("golden.json"))
}

/// `|got - want| <= tol · max(1, max |want|)` (gradients: relative to each tensor's largest).
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    assert_within(got, want, tol * scale, what);
}

/// `|got - want| <= tol`.
fn assert_within(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = tol;
    let diff = max_abs_diff(got, want);
    assert!(
        diff <= scale,
        "{what}: differs by {diff} (tolerance {scale})"
    );
}

fn base(g: &Golden) -> ModelDir {
    let name = g.get("base_model").as_str().unwrap().to_string();
    let mut dir = ModelDir::open(model_dir(&name)).unwrap();
    // burn applies dropout whenever the backend records gradients; the reference ran without.
    dir.config.dropout_rate = 0.0;
    dir
}

fn row_tasks(g: &Golden, run: &str) -> Vec<String> {
    g.get("runs")[run]["row_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn distinct(tasks: &[String]) -> Vec<&str> {
    t5_core::train::adapters::distinct(tasks.iter().map(String::as_str))
}

/// Every tensor of the file at `path`, by name.
fn file_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Compares every tensor of the two files (same names), each relative to its largest value.
fn assert_files_close(got: &Path, want: &Path, tol: f32, what: &str) {
    let (got, want) = (file_tensors(got), file_tensors(want));
    let names = |v: &[(String, Vec<f32>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "{what}: tensor names");
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_close(g, w, tol, &format!("{what}: {name}"));
    }
}

/// The hypernetwork with each parameter replaced by its gradient (zeros where it got none).
fn gradients_as_module<B: t5_core::fused::FusedAutodiff>(
    hyper: &HyperNetwork<B>,
    grads: &GradientsParams,
) -> HyperNetwork<B::InnerBackend> {
    struct ToGrad<'a>(&'a GradientsParams);
    impl<B: burn::tensor::backend::AutodiffBackend> ModuleMapper<B> for ToGrad<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let id = p.id;
            let value = p.val();
            let grad = self
                .0
                .get::<B::InnerBackend, D>(id)
                .unwrap_or_else(|| value.clone().inner().zeros_like());
            Param::initialized(id, Tensor::from_inner(grad))
        }
    }
    hyper.clone().map(&mut ToGrad(grads)).valid()
}

fn forward_and_grads_match<B: t5_core::fused::FusedAutodiff>(device: &B::Device) {
    for case in CASES {
        let g = golden(case);
        let dir = base(&g);
        let model = dir.load_model::<B>(device).unwrap().no_grad();
        let hyper = load_hypernetwork::<B>(&case_dir(case), &dir.config, device).unwrap();
        let ids = int_tensor::<B>(&g.ints("input_ids"), device);
        let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
        let labels = int_tensor::<B>(&g.ints("labels"), device);
        for run in RUNS {
            let what = format!("{case}/{run}");
            let want = &g.get("runs")[run];
            let tasks = row_tasks(&g, run);
            let set = hyper.generate(&distinct(&tasks)).unwrap();
            let names: Vec<Option<&str>> = tasks.iter().map(|t| Some(t.as_str())).collect();
            let adapters = Adapters::per_row(&set, &names).unwrap();
            let out = model.forward_with_labels(
                ids.clone(),
                mask.clone(),
                labels.clone(),
                0.0,
                Some(&adapters),
            );
            let [b, t, _] = out.logits.dims();
            let slice = host(out.logits.clone().slice([0..b, 0..t, 0..8]));
            let (want_slice, _) = flatten_f32(&want["logits_slice"]);
            assert_within(&slice, &want_slice, 1e-4, &format!("{what}: logits"));
            let logits = out.logits.clone();
            let max = logits.clone().max_dim(2);
            let lse = host((logits.clone() - max.clone()).exp().sum_dim(2).log() + max);
            let (want_lse, _) = flatten_f32(&want["logits_logsumexp"]);
            assert_within(&lse, &want_lse, 1e-4, &format!("{what}: log-sum-exp"));
            let argmax: Vec<i64> = host(logits.argmax(2).float())
                .iter()
                .map(|v| *v as i64)
                .collect();
            assert_eq!(
                argmax,
                int_rows(&want["logits_argmax"]).concat(),
                "{what}: argmax"
            );
            let loss = host(out.loss.clone())[0];
            let want_loss = want["loss"].as_f64().unwrap() as f32;
            assert!(
                (loss - want_loss).abs() <= 1e-4 * want_loss.abs().max(1.0),
                "{what}: loss {loss} vs {want_loss}"
            );

            let mut grads = out.loss.backward();
            let grads = GradientsParams::from_module(&mut grads, &hyper);
            let as_module = gradients_as_module(&hyper, &grads);
            let tmp = tempfile::tempdir().unwrap();
            save_hypernetwork(&as_module, tmp.path()).unwrap();
            let want_dir = case_dir(case).join("grads").join(run);
            assert_files_close(
                &tmp.path().join("hypernetwork.safetensors"),
                &want_dir.join("hypernetwork.safetensors"),
                1e-4,
                &format!("{what}: gradient"),
            );
            if want_dir.join("task_embeddings.safetensors").is_file() {
                assert_files_close(
                    &tmp.path().join("task_embeddings.safetensors"),
                    &want_dir.join("task_embeddings.safetensors"),
                    1e-4,
                    &format!("{what}: task-embedding gradient"),
                );
            } else {
                // Fixed embeddings: not a single gradient.
                for p in &hyper.embeddings.table {
                    assert!(
                        grads.get::<B::InnerBackend, 1>(p.id).is_none(),
                        "{what}: a fixed embedding got a gradient"
                    );
                }
            }
        }
    }
}

fn greedy_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for case in CASES {
        let g = golden(case);
        let dir = base(&g);
        let model = dir.load_model::<B>(device).unwrap();
        let hyper = load_hypernetwork::<B>(&case_dir(case), &dir.config, device).unwrap();
        let inputs = inputs_of(&g);
        for run in RUNS {
            let tasks = row_tasks(&g, run);
            let set = hyper.generate(&distinct(&tasks)).unwrap();
            let names: Vec<Option<&str>> = tasks.iter().map(|t| Some(t.as_str())).collect();
            let adapters = Adapters::per_row(&set, &names).unwrap();
            let mut config = GenerationConfig::for_model(&dir.config);
            config.max_new_tokens = 16;
            let got = generate(&model, &inputs, &config, Some(&adapters)).unwrap();
            let want: Vec<Vec<u32>> = int_rows(&g.get("runs")[run]["greedy"])
                .iter()
                .map(|r| strip_generated(r, 1))
                .collect();
            assert_eq!(got, want, "{case}/{run}: greedy");
        }
    }
}

/// Each task's generated adapter, saved as an adapter directory, equals the reference's
/// materialized one, and `load_adapter` reads it back.
fn materialized_adapters_match<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for case in CASES {
        let g = golden(case);
        let dir = base(&g);
        let hyper = load_hypernetwork::<B>(&case_dir(case), &dir.config, device).unwrap();
        for task in ["rte", "sst2"] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join(task);
            t5_core::adapter::hyper::format::save_materialized(
                &hyper,
                task,
                task,
                &dir.config,
                &out,
            )
            .unwrap();
            let want = case_dir(case).join("materialized").join(task);
            assert_files_close(
                &out.join("adapter.safetensors"),
                &want.join("adapter.safetensors"),
                1e-5,
                &format!("{case}: materialized {task}"),
            );
            let got: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("adapter_config.json")).unwrap(),
            )
            .unwrap();
            let reference: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(want.join("adapter_config.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(got, reference, "{case}: adapter_config.json of {task}");
            load_adapter::<B>(&out, &dir.config, device).unwrap();
        }
    }
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
    fn materialized_adapters_match() {
        super::materialized_adapters_match::<B>(&Default::default());
    }
}

#[cfg(feature = "wgpu")]
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
}

#[test]
fn parameter_counts_equal_the_reference() {
    type B = t5_core::backend::Cpu;
    for case in CASES {
        let g = golden(case);
        let dir = base(&g);
        let hyper =
            load_hypernetwork::<B>(&case_dir(case), &dir.config, &Default::default()).unwrap();
        let counts = g.get("param_counts");
        let embeddings: usize = hyper.embeddings.table.iter().map(|p| p.num_params()).sum();
        assert_eq!(
            hyper.num_params(),
            counts["total"].as_u64().unwrap() as usize,
            "{case}: total"
        );
        assert_eq!(
            embeddings,
            counts["task_embeddings"].as_u64().unwrap() as usize,
            "{case}: embeddings"
        );
    }
}

/// ruse's `task_embedding_dir` files hold the case's embeddings.
#[test]
fn npy_task_embeddings_are_read() {
    let case = case_dir("meta-adapter-taskdir");
    let mut file = Weights::from_file(&case.join("task_embeddings.safetensors")).unwrap();
    for task in ["rte", "sst2"] {
        let got = read_npy(&case.join("task_embedding_dir").join(format!("{task}.npy"))).unwrap();
        let want = file.take_values(task, &[got.len()]).unwrap();
        assert_eq!(got, want, "{task}.npy");
    }
}

#[test]
fn saved_hypernetworks_round_trip() {
    type B = t5_core::backend::Cpu;
    let device = Default::default();
    for case in CASES {
        let g = golden(case);
        let dir = base(&g);
        let hyper = load_hypernetwork::<B>(&case_dir(case), &dir.config, &device).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        save_hypernetwork(&hyper, tmp.path()).unwrap();
        for file in ["hypernetwork.safetensors", "task_embeddings.safetensors"] {
            assert_files_close(
                &tmp.path().join(file),
                &case_dir(case).join(file),
                0.0,
                &format!("{case}: {file}"),
            );
        }
        let again = load_hypernetwork::<B>(tmp.path(), &dir.config, &device).unwrap();
        assert_eq!(again.config, hyper.config, "{case}: config");
    }
}

fn load_err(dir: &Path, base_model: &str) -> String {
    type B = t5_core::backend::Cpu;
    let config = ModelDir::open(model_dir(base_model)).unwrap().config;
    match load_hypernetwork::<B>(dir, &config, &Default::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// A copy of a case to break.
fn copy_case(case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "hypernetwork_config.json",
        "hypernetwork.safetensors",
        "task_embeddings.safetensors",
    ] {
        std::fs::copy(case_dir(case).join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

#[test]
fn bad_hypernetworks_are_refused_in_one_line() {
    type B = t5_core::backend::Cpu;
    let device = Default::default();
    // Another model's shape.
    let e = load_err(&case_dir("hyperformer++"), "t5-v1_1");
    assert!(
        e.contains("hypernetwork_config.json")
            && e.contains("num_decoder_layers 2, but the model has 3"),
        "{e}"
    );
    // A task it does not know.
    let dir = base(&golden("hyperformer++"));
    let hyper = load_hypernetwork::<B>(&case_dir("hyperformer++"), &dir.config, &device).unwrap();
    let e = hyper.generate(&["cola"]).unwrap_err().to_string();
    assert!(
        e.contains("no task `cola`") && e.contains("rte, sst2"),
        "{e}"
    );
    // A missing tensor, and a truncated file.
    let tmp = copy_case("hyperformer++");
    let mut tensors = file_tensors(&tmp.path().join("hypernetwork.safetensors"));
    tensors.retain(|(n, _)| n != "encoder.up.weight_generator.weight");
    let shaped: Vec<(String, Vec<usize>, Vec<f32>)> = {
        let bytes =
            std::fs::read(case_dir("hyperformer++").join("hypernetwork.safetensors")).unwrap();
        let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        tensors
            .into_iter()
            .map(|(n, v)| (n.clone(), parsed.tensor(&n).unwrap().shape().to_vec(), v))
            .collect()
    };
    t5_core::weights::write_safetensors(
        &tmp.path().join("hypernetwork.safetensors"),
        &shaped,
        None,
    )
    .unwrap();
    let e = load_err(tmp.path(), "t5-v1_0");
    assert!(
        e.contains("hypernetwork.safetensors")
            && e.contains("missing tensor `encoder.up.weight_generator.weight`"),
        "{e}"
    );
    std::fs::write(tmp.path().join("hypernetwork.safetensors"), b"\x10\x00").unwrap();
    let e = load_err(tmp.path(), "t5-v1_0");
    assert!(
        e.contains("hypernetwork.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );
    // Task embeddings that do not match the config's tasks.
    let tmp = copy_case("hyperformer++");
    let config = std::fs::read_to_string(tmp.path().join("hypernetwork_config.json")).unwrap();
    std::fs::write(
        tmp.path().join("hypernetwork_config.json"),
        config.replace("\"sst2\"", "\"cola\""),
    )
    .unwrap();
    let e = load_err(tmp.path(), "t5-v1_0");
    assert!(
        e.contains("task_embeddings.safetensors") && e.contains("no task `cola`"),
        "{e}"
    );
    // A variant that disagrees with the flags.
    std::fs::write(
        tmp.path().join("hypernetwork_config.json"),
        config.replace(
            "\"variant\": \"hyperformer++\"",
            "\"variant\": \"hyperformer\"",
        ),
    )
    .unwrap();
    let e = load_err(tmp.path(), "t5-v1_0");
    assert!(e.contains("`variant` `hyperformer` disagrees"), "{e}");
}

/// The published settings (`hyperformer++.json`, `hyperformer.json`, and the meta-adapter without
/// the unique flags) at t5-small and t5-base shapes have the reference's parameter counts
/// (`hyper/param_counts.json`, docs/HYPERNETWORKS.md section 8). Nothing is drawn: parameters
/// are lazy, so this costs no memory.
#[test]
fn published_settings_have_the_reference_counts_at_t5_small_and_t5_base() {
    use t5_core::adapter::hyper::{HyperConfig, HyperNetworkConfig};
    use t5_core::adapter::SeedAdapterConfig;
    type B = t5_core::backend::Cpu;
    let path = fixtures().join("hyper/param_counts.json");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tasks: Vec<String> = (0..8).map(|i| format!("task{i}")).collect();
    let mut checked = 0;
    for row in table["rows"].as_array().unwrap() {
        let method = row["method"].as_str().unwrap();
        let (unique, efficient) = match method {
            m if m.starts_with("meta-adapter") => (false, false),
            m if m.starts_with("HyperFormer++") => (false, true),
            m if m.starts_with("HyperFormer") => (true, false),
            _ => continue,
        };
        let mut model = t5_core::T5Config::t5_small();
        if row["shape"] == "t5-base" {
            (model.d_model, model.num_layers, model.num_decoder_layers) = (768, 12, Some(12));
        }
        let hyper = HyperConfig {
            task_embedding_dim: Some(64),
            projected_task_embedding_dim: 64,
            task_hidden_dim: 128,
            unique_hyper_net: unique,
            efficient_unique_hyper_net: efficient,
            conditional_layer_norm: true,
            ..HyperConfig::default()
        };
        let adapter = SeedAdapterConfig {
            reduction_factor: 32,
            non_linearity: "gelu_new".into(),
            ..SeedAdapterConfig::default()
        };
        let config = HyperNetworkConfig::new(&hyper, &adapter, &model, tasks.clone());
        let net = HyperNetwork::<B>::init(config, &Default::default()).unwrap();
        let what = format!("{} {method}", row["shape"]);
        assert_eq!(
            lazy_count(&net) as u64,
            row["total_8_tasks"].as_u64().unwrap(),
            "{what}"
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "three variants at two shapes");
}

/// Parameters of `module`, counted without drawing them.
fn lazy_count<B: Backend, M: Module<B>>(module: &M) -> usize {
    struct Count(usize);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0 += p.lazy_shape().num_elements();
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}
