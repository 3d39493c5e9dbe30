//! The model's inputs as host data: rows of token ids right-padded into one `[batch, len]`
//! block, and the attention mask that tells tokens from padding. Training batches and
//! generation both build theirs here.

/// `rows` right-padded with `pad` to `len` values each, row after row.
pub fn pad_rows<'a>(rows: impl IntoIterator<Item = &'a [u32]>, len: usize, pad: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for row in rows {
        out.extend(row.iter().map(|&t| t as i64));
        out.extend(std::iter::repeat_n(pad, len - row.len()));
    }
    out
}

/// The attention mask of rows of these lengths padded to `len`: 1 for a token, 0 for padding.
pub fn attention_mask(lengths: impl IntoIterator<Item = usize>, len: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for n in lengths {
        out.extend(std::iter::repeat_n(1i64, n));
        out.extend(std::iter::repeat_n(0i64, len - n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_on_the_right() {
        let rows: [&[u32]; 2] = [&[5, 6, 1], &[7, 1]];
        assert_eq!(pad_rows(rows, 3, 0), [5, 6, 1, 7, 1, 0]);
        assert_eq!(attention_mask([3, 2], 3), [1, 1, 1, 1, 1, 0]);
    }
}
