//! The sequence-to-sequence loss: mean token cross-entropy over labels that are not -100, with
//! optional label smoothing (PyTorch's `CrossEntropyLoss(ignore_index=-100, label_smoothing)`).

use burn::prelude::*;

pub use crate::fused::IGNORE_INDEX;
use crate::fused::{self, FusedOps};

/// # Shapes
/// - logits: `[batch, tgt, vocab]`
/// - labels: `[batch, tgt]`, `-100` where ignored
/// - output: `[1]`, the mean over non-ignored tokens
pub fn cross_entropy<B: FusedOps>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    label_smoothing: f64,
) -> Tensor<B, 1> {
    let [b, t, v] = logits.dims();
    fused::cross_entropy(
        logits.reshape([b * t, v]),
        labels.reshape([b * t]),
        label_smoothing,
    )
}
