//! The fused operations as composed burn operations: the default of every [`FusedOps`] method,
//! and, differentiated by burn's autodiff, what the tests compare the fused kernels and their
//! hand-written backward with.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Shape, TensorMetadata};

use super::{
    float, tensor, AdamWStep, AttentionGrads, AttentionMask, MaskPrimitives, Needs, IGNORE_INDEX,
};

/// T5's RMS norm, composed.
///
/// # Shapes
/// - x: `[rows, d]` -> `[rows, d]`; weight: `[d]`
pub fn rms_norm<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 1>, eps: f64) -> Tensor<B, 2> {
    // The compute type is f32, so the variance is in f32 as HF requires.
    let variance = x.clone().powi_scalar(2).mean_dim(1);
    let x = x * (variance + eps).sqrt().recip();
    x * weight.unsqueeze::<2>()
}

/// An embedding lookup with burn's own operation (and its backward).
pub fn embedding<B: Backend>(weight: Tensor<B, 2>, indices: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    burn::tensor::module::embedding(weight, indices)
}

/// `nn.LayerNorm`, composed.
///
/// # Shapes
/// - x: `[rows, d]` -> `[rows, d]`; weight, bias: `[d]`
pub fn layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, 2> {
    let mean = x.clone().mean_dim(1);
    let centered = x - mean;
    let var = centered.clone().powi_scalar(2).mean_dim(1);
    let normed = centered * (var + eps).sqrt().recip();
    normed * weight.unsqueeze::<2>() + bias.unsqueeze::<2>()
}

/// `[batch, seq, heads * d_kv]` -> `[batch, heads, seq, d_kv]`.
pub(super) fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [b, s, inner] = x.dims();
    x.reshape([b, s, heads, inner / heads]).swap_dims(1, 2)
}

/// `[batch, heads, seq, d_kv]` -> `[batch, seq, heads * d_kv]`.
pub(super) fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, h, s, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, s, h * d])
}

/// Scores plus bias and padding, `[batch, heads, q_len, k_len]`.
fn scores<B: Backend>(
    query: Tensor<B, 3>,
    key: Tensor<B, 3>,
    mask: &AttentionMask<B>,
    heads: usize,
) -> Tensor<B, 4> {
    let mut scores = split_heads(query, heads).matmul(split_heads(key, heads).swap_dims(2, 3));
    if let Some(bias) = &mask.bias {
        scores = scores + bias.clone();
    }
    if let Some(padding) = &mask.padding {
        let [b, k] = padding.dims();
        scores = scores + padding.clone().reshape([b, 1, 1, k]);
    }
    scores
}

/// The attention core, composed (see [`super::attention`]).
pub fn attention<B: Backend>(
    query: Tensor<B, 3>,
    key: Tensor<B, 3>,
    value: Tensor<B, 3>,
    mask: AttentionMask<B>,
    heads: usize,
) -> Tensor<B, 3> {
    let probs = softmax(scores(query, key, &mask, heads), 3);
    let weights = match mask.dropout {
        Some(keep) => probs * keep,
        None => probs,
    };
    merge_heads(weights.matmul(split_heads(value, heads)))
}

/// The label-smoothed cross-entropy, composed (see [`super::cross_entropy`]).
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    smoothing: f64,
) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let (keep, count, safe) = kept_rows(labels);
    let nll = -log_probs
        .clone()
        .gather(1, safe.reshape([n, 1]))
        .reshape([n]);
    let nll = (nll * keep.clone()).sum() / count.clone();
    if smoothing == 0.0 {
        return nll;
    }
    let smooth = -log_probs.mean_dim(1).reshape([n]);
    let smooth = (smooth * keep).sum() / count;
    nll * (1.0 - smoothing) + smooth * smoothing
}

/// `(keep: [n] 0/1, count: [1] at least 1, labels with ignored rows set to 0)`.
fn kept_rows<B: Backend>(
    labels: Tensor<B, 1, Int>,
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1, Int>) {
    let ignored = labels.clone().equal_elem(IGNORE_INDEX);
    let keep = ignored.clone().bool_not().float();
    let count = keep.clone().sum().clamp_min(1.0);
    (keep, count, labels.mask_fill(ignored, 0))
}

pub(super) fn linear_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let y = tensor::<B, 2>(x).matmul(tensor(weight));
    float(match bias {
        Some(b) => y + tensor::<B, 1>(b).unsqueeze::<2>(),
        None => y,
    })
}

