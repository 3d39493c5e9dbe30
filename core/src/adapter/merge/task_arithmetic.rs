//! PEFT's `peft/utils/merge_utils.py`: weighted sums of same-shaped tensors, optionally pruned
//! (by magnitude, or at random with DARE's rescaling) and sign-elected (TIES), in f32 as torch
//! computes them.

/// How TIES elects each entry's sign (`majority_sign_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MajoritySign {
    /// The sign of the sum of the (pruned, unweighted) values.
    #[default]
    Total,
    /// The sign held by more of the tensors.
    Frequency,
}

/// Which of `merge_utils`' functions combines the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `task_arithmetic`: `Σ wᵢ tᵢ`.
    TaskArithmetic,
    /// `magnitude_prune`: each tensor keeps its `density` largest magnitudes, then the sum.
    MagnitudePrune,
    /// `ties`: magnitude pruning, sign election, the mean of the agreeing weighted values.
    Ties,
    /// `dare_linear`: a random `density` of each tensor kept and divided by `density`, then the sum.
    DareLinear,
    /// `dare_ties`: DARE's pruning, then TIES' election and mean.
    DareTies,
}

/// Where DARE's keep-masks come from: called once per tensor, in PEFT's order, with the
/// tensor's index among the inputs and its length; returns `true` for each entry kept (PEFT's
/// `torch.bernoulli(density)`).
pub type MaskSource<'a> = dyn FnMut(usize, usize) -> Vec<bool> + 'a;

/// PEFT's `prune(tensor, density, "magnitude")`: the `int(density * numel)` entries of largest
/// magnitude kept (torch's `topk`), the others zeroed; `density >= 1` keeps everything.
pub fn magnitude_prune(t: &[f32], density: f64) -> Vec<f32> {
    if density >= 1.0 {
        return t.to_vec();
    }
    let k = (density * t.len() as f64) as usize;
    let mut order: Vec<usize> = (0..t.len()).collect();
    // Largest magnitude first; among equal magnitudes the lower index (torch's CPU topk is
    // stable in practice for distinct values, which random weights are).
    order.sort_by(|&a, &b| t[b].abs().total_cmp(&t[a].abs()).then(a.cmp(&b)));
    let mut out = vec![0.0; t.len()];
    for &i in &order[..k] {
        out[i] = t[i];
    }
    out
}

/// PEFT's `prune(tensor, density, "random", rescale=True)` with the mask given.
pub fn random_prune(t: &[f32], density: f64, keep: &[bool]) -> Vec<f32> {
    if density >= 1.0 {
        return t.to_vec();
    }
    t.iter()
        .zip(keep)
        .map(|(&v, &k)| if k { v / density as f32 } else { 0.0 })
        .collect()
}

/// Combines `tensors` (all of one length) with `weights` by `method`. `density` is needed by
/// every method but task arithmetic; `masks` is asked for one mask per tensor by the DARE ones.
pub fn combine(
    tensors: &[Vec<f32>],
    weights: &[f32],
    method: Method,
    density: f64,
    majority: MajoritySign,
    masks: &mut MaskSource<'_>,
) -> Vec<f32> {
    let pruned: Vec<Vec<f32>> = match method {
        Method::TaskArithmetic => tensors.to_vec(),
        Method::MagnitudePrune | Method::Ties => tensors
            .iter()
            .map(|t| magnitude_prune(t, density))
            .collect(),
        Method::DareLinear | Method::DareTies => tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if density >= 1.0 {
                    t.clone()
                } else {
                    random_prune(t, density, &masks(i, t.len()))
                }
            })
            .collect(),
    };
    let n = tensors.first().map_or(0, Vec::len);
    let ties = matches!(method, Method::Ties | Method::DareTies);
    (0..n)
        .map(|j| {
            if !ties {
                return pruned.iter().zip(weights).map(|(t, w)| t[j] * w).sum();
            }
            // `calculate_majority_sign_mask` on the unweighted values, then `disjoint_merge`.
            let elect: f32 = match majority {
                MajoritySign::Total => pruned.iter().map(|t| t[j]).sum(),
                MajoritySign::Frequency => pruned.iter().map(|t| sign(t[j])).sum(),
            };
            let majority = if elect >= 0.0 { 1.0 } else { -1.0 };
            let (mut sum, mut count) = (0.0f32, 0.0f32);
            for (t, w) in pruned.iter().zip(weights) {
                if sign(t[j]) == majority {
                    sum += t[j] * w;
                    count += 1.0;
                }
            }
            sum / count.max(1.0)
        })
        .collect()
}

/// torch's `sign`: -1, 0 or 1.
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_masks(_: usize, _: usize) -> Vec<bool> {
        unreachable!("no DARE here")
    }

    #[test]
    fn ties_keeps_the_top_magnitudes_and_averages_the_agreeing_signs() {
        let a = vec![0.5, -0.1, 0.3, -0.9];
        let b = vec![-0.2, 0.4, 0.6, -0.05];
        assert_eq!(magnitude_prune(&a, 0.5), vec![0.5, 0.0, 0.0, -0.9]);
        let got = combine(
            &[a, b],
            &[1.0, 2.0],
            Method::Ties,
            0.5,
            MajoritySign::Total,
            &mut no_masks,
        );
        // Pruned: a = [0.5, 0, 0, -0.9], b = [0, 0.4, 0.6, 0]; every entry has one voter.
        assert_eq!(got, vec![0.5, 0.8, 1.2, -0.9]);
    }

    #[test]
    fn dare_rescales_what_the_mask_keeps() {
        let t = vec![1.0, 2.0, 3.0, 4.0];
        let mut masks = |_: usize, n: usize| (0..n).map(|i| i % 2 == 0).collect::<Vec<_>>();
        let got = combine(
            &[t],
            &[0.5],
            Method::DareLinear,
            0.5,
            MajoritySign::Total,
            &mut masks,
        );
        assert_eq!(got, vec![1.0, 0.0, 3.0, 0.0]);
    }
}
