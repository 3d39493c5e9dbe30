//! Shared helpers for the integration tests: the committed HF fixtures and their golden values.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::Value;

/// `tests/fixtures/` at the workspace root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// A fixture model's `golden.json`.
pub struct Golden(pub Value);

impl Golden {
    pub fn load(model: &str) -> Self {
        let path = model_dir(model).join("golden.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Golden(serde_json::from_str(&text).expect("golden.json parses"))
    }

    pub fn get(&self, key: &str) -> &Value {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("golden.json has no `{key}`"))
    }

    /// A nested list flattened, with its shape.
    pub fn floats(&self, key: &str) -> (Vec<f32>, Vec<usize>) {
        flatten_f32(self.get(key))
    }

    pub fn ints(&self, key: &str) -> Vec<Vec<i64>> {
        int_rows(self.get(key))
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.get(key)
            .as_f64()
            .unwrap_or_else(|| panic!("`{key}` is not a number"))
    }

    pub fn texts(&self, key: &str) -> Vec<String> {
        self.get(key)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
}

pub fn int_rows(v: &Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

pub fn flatten_f32(v: &Value) -> (Vec<f32>, Vec<usize>) {
    fn walk(v: &Value, depth: usize, shape: &mut Vec<usize>, out: &mut Vec<f32>) {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                }
                for item in items {
                    walk(item, depth + 1, shape, out);
                }
            }
            other => out.push(other.as_f64().expect("number") as f32),
        }
    }
    let (mut shape, mut out) = (Vec::new(), Vec::new());
    walk(v, 0, &mut shape, &mut out);
    (out, shape)
}

/// HF's `generate` rows minus the decoder start token, cut after the first EOS (HF pads finished
/// rows with pad or EOS depending on the search).
pub fn strip_generated(row: &[i64], eos: i64) -> Vec<u32> {
    let mut out = Vec::new();
    for &t in &row[1..] {
        out.push(t as u32);
        if t == eos {
            break;
        }
    }
    out
}

/// Largest absolute difference; panics when shapes differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Rows of ids as an int tensor.
pub fn int_tensor<B: Backend>(rows: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

/// A tensor's values on the host, as f32.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

/// A golden file anywhere under the fixtures (not only a model's `golden.json`).
pub fn json(path: impl AsRef<Path>) -> Golden {
    Golden(serde_json::from_str(&std::fs::read_to_string(path.as_ref()).unwrap()).unwrap())
}

/// A golden file's `input_ids` without their padding (by `attention_mask`).
pub fn inputs_of(g: &Golden) -> Vec<Vec<u32>> {
    g.ints("input_ids")
        .iter()
        .zip(g.ints("attention_mask"))
        .map(|(ids, m)| {
            ids.iter()
                .zip(&m)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t as u32)
                .collect()
        })
        .collect()
}

/// The tolerance of the parity tests: absolute on logits, relative above 1 elsewhere.
pub const TOL: f32 = 1e-4;

pub fn close(got: f32, want: f32, what: &str) {
    let tol = TOL * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: {got} vs {want}");
}

/// Checks logits (a vocabulary slice, log-sum-exp over all of it, argmax) and the loss.
pub fn check_logits<B: Backend>(logits: Tensor<B, 3>, loss: f32, g: &Golden, what: &str) {
    let [b, t, _] = logits.dims();
    let vs = g.get("logits_slice_vocab").as_array().unwrap();
    let (v0, v1) = (
        vs[0].as_u64().unwrap() as usize,
        vs[1].as_u64().unwrap() as usize,
    );
    let (want, _) = g.floats("logits_slice");
    let diff = max_abs_diff(&host(logits.clone().slice([0..b, 0..t, v0..v1])), &want);
    assert!(diff <= TOL, "{what}: logits differ by {diff}");
    let max = logits.clone().max_dim(2);
    let lse = (logits.clone() - max.clone()).exp().sum_dim(2).log() + max;
    let (want, _) = g.floats("logits_logsumexp");
    let diff = max_abs_diff(&host(lse), &want);
    assert!(diff <= TOL, "{what}: log-sum-exp differs by {diff}");
    let argmax: Vec<i64> = logits
        .argmax(2)
        .into_data()
        .convert::<i64>()
        .into_vec()
        .unwrap();
    assert_eq!(argmax, g.ints("logits_argmax").concat(), "{what}: argmax");
    close(loss, g.f64("loss") as f32, &format!("{what}: loss"));
}

