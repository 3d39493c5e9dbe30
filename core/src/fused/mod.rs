//! Fused operations with their own backward, plugged in under the generic model through burn's
//! backend-extension pattern: linear layers, the embedding lookup, T5's RMS norm, the adapters'
//! LayerNorm, the attention core (scores, position bias and mask, softmax, dropout, weighted
//! values) and the label-smoothed cross-entropy over the vocabulary.
//!
//! [`FusedOps`] is a trait on the backend. Each operation has a forward that also returns what
//! its backward needs (row statistics, attention probabilities) and a backward that takes them;
//! their default bodies are the composed burn operations of [`reference`], so any backend works
//! with an empty `impl`. The CPU backend overrides them with the one-pass kernels of
//! [`crate::kernels`], the wgpu backend with CubeCL kernels, and `Autodiff<B>` records each
//! operation as one node of the graph whose backward calls `B`'s (see `autodiff.rs`). The model
//! calls the functions of this module ([`linear`], [`embedding`], [`rms_norm`], [`layer_norm`],
//! [`attention`], [`cross_entropy`]) and stays generic.

mod autodiff;
#[cfg(feature = "cpu")]
mod flex;
pub mod reference;
#[cfg(feature = "wgpu")]
mod wgpu;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::TensorPrimitive;

/// Which inputs of an operation need a gradient (the others are frozen or constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs<const N: usize>(pub [bool; N]);

impl<const N: usize> Needs<N> {
    pub const ALL: Self = Self([true; N]);
}

/// Gradients of an attention core's inputs; `None` where not needed.
pub struct AttentionGrads<B: Backend> {
    pub query: Option<FloatTensor<B>>,
    pub key: Option<FloatTensor<B>>,
    pub value: Option<FloatTensor<B>>,
    pub bias: Option<FloatTensor<B>>,
}

