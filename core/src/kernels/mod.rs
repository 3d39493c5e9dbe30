//! Hand-written CPU kernels on plain `f32` slices:
//! - the fused operations of [`crate::fused`] on the CPU backend, forward and backward
//!   ([`linear`], [`norm`], [`attention`], [`cross_entropy`]) and the optimizer's update
//!   ([`adamw`]), in training and inference, on every target, over the strided products of
//!   [`matmul`];
//! - few-row matrix products for decoding ([`skinny`], x86-64 with AVX2/FMA or AVX-512), which
//!   [`small_rows_matmul`] plugs in under the linear layers and the LM head when the backend is
//!   burn's Flex without autodiff (other backends and training keep the backend's matmul).

#[cfg(feature = "cpu")]
pub mod adamw;
#[cfg(feature = "cpu")]
pub mod attention;
#[cfg(feature = "cpu")]
pub mod cross_entropy;
#[cfg(feature = "cpu")]
pub mod linear;
#[cfg(feature = "cpu")]
pub mod matmul;
#[cfg(feature = "cpu")]
pub mod norm;
#[cfg(all(feature = "cpu", target_arch = "x86_64"))]
pub mod skinny;
#[cfg(feature = "cpu")]
pub(crate) mod vector;

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
}
