//! The LoRA updates of a batch whose rows use different LoRAs, in two batched products: each
//! row's `A` and `B` are gathered from the stacked pairs of the distinct LoRAs (ranks padded
//! with zeros, `scaling` folded into `B`; a row without a LoRA gets a zero pair). The cost is
//! the same for one distinct LoRA or thirty-two, where running each LoRA on its own rows
//! costs one small product (and a gather and scatter) per LoRA. The gathered pairs depend on
//! the routing alone, so a generation gathers them once per site and reuses them at every
//! step (`Adapters` keeps them).

use burn::prelude::*;

use super::linear::LoraLinear;

/// Each row's LoRA pair at one site, gathered: `A` `[batch, d_in, r]` and `scaling · B`
/// `[batch, r, d_out]` (zero for `None`), or `None` where this path does not apply: dropout is
/// active (each LoRA draws its own mask, so rows go through [`LoraLinear::delta`] per LoRA).
/// The update of the rows of `x` `[batch, seq, d_in]` is then `x · A · B`.
pub fn gather_per_row<B: Backend>(
    rows: &[Option<&LoraLinear<B>>],
    (d_in, d_out): (usize, usize),
    device: &B::Device,
) -> Option<(Tensor<B, 3>, Tensor<B, 3>)> {
    if B::ad_enabled(device) && rows.iter().flatten().any(|l| l.dropout.prob > 0.0) {
        return None;
    }
    // Slot 0 is the zero pair; each distinct LoRA (by address) gets the next slot.
    let mut distinct: Vec<&LoraLinear<B>> = Vec::new();
    let slots: Vec<i64> = rows
        .iter()
        .map(|row| match row {
            None => 0,
            Some(l) => match distinct.iter().position(|d| std::ptr::eq(*d, *l)) {
                Some(i) => i as i64 + 1,
                None => {
                    distinct.push(l);
                    distinct.len() as i64
                }
            },
        })
        .collect();
    let r = distinct.iter().map(|l| l.rank()).max().unwrap_or(1);
    let mut a = vec![Tensor::<B, 2>::zeros([d_in, r], device).unsqueeze::<3>()];
    let mut b = vec![Tensor::<B, 2>::zeros([r, d_out], device).unsqueeze::<3>()];
    for l in distinct {
        let pad = r - l.rank();
        let (mut la, mut lb) = (l.a.val(), l.b.val() * l.scaling);
        if pad > 0 {
            la = Tensor::cat(vec![la, Tensor::zeros([d_in, pad], device)], 1);
            lb = Tensor::cat(vec![lb, Tensor::zeros([pad, d_out], device)], 0);
        }
        a.push(la.unsqueeze());
        b.push(lb.unsqueeze());
    }
    let n = slots.len();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(slots, [n]), device);
    let a = Tensor::cat(a, 0).select(0, idx.clone());
    let b = Tensor::cat(b, 0).select(0, idx);
    Some((a, b))
}
