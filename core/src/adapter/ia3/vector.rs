//! One (IA)³ vector: a learned scale per feature of a linear layer's input (PEFT's
//! feed-forward modules) or output (every other target).

use burn::module::{Initializer, Param};
use burn::prelude::*;

/// The scale of one adapted layer.
#[derive(Module, Debug)]
pub struct Ia3Vector<B: Backend> {
    /// `[d_in]` when `feedforward`, else `[d_out]` (PEFT's `ia3_l` is `[1, d_in]` / `[d_out, 1]`).
    pub l: Param<Tensor<B, 1>>,
    /// Scales the layer's input (`W (l ⊙ x)`) rather than its output (`l ⊙ W x`).
    pub feedforward: bool,
    /// A constant factor (AdapterHub's `alpha`; 1 in PEFT).
    pub scaling: f64,
}

impl<B: Backend> Ia3Vector<B> {
    /// A vector of ones: a new (IA)³ adapter changes nothing (PEFT's `init_ia3_weights`).
    pub fn init(d: usize, feedforward: bool, scaling: f64, device: &B::Device) -> Self {
        Self {
            l: Initializer::Ones.init([d], device),
            feedforward,
            scaling,
        }
    }

    /// `scaling · l`, the factor the features are multiplied by.
    pub fn factor(&self) -> Tensor<B, 1> {
        if self.scaling == 1.0 {
            self.l.val()
        } else {
            self.l.val() * self.scaling
        }
    }
}

/// The per-row factors `[rows, 1, d]` of a batch (ones for a row without a vector), or `None`
/// when no row has one.
pub fn factors_per_row<B: Backend>(
    rows: &[Option<&Ia3Vector<B>>],
    d: usize,
    device: &B::Device,
) -> Option<Tensor<B, 3>> {
    if rows.iter().all(Option::is_none) {
        return None;
    }
    let first = rows.first().copied().flatten();
    if first.is_some()
        && rows
            .iter()
            .all(|r| r.map(|v| v as *const _) == first.map(|v| v as *const _))
    {
        return first.map(|v| v.factor().reshape([1, 1, d]));
    }
    let factors = rows
        .iter()
        .map(|r| match r {
            Some(v) => v.factor(),
            None => Tensor::ones([d], device),
        })
        .collect();
    Some(Tensor::stack::<2>(factors, 0).reshape([rows.len(), 1, d]))
}
