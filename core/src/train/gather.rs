//! A sharded evaluation: each rank generates for its share of the evaluation batches (batch
//! `i` on rank `i % world`, the batches a run alone makes, so each prediction is the one it
//! would make), and one sum over the ranks gathers the predictions on every rank. The sum is
//! over a table with a row per example: the row's length and token ids where this rank
//! generated it, zeros elsewhere. Token ids are below 2^24, so the f32 sums are exact, and the
//! metrics of every rank equal those of a run alone.

use crate::error::{Error, Result};

/// The ranks of a run as a sharded evaluation sees them (training asks more of them:
/// [`super::replicas::Replicas`]).
pub trait Ranks {
    /// This rank, `0..world()`; rank 0 writes the outputs.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world(&self) -> usize;
    /// The element-wise sum of every rank's `values` (of one length on every rank), on every
    /// rank; a barrier too.
    fn sum(&self, values: &[f32]) -> Result<Vec<f32>>;
}

/// Whether evaluation batch `index` is this rank's to generate.
pub fn is_mine(ranks: &dyn Ranks, index: usize) -> bool {
    index % ranks.world().max(1) == ranks.rank()
}

/// The token ids of all `rows` examples, from the `(row, ids)` each rank generated (each row
/// on exactly one rank; at most `max_len` ids each).
pub fn gather_ids(
    ranks: &dyn Ranks,
    rows: usize,
    max_len: usize,
    mine: Vec<(usize, Vec<u32>)>,
) -> Result<Vec<Vec<u32>>> {
    if ranks.world() == 1 {
        let mut all = vec![Vec::new(); rows];
        for (row, ids) in mine {
            all[row] = ids;
        }
        return Ok(all);
    }
    const LIMIT: u32 = 1 << 24;
    let width = max_len + 1;
    let mut table = vec![0f32; rows * width];
    for (row, ids) in &mine {
        if ids.len() > max_len || ids.iter().any(|&id| id >= LIMIT) {
            return Err(Error::Invalid(format!(
                "gathering the evaluation: row {row} has {} ids (at most {max_len}, each below \
                 2^24)",
                ids.len()
            )));
        }
        let cells = &mut table[row * width..(row + 1) * width];
        cells[0] = ids.len() as f32 + 1.0;
        for (cell, &id) in cells[1..].iter_mut().zip(ids) {
            *cell = id as f32;
        }
    }
    let summed = ranks.sum(&table)?;
    summed
        .chunks(width)
        .enumerate()
        .map(|(row, cells)| {
            // One plus the length: a row that no rank generated shows as 0.
            let len = cells[0] as usize;
            if len == 0 || len > width {
                return Err(Error::Invalid(format!(
                    "gathering the evaluation: row {row} came from no rank"
                )));
            }
            Ok(cells[1..len].iter().map(|&v| v as u32).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `world` ranks whose sums add the tables that each rank passes in turn.
    struct Fake {
        rank: usize,
        world: usize,
        others: Vec<f32>,
    }

    impl Ranks for Fake {
        fn rank(&self) -> usize {
            self.rank
        }
        fn world(&self) -> usize {
            self.world
        }
        fn sum(&self, values: &[f32]) -> Result<Vec<f32>> {
            Ok(values
                .iter()
                .zip(&self.others)
                .map(|(a, b)| a + b)
                .collect())
        }
    }

    #[test]
    fn two_ranks_shares_make_the_whole() {
        let r1 = Fake {
            rank: 1,
            world: 2,
            others: vec![0.0; 9],
        };
        assert!(is_mine(&r1, 3) && !is_mine(&r1, 2));
        // Rank 1 generated row 1 (empty) and row 2; rank 0, row 0.
        let table1 = {
            let mut t = vec![0f32; 9];
            t[3] = 1.0;
            t[6..9].copy_from_slice(&[3.0, 32_000.0, 1.0]);
            t
        };
        let r0 = Fake {
            rank: 0,
            world: 2,
            others: table1,
        };
        let all = gather_ids(&r0, 3, 2, vec![(0, vec![7])]).unwrap();
        assert_eq!(all, vec![vec![7], vec![], vec![32_000, 1]]);
        // A row no rank generated is an error, as are too many ids.
        let e = gather_ids(&r1, 3, 2, vec![(0, vec![7])]).unwrap_err();
        assert!(e.to_string().contains("row 1 came from no rank"), "{e}");
        assert!(gather_ids(&r1, 3, 2, vec![(0, vec![1, 2, 3])]).is_err());
    }
}
