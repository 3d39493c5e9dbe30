//! T5's RMS norm and LayerNorm on wgpu: the forward and the input gradient as one kernel each
//! (a cube per row, the row's sums reduced in shared memory), the weight and bias gradients as
//! column sums over chunks of rows, then one burn sum over the chunks.
//!
//! The RMS norm is LayerNorm without the mean: the backward kernels serve both, the mean given
//! or not.

use burn::backend::wgpu::WgpuRuntime;
use burn::tensor::ops::FloatTensor;
use cubecl::prelude::*;

use super::reduce::{cube_sum, MAX_UNITS};
use super::{all_f32, dense, dims, empty, row_cubes, row_units, Gpu};
use crate::backend::Wgpu;
use crate::fused::{float, tensor, Needs};

/// Rows whose column sums one unit of [`param_grads_kernel`] adds up: enough work per unit, and
/// enough chunks to fill a GPU with a few hundred columns.
const CHUNK_ROWS: usize = 32;

/// Units per cube of [`param_grads_kernel`], one column each.
const COLUMN_UNITS: u32 = 64;

/// Most cubes a grid axis holds on every wgpu backend.
const MAX_GRID_AXIS: usize = 65_535;

/// `x: [rows, d]` f32 with `params` f32 of `[d]` each.
pub(super) fn inputs_ok(x: &Gpu, params: &[&Gpu]) -> bool {
    let Some([rows, d]) = dims::<2>(x) else {
        return false;
    };
    let params_ok = params.iter().all(|p| dims::<1>(p) == Some([d]));
    rows > 0 && d > 0 && params_ok && all_f32(&[x]) && all_f32(params)
}

/// The inputs of a norm's backward: those of its forward, `grad` shaped as `x`, `[rows]`
/// statistics.
pub(super) fn backward_ok(
    x: &Gpu,
    weight: &Gpu,
    mean: Option<&Gpu>,
    rstd: &Gpu,
    grad: &Gpu,
) -> bool {
    let Some([rows, _]) = dims::<2>(x) else {
        return false;
    };
    let stats_ok = [Some(rstd), mean]
        .into_iter()
        .flatten()
        .all(|s| dims::<1>(s) == Some([rows]) && all_f32(&[s]));
    inputs_ok(x, &[weight]) && stats_ok && grad.meta.shape() == x.meta.shape() && all_f32(&[grad])
}

/// T5's RMS norm of each row: `y = x · rstd · weight`, `rstd = 1 / sqrt(mean(x²) + eps)`.
///
/// # Shapes
/// - x, y: `[rows, d]`; weight: `[d]`; rstd: `[rows]`
#[cube(launch_unchecked)]
fn rms_norm_kernel(
    x: &Tensor<f32>,
    weight: &Tensor<f32>,
    y: &mut Tensor<f32>,
    rstd: &mut Tensor<f32>,
    eps: f32,
) {
    let (rows, d) = (x.shape(0), x.shape(1));
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let start = row * d;
    let step = CUBE_DIM as usize;
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);

    let mut squares = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < d {
        let v = x[start + j];
        squares += v * v;
        j += step;
    }
    let variance = cube_sum(&mut shared, squares) / f32::cast_from(d as u32);
    let r = 1.0f32 / (variance + eps).sqrt();

    let mut j = UNIT_POS as usize;
    while j < d {
        y[start + j] = x[start + j] * r * weight[j];
        j += step;
    }
    if UNIT_POS == 0 {
        rstd[row] = r;
    }
}

/// `nn.LayerNorm` of each row: `y = (x - mean) · rstd · weight + bias`, the biased variance.
///
/// # Shapes
/// - x, y: `[rows, d]`; weight, bias: `[d]`; mean, rstd: `[rows]`
#[cube(launch_unchecked)]
fn layer_norm_kernel(
    x: &Tensor<f32>,
    weight: &Tensor<f32>,
    bias: &Tensor<f32>,
    y: &mut Tensor<f32>,
    mean: &mut Tensor<f32>,
    rstd: &mut Tensor<f32>,
    eps: f32,
) {
    let (rows, d) = (x.shape(0), x.shape(1));
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let start = row * d;
    let step = CUBE_DIM as usize;
    let len = f32::cast_from(d as u32);
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);

    let mut sum = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < d {
        sum += x[start + j];
        j += step;
    }
    let mu = cube_sum(&mut shared, sum) / len;

    // A second pass for the variance, as the composed operations (no cancellation in E[x²] - μ²).
    let mut squares = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < d {
        let c = x[start + j] - mu;
        squares += c * c;
        j += step;
    }
    let r = 1.0f32 / (cube_sum(&mut shared, squares) / len + eps).sqrt();

    let mut j = UNIT_POS as usize;
    while j < d {
        y[start + j] = (x[start + j] - mu) * r * weight[j] + bias[j];
        j += step;
    }
    if UNIT_POS == 0 {
        mean[row] = mu;
        rstd[row] = r;
    }
}

