//! The label-smoothed cross-entropy over the vocabulary on wgpu. Forward: one kernel with a cube
//! per row (max, log-sum-exp, the label's logit and the row's mean in one pass over the logits),
//! then one cube for the mean over the rows that count. Backward: one cube for the scale
//! `grad / count`, then one kernel writing the gradient over the logits.
//!
//! A row counts when its label is inside the vocabulary: `IGNORE_INDEX` (-100) rows, and any
//! other label that would index outside the row, are left out, as in the CPU kernel
//! (`crate::kernels::cross_entropy`).

use burn::backend::wgpu::WgpuRuntime;
use burn::tensor::DType;
use cubecl::prelude::*;

use super::reduce::{cube_softmax_stats, cube_sum, online_softmax_add, MAX_UNITS};
use super::{addressable, all_f32, dense, dims, empty, row_cubes, row_units, writable, Gpu};

/// `logits: [n, vocab]` f32 and `labels: [n]` i32 (burn's wgpu integers), nothing empty.
pub(super) fn inputs_ok(logits: &Gpu, labels: &Gpu) -> bool {
    let Some([n, vocab]) = dims::<2>(logits) else {
        return false;
    };
    let labels_ok = labels.dtype == DType::I32 && dims::<1>(labels) == Some([n]);
    n > 0 && vocab > 0 && labels_ok && all_f32(&[logits]) && addressable(labels)
}

/// Whether `label` names a column of a `vocab`-wide row.
#[cube]
fn counts(label: i32, vocab: usize) -> bool {
    label >= 0 && u32::cast_from(label) < vocab as u32
}

/// Per row: the log-sum-exp, and the loss `(1 - ε)·(lse - z[label]) + ε·(lse - mean(z))`
/// (0 for a row that does not count).
///
/// # Shapes
/// - logits: `[n, vocab]`; labels, lse, losses: `[n]`
#[cube(launch_unchecked)]
fn rows_kernel(
    logits: &Tensor<f32>,
    labels: &Tensor<i32>,
    lse: &mut Tensor<f32>,
    losses: &mut Tensor<f32>,
    smoothing: f32,
) {
    let (n, vocab) = (logits.shape(0), logits.shape(1));
    let row = CUBE_POS;
    if row >= n {
        terminate!();
    }
    let start = row * vocab;
    let step = CUBE_DIM as usize;
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);

    let mut run_max = f32::new(f32::MIN);
    let mut run_sum = 0.0f32;
    let mut total = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < vocab {
        let z = logits[start + j];
        let (m, s) = online_softmax_add(run_max, run_sum, z);
        run_max = m;
        run_sum = s;
        total += z;
        j += step;
    }
    let (row_max, row_sum) = cube_softmax_stats(&mut shared, run_max, run_sum);
    let total = cube_sum(&mut shared, total);

    if UNIT_POS == 0 {
        let row_lse = row_max + row_sum.ln();
        lse[row] = row_lse;
        let label = labels[row];
        let mut loss = 0.0f32;
        if counts(label, vocab) {
            let nll = row_lse - logits[start + u32::cast_from(label) as usize];
            let smooth = row_lse - total / f32::cast_from(vocab as u32);
            loss = (1.0 - smoothing) * nll + smoothing * smooth;
        }
        losses[row] = loss;
    }
}

/// The number of rows that count, summed over the cube (every unit must call it).
#[cube]
fn count_rows(shared: &mut SharedMemory<f32>, labels: &Tensor<i32>, vocab: u32) -> f32 {
    let mut count = 0.0f32;
    let mut i = UNIT_POS as usize;
    while i < labels.shape(0) {
        if counts(labels[i], vocab as usize) {
            count += 1.0;
        }
        i += CUBE_DIM as usize;
    }
    max(cube_sum(shared, count), 1.0f32)
}

/// One cube: the mean of the rows' losses over the rows that count (at least one, as the
/// composed operations clamp the count).
///
/// # Shapes
/// - losses, labels: `[n]`; loss: `[1]`
#[cube(launch_unchecked)]
fn mean_kernel(losses: &Tensor<f32>, labels: &Tensor<i32>, loss: &mut Tensor<f32>, vocab: u32) {
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);
    let mut total = 0.0f32;
    let mut i = UNIT_POS as usize;
    while i < losses.shape(0) {
        total += losses[i];
        i += CUBE_DIM as usize;
    }
    let total = cube_sum(&mut shared, total);
    let count = count_rows(&mut shared, labels, vocab);
    if UNIT_POS == 0 {
        loss[0] = total / count;
    }
}

