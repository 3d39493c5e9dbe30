//! A tiny deterministic random generator for data splits and sampling.
//!
//! Splits must be the same on every platform and every release, so they cannot depend on a
//! library's choice of algorithm: SplitMix64 (Steele, Lea & Flood 2014; Vigna's reference C) is
//! ten lines, passes BigCrush, and is fully specified by its seed. The seed project used
//! `torch.randperm` with a seeded generator, so the exact subsets differ from it; the sizes and
//! the procedure are the same.

pub use crate::train::sampler::SplitMix64;

/// A random permutation of `0..n`, fixed by `seed` (the role of the seed's `torch.randperm`).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut indices);
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // Vigna's splitmix64.c seeded with 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn permutation_is_pinned() {
        // Splits must not change between releases: this is the order an independent Python
        // transliteration (SplitMix64 + Lemire + Fisher–Yates from the back) gives.
        assert_eq!(permutation(10, 42), [8, 3, 6, 5, 4, 0, 9, 2, 1, 7]);
    }

    #[test]
    fn permutation_is_a_deterministic_permutation() {
        let p = permutation(1000, 42);
        assert_eq!(p, permutation(1000, 42));
        assert_ne!(p, permutation(1000, 43));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(p, sorted, "a shuffle of 1000 should move something");
        assert!(permutation(0, 1).is_empty());
        assert_eq!(permutation(1, 1), [0]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 6];
        for _ in 0..200 {
            let x = rng.below(6) as usize;
            seen[x] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
