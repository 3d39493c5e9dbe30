//! Adapters against the `adapters` library (Houlsby, Pfeiffer, options) and a PyTorch reference of
//! the seed's adapter (`tests/fixtures/make_adapter_fixtures.py`): logits, loss, gradients of the
//! adapter parameters, greedy ids; on the CPU backend and on wgpu. Also hot-swapping, per-row
//! routing, frozen backbones and bad adapter files.

mod common;

use std::path::PathBuf;

use burn::backend::Autodiff;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use common::*;
use t5_core::adapter::{load_adapter, named_tensors, save_adapter, AdapterSet, Adapters};
use t5_core::checkpoint::ModelDir;
use t5_core::generation::{generate, GenerationConfig};
use t5_core::T5ForConditionalGeneration;

fn adapters_dir() -> PathBuf {
    fixtures().join("adapters")
}

/// (golden/adapter directory relative to `adapters/`, base model)
const CASES: [(&str, &str); 6] = [
    ("houlsby-v1_1", "t5-v1_1"),
    ("pfeiffer-v1_0", "t5-v1_0"),
    ("houlsby-options-v1_0", "t5-v1_0"),
    ("seed-v1_0/rte", "t5-v1_0"),
    ("seed-v1_0/sst2", "t5-v1_0"),
    ("seed-v1_1/cola", "t5-v1_1"),
];

fn forward_and_grads_match<B: t5_core::fused::FusedAutodiff>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(adapters_dir().join(case).join("golden.json"));
        let mut dir = ModelDir::open(model_dir(base)).unwrap();
        // burn applies dropout whenever the backend records gradients; the reference ran in
        // eval mode with gradients on.
        dir.config.dropout_rate = 0.0;
        // A frozen backbone: no parameter of it asks for a gradient.
        let model = dir.load_model::<B>(device).unwrap().no_grad();
        let mut set = AdapterSet::default();
        set.insert(load_adapter::<B>(&adapters_dir().join(case), &dir.config, device).unwrap());
        let name = set.tasks[0].name.clone();
        let adapters = Adapters::task(&set, &name).unwrap();

        let ids = int_tensor::<B>(&g.ints("input_ids"), device);
        let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
        let labels = int_tensor::<B>(&g.ints("labels"), device);

        let enc = model.encode(ids.clone(), mask.clone(), Some(&adapters));
        let dims = g
            .get("encoder_last_hidden_state_slice_dims")
            .as_array()
            .unwrap();
        let (d0, d1) = (
            dims[0].as_u64().unwrap() as usize,
            dims[1].as_u64().unwrap() as usize,
        );
        let [b, s, _] = enc.dims();
        let (want, _) = g.floats("encoder_last_hidden_state_slice");
        let diff = max_abs_diff(&host(enc.clone().slice([0..b, 0..s, d0..d1])), &want);
        assert!(diff <= TOL, "{case}: encoder states differ by {diff}");
        let (want, _) = g.floats("encoder_last_hidden_state_norm");
        let norms = host(enc.powi_scalar(2).sum_dim(2).sqrt());
        for (got, want) in norms.iter().zip(&want) {
            close(*got, *want, &format!("{case}: encoder norm"));
        }

        let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
        let loss_value = host(out.loss.clone())[0];
        check_logits(out.logits, loss_value, &g, case);

        let grads = out.loss.backward();
        let full = g.get("grads").as_object().unwrap();
        let norms = g.get("grad_norm").as_object().unwrap();
        let sums = g.get("grad_sum").as_object().unwrap();
        let named = named_tensors(&set, 0, &dir.config);
        assert_eq!(
            named.len(),
            norms.len(),
            "{case}: number of trainable tensors"
        );
        for (tensor_name, tensor) in &named {
            let values = grad_values::<B>(tensor, &grads);
            let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
            let sum = values.iter().sum::<f32>();
            close(
                norm,
                norms[tensor_name].as_f64().unwrap() as f32,
                &format!("{case}: grad norm of {tensor_name}"),
            );
            close(
                sum,
                sums[tensor_name].as_f64().unwrap() as f32,
                &format!("{case}: grad sum of {tensor_name}"),
            );
            if let Some(want) = full.get(tensor_name) {
                let (want, _) = flatten_f32(want);
                let diff = max_abs_diff(&values, &want);
                assert!(
                    diff <= TOL,
                    "{case}: gradient of {tensor_name} differs by {diff}"
                );
            }
        }
        // The backbone has no gradients at all.
        let first = &model.encoder.block[0]
            .feed_forward
            .dense_relu_dense
            .wi
            .weight;
        assert!(
            first.val().grad(&grads).is_none(),
            "{case}: frozen backbone got a gradient"
        );
    }
}

