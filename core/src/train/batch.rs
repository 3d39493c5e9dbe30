//! Tokenized examples and their collation into padded tensors.

use burn::prelude::*;

use crate::model::inputs::{attention_mask, pad_rows};
use crate::model::IGNORE_INDEX;

/// One tokenized example: source ids and target ids, both ending with `</s>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    pub labels: Vec<u32>,
}

/// Cuts `ids` to `max_len` tokens, keeping the final `</s>` as HF's truncation does.
pub fn truncate(mut ids: Vec<u32>, max_len: usize, eos: u32) -> Vec<u32> {
    crate::generation::limits::truncate_source(&mut ids, max_len, eos);
    ids
}

/// A padded batch.
pub struct Batch<B: Backend> {
    /// `[batch, src]`
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, src]`, 1 for tokens, 0 for padding
    pub attention_mask: Tensor<B, 2, Int>,
    /// `[batch, tgt]`, `-100` for padding
    pub labels: Tensor<B, 2, Int>,
}

/// Pads sources with `pad` and labels with -100.
pub fn collate<B: Backend>(examples: &[&Example], pad: u32, device: &B::Device) -> Batch<B> {
    let src = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let tgt = examples
        .iter()
        .map(|e| e.labels.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let ids = pad_rows(examples.iter().map(|e| &e.input_ids[..]), src, pad as i64);
    let mask = attention_mask(examples.iter().map(|e| e.input_ids.len()), src);
    let labels = pad_rows(examples.iter().map(|e| &e.labels[..]), tgt, IGNORE_INDEX);
    let b = examples.len();
    Batch {
        input_ids: Tensor::from_data(TensorData::new(ids, [b, src]), device),
        attention_mask: Tensor::from_data(TensorData::new(mask, [b, src]), device),
        labels: Tensor::from_data(TensorData::new(labels, [b, tgt]), device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_eos_and_padding_is_ignored() {
        assert_eq!(truncate(vec![5, 6, 7, 8, 1], 3, 1), vec![5, 6, 1]);
        assert_eq!(truncate(vec![5, 1], 3, 1), vec![5, 1]);
        let a = Example {
            input_ids: vec![5, 6, 1],
            labels: vec![9, 1],
        };
        let b = Example {
            input_ids: vec![7, 1],
            labels: vec![1],
        };
        let batch = collate::<crate::backend::Cpu>(&[&a, &b], 0, &Default::default());
        let labels: Vec<i64> = batch
            .labels
            .into_data()
            .convert::<i64>()
            .into_vec()
            .unwrap();
        assert_eq!(labels, vec![9, 1, 1, -100]);
        let mask: Vec<i64> = batch
            .attention_mask
            .into_data()
            .convert::<i64>()
            .into_vec()
            .unwrap();
        assert_eq!(mask, vec![1, 1, 1, 1, 1, 0]);
    }
}
