//! T5's RMS norm and the adapters' LayerNorm, forward and backward, one pass over each row.
//!
//! Rows are split into tasks of a fixed size (not one per thread), so the per-task partial sums
//! of the weight gradients add up in the same order on any number of threads.

use rayon::prelude::*;

use super::vector::{multiversion, sum_map, sum_zip, sum_zip3};

/// Rows per parallel task: about 16k elements, enough to pay for the task.
fn rows_per_task(d: usize) -> usize {
    (16_384 / d.max(1)).max(1)
}

/// Sums per-task partial gradients of length `d` in task order.
fn add_partials(partials: Vec<Vec<f32>>, d: usize) -> Vec<f32> {
    let mut total = vec![0f32; d];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// `y = x · rstd · w` with `rstd = 1 / sqrt(mean(x²) + eps)` per row of `x: [rows, d]`.
pub fn rms_norm_forward(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], rstd: &mut [f32]) {
    let d = w.len();
    let per = rows_per_task(d);
    x.par_chunks(per * d)
        .zip(y.par_chunks_mut(per * d))
        .zip(rstd.par_chunks_mut(per))
        .for_each(|((x, y), r)| rms_rows(x, w, eps, y, r));
}

multiversion! {
    fn rms_rows(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], rstd: &mut [f32]) {
        let d = w.len();
        for ((x, y), r) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(rstd) {
            let s = 1.0 / (sum_map(x, |v| v * v) / d as f32 + eps).sqrt();
            *r = s;
            for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                *y = x * s * w;
            }
        }
    }
}

/// Gradients of [`rms_norm_forward`]: `dx` (when given) and the returned `dw` (when `need_dw`).
pub fn rms_norm_backward(
    x: &[f32],
    w: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    need_dw: bool,
) -> Option<Vec<f32>> {
    let d = w.len();
    let per = rows_per_task(d);
    let mut dx_chunks: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx.chunks_mut(per * d).map(Some).collect(),
        None => (0..x.len().div_ceil(per * d)).map(|_| None).collect(),
    };
    let partials: Vec<Vec<f32>> = x
        .par_chunks(per * d)
        .zip(dy.par_chunks(per * d))
        .zip(rstd.par_chunks(per))
        .zip(dx_chunks.par_iter_mut())
        .map(|(((x, dy), r), dx)| {
            let mut dw = if need_dw { vec![0f32; d] } else { Vec::new() };
            rms_rows_backward(x, w, r, dy, dx.as_deref_mut(), &mut dw);
            dw
        })
        .collect();
    need_dw.then(|| add_partials(partials, d))
}

multiversion! {
    fn rms_rows_backward(x: &[f32], w: &[f32], rstd: &[f32], dy: &[f32], dx: Option<&mut [f32]>, dw: &mut [f32]) {
        let d = w.len();
        let mut dx = dx.map(|dx| dx.chunks_exact_mut(d));
        for ((x, dy), &s) in x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(rstd) {
            if let Some(dx) = dx.as_mut().and_then(|it| it.next()) {
                // dx = s · (g − x̂ · mean(g · x̂)), g = dy · w, x̂ = x · s.
                let m = sum_zip3(dy, w, x, |dy, w, x| dy * w * x) * s / d as f32;
                for (((dx, dy), w), x) in dx.iter_mut().zip(dy).zip(w).zip(x) {
                    *dx = s * (dy * w - x * s * m);
                }
            }
            if !dw.is_empty() {
                for ((dw, dy), x) in dw.iter_mut().zip(dy).zip(x) {
                    *dw += dy * x * s;
                }
            }
        }
    }
}

/// `y = (x − mean) · rstd · w + b` per row of `x: [rows, d]`.
pub fn layer_norm_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let d = w.len();
    let per = rows_per_task(d);
    x.par_chunks(per * d)
        .zip(y.par_chunks_mut(per * d))
        .zip(mean.par_chunks_mut(per))
        .zip(rstd.par_chunks_mut(per))
        .for_each(|(((x, y), m), r)| layer_rows(x, w, b, eps, y, m, r));
}

multiversion! {
    fn layer_rows(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]) {
        let d = w.len();
        for (((x, y), m), r) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(mean).zip(rstd) {
            let mu = sum_map(x, |v| v) / d as f32;
            let s = 1.0 / (sum_map(x, |v| (v - mu) * (v - mu)) / d as f32 + eps).sqrt();
            (*m, *r) = (mu, s);
            for (((y, x), w), b) in y.iter_mut().zip(x).zip(w).zip(b) {
                *y = (x - mu) * s * w + b;
            }
        }
    }
}

/// Gradients of [`layer_norm_forward`]: `dx` (when given) and the returned `(dw, db)` (when
/// `need_params`).
pub fn layer_norm_backward(
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    need_params: bool,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let d = w.len();
    let per = rows_per_task(d);
    let mut dx_chunks: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx.chunks_mut(per * d).map(Some).collect(),
        None => (0..x.len().div_ceil(per * d)).map(|_| None).collect(),
    };
    let partials: Vec<Vec<f32>> = x
        .par_chunks(per * d)
        .zip(dy.par_chunks(per * d))
        .zip(mean.par_chunks(per).zip(rstd.par_chunks(per)))
        .zip(dx_chunks.par_iter_mut())
        .map(|(((x, dy), (m, r)), dx)| {
            // [dw | db]
            let mut p = if need_params {
                vec![0f32; 2 * d]
            } else {
                Vec::new()
            };
            layer_rows_backward(x, w, m, r, dy, dx.as_deref_mut(), &mut p);
            p
        })
        .collect();
    need_params.then(|| {
        let total = add_partials(partials, 2 * d);
        (total[..d].to_vec(), total[d..].to_vec())
    })
}

multiversion! {
    fn layer_rows_backward(x: &[f32], w: &[f32], mean: &[f32], rstd: &[f32], dy: &[f32], dx: Option<&mut [f32]>, params: &mut [f32]) {
        let d = w.len();
        let mut dx = dx.map(|dx| dx.chunks_exact_mut(d));
        for (((x, dy), &mu), &s) in x.chunks_exact(d).zip(dy.chunks_exact(d)).zip(mean).zip(rstd) {
            if let Some(dx) = dx.as_mut().and_then(|it| it.next()) {
                // dx = s · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · w, x̂ = (x − mean) · s.
                let m1 = sum_zip(dy, w, |a, b| a * b) / d as f32;
                let m2 = sum_zip3(dy, w, x, |dy, w, x| dy * w * (x - mu)) * s / d as f32;
                for (((dx, dy), w), x) in dx.iter_mut().zip(dy).zip(w).zip(x) {
                    *dx = s * (dy * w - m1 - (x - mu) * s * m2);
                }
            }
            if !params.is_empty() {
                let (dw, db) = params.split_at_mut(d);
                for (((dw, db), dy), x) in dw.iter_mut().zip(db.iter_mut()).zip(dy).zip(x) {
                    *dw += dy * (x - mu) * s;
                    *db += dy;
                }
            }
        }
    }
}