fn greedy_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for (case, base) in CASES {
        let g = json(adapters_dir().join(case).join("golden.json"));
        adapter_greedy_matches::<B>(&adapters_dir().join(case), base, &g, device);
    }
}

/// One batch whose rows use different tasks equals HF's per-row results, in a forward pass and in
/// `generate`.
fn mixed_batch_matches<B: t5_core::fused::FusedOps>(device: &B::Device) {
    let g = json(adapters_dir().join("seed-v1_0/golden_mixed.json"));
    let dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    let model = dir.load_model::<B>(device).unwrap();
    let mut set = AdapterSet::default();
    for task in ["rte", "sst2"] {
        set.insert(
            load_adapter::<B>(
                &adapters_dir().join("seed-v1_0").join(task),
                &dir.config,
                device,
            )
            .unwrap(),
        );
    }
    let tasks: Vec<String> = g.texts("tasks");
    let names: Vec<Option<&str>> = tasks.iter().map(|t| Some(t.as_str())).collect();
    check_mixed_batch(&model, &set, &names, &g, "mixed batch");
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

fn greedy_ids(
    model: &T5ForConditionalGeneration<Cpu>,
    inputs: &[Vec<u32>],
    adapters: Option<&Adapters<Cpu>>,
) -> Vec<Vec<u32>> {
    let mut config = GenerationConfig::for_model(&model.config);
    config.max_new_tokens = 16;
    generate(model, inputs, &config, adapters).unwrap()
}

#[test]
fn switching_adapters_and_back_reproduces_outputs() {
    let device = Default::default();
    let dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    let model = dir.load_model::<Cpu>(&device).unwrap();
    let inputs = inputs_of(&Golden::load("t5-v1_0"));
    let mut set = AdapterSet::default();
    set.insert(
        load_adapter::<Cpu>(&adapters_dir().join("seed-v1_0/rte"), &dir.config, &device).unwrap(),
    );
    let first = greedy_ids(&model, &inputs, Some(&Adapters::task(&set, "rte").unwrap()));
    set.insert(
        load_adapter::<Cpu>(&adapters_dir().join("pfeiffer-v1_0"), &dir.config, &device).unwrap(),
    );
    let other = greedy_ids(
        &model,
        &inputs,
        Some(&Adapters::task(&set, "pfeiffer").unwrap()),
    );
    assert_ne!(first, other, "another adapter changes the output");
    let base = greedy_ids(&model, &inputs, None);
    set.remove("pfeiffer").unwrap();
    let again = greedy_ids(&model, &inputs, Some(&Adapters::task(&set, "rte").unwrap()));
    assert_eq!(
        first, again,
        "switching back reproduces the first outputs exactly"
    );
    assert_eq!(
        base,
        greedy_ids(&model, &inputs, None),
        "the backbone is unchanged"
    );
    let err = Adapters::task(&set, "mnli").unwrap_err().to_string();
    assert!(
        err.contains("unknown task `mnli`") && err.contains("rte"),
        "{err}"
    );
}

#[test]
fn training_adapters_leaves_the_backbone_bit_identical() {
    type B = Autodiff<Cpu>;
    let device = Default::default();
    let mut dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    dir.config.dropout_rate = 0.0;
    let model = dir.load_model::<B>(&device).unwrap().no_grad();
    let before = model.clone().into_record();
    let g = Golden::load("t5-v1_0");
    let mut set = AdapterSet::default();
    set.insert(
        load_adapter::<B>(&adapters_dir().join("seed-v1_0/rte"), &dir.config, &device).unwrap(),
    );
    let adapter_before: Vec<f32> = host(
        set.tasks[0].positions[0]
            .as_ref()
            .unwrap()
            .down
            .as_linear()
            .unwrap()
            .weight
            .val(),
    );
    let mut optim = AdamWConfig::new().init::<B, AdapterSet<B>>();
    for _ in 0..3 {
        let adapters = Adapters::task(&set, "rte").unwrap();
        let out = model.forward_with_labels(
            int_tensor(&g.ints("input_ids"), &device),
            int_tensor(&g.ints("attention_mask"), &device),
            int_tensor(&g.ints("labels"), &device),
            0.1,
            Some(&adapters),
        );
        let grads = GradientsParams::from_grads(out.loss.backward(), &set);
        set = optim.step(1e-3, set, grads);
    }
    let adapter_after: Vec<f32> = host(
        set.tasks[0].positions[0]
            .as_ref()
            .unwrap()
            .down
            .as_linear()
            .unwrap()
            .weight
            .val(),
    );
    assert_ne!(adapter_before, adapter_after, "the adapter trained");
    let after = model.into_record();
    let flat = |r: T5ForConditionalGeneration<B>| -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        r.visit(&mut Collect(&mut out));
        out
    };
    let m1 = T5ForConditionalGeneration::<B>::init(&dir.config, &device).load_record(before);
    let m2 = T5ForConditionalGeneration::<B>::init(&dir.config, &device).load_record(after);
    let (a, b) = (flat(m1), flat(m2));
    assert!(!a.is_empty());
    assert!(a == b, "backbone weights changed");
}