/// The fused operations a backend provides. Shapes are those of the functions of this module;
/// every method has a composed default ([`reference`]).
pub trait FusedOps: Backend {
    /// `x · weight + bias` for `x: [rows, d_in]`, `weight: [d_in, d_out]`, `bias: [d_out]`.
    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        reference::linear_forward::<Self>(x, weight, bias)
    }

    /// Gradients of [`Self::linear_forward`] for `x`, `weight` (needs `x`, kept only when the
    /// weight trains) and `bias`. The weight's gradient has the weight's memory layout.
    fn linear_backward(
        x: Option<FloatTensor<Self>>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<3>,
    ) -> [Option<FloatTensor<Self>>; 3] {
        reference::linear_backward::<Self>(x, weight, grad, needs)
    }

    /// T5's RMS norm of `x: [rows, d]` with `weight: [d]`: `(y, rstd)`, `rstd: [rows]` the
    /// reciprocal root mean square of each row.
    fn rms_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::rms_norm_forward::<Self>(x, weight, eps)
    }

    /// Gradients of [`Self::rms_norm_forward`] for `x` and `weight`.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<2>,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        reference::rms_norm_backward::<Self>(x, weight, rstd, grad, needs)
    }

    /// LayerNorm (mean and variance) of `x: [rows, d]`: `(y, mean, rstd)`, both `[rows]`.
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        reference::layer_norm_forward::<Self>(x, weight, bias, eps)
    }

    /// Gradients of [`Self::layer_norm_forward`] for `x`, `weight` and `bias`.
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<3>,
    ) -> [Option<FloatTensor<Self>>; 3] {
        reference::layer_norm_backward::<Self>(x, weight, mean, rstd, grad, needs)
    }

    /// The attention core over heads packed in the last dimension: `(out, probs)` with
    /// `probs: [batch, heads, q_len, k_len]` the softmax weights (before dropout).
    fn attention_forward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        mask: MaskPrimitives<Self>,
        num_heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::attention_forward::<Self>(query, key, value, mask, num_heads)
    }

    /// Gradients of [`Self::attention_forward`]; `bias_shape` is the shape of `mask.bias`.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        dropout: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
        num_heads: usize,
        bias_shape: Option<[usize; 4]>,
        needs: Needs<4>,
    ) -> AttentionGrads<Self> {
        reference::attention_backward::<Self>(
            query, key, value, probs, dropout, grad, num_heads, bias_shape, needs,
        )
    }

    /// Mean label-smoothed cross-entropy of `logits: [n, vocab]` against `labels: [n]` (rows
    /// labelled [`IGNORE_INDEX`] left out): `(loss: [1], lse: [n])`,
    /// `lse` the log-sum-exp of each row.
    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        smoothing: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::cross_entropy_forward::<Self>(logits, labels, smoothing)
    }

    /// Gradient of [`Self::cross_entropy_forward`] for the logits, scaled by `grad: [1]`. The
    /// logits are consumed: a backend may write the gradient into their buffer.
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        lse: FloatTensor<Self>,
        smoothing: f64,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::cross_entropy_backward::<Self>(logits, labels, lse, smoothing, grad)
    }

    /// One AdamW update of a parameter from its gradient (`moments`: none on the first step):
    /// `[param, moment_1, moment_2]`, with burn's `AdamW` arithmetic. The inputs are consumed: a
    /// backend may update them in place.
    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<[FloatTensor<Self>; 2]>,
        step: AdamWStep,
    ) -> [FloatTensor<Self>; 3] {
        reference::adamw_step::<Self>(param, grad, moments, step)
    }

    /// Gradient of an embedding lookup (burn's `embedding`) for its table: the rows of `grad`
    /// added into a zero table at `indices`, in order. `weight` is read for its shape only.
    ///
    /// # Shapes
    /// - weight: `[n, d]`; grad: `[batch, seq, d]`; indices: `[batch, seq]` -> `[n, d]`
    fn embedding_table_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::embedding_backward::<Self>(weight, grad, indices)
    }

    /// How many parts of a batch run best at the same time, each on its own thread: more than
    /// one where the backend's own operations leave cores idle (the CPU backend, on small
    /// models); one elsewhere.
    fn data_parallel_shards() -> usize {
        1
    }

    // What the model calls. Backends without autodiff run the forward alone; `Autodiff<B>`
    // overrides these to record one graph node each.

    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        Self::linear_forward(x, weight, bias)
    }

    fn fused_embedding(weight: FloatTensor<Self>, indices: IntTensor<Self>) -> FloatTensor<Self> {
        Self::embedding(weight, indices)
    }

    fn fused_rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        Self::rms_norm_forward(x, weight, eps).0
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm_forward(x, weight, bias, eps).0
    }

    fn fused_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        mask: MaskPrimitives<Self>,
        num_heads: usize,
    ) -> FloatTensor<Self> {
        Self::attention_forward(query, key, value, mask, num_heads).0
    }

    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        smoothing: f64,
    ) -> FloatTensor<Self> {
        Self::cross_entropy_forward(logits, labels, smoothing).0
    }
}

/// The constants of one AdamW update.
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
    /// The step number, from 1.
    pub time: usize,
}

/// [`AttentionMask`] as the backend's tensors.
#[derive(Clone, Debug)]
pub struct MaskPrimitives<B: Backend> {
    pub bias: Option<FloatTensor<B>>,
    pub padding: Option<FloatTensor<B>>,
    pub dropout: Option<FloatTensor<B>>,
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn tensor<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `x` flattened to `[rows, d]` over its last dimension.
fn rows<B: Backend, const D: usize>(x: Tensor<B, D>) -> (Tensor<B, 2>, [usize; D]) {
    let dims = x.dims();
    let d = dims[D - 1];
    let n = dims[..D - 1].iter().product();
    (x.reshape([n, d]), dims)
}

/// A linear layer, `x · weight + bias`.
///
/// # Shapes
/// - x: `[rows, d_in]`; weight: `[d_in, d_out]`; bias: `[d_out]` -> `[rows, d_out]`
pub fn linear<B: FusedOps>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    tensor(B::fused_linear(float(x), float(weight), bias.map(float)))
}

/// The rows of `weight` at `indices` (an `nn.Embedding` lookup; the table's gradient is
/// written once into a buffer of its own).
///
/// # Shapes
/// - weight: `[n, d]`; indices: `[batch, seq]` -> `[batch, seq, d]`
pub fn embedding<B: FusedOps>(weight: Tensor<B, 2>, indices: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    tensor(B::fused_embedding(float(weight), indices.into_primitive()))
}

