//! Every fused operation against the composed burn operations it replaces: forward values and the
//! gradients of every input (burn's autodiff of the composed ops vs our hand-written backward),
//! over ragged shapes, masks, dropout and label smoothing, on the CPU backend and on wgpu.

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use t5_core::fused::{self, reference, AttentionMask, FusedAutodiff, FusedOps};

/// Largest difference relative to the reference's largest magnitude (plus 1e-7 absolute, for
/// gradients that are zero up to rounding).
fn assert_close<B: Backend, const D: usize>(
    ours: Tensor<B, D>,
    reference: Tensor<B, D>,
    what: &str,
) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shapes");
    let a = ours.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let b = reference
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= 1e-5 * scale + 1e-7,
        "{what}: max difference {worst} (scale {scale})"
    );
}

fn random<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// A tracked copy of `t` on the autodiff backend.
fn leaf<B: AutodiffBackend, const D: usize>(t: &Tensor<B::InnerBackend, D>) -> Tensor<B, D> {
    Tensor::from_inner(t.clone()).require_grad()
}

/// `Σ y ∘ w` for fixed random `w`, so that every output element has its own upstream gradient.
fn weighted_sum<B: Backend, const D: usize>(y: Tensor<B, D>, w: &Tensor<B, D>) -> Tensor<B, 1> {
    (y * w.clone()).sum()
}

fn linear_matches<B: FusedAutodiff>(device: &B::Device) {
    B::seed(device, 6);
    for (rows, d_in, d_out) in [(5, 3, 7), (1, 16, 1), (300, 64, 200)] {
        let x = random::<B::InnerBackend, 2>([rows, d_in], device);
        let w = random::<B::InnerBackend, 2>([d_in, d_out], device);
        // The same weight stored `[d_out, d_in]` (the tied LM head passes `Eᵀ`).
        let w_t =
            Tensor::<B::InnerBackend, 2>::from_data(w.clone().transpose().into_data(), device);
        let b = random::<B::InnerBackend, 1>([d_out], device);
        let up = Tensor::<B, 2>::from_inner(random([rows, d_out], device));
        // With a bias, without, with a frozen weight (no weight gradient, no saved input), and
        // with a weight that is a transposed view.
        for (with_bias, frozen, transposed) in [
            (true, false, false),
            (false, false, false),
            (true, true, false),
            (false, false, true),
        ] {
            let run = |fused_op: bool| {
                let x = leaf::<B, 2>(&x);
                let stored = match (frozen, transposed) {
                    (true, _) => Tensor::from_inner(w.clone()),
                    (false, false) => leaf::<B, 2>(&w),
                    (false, true) => leaf::<B, 2>(&w_t),
                };
                let w = if transposed {
                    stored.clone().transpose()
                } else {
                    stored.clone()
                };
                let b = with_bias.then(|| leaf::<B, 1>(&b));
                let y = if fused_op {
                    fused::linear(x.clone(), w.clone(), b.clone())
                } else {
                    let y = x.clone().matmul(w.clone());
                    match &b {
                        Some(b) => y + b.clone().unsqueeze(),
                        None => y,
                    }
                };
                let grads = weighted_sum(y.clone(), &up).backward();
                let dw = stored.grad(&grads);
                (
                    y.inner(),
                    x.grad(&grads).unwrap(),
                    dw,
                    b.map(|b| b.grad(&grads).unwrap()),
                )
            };
            let (ours, theirs) = (run(true), run(false));
            assert_close(ours.0, theirs.0, "linear");
            assert_close(ours.1, theirs.1, "linear dx");
            assert_eq!(
                ours.2.is_some(),
                !frozen,
                "weight gradient only when it trains"
            );
            if let (Some(a), Some(b)) = (ours.2, theirs.2) {
                assert_close(a, b, "linear dweight");
            }
            if let (Some(a), Some(b)) = (ours.3, theirs.3) {
                assert_close(a, b, "linear dbias");
            }
        }
    }
}

