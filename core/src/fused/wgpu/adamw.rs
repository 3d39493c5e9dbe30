//! AdamW's update on wgpu: one elementwise kernel updating the parameter and both moments in
//! place, in the order of operations of burn's `AdamW` (see `reference::adamw_step`), instead
//! of a dozen elementwise kernels with a buffer each.

use burn::backend::wgpu::WgpuRuntime;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

use super::{dense, empty, writable, Gpu};
use crate::fused::AdamWStep;

/// The step's constants, combined on the host as burn combines them (in f32, or in f64 then
/// rounded where burn takes an f64 scalar).
#[derive(CubeLaunch, CubeType)]
struct Constants {
    lr: f32,
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta_1` and `1 - beta_2`.
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
    /// `1 - beta_1^t` and `1 - beta_2^t`.
    bias_1: f32,
    bias_2: f32,
    /// `1 - lr · weight_decay` (used when `decay`).
    keep: f32,
}

/// One AdamW update per element: `m = β₁·m + (1-β₁)·g`, `v = β₂·v + (1-β₂)·g²`,
/// `param = param·(1 - lr·wd) - lr · (m / (1-β₁ᵗ)) / (sqrt(v / (1-β₂ᵗ)) + ε)`; on the `first`
/// step the moments are written without being read (burn starts them from the gradient).
///
/// # Shapes
/// - param, grad, m, v: any, the same number of elements, dense
#[cube(launch_unchecked)]
fn adamw_kernel(
    param: &mut Tensor<f32>,
    grad: &Tensor<f32>,
    m: &mut Tensor<f32>,
    v: &mut Tensor<f32>,
    c: &Constants,
    #[comptime] first: bool,
    #[comptime] decay: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= param.len() {
        terminate!();
    }
    let g = grad[i];
    let mut m_new = g * c.one_minus_beta_1;
    let mut v_new = g * g * c.one_minus_beta_2;
    if !first {
        m_new += m[i] * c.beta_1;
        v_new += v[i] * c.beta_2;
    }
    m[i] = m_new;
    v[i] = v_new;
    let delta = (m_new / c.bias_1) / ((v_new / c.bias_2).sqrt() + c.epsilon);
    let mut p = param[i];
    if decay {
        p *= c.keep;
    }
    param[i] = p - delta * c.lr;
}

pub(super) fn step(param: Gpu, grad: Gpu, moments: Option<[Gpu; 2]>, s: AdamWStep) -> [Gpu; 3] {
    let param = writable(param);
    let grad = dense(grad);
    let shape = param.meta.shape().clone();
    let first = moments.is_none();
    let [m, v] = match moments {
        Some([m, v]) => [writable(m), writable(v)],
        None => [empty(&param, shape.clone()), empty(&param, shape.clone())],
    };
    let t = s.time as i32;
    let decay = s.lr * s.weight_decay as f64;
    let constants = ConstantsLaunch::new(
        s.lr as f32,
        s.beta_1,
        s.beta_2,
        1.0 - s.beta_1,
        1.0 - s.beta_2,
        s.epsilon,
        1f32 - s.beta_1.powi(t),
        1f32 - s.beta_2.powi(t),
        (1.0 - decay) as f32,
    );
    let n = shape.num_elements();
    let client = param.client.clone();
    let cube_dim = CubeDim::new(&client, n);
    // SAFETY: one unit per element, units past `n` return at once; `param`, `m`, `v` (written)
    // and `grad` are dense with the same `n` elements (checked by the caller), each written
    // only at its own index.
    unsafe {
        adamw_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            calculate_cube_count_elemwise(&client, n, cube_dim),
            cube_dim,
            param.clone().into_tensor_arg(),
            grad.into_tensor_arg(),
            m.clone().into_tensor_arg(),
            v.clone().into_tensor_arg(),
            constants,
            first,
            decay != 0.0,
        );
    }
    [param, m, v]
}
