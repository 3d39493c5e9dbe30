//! The attention core on wgpu: the two matrix products per head on burn's matmul, everything
//! between them in one kernel each way. Forward: bias and padding added to the scores, the row
//! softmax written over them, the dropout-multiplied weights beside; backward: the softmax's
//! gradient `ds = p · (dw - Σ p · dw)` (with `dw` the weights' gradient through the dropout)
//! written over the gradient of the probabilities.

use burn::backend::wgpu::WgpuRuntime;
use burn::prelude::Tensor as BurnTensor;
use cubecl::prelude::*;

use super::reduce::{cube_softmax_stats, cube_sum, online_softmax_add, MAX_UNITS};
use super::{all_f32, dense, dims as dims_of, empty, row_cubes, row_units, writable, Gpu};
use crate::backend::Wgpu;
use crate::fused::reference::{attention_grads, merge_heads, split_heads};
use crate::fused::{float, tensor, AttentionGrads, MaskPrimitives, Needs};

/// The sizes of an attention call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub batch: usize,
    pub q_len: usize,
    pub k_len: usize,
}

/// The sizes of a call the kernels handle: f32 throughout, `[batch, seq, heads·d_kv]` inputs, a
/// bias of `[1 or batch, heads, q_len, k_len]`, padding `[batch, k_len]`, dropout
/// `[batch, heads, q_len, k_len]`, nothing empty. `None` sends the call to the composed
/// operations.
pub(super) fn dims(
    q: &Gpu,
    k: &Gpu,
    v: &Gpu,
    mask: &MaskPrimitives<Wgpu>,
    heads: usize,
) -> Option<Dims> {
    let ([batch, q_len, inner], [k_batch, k_len, k_inner]) = (dims_of::<3>(q)?, dims_of::<3>(k)?);
    let sizes_ok = heads > 0 && inner % heads == 0 && batch * q_len * k_len * inner > 0;
    let kv_ok = k_batch == batch && k_inner == inner && v.meta.shape() == k.meta.shape();
    if !sizes_ok || !kv_ok || !all_f32(&[q, k, v]) {
        return None;
    }
    let scores = [batch, heads, q_len, k_len];
    let bias_ok = mask.bias.as_ref().is_none_or(|b| {
        dims_of::<4>(b).is_some_and(|s| (s[0] == 1 || s[0] == batch) && s[1..] == scores[1..])
    });
    let padding_ok = mask
        .padding
        .as_ref()
        .is_none_or(|p| dims_of::<2>(p) == Some([batch, k_len]));
    let dropout_ok = mask
        .dropout
        .as_ref()
        .is_none_or(|d| dims_of::<4>(d) == Some(scores));
    let masks: Vec<&Gpu> = [&mask.bias, &mask.padding, &mask.dropout]
        .into_iter()
        .flatten()
        .collect();
    let scores_addressable = batch * heads * q_len * k_len < u32::MAX as usize;
    (bias_ok && padding_ok && dropout_ok && all_f32(&masks) && scores_addressable).then_some(Dims {
        batch,
        q_len,
        k_len,
    })
}

