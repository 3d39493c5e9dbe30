//! Numerical parity with HF transformers on the committed tiny fixtures (see
//! `tests/fixtures/make_fixtures.py`), on the CPU backend and on wgpu.

mod common;

use burn::prelude::*;
use common::*;
use t5_core::checkpoint::ModelDir;
use t5_core::generation::{generate, EarlyStopping, GenerationConfig};
use t5_core::model::relative_bias::bucket_table;
use t5_core::T5ForConditionalGeneration;

const TOL: f32 = 1e-4;
/// Fixture directories with their own tokenizer and `golden.json`.
const MODELS: [&str; 4] = ["t5-v1_0", "t5-v1_1", "t5-v1_1-bf16-sharded", "mt5"];
/// Every model directory the forward and generation tests load, with the fixture whose
/// `golden.json` it must reproduce: the models above (`mt5` is `model_type: mt5`, made by
/// `tests/fixtures/make_mt5_fixture.py`), and the same weights saved by PyTorch as
/// `.bin` (`tests/fixtures/make_bin_fixtures.py`: the zip container with the tied duplicate
/// keys, and bf16 shards in the legacy container).
const LOADED: [(&str, &str); 6] = [
    ("t5-v1_0", "t5-v1_0"),
    ("t5-v1_1", "t5-v1_1"),
    ("t5-v1_1-bf16-sharded", "t5-v1_1-bf16-sharded"),
    ("mt5", "mt5"),
    ("bin/t5-v1_0", "t5-v1_0"),
    ("bin/t5-v1_1-bf16-sharded-legacy", "t5-v1_1-bf16-sharded"),
];

fn tensor2<B: Backend>(rows: &[Vec<i64>], device: &B::Device) -> Tensor<B, 2, Int> {
    let shape = [rows.len(), rows[0].len()];
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, shape), device)
}

fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<f32>, Vec<usize>) {
    let dims = t.dims().to_vec();
    (t.into_data().convert::<f32>().into_vec().unwrap(), dims)
}

fn load<B: Backend>(
    (name, golden): (&str, &str),
    device: &B::Device,
) -> (ModelDir, T5ForConditionalGeneration<B>, Golden) {
    let dir = ModelDir::open(model_dir(name)).unwrap();
    let model = dir
        .load_model::<B>(device)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (dir, model, Golden::load(golden))
}

/// Encoder states, logits, decoder inputs and both losses, for every fixture model.
fn forward_matches_hf<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for (name, golden) in LOADED {
        let (_, model, g) = load::<B>((name, golden), device);
        let ids = tensor2::<B>(&g.ints("input_ids"), device);
        let mask = tensor2::<B>(&g.ints("attention_mask"), device);
        let labels = tensor2::<B>(&g.ints("labels"), device);

        let (enc, shape) = floats(model.encode(ids.clone(), mask.clone(), None));
        let (want, want_shape) = g.floats("encoder_last_hidden_state");
        assert_eq!(shape, want_shape, "{name}: encoder shape");
        let diff = max_abs_diff(&enc, &want);
        assert!(
            diff <= TOL,
            "{name}: encoder hidden states differ by {diff}"
        );

        let dec_in = model.shift_right(labels.clone());
        let got: Vec<i64> = dec_in.into_data().convert::<i64>().into_vec().unwrap();
        let want: Vec<i64> = g.ints("decoder_input_ids").concat();
        assert_eq!(got, want, "{name}: shifted decoder inputs");

        let out = model.forward_with_labels(ids.clone(), mask.clone(), labels.clone(), 0.0, None);
        let (logits, shape) = floats(out.logits);
        let (want, want_shape) = g.floats("logits");
        assert_eq!(shape, want_shape, "{name}: logits shape");
        let diff = max_abs_diff(&logits, &want);
        assert!(diff <= TOL, "{name}: logits differ by {diff}");

        // One row at a time too: with few rows the CPU backend computes the projections with the
        // hand-written kernels of `t5_core::kernels` (decoding's shapes) instead of its GEMM.
        let rows = want_shape[0];
        let per_row = want.len() / rows;
        for r in 0..rows {
            let one = |t: &Tensor<B, 2, Int>| t.clone().slice(r..r + 1);
            let out = model.forward_with_labels(one(&ids), one(&mask), one(&labels), 0.0, None);
            let (logits, _) = floats(out.logits);
            let diff = max_abs_diff(&logits, &want[r * per_row..(r + 1) * per_row]);
            assert!(
                diff <= TOL,
                "{name}: logits of row {r} alone differ by {diff}"
            );
        }
        let loss = out.loss.into_scalar().elem::<f32>();
        assert!(
            (loss - g.f64("loss") as f32).abs() <= TOL,
            "{name}: loss {loss} vs {}",
            g.f64("loss")
        );

        let smoothed = model
            .forward_with_labels(ids, mask, labels, 0.1, None)
            .loss
            .into_scalar()
            .elem::<f32>();
        let want = g.f64("loss_label_smoothing_0.1") as f32;
        assert!(
            (smoothed - want).abs() <= TOL,
            "{name}: smoothed loss {smoothed} vs {want}"
        );
    }
}

fn gen_config(dir: &ModelDir, params: &serde_json::Value) -> GenerationConfig {
    let mut c = GenerationConfig::for_model(&dir.config);
    c.max_new_tokens = params["max_new_tokens"].as_u64().unwrap() as usize;
    c.num_beams = params["num_beams"].as_u64().unwrap() as usize;
    if let Some(lp) = params.get("length_penalty") {
        c.length_penalty = lp.as_f64().unwrap() as f32;
    }
    c.early_stopping = match params.get("early_stopping") {
        Some(serde_json::Value::Bool(true)) => EarlyStopping::Stop,
        Some(serde_json::Value::String(s)) if s == "never" => EarlyStopping::Never,
        _ => EarlyStopping::Heuristic,
    };
    c
}