pub(super) fn linear_backward<B: Backend>(
    x: Option<FloatTensor<B>>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    needs: Needs<3>,
) -> [Option<FloatTensor<B>>; 3] {
    let grad = tensor::<B, 2>(grad);
    let [need_x, need_w, need_b] = needs.0;
    let dx = need_x.then(|| float(grad.clone().matmul(tensor::<B, 2>(weight).transpose())));
    let dw = x
        .filter(|_| need_w)
        .map(|x| float(tensor::<B, 2>(x).transpose().matmul(grad.clone())));
    let d_out = grad.dims()[1];
    let db = need_b.then(|| float(grad.sum_dim(0).reshape([d_out])));
    [dx, dw, db]
}

pub(super) fn embedding_backward<B: Backend>(
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    B::embedding_backward(weight, grad, indices)
}

pub(super) fn rms_norm_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let x = tensor::<B, 2>(x);
    let rows = x.dims()[0];
    let rstd = (x.clone().powi_scalar(2).mean_dim(1) + eps).sqrt().recip();
    let y = x * rstd.clone() * tensor::<B, 1>(weight).unsqueeze::<2>();
    (float(y), float(rstd.reshape([rows])))
}

pub(super) fn rms_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    rstd: FloatTensor<B>,
    grad: FloatTensor<B>,
    needs: Needs<2>,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let x = tensor::<B, 2>(x);
    let [rows, d] = x.dims();
    let rstd = tensor::<B, 1>(rstd).reshape([rows, 1]);
    let grad = tensor::<B, 2>(grad);
    let xhat = x * rstd.clone();
    let dx = needs.0[0].then(|| {
        let g = grad.clone() * tensor::<B, 1>(weight).unsqueeze::<2>();
        let m = (g.clone() * xhat.clone()).mean_dim(1);
        float((g - xhat.clone() * m) * rstd)
    });
    let dw = needs.0[1].then(|| float((grad * xhat).sum_dim(0).reshape([d])));
    (dx, dw)
}

pub(super) fn layer_norm_forward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let x = tensor::<B, 2>(x);
    let rows = x.dims()[0];
    let mean = x.clone().mean_dim(1);
    let centered = x - mean.clone();
    let rstd = (centered.clone().powi_scalar(2).mean_dim(1) + eps)
        .sqrt()
        .recip();
    let y = centered * rstd.clone() * tensor::<B, 1>(weight).unsqueeze::<2>()
        + tensor::<B, 1>(bias).unsqueeze::<2>();
    (
        float(y),
        float(mean.reshape([rows])),
        float(rstd.reshape([rows])),
    )
}

pub(super) fn layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    mean: FloatTensor<B>,
    rstd: FloatTensor<B>,
    grad: FloatTensor<B>,
    needs: Needs<3>,
) -> [Option<FloatTensor<B>>; 3] {
    let x = tensor::<B, 2>(x);
    let [rows, d] = x.dims();
    let rstd = tensor::<B, 1>(rstd).reshape([rows, 1]);
    let xhat = (x - tensor::<B, 1>(mean).reshape([rows, 1])) * rstd.clone();
    let grad = tensor::<B, 2>(grad);
    let dx = needs.0[0].then(|| {
        let g = grad.clone() * tensor::<B, 1>(weight).unsqueeze::<2>();
        let m1 = g.clone().mean_dim(1);
        let m2 = (g.clone() * xhat.clone()).mean_dim(1);
        float((g - m1 - xhat.clone() * m2) * rstd)
    });
    let dw = needs.0[1].then(|| float((grad.clone() * xhat).sum_dim(0).reshape([d])));
    let db = needs.0[2].then(|| float(grad.sum_dim(0).reshape([d])));
    [dx, dw, db]
}

fn mask_tensors<B: Backend>(mask: MaskPrimitives<B>) -> AttentionMask<B> {
    AttentionMask {
        bias: mask.bias.map(tensor),
        padding: mask.padding.map(tensor),
        dropout: mask.dropout.map(tensor),
    }
}

pub(super) fn attention_forward<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    mask: MaskPrimitives<B>,
    heads: usize,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let mask = mask_tensors(mask);
    let probs = softmax(scores(tensor(query), tensor(key), &mask, heads), 3);
    let weights = match mask.dropout {
        Some(keep) => probs.clone() * keep,
        None => probs.clone(),
    };
    let out = merge_heads(weights.matmul(split_heads(tensor(value), heads)));
    (float(out), float(probs))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn attention_backward<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    probs: FloatTensor<B>,
    dropout: Option<FloatTensor<B>>,
    grad: FloatTensor<B>,
    heads: usize,
    bias_shape: Option<[usize; 4]>,
    needs: Needs<4>,
) -> AttentionGrads<B> {
    let need_v = needs.0[2];
    let probs = tensor::<B, 4>(probs);
    let dropout = dropout.map(tensor::<B, 4>);
    let grad = split_heads(tensor(grad), heads);
    let value = split_heads(tensor(value), heads);
    let weights = match &dropout {
        Some(keep) => probs.clone() * keep.clone(),
        None => probs.clone(),
    };
    let mut dp = grad.clone().matmul(value.swap_dims(2, 3));
    if let Some(keep) = dropout {
        dp = dp * keep;
    }
    let ds = probs.clone() * (dp.clone() - (dp * probs).sum_dim(3));
    let weights = need_v.then_some(weights);
    attention_grads(ds, weights, grad, query, key, heads, bias_shape, needs)
}