/// One batch whose rows use different adapters (`names[r]`; `None`: the backbone) equals the
/// golden per-row results in a forward pass (logits, loss) and in greedy generation; beam search
/// keeps each row on its own adapter (equal to running the row alone).
pub fn check_mixed_batch<B: t5_core::fused::FusedOps>(
    model: &t5_core::T5ForConditionalGeneration<B>,
    set: &t5_core::adapter::AdapterSet<B>,
    names: &[Option<&str>],
    g: &Golden,
    what: &str,
) {
    use t5_core::adapter::Adapters;
    use t5_core::generation::{generate, GenerationConfig};
    let device = model.shared.weight.device();
    let adapters = Adapters::per_row(set, names).unwrap();
    let ids = int_tensor::<B>(&g.ints("input_ids"), &device);
    let mask = int_tensor::<B>(&g.ints("attention_mask"), &device);
    let labels = int_tensor::<B>(&g.ints("labels"), &device);
    let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
    check_logits(out.logits, host(out.loss)[0], g, what);

    let mut config = GenerationConfig::for_model(&model.config);
    config.max_new_tokens = 16;
    let inputs = inputs_of(g);
    let got = generate(model, &inputs, &config, Some(&adapters)).unwrap();
    let want: Vec<Vec<u32>> = g
        .ints("greedy")
        .iter()
        .map(|r| strip_generated(r, 1))
        .collect();
    assert_eq!(got, want, "{what}: greedy");
    config.num_beams = 3;
    let batched = generate(model, &inputs, &config, Some(&adapters)).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let alone = Adapters::per_row(set, &names[i..=i]).unwrap();
        let single = generate(model, std::slice::from_ref(input), &config, Some(&alone)).unwrap();
        assert_eq!(batched[i], single[0], "{what}: beam search row {i}");
    }
}

/// The gradient of an adapter tensor in its file layout.
pub fn grad_values<B: burn::tensor::backend::AutodiffBackend>(
    t: &t5_core::adapter::NamedTensor<B>,
    grads: &B::Gradients,
) -> Vec<f32> {
    use t5_core::adapter::NamedTensor;
    let layout = |t: NamedTensor<B::InnerBackend>| t5_core::adapter::format::file_layout(&t).1;
    let missing = "an adapter tensor has a gradient";
    match t {
        NamedTensor::Weight(w) => layout(NamedTensor::Weight(w.grad(grads).expect(missing))),
        NamedTensor::Vector(v) => layout(NamedTensor::Vector(v.grad(grads).expect(missing))),
        NamedTensor::Block(b) => layout(NamedTensor::Block(b.grad(grads).expect(missing))),
    }
}

/// Greedy ids (16 new tokens) of model `base` with the adapter in `adapter_dir` equal the
/// golden `greedy` rows of `g`.
pub fn adapter_greedy_matches<B: t5_core::fused::FusedOps>(
    adapter_dir: &Path,
    base: &str,
    g: &Golden,
    device: &B::Device,
) {
    use t5_core::adapter::{load_adapter, AdapterSet, Adapters};
    use t5_core::generation::{generate, GenerationConfig};
    let dir = t5_core::checkpoint::ModelDir::open(model_dir(base)).unwrap();
    let model = dir.load_model::<B>(device).unwrap();
    let mut set = AdapterSet::default();
    set.insert(load_adapter::<B>(adapter_dir, &dir.config, device).unwrap());
    let adapters = Adapters::task(&set, &set.tasks[0].name).unwrap();
    let mut config = GenerationConfig::for_model(&dir.config);
    config.max_new_tokens = 16;
    let got = generate(&model, &inputs_of(g), &config, Some(&adapters)).unwrap();
    let want: Vec<Vec<u32>> = g
        .ints("greedy")
        .iter()
        .map(|r| strip_generated(r, 1))
        .collect();
    assert_eq!(got, want, "{}: greedy", adapter_dir.display());
}

/// Two safetensors files hold the same tensors: names, shapes and bytes.
pub fn same_safetensors(a: &Path, b: &Path) {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names: Vec<_> = a.names();
    names.sort();
    let mut saved: Vec<_> = b.names();
    saved.sort();
    assert_eq!(names, saved);
    for name in names {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!((x.shape(), x.data()), (y.shape(), y.data()), "{name}");
    }
}