/// Greedy and beam search ids, batched with padding and one input at a time.
fn generation_matches_hf<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for (name, golden) in LOADED {
        let (dir, model, g) = load::<B>((name, golden), device);
        let eos = dir.config.eos_token_id as i64;
        let inputs: Vec<Vec<u32>> = g
            .ints("input_ids")
            .iter()
            .zip(g.ints("attention_mask"))
            .map(|(ids, mask)| {
                ids.iter()
                    .zip(&mask)
                    .filter(|(_, &m)| m == 1)
                    .map(|(&t, _)| t as u32)
                    .collect()
            })
            .collect();
        for key in ["greedy", "beam4", "beam3_lp", "beam4_never"] {
            let params = &g.get("generation_params")[key];
            if params.is_null() {
                continue;
            }
            let config = gen_config(&dir, params);
            let got = generate(&model, &inputs, &config, None).unwrap();
            let want: Vec<Vec<u32>> = g
                .ints(key)
                .iter()
                .map(|r| strip_generated(r, eos))
                .collect();
            assert_eq!(got, want, "{name}: {key}");
        }
        let config = gen_config(&dir, &g.get("generation_params")["greedy"]);
        for (input, want) in inputs.iter().zip(g.ints("greedy_single")) {
            let got = generate(&model, std::slice::from_ref(input), &config, None).unwrap();
            assert_eq!(
                got[0],
                strip_generated(&want, eos),
                "{name}: greedy, one input"
            );
        }
    }
}

#[test]
fn tokenizer_matches_hf() {
    for name in MODELS {
        let dir = ModelDir::open(model_dir(name)).unwrap();
        let tok = dir.load_tokenizer().unwrap();
        let g = Golden::load(name);
        for ((text, ids), mask) in g
            .texts("texts")
            .iter()
            .zip(g.ints("input_ids"))
            .zip(g.ints("attention_mask"))
        {
            let want: Vec<u32> = ids
                .iter()
                .zip(&mask)
                .filter(|(_, &m)| m == 1)
                .map(|(&t, _)| t as u32)
                .collect();
            assert_eq!(tok.encode(text).unwrap(), want, "{name}: {text:?}");
        }
        for case in g.get("tokenizer_cases").as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tok.encode(text).unwrap(), want, "{name}: {text:?}");
        }
    }
}

#[test]
fn position_buckets_match_hf() {
    let g = Golden::load("t5-v1_0");
    let mut tables = vec![
        g.get("position_bias_encoder"),
        g.get("position_buckets_decoder"),
    ];
    let long = g.get("position_buckets_long");
    tables.extend([&long["bidirectional"], &long["unidirectional"]]);
    for t in tables {
        let (q, k) = (
            t["query_len"].as_u64().unwrap() as usize,
            t["key_len"].as_u64().unwrap() as usize,
        );
        let got = bucket_table(
            q,
            k,
            0,
            t["bidirectional"].as_bool().unwrap(),
            t["num_buckets"].as_u64().unwrap() as usize,
            t["max_distance"].as_u64().unwrap() as usize,
        );
        let want: Vec<usize> = int_rows(&t["buckets"])
            .concat()
            .into_iter()
            .map(|b| b as usize)
            .collect();
        assert_eq!(got, want, "{q}x{k} bidirectional={}", t["bidirectional"]);
    }
}

mod cpu {
    type B = t5_core::backend::Cpu;

    #[test]
    fn forward_matches_hf() {
        super::forward_matches_hf::<B>(&Default::default());
    }

    #[test]
    fn generation_matches_hf() {
        super::generation_matches_hf::<B>(&Default::default());
    }
}

mod wgpu {
    type B = t5_core::backend::Wgpu;

    #[test]
    fn forward_matches_hf() {
        super::forward_matches_hf::<B>(&Default::default());
    }

    #[test]
    fn generation_matches_hf() {
        super::generation_matches_hf::<B>(&Default::default());
    }
}

/// A model written by `save_pretrained` loads back with identical tensors under HF's names.
#[test]
fn save_pretrained_round_trips() {
    type B = t5_core::backend::Cpu;
    let device = Default::default();
    for name in ["t5-v1_0", "t5-v1_1"] {
        let (dir, model, _) = load::<B>((name, name), &device);
        let tmp = tempfile::tempdir().unwrap();
        t5_core::checkpoint::save_pretrained(
            &model,
            Some(&dir.path.join("tokenizer.json")),
            tmp.path(),
        )
        .unwrap();
        let original = t5_core::checkpoint::Weights::from_dir(&dir.path).unwrap();
        let mut written = t5_core::checkpoint::Weights::from_dir(tmp.path()).unwrap();
        assert_eq!(original.names(), written.names(), "{name}: tensor names");
        let again = ModelDir::open(tmp.path())
            .unwrap()
            .load_model::<B>(&device)
            .unwrap();
        let a = t5_core::checkpoint::hf_tensors(&model);
        let b = t5_core::checkpoint::hf_tensors(&again);
        assert!(a == b, "{name}: values differ after a round trip");
        assert!(written
            .take_values(
                "shared.weight",
                &[dir.config.vocab_size, dir.config.d_model]
            )
            .is_ok());
    }
}