fn norms_match<B: FusedAutodiff>(device: &B::Device) {
    B::seed(device, 1);
    // 600 columns: wider than one cube of the wgpu kernels, so each unit strides over its row.
    for shape in [[7, 13], [1, 1], [33, 64], [130, 50], [3, 600]] {
        let x = random::<B::InnerBackend, 2>(shape, device) * 3.0 + 0.5;
        let w = random::<B::InnerBackend, 1>([shape[1]], device);
        let b = random::<B::InnerBackend, 1>([shape[1]], device);
        let up = random::<B::InnerBackend, 2>(shape, device);
        let up = Tensor::<B, 2>::from_inner(up);

        // RMS norm.
        let run = |fused_op: bool| {
            let (x, w) = (leaf::<B, 2>(&x), leaf::<B, 1>(&w));
            let y = if fused_op {
                fused::rms_norm(x.clone(), w.clone(), 1e-6)
            } else {
                reference::rms_norm(x.clone(), w.clone(), 1e-6)
            };
            let grads = weighted_sum(y.clone(), &up).backward();
            (y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap())
        };
        let (ours, theirs) = (run(true), run(false));
        assert_close(ours.0, theirs.0, "rms_norm");
        assert_close(ours.1, theirs.1, "rms_norm dx");
        assert_close(ours.2, theirs.2, "rms_norm dweight");

        // LayerNorm.
        let run = |fused_op: bool| {
            let (x, w, b) = (leaf::<B, 2>(&x), leaf::<B, 1>(&w), leaf::<B, 1>(&b));
            let y = if fused_op {
                fused::layer_norm(x.clone(), w.clone(), b.clone(), 1e-5)
            } else {
                reference::layer_norm(x.clone(), w.clone(), b.clone(), 1e-5)
            };
            let grads = weighted_sum(y.clone(), &up).backward();
            let g = |t: &Tensor<B, 1>| t.grad(&grads).unwrap();
            (y.inner(), x.grad(&grads).unwrap(), g(&w), g(&b))
        };
        let (ours, theirs) = (run(true), run(false));
        assert_close(ours.0, theirs.0, "layer_norm");
        assert_close(ours.1, theirs.1, "layer_norm dx");
        assert_close(ours.2, theirs.2, "layer_norm dweight");
        assert_close(ours.3, theirs.3, "layer_norm dbias");
    }
}

/// The embedding lookup and its table gradient, with repeated indices (rows added in order).
fn embedding_matches<B: FusedAutodiff>(device: &B::Device) {
    B::seed(device, 6);
    let table = random::<B::InnerBackend, 2>([11, 7], device);
    let ids = [[3i64, 0, 3, 10], [10, 3, 5, 5]];
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.concat(), [2, 4]), device);
    let up = Tensor::<B, 3>::from_inner(random([2, 4, 7], device));
    let run = |fused_op: bool| {
        let w = leaf::<B, 2>(&table);
        let y = if fused_op {
            fused::embedding(w.clone(), ids.clone())
        } else {
            reference::embedding(w.clone(), ids.clone())
        };
        let grads = weighted_sum(y.clone(), &up).backward();
        (y.inner(), w.grad(&grads).unwrap())
    };
    let (ours, theirs) = (run(true), run(false));
    assert_close(ours.0, theirs.0, "embedding");
    assert_close(ours.1, theirs.1, "embedding dweight");
}

/// One attention case: sizes, bias per batch row or shared, padding, dropout.
struct Case {
    batch: usize,
    heads: usize,
    q_len: usize,
    k_len: usize,
    d_kv: usize,
    bias: Option<bool>,
    padding: bool,
    dropout: bool,
}