/// The softmax of each row of scores plus bias and padding, written over the scores; with
/// dropout, the weights `probs · dropout` too.
///
/// # Shapes
/// - scores: `[batch, heads, q_len, k_len]`, the probabilities on return
/// - bias: `[1 or batch, heads, q_len, k_len]`; padding: `[batch, k_len]`
/// - dropout, weights: `[batch, heads, q_len, k_len]`
#[cube(launch_unchecked)]
fn softmax_kernel(
    scores: &mut Tensor<f32>,
    bias: &ComptimeOption<Tensor<f32>>,
    padding: &ComptimeOption<Tensor<f32>>,
    dropout: &ComptimeOption<Tensor<f32>>,
    weights: &mut ComptimeOption<Tensor<f32>>,
) {
    let per_batch = scores.shape(1) * scores.shape(2);
    let k_len = scores.shape(3);
    let row = CUBE_POS;
    if row >= scores.shape(0) * per_batch {
        terminate!();
    }
    let start = row * k_len;
    let pad_start = (row / per_batch) * k_len;
    let step = CUBE_DIM as usize;
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);

    let mut run_max = f32::new(f32::MIN);
    let mut run_sum = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < k_len {
        let x = masked_score(scores, bias, padding, row, per_batch, start, pad_start, j);
        let (m, s) = online_softmax_add(run_max, run_sum, x);
        run_max = m;
        run_sum = s;
        j += step;
    }
    let (row_max, row_sum) = cube_softmax_stats(&mut shared, run_max, run_sum);

    let mut j = UNIT_POS as usize;
    while j < k_len {
        let x = masked_score(scores, bias, padding, row, per_batch, start, pad_start, j);
        let p = (x - row_max).exp() / row_sum;
        scores[start + j] = p;
        #[comptime]
        if let ComptimeOption::Some(weights) = weights {
            #[comptime]
            let keep = match dropout {
                ComptimeOption::Some(dropout) => dropout[start + j],
                ComptimeOption::None => f32::new(1.0),
            };
            weights[start + j] = p * keep;
        }
        j += step;
    }
}

/// Score `j` of a row with its bias and padding added (a bias with one batch row is shared by
/// every batch).
#[cube]
#[allow(clippy::too_many_arguments)]
fn masked_score(
    scores: &Tensor<f32>,
    bias: &ComptimeOption<Tensor<f32>>,
    padding: &ComptimeOption<Tensor<f32>>,
    row: usize,
    per_batch: usize,
    start: usize,
    pad_start: usize,
    j: usize,
) -> f32 {
    let mut x = scores[start + j];
    #[comptime]
    if let ComptimeOption::Some(bias) = bias {
        let bias_row = if bias.shape(0) == 1 {
            row % per_batch
        } else {
            row
        };
        x += bias[bias_row * scores.shape(3) + j];
    }
    #[comptime]
    if let ComptimeOption::Some(padding) = padding {
        x += padding[pad_start + j];
    }
    x
}

/// The softmax's backward per row: with `dw = dp · dropout` the gradient of the (dropped-out)
/// weights, `ds = p · (dw - Σ p · dw)`, written over `dp`; when `weights` is given, the weights
/// `p · dropout` too (what the values' gradient multiplies).
///
/// # Shapes
/// - probs, grads, dropout, weights: `[batch, heads, q_len, k_len]`; `grads` holds `dp` on
///   entry, `ds` on return
#[cube(launch_unchecked)]
fn softmax_backward_kernel(
    probs: &Tensor<f32>,
    grads: &mut Tensor<f32>,
    dropout: &ComptimeOption<Tensor<f32>>,
    weights: &mut ComptimeOption<Tensor<f32>>,
) {
    let k_len = probs.shape(3);
    let row = CUBE_POS;
    if row >= probs.shape(0) * probs.shape(1) * probs.shape(2) {
        terminate!();
    }
    let start = row * k_len;
    let step = CUBE_DIM as usize;
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);

    let mut dot = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < k_len {
        dot += probs[start + j] * weights_grad(grads, dropout, start + j);
        j += step;
    }
    let dot = cube_sum(&mut shared, dot);

    let mut j = UNIT_POS as usize;
    while j < k_len {
        let i = start + j;
        let p = probs[i];
        grads[i] = p * (weights_grad(grads, dropout, i) - dot);
        #[comptime]
        if let ComptimeOption::Some(weights) = weights {
            #[comptime]
            let keep = match dropout {
                ComptimeOption::Some(dropout) => dropout[i],
                ComptimeOption::None => f32::new(1.0),
            };
            weights[i] = p * keep;
        }
        j += step;
    }
}

/// `dp · dropout` at `i` (`dp` alone without dropout).
#[cube]
fn weights_grad(grads: &Tensor<f32>, dropout: &ComptimeOption<Tensor<f32>>, i: usize) -> f32 {
    #[comptime]
    let keep = match dropout {
        ComptimeOption::Some(dropout) => dropout[i],
        ComptimeOption::None => f32::new(1.0),
    };
    grads[i] * keep
}

