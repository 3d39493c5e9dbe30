//! The SVD step of PEFT's `_svd_generalized_task_arithmetic_weighted_adapter`: a combined update
//! `ΔW` (`[d_out, d_in]`) factored back into a LoRA pair of rank `r`, `B = U[:, :r] diag(S[:r])`,
//! `A = Vh[:r]`, optionally clamped at a quantile of their values.
//!
//! The decomposition runs in f64 (nalgebra) on the f32 update. Singular vectors are unique up
//! to sign (and up to rotation among equal singular values), so `A` and `B` may differ from
//! torch's by the sign of a rank component; `B A` does not. `svd_clamp`'s quantile is taken
//! over the values of both factors, so with a clamp the result depends on those signs and can
//! differ from torch's.

use nalgebra::DMatrix;

/// `(A [r, d_in], B [d_out, r])`, row-major, for the update `delta` (`[d_out, d_in]`,
/// row-major), or why not (`r` above `min(d_out, d_in)`).
pub fn factor(
    delta: &[f32],
    d_out: usize,
    d_in: usize,
    r: usize,
    clamp: Option<f64>,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    let k = d_out.min(d_in);
    if r > k {
        return Err(format!(
            "svd rank {r} exceeds the smaller side ({k}) of a {d_out}x{d_in} update"
        ));
    }
    let m = DMatrix::from_row_iterator(d_out, d_in, delta.iter().map(|&v| v as f64));
    let svd = m.svd(true, true);
    let (u, vt) = match (svd.u, svd.v_t) {
        (Some(u), Some(vt)) => (u, vt),
        _ => return Err("the SVD did not converge".into()),
    };
    // nalgebra does not promise descending order: sort the components as LAPACK returns them.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let mut a = vec![0.0f32; r * d_in];
    let mut b = vec![0.0f32; d_out * r];
    for (c, &j) in order.iter().take(r).enumerate() {
        let s = svd.singular_values[j];
        for i in 0..d_out {
            b[i * r + c] = (u[(i, j)] * s) as f32;
        }
        for i in 0..d_in {
            a[c * d_in + i] = vt[(j, i)] as f32;
        }
    }
    if let Some(q) = clamp {
        let mut all: Vec<f32> = b.iter().chain(&a).copied().collect();
        let hi = quantile(&mut all, q);
        for v in a.iter_mut().chain(b.iter_mut()) {
            *v = v.clamp(-hi, hi);
        }
    }
    Ok((a, b))
}

/// `torch.quantile(values, q)` (linear interpolation between the two nearest ranks).
fn quantile(values: &mut [f32], q: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let t = (pos - lo as f64) as f32;
    values[lo] + (values[hi] - values[lo]) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_two_update_is_rebuilt_exactly_at_rank_two() {
        // ΔW = u1 v1ᵀ * 3 + u2 v2ᵀ, 3x4.
        let delta: Vec<f32> = vec![3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let (a, b) = factor(&delta, 3, 4, 2, None).unwrap();
        let mut rebuilt = [0.0f32; 12];
        for i in 0..3 {
            for j in 0..4 {
                rebuilt[i * 4 + j] = (0..2).map(|c| b[i * 2 + c] * a[c * 4 + j]).sum();
            }
        }
        for (x, y) in rebuilt.iter().zip(&delta) {
            assert!((x - y).abs() < 1e-6);
        }
        // The largest component comes first.
        assert!((b[0].abs() * a[0].abs() - 3.0).abs() < 1e-6);
        assert!(factor(&delta, 3, 4, 4, None).is_err());
    }

    #[test]
    fn quantile_interpolates_like_torch() {
        assert_eq!(quantile(&mut [4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        assert_eq!(quantile(&mut [1.0, 2.0, 3.0], 1.0), 3.0);
    }
}