fn attention_case<B: FusedAutodiff>(c: &Case, device: &B::Device) {
    let inner = c.heads * c.d_kv;
    let q = random::<B::InnerBackend, 3>([c.batch, c.q_len, inner], device);
    let k = random::<B::InnerBackend, 3>([c.batch, c.k_len, inner], device);
    let v = random::<B::InnerBackend, 3>([c.batch, c.k_len, inner], device);
    let scores = [c.batch, c.heads, c.q_len, c.k_len];
    let bias = c.bias.map(|per_batch| {
        let rows = if per_batch { c.batch } else { 1 };
        random::<B::InnerBackend, 4>([rows, c.heads, c.q_len, c.k_len], device)
    });
    // Every other row pads its last keys (never all of them).
    let padding = c.padding.then(|| {
        let mut m = vec![0f32; c.batch * c.k_len];
        for b in (0..c.batch).step_by(2) {
            for j in (c.k_len / 2 + 1)..c.k_len {
                m[b * c.k_len + j] = f32::MIN;
            }
        }
        Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(m, [c.batch, c.k_len]), device)
    });
    let dropout = c.dropout.then(|| {
        Tensor::<B::InnerBackend, 4>::random(scores, Distribution::Bernoulli(0.8), device) * 1.25
    });
    let up = Tensor::<B, 3>::from_inner(random([c.batch, c.q_len, inner], device));
    let run = |fused_op: bool| {
        let (q, k, v) = (leaf::<B, 3>(&q), leaf::<B, 3>(&k), leaf::<B, 3>(&v));
        let bias = bias.as_ref().map(leaf::<B, 4>);
        let mask = AttentionMask {
            bias: bias.clone(),
            padding: padding.clone().map(Tensor::from_inner),
            dropout: dropout.clone().map(Tensor::from_inner),
        };
        let y = if fused_op {
            fused::attention(q.clone(), k.clone(), v.clone(), mask, c.heads)
        } else {
            reference::attention(q.clone(), k.clone(), v.clone(), mask, c.heads)
        };
        let grads = weighted_sum(y.clone(), &up).backward();
        let g = |t: &Tensor<B, 3>| t.grad(&grads).unwrap();
        let db = bias.map(|b| b.grad(&grads).unwrap());
        (y.inner(), g(&q), g(&k), g(&v), db)
    };
    let (ours, theirs) = (run(true), run(false));
    assert_close(ours.0, theirs.0, "attention");
    assert_close(ours.1, theirs.1, "attention dq");
    assert_close(ours.2, theirs.2, "attention dk");
    assert_close(ours.3, theirs.3, "attention dv");
    if let (Some(a), Some(b)) = (ours.4, theirs.4) {
        assert_close(a, b, "attention dbias");
    }
}

fn attention_matches<B: FusedAutodiff>(device: &B::Device) {
    B::seed(device, 2);
    let cases = [
        // Encoder self-attention: shared position bias, padding.
        Case {
            batch: 3,
            heads: 2,
            q_len: 7,
            k_len: 7,
            d_kv: 5,
            bias: Some(false),
            padding: true,
            dropout: false,
        },
        // Decoder cross-attention: padding only, ragged lengths; with dropout.
        Case {
            batch: 2,
            heads: 3,
            q_len: 4,
            k_len: 9,
            d_kv: 3,
            bias: None,
            padding: true,
            dropout: true,
        },
        // A bias per batch row (mixed), no padding, dropout.
        Case {
            batch: 2,
            heads: 2,
            q_len: 5,
            k_len: 6,
            d_kv: 4,
            bias: Some(true),
            padding: false,
            dropout: true,
        },
        // One query over a cache (decoding), one batch row.
        Case {
            batch: 1,
            heads: 4,
            q_len: 1,
            k_len: 11,
            d_kv: 8,
            bias: Some(false),
            padding: false,
            dropout: false,
        },
        // Longer rows than the SIMD lanes.
        Case {
            batch: 2,
            heads: 2,
            q_len: 19,
            k_len: 37,
            d_kv: 16,
            bias: Some(false),
            padding: true,
            dropout: false,
        },
        // Rows wider than one cube of the wgpu kernels (each unit strides), with dropout.
        Case {
            batch: 1,
            heads: 2,
            q_len: 3,
            k_len: 300,
            d_kv: 4,
            bias: Some(false),
            padding: true,
            dropout: true,
        },
    ];
    for c in &cases {
        attention_case::<B>(c, device);
    }
}

fn cross_entropy_matches<B: FusedAutodiff>(device: &B::Device) {
    B::seed(device, 3);
    for (n, vocab) in [(9, 37), (1, 5), (6, 1000)] {
        let logits = random::<B::InnerBackend, 2>([n, vocab], device) * 4.0;
        let labels: Vec<i64> = (0..n as i64)
            .map(|i| {
                if i % 4 == 1 {
                    -100
                } else {
                    (i * 7919) % vocab as i64
                }
            })
            .collect();
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), device);
        for smoothing in [0.0, 0.1] {
            let run = |fused_op: bool| {
                let z = leaf::<B, 2>(&logits);
                let loss = if fused_op {
                    fused::cross_entropy(z.clone(), labels.clone(), smoothing)
                } else {
                    reference::cross_entropy(z.clone(), labels.clone(), smoothing)
                };
                let grads = (loss.clone() * 0.7).backward();
                (loss.inner(), z.grad(&grads).unwrap())
            };
            let (ours, theirs) = (run(true), run(false));
            assert_close(ours.0, theirs.0, "cross_entropy");
            assert_close(ours.1, theirs.1, "cross_entropy dlogits");
        }
    }
}

