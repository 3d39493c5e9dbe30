//! Train / validation / test splits, and taking the first `n_obs` examples.
//!
//! Most public NLP data sets have no labelled test split, so papers tune on the validation split
//! and report on it too. The seed's `split_validation_test` (hyperformer, `AbstractTaskDataset`)
//! instead carves a fresh held-out set, depending on size:
//! - small data sets: the validation split, shuffled, is halved: the first `len / 2` examples
//!   become validation and the rest test;
//! - large data sets: the training split, shuffled, gives its first 1000 examples to validation
//!   and keeps the rest; the validation split becomes test.
//!
//! A large data set whose training split cannot spare 1000 examples (a subset, or test data) is
//! treated as small, with a warning: the seed moved all of it to validation and trained on
//! nothing.
//!
//! Shuffles are seeded by `data_seed` alone, so every run (and every task) with the same seed
//! sees the same split. The generator is our [`SplitMix64`](crate::rng::SplitMix64), not
//! `torch.randperm`: sizes and procedure match the seed, the chosen examples do not.

use super::task::{SplitPolicy, Task};
use crate::error::{Error, Result};
use crate::rng::permutation;

/// Examples a large data set moves from train to validation.
pub const LARGE_VALIDATION_SIZE: usize = 1000;

/// The examples of each role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splits<T> {
    pub train: Vec<T>,
    pub validation: Vec<T>,
    pub test: Vec<T>,
}

/// Re-splits a task's data as the seed's `split_validation_test` (see the module docs).
///
/// `train` and `validation` hold the rows of the task's train and validation source splits
/// ([`Task::source_split`]). `test` holds the rows of its test source split and is needed only by
/// [`SplitPolicy::Keep`] tasks, which already have a labelled test split; small and large tasks
/// ignore it (their test split is made from `validation`), so pass `None` for them.
pub fn split_validation_test<T>(
    task: &Task,
    train: Vec<T>,
    validation: Vec<T>,
    test: Option<Vec<T>>,
    data_seed: u64,
) -> Result<Splits<T>> {
    let policy = match task.split_policy() {
        SplitPolicy::Large if train.len() <= LARGE_VALIDATION_SIZE => {
            tracing::warn!(
                "task `{}`: its {} training examples cannot spare {LARGE_VALIDATION_SIZE} for \
                 validation; split_validation_test halves its validation split instead, as for \
                 small data sets",
                task.name(),
                train.len()
            );
            SplitPolicy::Small
        }
        policy => policy,
    };
    match policy {
        SplitPolicy::Small => {
            if validation.len() < 2 {
                return Err(Error::Invalid(format!(
                    "task `{}`: cannot halve a validation split of {} example(s) into \
                     validation and test",
                    task.name(),
                    validation.len()
                )));
            }
            let half = validation.len() / 2;
            let (first, second) = split_shuffled(validation, half, data_seed);
            Ok(Splits {
                train,
                validation: first,
                test: second,
            })
        }
        SplitPolicy::Large => {
            let (moved, kept) = split_shuffled(train, LARGE_VALIDATION_SIZE, data_seed);
            Ok(Splits {
                train: kept,
                validation: moved,
                test: validation,
            })
        }
        SplitPolicy::Keep => {
            let test = test.ok_or_else(|| {
                Error::Invalid(format!(
                    "task `{}` has its own test split (`{}`); pass its rows to \
                     split_validation_test",
                    task.name(),
                    task.split_names().test
                ))
            })?;
            Ok(Splits {
                train,
                validation,
                test,
            })
        }
    }
}

/// Shuffles `rows` with `seed` and cuts them after `at`: `(shuffled[..at], shuffled[at..])`.
fn split_shuffled<T>(rows: Vec<T>, at: usize, seed: u64) -> (Vec<T>, Vec<T>) {
    let order = permutation(rows.len(), seed);
    let mut slots: Vec<Option<T>> = rows.into_iter().map(Some).collect();
    let mut shuffled = order
        .into_iter()
        .map(|i| slots[i].take().expect("a permutation"));
    let first: Vec<T> = shuffled.by_ref().take(at).collect();
    (first, shuffled.collect())
}

/// The first `n_obs` rows; `None` or `-1` keep them all, and a larger `n_obs` keeps all there
/// are. (The seed turned `-1` into the slice `split[:-1]`, silently dropping the last example.)
pub fn take_n<T>(mut rows: Vec<T>, n_obs: Option<i64>) -> Result<Vec<T>> {
    match n_obs {
        None | Some(-1) => Ok(rows),
        Some(n) if n >= 0 => {
            rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            Ok(rows)
        }
        Some(n) => Err(Error::Invalid(format!(
            "n_obs must be -1 (all) or a count of examples, not {n}"
        ))),
    }
}