/// The input gradient of a norm, per row: with `g = grad · weight` and `x̂ = (x - mean) · rstd`,
/// `dx = (g - mean(g) - x̂ · mean(g · x̂)) · rstd` for LayerNorm (`mean` given) and
/// `dx = (g - x̂ · mean(g · x̂)) · rstd` for the RMS norm (no `mean`).
///
/// # Shapes
/// - x, grad, dx: `[rows, d]`; weight: `[d]`; mean, rstd: `[rows]`
#[cube(launch_unchecked)]
fn backward_kernel(
    x: &Tensor<f32>,
    weight: &Tensor<f32>,
    mean: &ComptimeOption<Tensor<f32>>,
    rstd: &Tensor<f32>,
    grad: &Tensor<f32>,
    dx: &mut Tensor<f32>,
) {
    let (rows, d) = (x.shape(0), x.shape(1));
    let row = CUBE_POS;
    if row >= rows {
        terminate!();
    }
    let start = row * d;
    let step = CUBE_DIM as usize;
    let len = f32::cast_from(d as u32);
    let mut shared = SharedMemory::<f32>::new(MAX_UNITS);
    let r = rstd[row];
    #[comptime]
    let shift = match mean {
        ComptimeOption::Some(mean) => mean[row],
        ComptimeOption::None => f32::new(0.0),
    };

    // One `let` each: a destructured tuple of `mut`s is a constant in a CubeCL kernel.
    let mut g_sum = 0.0f32;
    let mut gx_sum = 0.0f32;
    let mut j = UNIT_POS as usize;
    while j < d {
        let g = grad[start + j] * weight[j];
        g_sum += g;
        gx_sum += g * ((x[start + j] - shift) * r);
        j += step;
    }
    #[comptime]
    let g_mean = match mean {
        ComptimeOption::Some(_) => cube_sum(&mut shared, g_sum) / len,
        ComptimeOption::None => f32::new(0.0),
    };
    let gx_mean = cube_sum(&mut shared, gx_sum) / len;

    let mut j = UNIT_POS as usize;
    while j < d {
        let g = grad[start + j] * weight[j];
        let xhat = (x[start + j] - shift) * r;
        dx[start + j] = (g - g_mean - xhat * gx_mean) * r;
        j += step;
    }
}

/// The weight and bias gradients of a norm over one chunk of rows, one unit per column:
/// `Σ grad · x̂` and `Σ grad` (`x̂ = (x - mean) · rstd`, no mean for the RMS norm). Cube
/// `(i, c)` covers columns `i · CUBE_DIM_X ..` of the rows of chunk `c`.
///
/// # Shapes
/// - x, grad: `[rows, d]`; mean, rstd: `[rows]`; dweight, dbias: `[chunks, d]`
#[cube(launch_unchecked)]
fn param_grads_kernel(
    x: &Tensor<f32>,
    mean: &ComptimeOption<Tensor<f32>>,
    rstd: &Tensor<f32>,
    grad: &Tensor<f32>,
    dweight: &mut ComptimeOption<Tensor<f32>>,
    dbias: &mut ComptimeOption<Tensor<f32>>,
    chunk_rows: u32,
) {
    let (rows, d) = (x.shape(0), x.shape(1));
    let col = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let chunk = CUBE_POS_Y as usize;
    if col >= d {
        terminate!();
    }
    let first = chunk * chunk_rows as usize;
    let end = min(first + chunk_rows as usize, rows);

    let mut dw = 0.0f32;
    let mut db = 0.0f32;
    let mut i = first;
    while i < end {
        #[comptime]
        let shift = match mean {
            ComptimeOption::Some(mean) => mean[i],
            ComptimeOption::None => f32::new(0.0),
        };
        let g = grad[i * d + col];
        dw += g * ((x[i * d + col] - shift) * rstd[i]);
        db += g;
        i += 1;
    }
    #[comptime]
    if let ComptimeOption::Some(dweight) = dweight {
        dweight[chunk * d + col] = dw;
    }
    #[comptime]
    if let ComptimeOption::Some(dbias) = dbias {
        dbias[chunk * d + col] = db;
    }
}

pub(super) fn rms_norm_forward(x: Gpu, weight: Gpu, eps: f64) -> (Gpu, Gpu) {
    let (x, weight) = (dense(x), dense(weight));
    let [rows, d] = x.meta.shape().dims::<2>();
    let (y, rstd) = (empty(&x, [rows, d]), empty(&x, [rows]));
    let client = x.client.clone();
    // SAFETY: a cube per row (cubes past `rows` return at once); every index is
    // `row · d + j` with `row < rows`, `j < d`, or `row` / `j` alone, inside `x`, `y` (`[rows,
    // d]`, dense), `rstd` (`[rows]`) and `weight` (`[d]`, checked by `inputs_ok`). The loops
    // stride up to `d` and end.
    unsafe {
        rms_norm_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, rows),
            row_units(d),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            rstd.clone().into_tensor_arg(),
            eps as f32,
        );
    }
    (y, rstd)
}