/// The fused AdamW update equals burn's `AdamW` over several steps (first step without moments,
/// weight decay on).
fn adamw_matches<B: FusedAutodiff>(device: &B::Device) {
    use burn::module::Param;
    use burn::optim::adaptor::OptimizerAdaptor;
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use t5_core::train::optim::FusedAdamW;

    B::seed(device, 5);
    // Explicit tensors: a lazily initialized parameter would draw new values in each clone.
    let start = burn::nn::Linear::<B> {
        weight: Param::from_tensor(Tensor::from_inner(random([37, 11], device))),
        bias: Some(Param::from_tensor(Tensor::from_inner(random([11], device)))),
    };
    let (mut ours, mut theirs) = (start.clone(), start);
    let mut ours_opt = OptimizerAdaptor::<_, _, B>::from(FusedAdamW {
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-6,
        weight_decay: 0.01,
    });
    let mut theirs_opt = AdamWConfig::new()
        .with_beta_2(0.98)
        .with_epsilon(1e-6)
        .with_weight_decay(0.01)
        .init::<B, burn::nn::Linear<B>>();
    for _ in 0..4 {
        let x = Tensor::<B, 2>::from_inner(random([5, 37], device));
        let g = ours.forward(x.clone()).powi_scalar(2).sum().backward();
        ours = ours_opt.step(3e-2, ours.clone(), GradientsParams::from_grads(g, &ours));
        let g = theirs.forward(x).powi_scalar(2).sum().backward();
        theirs = theirs_opt.step(
            3e-2,
            theirs.clone(),
            GradientsParams::from_grads(g, &theirs),
        );
    }
    assert_close(
        ours.weight.val().inner(),
        theirs.weight.val().inner(),
        "adamw weight",
    );
    let bias = |l: &burn::nn::Linear<B>| l.bias.as_ref().unwrap().val().inner();
    assert_close(bias(&ours), bias(&theirs), "adamw bias");
}

/// Without autodiff (inference) the forward alone runs; it equals the composed operations too.
fn inference_matches<B: FusedOps>(device: &B::Device) {
    B::seed(device, 4);
    let x = random::<B, 3>([2, 5, 24], device);
    let w = random::<B, 1>([24], device);
    assert_close(
        fused::rms_norm(x.clone(), w.clone(), 1e-6),
        reference::rms_norm(x.clone().reshape([10, 24]), w, 1e-6).reshape([2, 5, 24]),
        "rms_norm (inference)",
    );
    let bias = random::<B, 4>([1, 3, 5, 5], device);
    let mask = || AttentionMask {
        bias: Some(bias.clone()),
        ..Default::default()
    };
    assert_close(
        fused::attention(x.clone(), x.clone(), x.clone(), mask(), 3),
        reference::attention(x.clone(), x.clone(), x, mask(), 3),
        "attention (inference)",
    );
}

mod cpu {
    use super::*;
    type B = Autodiff<t5_core::backend::Cpu>;

    #[test]
    fn linear() {
        linear_matches::<B>(&Default::default());
    }
    #[test]
    fn norms() {
        norms_match::<B>(&Default::default());
    }
    #[test]
    fn embedding() {
        embedding_matches::<B>(&Default::default());
    }
    #[test]
    fn attention() {
        attention_matches::<B>(&Default::default());
    }
    #[test]
    fn cross_entropy() {
        cross_entropy_matches::<B>(&Default::default());
    }
    #[test]
    fn adamw() {
        adamw_matches::<B>(&Default::default());
    }
    #[test]
    fn inference() {
        inference_matches::<t5_core::backend::Cpu>(&Default::default());
    }
}

mod wgpu {
    use super::*;
    type B = Autodiff<t5_core::backend::Wgpu>;

    #[test]
    fn linear() {
        linear_matches::<B>(&Default::default());
    }
    #[test]
    fn norms() {
        norms_match::<B>(&Default::default());
    }
    #[test]
    fn embedding() {
        embedding_matches::<B>(&Default::default());
    }
    #[test]
    fn attention() {
        attention_matches::<B>(&Default::default());
    }
    #[test]
    fn cross_entropy() {
        cross_entropy_matches::<B>(&Default::default());
    }
    #[test]
    fn adamw() {
        adamw_matches::<B>(&Default::default());
    }
    #[test]
    fn inference() {
        inference_matches::<t5_core::backend::Wgpu>(&Default::default());
    }
}