/// One cube: the upstream gradient of the mean loss per counted row, `grad / count`.
///
/// # Shapes
/// - labels: `[n]`; grad, scale: `[1]`
#[cube(launch_unchecked)]
fn scale_kernel(labels: &Tensor<i32>, grad: &Tensor<f32>, scale: &mut Tensor<f32>, vocab: u32) {
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);
    let count = count_rows(&mut shared, labels, vocab);
    if UNIT_POS == 0 {
        scale[0] = grad[0] / count;
    }
}

/// The gradient over the logits, per row: `(softmax - (1 - ε)·onehot(label) - ε / vocab) ·
/// scale`, zero for a row that does not count; written over the logits.
///
/// # Shapes
/// - logits: `[n, vocab]`, the gradient on return; labels, lse: `[n]`; scale: `[1]`
#[cube(launch_unchecked)]
fn grad_kernel(
    logits: &mut Tensor<f32>,
    labels: &Tensor<i32>,
    lse: &Tensor<f32>,
    scale: &Tensor<f32>,
    smoothing: f32,
) {
    let (n, vocab) = (logits.shape(0), logits.shape(1));
    let row = CUBE_POS;
    if row >= n {
        terminate!();
    }
    let start = row * vocab;
    let label = labels[row];
    let counted = counts(label, vocab);
    let target = u32::cast_from(label) as usize;
    let uniform = smoothing / f32::cast_from(vocab as u32);
    let (s, row_lse) = (scale[0], lse[row]);

    let mut j = UNIT_POS as usize;
    while j < vocab {
        let mut g = 0.0f32;
        if counted {
            let mut hit = 0.0f32;
            if j == target {
                hit = 1.0 - smoothing;
            }
            g = ((logits[start + j] - row_lse).exp() - hit - uniform) * s;
        }
        logits[start + j] = g;
        j += CUBE_DIM as usize;
    }
}

pub(super) fn forward(logits: Gpu, labels: Gpu, smoothing: f64) -> (Gpu, Gpu) {
    let (logits, labels) = (dense(logits), dense(labels));
    let [n, vocab] = logits.meta.shape().dims::<2>();
    let (lse, losses, loss) = (
        empty(&logits, [n]),
        empty(&logits, [n]),
        empty(&logits, [1]),
    );
    let client = logits.client.clone();
    // SAFETY: a cube per row (cubes past `n` return at once); indices `row · vocab + j`
    // (`j < vocab`), `row` and `row · vocab + label` only for `0 <= label < vocab`, into dense
    // `[n, vocab]` logits and `[n]` labels, lse and losses (checked by `inputs_ok`).
    unsafe {
        rows_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, n),
            row_units(vocab),
            logits.into_tensor_arg(),
            labels.clone().into_tensor_arg(),
            lse.clone().into_tensor_arg(),
            losses.clone().into_tensor_arg(),
            smoothing as f32,
        );
    }
    // SAFETY: one cube; its units stride over `[n]` losses and labels below `n`; it writes
    // element 0 of a `[1]` tensor.
    unsafe {
        mean_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            CubeCount::Static(1, 1, 1),
            row_units(n),
            losses.into_tensor_arg(),
            labels.into_tensor_arg(),
            loss.clone().into_tensor_arg(),
            vocab as u32,
        );
    }
    (loss, lse)
}

pub(super) fn backward(logits: Gpu, labels: Gpu, lse: Gpu, smoothing: f64, grad: Gpu) -> Gpu {
    // The logits' own buffer when nothing else holds it: one `[n, vocab]` buffer for the logits
    // and their gradient.
    let z = writable(logits);
    let (labels, lse, grad) = (dense(labels), dense(lse), dense(grad));
    let [n, vocab] = z.meta.shape().dims::<2>();
    let scale = empty(&z, [1]);
    let client = z.client.clone();
    // SAFETY: one cube; its units stride over the `[n]` labels below `n`; it reads element 0 of
    // the one-element `grad` and writes element 0 of `[1]` `scale`.
    unsafe {
        scale_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            CubeCount::Static(1, 1, 1),
            row_units(n),
            labels.clone().into_tensor_arg(),
            grad.into_tensor_arg(),
            scale.clone().into_tensor_arg(),
            vocab as u32,
        );
    }
    // SAFETY: a cube per row (cubes past `n` return at once); indices `row · vocab + j`
    // (`j < vocab`) into the dense `[n, vocab]` logits, `row` into `[n]` labels and lse, 0 into
    // `[1]` scale.
    unsafe {
        grad_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, n),
            row_units(vocab),
            z.clone().into_tensor_arg(),
            labels.into_tensor_arg(),
            lse.into_tensor_arg(),
            scale.into_tensor_arg(),
            smoothing as f32,
        );
    }
    z
}
