//! Hand-written CPU kernels where the CPU backend is slow for decoding (few-row matrix products,
//! and RMS norm in one pass instead of seven operations), plugged in under the generic model
//! code: [`small_rows_matmul`] and [`rms_norm`] take the fast path when the backend is burn's
//! Flex (not wrapped in autodiff), on x86-64, with f32 operands (and, for the matrix products,
//! AVX2/FMA or AVX-512); everything else (wgpu, training, other CPUs, wasm) keeps the backend's
//! own operations.

#[cfg(all(feature = "cpu", target_arch = "x86_64"))]
pub mod skinny;

use burn::prelude::*;

/// `x · w` for `x: [m, k]` with few rows and `w: [k, n]` (which may be a transposed view of a
/// `[n, k]` table), when a kernel here fits; `None` means: use the backend's own operation.
pub fn small_rows_matmul<B: Backend>(x: &Tensor<B, 2>, w: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    #[cfg(all(feature = "cpu", target_arch = "x86_64"))]
    return flex::skinny_matmul(x, w);
    #[allow(unreachable_code)]
    {
        let _ = (x, w);
        None
    }
}

/// T5's RMS layer norm, `weight * x / sqrt(mean(x²) + eps)` over the last dimension, in one pass
/// on the CPU backend (seven tensor operations otherwise); `None` means: use the generic
/// operations (other backends, and training, whose autodiff needs them).
pub fn rms_norm<B: Backend>(
    x: &Tensor<B, 3>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<Tensor<B, 3>> {
    #[cfg(all(feature = "cpu", target_arch = "x86_64"))]
    return flex::rms_norm(x, weight, eps);
    #[allow(unreachable_code)]
    {
        let _ = (x, weight, eps);
        None
    }
}

#[cfg(all(feature = "cpu", target_arch = "x86_64"))]
mod flex {
    use std::any::{Any, TypeId};

    use burn::prelude::*;
    use burn::tensor::{DType, TensorData, TensorPrimitive};
    use burn_flex::FlexTensor;

    use super::skinny;

    /// The backend's tensor as a Flex tensor, when the backend is Flex.
    fn as_flex<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<FlexTensor> {
        // A type check first, so other backends (autodiff in training) pay no clone.
        if TypeId::of::<B::FloatTensorPrimitive>() != TypeId::of::<FlexTensor>() {
            return None;
        }
        let prim: Box<dyn Any> = Box::new(t.clone().into_primitive().tensor());
        prim.downcast::<FlexTensor>().ok().map(|b| *b)
    }

    fn from_flex<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
        let prim: Box<dyn Any> = Box::new(t);
        let prim = *prim
            .downcast::<B::FloatTensorPrimitive>()
            .expect("called only after as_flex succeeded for this backend");
        Tensor::from_primitive(TensorPrimitive::Float(prim))
    }

    pub(super) fn skinny_matmul<B: Backend>(
        x: &Tensor<B, 2>,
        w: &Tensor<B, 2>,
    ) -> Option<Tensor<B, 2>> {
        let [m, k] = x.dims();
        let [k2, n] = w.dims();
        if m == 0 || m > skinny::MAX_ROWS || k != k2 {
            return None;
        }
        let isa = skinny::detect()?;
        let (xf, wf) = (as_flex(x)?, as_flex(w)?);
        if xf.dtype() != DType::F32 || wf.dtype() != DType::F32 {
            return None;
        }
        let xs = xf.as_slice::<f32>()?;
        let layout = wf.layout();
        let storage = wf.storage::<f32>();
        let y = if let Some(ws) = wf.as_slice::<f32>() {
            skinny::xw(isa, xs, ws, m, k, n)
        } else if layout.strides() == [1, k as isize] {
            // A transposed view of a contiguous `[n, k]` table.
            let start = layout.start_offset();
            skinny::xet(isa, xs, storage.get(start..start + n * k)?, m, k, n)
        } else {
            return None;
        };
        Some(from_flex(FlexTensor::from_data(TensorData::new(y, [m, n]))))
    }

    pub(super) fn rms_norm<B: Backend>(
        x: &Tensor<B, 3>,
        weight: &Tensor<B, 1>,
        eps: f64,
    ) -> Option<Tensor<B, 3>> {
        let dims = x.dims();
        let d = dims[2];
        let (xf, wf) = (as_flex(x)?, as_flex(weight)?);
        if xf.dtype() != DType::F32 || wf.dtype() != DType::F32 || d == 0 {
            return None;
        }
        let (xs, ws) = (xf.as_slice::<f32>()?, wf.as_slice::<f32>()?);
        let mut y = vec![0.0f32; xs.len()];
        for (row, out) in xs.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            // Same order of operations as the generic path: mean of squares in f32, then
            // `x * (1 / sqrt(var + eps)) * w`.
            let var = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let scale = 1.0 / (var + eps as f32).sqrt();
            for ((o, v), w) in out.iter_mut().zip(row).zip(ws) {
                *o = v * scale * w;
            }
        }
        Some(from_flex(FlexTensor::from_data(TensorData::new(y, dims))))
    }
}
