//! The fused operations on burn's wgpu backend as CubeCL kernels: one kernel (a cube per row, the
//! row's statistics reduced in shared memory) where the composed operations launch a dozen
//! elementwise and reduction kernels with a buffer each. The matrix products (linear layers, the
//! attention's two products per head) stay on burn's own matmul, which is already the right
//! kernel on a GPU.
//!
//! Each method checks what its kernels assume (f32 throughout, the shapes of [`FusedOps`],
//! 32-bit indexing) and hands anything else to the composed operations of [`reference`].

mod adamw;
mod attention;
mod cross_entropy;
mod norm;
mod reduce;

use burn::backend::wgpu::{CubeTensor, WgpuRuntime};
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::prelude::{ComputeClient, CubeCount, CubeDim};
use cubecl::server::CubeCountSelection;

use super::{reference, AdamWStep, AttentionGrads, FusedOps, MaskPrimitives, Needs};
use crate::backend::Wgpu;

/// A tensor of the wgpu backend (float or int).
type Gpu = CubeTensor<WgpuRuntime>;

/// Whether every tensor is f32 with few enough elements for the kernels' 32-bit indices.
fn all_f32(tensors: &[&Gpu]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype == DType::F32 && addressable(t))
}

fn addressable(t: &Gpu) -> bool {
    t.meta.shape().num_elements() < u32::MAX as usize
}

/// The dimensions of `t` when it has rank `D`.
fn dims<const D: usize>(t: &Gpu) -> Option<[usize; D]> {
    let shape = t.meta.shape();
    (shape.num_dims() == D).then(|| shape.dims::<D>())
}

/// The tensor with its elements in one row-major run (a copy only when it is a view), so that
/// the kernels index it linearly.
fn dense(t: Gpu) -> Gpu {
    into_contiguous(t)
}

/// A dense tensor the kernels may overwrite: the same one when nothing else holds its buffer,
/// else a copy.
fn writable(t: Gpu) -> Gpu {
    if t.can_mut() && t.is_contiguous() {
        return t;
    }
    let t = if t.is_contiguous() { t.copy() } else { t };
    into_contiguous(t)
}

/// A new dense f32 tensor on `like`'s device, its elements left for a kernel to write.
fn empty(like: &Gpu, shape: impl Into<Shape>) -> Gpu {
    empty_device_contiguous_dtype(
        like.client.clone(),
        like.device.clone(),
        shape.into(),
        DType::F32,
    )
}

/// One cube per row (spread over the grid's axes when there are more rows than one axis holds;
/// the kernels skip the cubes past the last row).
fn row_cubes(client: &ComputeClient<WgpuRuntime>, rows: usize) -> CubeCount {
    CubeCountSelection::new(client, rows as u32).cube_count()
}

/// Units per row: a power of two (the shared-memory tree halves it) up to the row's length,
/// at least one plane's worth, at most [`reduce::MAX_UNITS`].
fn row_units(len: usize) -> CubeDim {
    let units = len.next_power_of_two().clamp(32, reduce::MAX_UNITS);
    CubeDim::new_1d(units as u32)
}

impl FusedOps for Wgpu {
    // `linear_forward` / `linear_backward` keep the composed operations: they are a matrix
    // product and a bias add, and burn's matmul is already the right kernel on a GPU.

    fn rms_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !norm::inputs_ok(&x, &[&weight]) {
            return reference::rms_norm_forward::<Self>(x, weight, eps);
        }
        norm::rms_norm_forward(x, weight, eps)
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<2>,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        if !norm::backward_ok(&x, &weight, None, &rstd, &grad) {
            return reference::rms_norm_backward::<Self>(x, weight, rstd, grad, needs);
        }
        let [need_x, need_w] = needs.0;
        let [dx, dw, _] =
            norm::backward(x, weight, None, rstd, grad, Needs([need_x, need_w, false]));
        (dx, dw)
    }

    fn layer_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !norm::inputs_ok(&x, &[&weight, &bias]) {
            return reference::layer_norm_forward::<Self>(x, weight, bias, eps);
        }
        norm::layer_norm_forward(x, weight, bias, eps)
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<3>,
    ) -> [Option<FloatTensor<Self>>; 3] {
        if !norm::backward_ok(&x, &weight, Some(&mean), &rstd, &grad) {
            return reference::layer_norm_backward::<Self>(x, weight, mean, rstd, grad, needs);
        }
        norm::backward(x, weight, Some(mean), rstd, grad, needs)
    }

    fn attention_forward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        mask: MaskPrimitives<Self>,
        num_heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if attention::dims(&query, &key, &value, &mask, num_heads).is_none() {
            return reference::attention_forward::<Self>(query, key, value, mask, num_heads);
        }
        attention::forward(query, key, value, mask, num_heads)
    }

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
        let mask = MaskPrimitives {
            bias: None,
            padding: None,
            dropout: dropout.clone(),
        };
        let dims = attention::dims(&query, &key, &value, &mask, num_heads);
        let scores_ok = dims.is_some_and(|d| {
            let scores = [d.batch, num_heads, d.q_len, d.k_len];
            all_f32(&[&probs, &grad])
                && self::dims::<4>(&probs) == Some(scores)
                && grad.meta.shape() == query.meta.shape()
        });
        if !scores_ok {
            return reference::attention_backward::<Self>(
                query, key, value, probs, dropout, grad, num_heads, bias_shape, needs,
            );
        }
        attention::backward(
            query, key, value, probs, dropout, grad, num_heads, bias_shape, needs,
        )
    }

    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        smoothing: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !cross_entropy::inputs_ok(&logits, &labels) {
            return reference::cross_entropy_forward::<Self>(logits, labels, smoothing);
        }
        cross_entropy::forward(logits, labels, smoothing)
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        lse: FloatTensor<Self>,
        smoothing: f64,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let rows_ok = dims::<2>(&logits).is_some_and(|[n, _]| dims::<1>(&lse) == Some([n]));
        let grad_ok = grad.meta.shape().num_elements() == 1;
        let ok = cross_entropy::inputs_ok(&logits, &labels)
            && all_f32(&[&lse, &grad])
            && rows_ok
            && grad_ok;
        if !ok {
            return reference::cross_entropy_backward::<Self>(logits, labels, lse, smoothing, grad);
        }
        cross_entropy::backward(logits, labels, lse, smoothing, grad)
    }

    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<[FloatTensor<Self>; 2]>,
        step: AdamWStep,
    ) -> [FloatTensor<Self>; 3] {
        let shape = param.meta.shape();
        let same = |t: &Gpu| t.meta.shape() == shape;
        let moments_ok = moments
            .as_ref()
            .is_none_or(|[m, v]| all_f32(&[m, v]) && same(m) && same(v));
        let ok = all_f32(&[&param, &grad]) && same(&grad) && moments_ok;
        if !ok || shape.num_elements() == 0 {
            return reference::adamw_step::<Self>(param, grad, moments, step);
        }
        adamw::step(param, grad, moments, step)
    }
}