/// The gradients of the attention's inputs from `ds`, the gradient of the scores, and the
/// dropped-out probabilities `weights` (given when the values need a gradient): the products
/// every backend's backward shares once it has `ds`.
///
/// # Shapes
/// - ds, weights: `[batch, heads, q_len, k_len]`; grad: `[batch, heads, q_len, d_kv]`
/// - query: `[batch, q_len, heads * d_kv]`; key: `[batch, k_len, heads * d_kv]`
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_grads<B: Backend>(
    ds: Tensor<B, 4>,
    weights: Option<Tensor<B, 4>>,
    grad: Tensor<B, 4>,
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    heads: usize,
    bias_shape: Option<[usize; 4]>,
    needs: Needs<4>,
) -> AttentionGrads<B> {
    let [need_q, need_k, _, need_bias] = needs.0;
    let dv = weights.map(|w| float(merge_heads(w.swap_dims(2, 3).matmul(grad))));
    let dq = need_q.then(|| {
        float(merge_heads(
            ds.clone().matmul(split_heads(tensor(key), heads)),
        ))
    });
    let dk = need_k.then(|| {
        float(merge_heads(
            ds.clone()
                .swap_dims(2, 3)
                .matmul(split_heads(tensor(query), heads)),
        ))
    });
    let bias = match bias_shape {
        Some([1, ..]) if need_bias && ds.dims()[0] > 1 => Some(float(ds.sum_dim(0))),
        Some(_) if need_bias => Some(float(ds)),
        _ => None,
    };
    AttentionGrads {
        query: dq,
        key: dk,
        value: dv,
        bias,
    }
}

pub(super) fn cross_entropy_forward<B: Backend>(
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    smoothing: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let logits = tensor::<B, 2>(logits);
    let labels = Tensor::<B, 1, Int>::from_primitive(labels);
    let n = logits.dims()[0];
    let max = logits.clone().max_dim(1);
    let lse = ((logits.clone() - max.clone()).exp().sum_dim(1).log() + max).reshape([n]);
    let loss = cross_entropy(logits, labels, smoothing);
    (float(loss), float(lse))
}

pub(super) fn cross_entropy_backward<B: Backend>(
    logits: FloatTensor<B>,
    labels: IntTensor<B>,
    lse: FloatTensor<B>,
    smoothing: f64,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let logits = tensor::<B, 2>(logits);
    let [n, vocab] = logits.dims();
    let labels = Tensor::<B, 1, Int>::from_primitive(labels);
    let (keep, count, safe) = kept_rows(labels);
    let probs = (logits - tensor::<B, 1>(lse).reshape([n, 1])).exp();
    let target = safe.one_hot::<2>(vocab).float() * (1.0 - smoothing);
    let scale = (keep / count * tensor::<B, 1>(grad)).reshape([n, 1]);
    float((probs - target - smoothing / vocab as f64) * scale)
}

/// burn's `AdamW` step, operation for operation.
pub(super) fn adamw_step<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    moments: Option<[FloatTensor<B>; 2]>,
    s: AdamWStep,
) -> [FloatTensor<B>; 3] {
    let shape = param.shape();
    // Elementwise throughout: work on flat views whatever the rank.
    let flat =
        |t: FloatTensor<B>| tensor::<B, 1>(B::float_reshape(t, Shape::new([shape.num_elements()])));
    let back = |t: Tensor<B, 1>| B::float_reshape(float(t), shape.clone());
    let grad = flat(grad);
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let (m, v) = match moments {
        Some([m, v]) => (
            flat(m)
                .mul_scalar(s.beta_1)
                .add(grad.clone().mul_scalar(f1)),
            flat(v)
                .mul_scalar(s.beta_2)
                .add(grad.square().mul_scalar(f2)),
        ),
        None => (grad.clone().mul_scalar(f1), grad.square().mul_scalar(f2)),
    };
    let t = s.time as i32;
    let m_hat = m.clone().div_scalar(1f32 - s.beta_1.powi(t));
    let v_hat = v.clone().div_scalar(1f32 - s.beta_2.powi(t));
    let delta = m_hat.div(v_hat.sqrt().add_scalar(s.epsilon));
    let decay = s.lr * s.weight_decay as f64;
    let param = flat(param);
    let param = if decay == 0.0 {
        param
    } else {
        param.mul_scalar(1.0 - decay)
    };
    [back(param - delta.mul_scalar(s.lr)), back(m), back(v)]
}