struct Collect<'a>(&'a mut Vec<Vec<f32>>);

impl<B: Backend> burn::module::ModuleVisitor<B> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        self.0.push(host(param.val()));
    }
}

#[test]
fn saved_adapters_round_trip_in_their_format() {
    let device = Default::default();
    let dir = ModelDir::open(model_dir("t5-v1_0")).unwrap();
    let model = dir.load_model::<Cpu>(&device).unwrap();
    let inputs = inputs_of(&Golden::load("t5-v1_0"));
    for case in ["pfeiffer-v1_0", "houlsby-options-v1_0", "seed-v1_0/rte"] {
        let src = adapters_dir().join(case);
        let mut set = AdapterSet::default();
        set.insert(load_adapter::<Cpu>(&src, &dir.config, &device).unwrap());
        let name = set.tasks[0].name.clone();
        let tmp = tempfile::tempdir().unwrap();
        save_adapter(&set, &name, &dir.config, tmp.path()).unwrap();
        // Same tensor names and values as the original file.
        let original = safetensors_names(&src.join("adapter.safetensors"));
        let written = safetensors_names(&tmp.path().join("adapter.safetensors"));
        assert_eq!(original, written, "{case}: tensor names");
        let mut again = AdapterSet::default();
        again.insert(load_adapter::<Cpu>(tmp.path(), &dir.config, &device).unwrap());
        assert_eq!(
            greedy_ids(&model, &inputs, Some(&Adapters::task(&set, &name).unwrap())),
            greedy_ids(
                &model,
                &inputs,
                Some(&Adapters::task(&again, &name).unwrap())
            ),
            "{case}"
        );
    }
}

fn safetensors_names(path: &std::path::Path) -> Vec<String> {
    let w = t5_core::checkpoint::Weights::from_file(path).unwrap();
    w.names().into_iter().map(str::to_string).collect()
}

fn load_err(adapter: &std::path::Path, base: &str) -> String {
    let dir = ModelDir::open(model_dir(base)).unwrap();
    load_adapter::<Cpu>(adapter, &dir.config, &Default::default())
        .expect_err("load fails")
        .to_string()
}

#[test]
fn unsupported_options_are_refused_by_name() {
    for (case, option) in [
        ("parallel", "is_parallel"),
        ("inv_adapter", "inv_adapter"),
        ("cross_adapter", "cross_adapter"),
        ("use_gating", "use_gating"),
        ("scaling_learned", "scaling"),
        ("scaling_channel", "scaling"),
        ("residual_before_ln_post_add", "residual_before_ln"),
    ] {
        let err = load_err(&adapters_dir().join("unsupported").join(case), "t5-v1_0");
        assert!(
            err.contains(option) && err.contains("adapter_config.json"),
            "{case}: {err}"
        );
    }
}