/// T5's RMS norm over the last dimension: `weight * x / sqrt(mean(x²) + eps)`, the variance in
/// f32 as HF computes it.
///
/// # Shapes
/// - x: `[..., d]` -> `[..., d]`; weight: `[d]`
pub fn rms_norm<B: FusedOps, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let (x, dims) = rows(x);
    tensor::<B, 2>(B::fused_rms_norm(float(x), float(weight), eps)).reshape(dims)
}

/// PyTorch's `nn.LayerNorm` over the last dimension (biased variance).
///
/// # Shapes
/// - x: `[..., d]` -> `[..., d]`; weight, bias: `[d]`
pub fn layer_norm<B: FusedOps, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let (x, dims) = rows(x);
    tensor::<B, 2>(B::fused_layer_norm(
        float(x),
        float(weight),
        float(bias),
        eps,
    ))
    .reshape(dims)
}

/// What is added to the attention scores before the softmax, and the dropout applied after it.
#[derive(Clone, Debug)]
pub struct AttentionMask<B: Backend> {
    /// Position bias (T5's relative bias, with the decoder's causal mask folded in),
    /// `[1 or batch, heads, q_len, k_len]`; it may require a gradient.
    pub bias: Option<Tensor<B, 4>>,
    /// Additive padding mask over the keys, `[batch, k_len]` (0, or a very negative value where
    /// padded); a constant.
    pub padding: Option<Tensor<B, 2>>,
    /// Dropout multipliers on the attention weights, `[batch, heads, q_len, k_len]` (0 or
    /// `1 / (1 - p)`); a constant.
    pub dropout: Option<Tensor<B, 4>>,
}

impl<B: Backend> Default for AttentionMask<B> {
    fn default() -> Self {
        Self {
            bias: None,
            padding: None,
            dropout: None,
        }
    }
}

impl<B: Backend> AttentionMask<B> {
    fn into_primitives(self) -> MaskPrimitives<B> {
        MaskPrimitives {
            bias: self.bias.map(float),
            padding: self.padding.map(float),
            dropout: self.dropout.map(float),
        }
    }
}

/// `softmax(q kᵀ + bias + padding) · v` per head, with T5's conventions (no 1/sqrt(d_kv)
/// scaling), dropout on the weights when `mask.dropout` is given.
///
/// # Shapes
/// - query: `[batch, q_len, heads * d_kv]`
/// - key, value: `[batch, k_len, heads * d_kv]`
/// - output: `[batch, q_len, heads * d_kv]`
pub fn attention<B: FusedOps>(
    query: Tensor<B, 3>,
    key: Tensor<B, 3>,
    value: Tensor<B, 3>,
    mask: AttentionMask<B>,
    num_heads: usize,
) -> Tensor<B, 3> {
    tensor(B::fused_attention(
        float(query),
        float(key),
        float(value),
        mask.into_primitives(),
        num_heads,
    ))
}

/// Label value that contributes nothing to the loss (padding), as PyTorch's `ignore_index`.
pub const IGNORE_INDEX: i64 = -100;

/// Mean cross-entropy with label smoothing over the tokens whose label is not [`IGNORE_INDEX`]
/// (PyTorch's `CrossEntropyLoss(ignore_index=-100, label_smoothing)`).
///
/// # Shapes
/// - logits: `[n, vocab]`; labels: `[n]`; output: `[1]`
pub fn cross_entropy<B: FusedOps>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    smoothing: f64,
) -> Tensor<B, 1> {
    tensor(B::fused_cross_entropy(
        float(logits),
        labels.into_primitive(),
        smoothing,
    ))
}

/// A backend with autodiff whose inner backend (evaluation, export) has the fused operations
/// too: what training runs on.
pub trait FusedAutodiff: AutodiffBackend<InnerBackend: FusedOps> + FusedOps {}

impl<B> FusedAutodiff for B
where
    B: AutodiffBackend + FusedOps,
    B::InnerBackend: FusedOps,
{
}