/// `n_obs` rows chosen at random (the seed's `get_shuffled_sampled_split`): shuffled with `seed`,
/// then [`take_n`]. Use it rather than [`take_n`] on a split sorted by label (IMDB's training
/// split is all negatives, then all positives).
pub fn sample_n<T>(rows: Vec<T>, n_obs: Option<i64>, seed: u64) -> Result<Vec<T>> {
    // Validate before shuffling, so a bad n_obs fails fast.
    take_n(Vec::<T>::new(), n_obs)?;
    let len = rows.len();
    let (shuffled, _) = split_shuffled(rows, len, seed);
    take_n(shuffled, n_obs)
}

#[cfg(test)]
mod tests {
    use super::super::registry;
    use super::*;

    fn rows(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    fn sorted(mut v: Vec<usize>) -> Vec<usize> {
        v.sort_unstable();
        v
    }

    #[test]
    fn small_tasks_halve_validation() {
        let rte = registry::get("rte").unwrap();
        let s = split_validation_test(&rte, rows(2490), rows(277), None, 42).unwrap();
        assert_eq!(s.train, rows(2490), "train is untouched");
        // 277 / 2 = 138 for validation, 139 for test, together exactly the old validation.
        assert_eq!((s.validation.len(), s.test.len()), (138, 139));
        let mut all = s.validation.clone();
        all.extend(&s.test);
        assert_eq!(sorted(all), rows(277));
        // Deterministic in the seed, and the seed matters.
        let again = split_validation_test(&rte, rows(2490), rows(277), None, 42).unwrap();
        assert_eq!(again, s);
        let other = split_validation_test(&rte, rows(2490), rows(277), None, 43).unwrap();
        assert_ne!(other.validation, s.validation);
    }

    #[test]
    fn large_tasks_carve_validation_from_train() {
        let sst2 = registry::get("sst2").unwrap();
        let s = split_validation_test(&sst2, rows(5000), rows(872), None, 7).unwrap();
        assert_eq!(s.validation.len(), LARGE_VALIDATION_SIZE);
        assert_eq!(s.train.len(), 4000);
        assert_eq!(
            s.test,
            rows(872),
            "the old validation split is the test split"
        );
        let mut all = s.train.clone();
        all.extend(&s.validation);
        assert_eq!(
            sorted(all),
            rows(5000),
            "train and validation partition the old train"
        );
        assert_eq!(
            split_validation_test(&sst2, rows(5000), rows(872), None, 7).unwrap(),
            s
        );
        // A training split that cannot spare 1000 examples stays whole: validation is halved.
        let s = split_validation_test(&sst2, rows(1000), rows(10), None, 7).unwrap();
        assert_eq!(s.train, rows(1000));
        assert_eq!((s.validation.len(), s.test.len()), (5, 5));
        let mut all = s.validation.clone();
        all.extend(&s.test);
        assert_eq!(sorted(all), rows(10));
    }

    #[test]
    fn keep_tasks_need_their_test_split() {
        let snli = registry::get("snli").unwrap();
        let s = split_validation_test(&snli, rows(10), rows(4), Some(rows(3)), 1).unwrap();
        assert_eq!(
            (s.train, s.validation, s.test),
            (rows(10), rows(4), rows(3))
        );
        let err = split_validation_test(&snli, rows(10), rows(4), None, 1).unwrap_err();
        assert!(err.to_string().contains("own test split (`test`)"), "{err}");
    }

    #[test]
    fn tiny_validation_cannot_be_halved() {
        let cola = registry::get("cola").unwrap();
        assert!(split_validation_test(&cola, rows(5), rows(1), None, 0).is_err());
        let s = split_validation_test(&cola, rows(5), rows(2), None, 0).unwrap();
        assert_eq!((s.validation.len(), s.test.len()), (1, 1));
    }

    #[test]
    fn take_n_minus_one_or_none_keeps_everything() {
        assert_eq!(take_n(rows(5), None).unwrap(), rows(5));
        assert_eq!(
            take_n(rows(5), Some(-1)).unwrap(),
            rows(5),
            "the last example stays"
        );
        assert_eq!(take_n(rows(5), Some(3)).unwrap(), rows(3));
        assert_eq!(take_n(rows(5), Some(0)).unwrap(), rows(0));
        assert_eq!(take_n(rows(5), Some(50)).unwrap(), rows(5));
        let err = take_n(rows(5), Some(-2)).unwrap_err().to_string();
        assert_eq!(err, "n_obs must be -1 (all) or a count of examples, not -2");
    }

    #[test]
    fn sample_n_is_a_seeded_random_subset() {
        let a = sample_n(rows(100), Some(10), 3).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample_n(rows(100), Some(10), 3).unwrap());
        assert_ne!(a, rows(10));
        assert_eq!(sorted(sample_n(rows(100), None, 3).unwrap()), rows(100));
        assert!(sample_n(rows(3), Some(-5), 3).is_err());
    }
}
