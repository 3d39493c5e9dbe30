//! Tokenized examples and their collation into padded tensors.

use burn::prelude::*;

use crate::model::IGNORE_INDEX;

/// One tokenized example: source ids and target ids, both ending with `</s>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    pub labels: Vec<u32>,
}

/// Cuts `ids` to `max_len` tokens, keeping the final `</s>` as HF's truncation does.
pub fn truncate(mut ids: Vec<u32>, max_len: usize, eos: u32) -> Vec<u32> {
    if ids.len() > max_len && max_len > 0 {
        ids.truncate(max_len - 1);
        ids.push(eos);
    }
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
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for e in examples {
        ids.extend(e.input_ids.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(pad as i64, src - e.input_ids.len()));
        mask.extend(std::iter::repeat_n(1i64, e.input_ids.len()));
        mask.extend(std::iter::repeat_n(0i64, src - e.input_ids.len()));
        labels.extend(e.labels.iter().map(|&t| t as i64));
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, tgt - e.labels.len()));
    }
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