pub(super) fn layer_norm_forward(x: Gpu, weight: Gpu, bias: Gpu, eps: f64) -> (Gpu, Gpu, Gpu) {
    let (x, weight, bias) = (dense(x), dense(weight), dense(bias));
    let [rows, d] = x.meta.shape().dims::<2>();
    let y = empty(&x, [rows, d]);
    let (mean, rstd) = (empty(&x, [rows]), empty(&x, [rows]));
    let client = x.client.clone();
    // SAFETY: as for `rms_norm_kernel`: indices `row · d + j`, `row`, `j` with `row < rows` and
    // `j < d` into dense tensors of those shapes; `bias` is `[d]` (checked by `inputs_ok`).
    unsafe {
        layer_norm_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, rows),
            row_units(d),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            bias.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            mean.clone().into_tensor_arg(),
            rstd.clone().into_tensor_arg(),
            eps as f32,
        );
    }
    (y, mean, rstd)
}

/// Gradients of either norm for `[x, weight, bias]` (LayerNorm when `mean` is given; the RMS
/// norm has no bias).
pub(super) fn backward(
    x: Gpu,
    weight: Gpu,
    mean: Option<Gpu>,
    rstd: Gpu,
    grad: Gpu,
    needs: Needs<3>,
) -> [Option<FloatTensor<Wgpu>>; 3] {
    let [need_x, need_w, need_b] = needs.0;
    let need_b = need_b && mean.is_some();
    let (x, rstd, grad) = (dense(x), dense(rstd), dense(grad));
    let mean = mean.map(dense);
    let dx = need_x.then(|| input_grad(&x, dense(weight), mean.clone(), &rstd, &grad));
    let (dw, db) = if need_w || need_b {
        param_grads(&x, mean, &rstd, &grad, need_w, need_b)
    } else {
        (None, None)
    };
    [dx, dw, db]
}

fn input_grad(x: &Gpu, weight: Gpu, mean: Option<Gpu>, rstd: &Gpu, grad: &Gpu) -> Gpu {
    let [rows, d] = x.meta.shape().dims::<2>();
    let dx = empty(x, [rows, d]);
    let client = x.client.clone();
    // SAFETY: a cube per row; indices `row · d + j`, `row`, `j` with `row < rows`, `j < d` into
    // dense `x`, `grad`, `dx` (`[rows, d]`), `mean`, `rstd` (`[rows]`) and `weight` (`[d]`), all
    // checked by `backward_ok`.
    unsafe {
        backward_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            row_cubes(&client, rows),
            row_units(d),
            x.clone().into_tensor_arg(),
            weight.into_tensor_arg(),
            mean.map(|m| m.into_tensor_arg()).into(),
            rstd.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            dx.clone().into_tensor_arg(),
        );
    }
    dx
}

/// `(dweight, dbias)` as `[d]` tensors: the chunk sums of [`param_grads_kernel`], summed.
fn param_grads(
    x: &Gpu,
    mean: Option<Gpu>,
    rstd: &Gpu,
    grad: &Gpu,
    need_w: bool,
    need_b: bool,
) -> (Option<Gpu>, Option<Gpu>) {
    let [rows, d] = x.meta.shape().dims::<2>();
    let chunk_rows = CHUNK_ROWS.max(rows.div_ceil(MAX_GRID_AXIS));
    let chunks = rows.div_ceil(chunk_rows);
    let dw = need_w.then(|| empty(x, [chunks, d]));
    let db = need_b.then(|| empty(x, [chunks, d]));
    let client = x.client.clone();
    let cubes = CubeCount::Static(d.div_ceil(COLUMN_UNITS as usize) as u32, chunks as u32, 1);
    // SAFETY: units past column `d` return at once; cube `(i, c)` reads rows
    // `c · chunk_rows .. min((c + 1) · chunk_rows, rows)` of dense `[rows, d]` / `[rows]`
    // tensors and writes element `c · d + col` of `[chunks, d]` outputs, `c < chunks`. The
    // grid's second axis holds `chunks <= 65535` by the choice of `chunk_rows`.
    unsafe {
        param_grads_kernel::launch_unchecked::<WgpuRuntime>(
            &client,
            cubes,
            CubeDim::new_1d(COLUMN_UNITS),
            x.clone().into_tensor_arg(),
            mean.map(|m| m.into_tensor_arg()).into(),
            rstd.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            dw.clone().map(|t| t.into_tensor_arg()).into(),
            db.clone().map(|t| t.into_tensor_arg()).into(),
            chunk_rows as u32,
        );
    }
    let total = |partial: Gpu| -> Gpu {
        let partial = tensor::<Wgpu, 2>(partial);
        let sum = if chunks == 1 {
            partial
        } else {
            partial.sum_dim(0)
        };
        float(sum.reshape([d]))
    };
    (dw.map(total), db.map(total))
}