#[test]
fn adapters_for_other_models_are_refused() {
    // Houlsby for v1.1 has 3 decoder blocks; t5-v1_0 has 2.
    let err = load_err(&adapters_dir().join("houlsby-v1_1"), "t5-v1_0");
    assert!(
        err.contains("decoder block 2") && err.contains("adapter.safetensors"),
        "{err}"
    );
    // Pfeiffer for v1.0 lacks decoder block 2 of t5-v1_1.
    let err = load_err(&adapters_dir().join("pfeiffer-v1_0"), "t5-v1_1");
    assert!(
        err.contains("decoder.block.2") && err.contains("another model"),
        "{err}"
    );
    // Seed format: another d_model or layer count, stated in the config.
    let tmp = tempfile::tempdir().unwrap();
    for f in ["adapter_config.json", "adapter.safetensors"] {
        std::fs::copy(
            adapters_dir().join("seed-v1_0/rte").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let config = tmp.path().join("adapter_config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"d_model\": 64", "\"d_model\": 512")).unwrap();
    let err = load_err(tmp.path(), "t5-v1_0");
    assert!(
        err.contains("d_model 512") && err.contains("adapter_config.json"),
        "{err}"
    );
    std::fs::write(
        &config,
        text.replace("\"num_layers\": 2", "\"num_layers\": 6"),
    )
    .unwrap();
    let err = load_err(tmp.path(), "t5-v1_0");
    assert!(err.contains("6 encoder"), "{err}");
    std::fs::write(
        &config,
        text.replace("\"format_version\": 1", "\"format_version\": 7"),
    )
    .unwrap();
    assert!(load_err(tmp.path(), "t5-v1_0").contains("format_version 7"));
    std::fs::write(
        &config,
        text.replace("\"kind\": \"seed\"", "\"kind\": \"seed\", \"colour\": 1"),
    )
    .unwrap();
    assert!(load_err(tmp.path(), "t5-v1_0").contains("colour"));
    // A corrupted weights file.
    std::fs::write(&config, &text).unwrap();
    let weights = tmp.path().join("adapter.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 10]).unwrap();
    let err = load_err(tmp.path(), "t5-v1_0");
    assert!(
        err.contains("adapter.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

/// A copy of a fixture adapter directory, for a test to break.
fn copy_adapter(case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["adapter_config.json", "adapter.safetensors"] {
        std::fs::copy(adapters_dir().join(case).join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

#[test]
fn a_wrong_type_in_adapter_config_names_the_key_and_line() {
    for (case, from, to, key, line) in [
        // This project's format: a key of its own, and a flattened seed option.
        (
            "seed-v1_0/rte",
            "\"d_model\": 64",
            "\"d_model\": \"64\"",
            "`d_model`",
            6,
        ),
        (
            "seed-v1_0/rte",
            "\"reduction_factor\": 8",
            "\"reduction_factor\": \"eight\"",
            "`reduction_factor`",
            9,
        ),
        // AdapterHub's: a flag that used to be read as its default.
        (
            "pfeiffer-v1_0",
            "\"ln_before\": false",
            "\"ln_before\": \"no\"",
            "`config.ln_before`",
            17,
        ),
    ] {
        let tmp = copy_adapter(case);
        let config = tmp.path().join("adapter_config.json");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(from), "{case}: {from}");
        std::fs::write(&config, text.replace(from, to)).unwrap();
        let err = load_err(tmp.path(), "t5-v1_0");
        assert!(
            err.contains("adapter_config.json: ")
                && err.contains(key)
                && err.contains(&format!("line {line}")),
            "{case}: {err}"
        );
        assert_eq!(err.matches("line ").count(), 1, "{err}");
    }
}

#[test]
fn non_finite_adapter_weights_are_refused_by_tensor() {
    let tmp = copy_adapter("seed-v1_0/rte");
    let file = tmp.path().join("adapter.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let name = tensors[0].0.clone();
    tensors[0].2[0] = f32::NAN;
    t5_core::weights::write_safetensors(&file, &tensors, None).unwrap();
    let err = load_err(tmp.path(), "t5-v1_0");
    assert!(
        err.contains("adapter.safetensors")
            && err.contains(&format!("tensor `{name}`"))
            && err.contains("non-finite"),
        "{err}"
    );
}