pub(super) fn forward(
    query: Gpu,
    key: Gpu,
    value: Gpu,
    mask: MaskPrimitives<Wgpu>,
    heads: usize,
) -> (Gpu, Gpu) {
    let q = split_heads(tensor::<Wgpu, 3>(query), heads);
    let k = split_heads(tensor::<Wgpu, 3>(key), heads);
    let scores = writable(float(q.matmul(k.swap_dims(2, 3))));
    let shape = scores.meta.shape().clone();
    let rows = shape.num_elements() / shape[3];
    let weights = mask.dropout.as_ref().map(|_| empty(&scores, shape.clone()));
    let client = scores.client.clone();
    // Indices: a cube per row of scores (cubes past the last row return at once), `row · k_len
    // + j` (`j < k_len`) into the dense scores, dropout and weights; a bias with one batch row at
    // `(row mod heads·q_len) · k_len + j`; padding at `(row / heads·q_len) · k_len + j`.
    // SAFETY: every index above is inside its dense tensor, whose shape `dims` checked.
    unsafe {
        softmax_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, rows),
            row_units(shape[3]),
            scores.clone().into_tensor_arg(),
            mask.bias.map(|t| dense(t).into_tensor_arg()).into(),
            mask.padding.map(|t| dense(t).into_tensor_arg()).into(),
            mask.dropout.map(|t| dense(t).into_tensor_arg()).into(),
            weights.clone().map(|t| t.into_tensor_arg()).into(),
        );
    }
    let probs = scores;
    let weights = tensor::<Wgpu, 4>(weights.unwrap_or_else(|| probs.clone()));
    let out = merge_heads(weights.matmul(split_heads(tensor(value), heads)));
    (float(out), probs)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    query: Gpu,
    key: Gpu,
    value: Gpu,
    probs: Gpu,
    dropout: Option<Gpu>,
    grad: Gpu,
    heads: usize,
    bias_shape: Option<[usize; 4]>,
    needs: Needs<4>,
) -> AttentionGrads<Wgpu> {
    let need_v = needs.0[2];
    let grad = split_heads(tensor::<Wgpu, 3>(grad), heads);
    let value = split_heads(tensor::<Wgpu, 3>(value), heads);
    let dp = float(grad.clone().matmul(value.swap_dims(2, 3)));
    let (ds, weights) = softmax_backward(dense(probs), dp, dropout, need_v);
    let weights = need_v.then_some(weights);
    attention_grads(ds, weights, grad, query, key, heads, bias_shape, needs)
}

/// `(ds, weights)` from the probabilities and the gradient `dp` of the weights, by
/// [`softmax_backward_kernel`]; `weights` are the probabilities themselves without dropout, and
/// are only written when the values need a gradient.
fn softmax_backward(
    probs: Gpu,
    dp: Gpu,
    dropout: Option<Gpu>,
    need_v: bool,
) -> (BurnTensor<Wgpu, 4>, BurnTensor<Wgpu, 4>) {
    let ds = writable(dp);
    let shape = probs.meta.shape().clone();
    let rows = shape.num_elements() / shape[3];
    let weights = (need_v && dropout.is_some()).then(|| empty(&probs, shape.clone()));
    let client = probs.client.clone();
    // SAFETY: a cube per row (cubes past the last row return at once); every index is
    // `row · k_len + j`, `j < k_len`, into dense tensors of the probabilities' shape (`dp` and
    // the dropout are checked to have it).
    unsafe {
        softmax_backward_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, rows),
            row_units(shape[3]),
            probs.clone().into_tensor_arg(),
            ds.clone().into_tensor_arg(),
            dropout.map(|t| dense(t).into_tensor_arg()).into(),
            weights.clone().map(|t| t.into_tensor_arg()).into(),
        );
    }
    let weights = weights.unwrap_or(probs);
    (tensor(ds), tensor(weights))
}
