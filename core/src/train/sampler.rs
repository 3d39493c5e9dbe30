//! Multi-task sampling, as in the seed: one task per batch, task `i` drawn with probability
//! ∝ (n_i/N)^(1/T), examples drawn within the task.
//!
//! Everything here is deterministic for a seed and platform-independent (the SplitMix64
//! generator of [`crate::rng`], integer-only shuffles), and every sampler has a serializable
//! state so that a resumed run continues the exact same sequence.
//!
//! One difference from the seed: within a task, examples come from a shuffled order that is
//! walked epoch by epoch ([`TaskIterator`]; every example once per task epoch), whereas the seed
//! drew each batch's examples uniformly with replacement.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::{derive_seed, SplitMix64};

/// A sampling temperature is a finite number of at least [`MIN_TEMPERATURE`]; the reason when it
/// is not.
pub fn check_temperature(temperature: f64) -> std::result::Result<(), String> {
    if temperature >= MIN_TEMPERATURE && temperature.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "must be a finite number >= {MIN_TEMPERATURE} (1 = proportional to task size, larger \
             tends to uniform), got {temperature}"
        ))
    }
}

/// The lowest sampling temperature: below it `(n_i/N)^(1/T)` underflows to 0 for every task of
/// a run with up to a thousand tasks, and the probabilities would be 0/0.
pub const MIN_TEMPERATURE: f64 = 0.01;

/// The temperature-sampling distribution: p_i ∝ (n_i/N)^(1/T), normalized.
///
/// T = 1 is proportional to size, large T tends to uniform. Tasks of size 0 get probability 0.
pub fn temperature_probabilities(sizes: &[usize], temperature: f64) -> Result<Vec<f64>> {
    if sizes.is_empty() {
        return Err(Error::Invalid(
            "temperature sampling needs at least one task".into(),
        ));
    }
    check_temperature(temperature)
        .map_err(|why| Error::Invalid(format!("sampling temperature {why}")))?;
    let total: f64 = sizes.iter().map(|&n| n as f64).sum();
    if total == 0.0 {
        return Err(Error::Invalid("every task has 0 training examples".into()));
    }
    let weights: Vec<f64> = sizes
        .iter()
        .map(|&n| (n as f64 / total).powf(1.0 / temperature))
        .collect();
    let sum: f64 = weights.iter().sum();
    if !(sum > 0.0 && sum.is_finite()) {
        return Err(Error::Invalid(format!(
            "sampling temperature {temperature}: every task's weight (n_i/N)^(1/T) underflows \
             to 0; raise the temperature"
        )));
    }
    Ok(weights.into_iter().map(|w| w / sum).collect())
}

/// Draws which task the next batch comes from.
#[derive(Clone, Debug)]
pub struct TemperatureSampler {
    sizes: Vec<usize>,
    temperature: f64,
    probabilities: Vec<f64>,
    rng: SplitMix64,
    draws: u64,
}

/// A [`TemperatureSampler`]'s position in its sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureSamplerState {
    /// The task sizes it was built with (checked on restore).
    pub sizes: Vec<usize>,
    /// The temperature it was built with (checked on restore).
    pub temperature: f64,
    /// The generator state.
    pub rng: u64,
    /// Tasks drawn so far.
    pub draws: u64,
}

impl TemperatureSampler {
    /// A sampler over tasks with `sizes` training examples.
    pub fn new(sizes: &[usize], temperature: f64, seed: u64) -> Result<Self> {
        Ok(Self {
            probabilities: temperature_probabilities(sizes, temperature)?,
            sizes: sizes.to_vec(),
            temperature,
            rng: SplitMix64::new(seed),
            draws: 0,
        })
    }

    /// The probability of each task.
    pub fn probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// How many tasks were drawn so far.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// The index of the next batch's task.
    pub fn next_task(&mut self) -> usize {
        self.draws += 1;
        let u = self.rng.next_f64();
        let mut cumulative = 0.0;
        let mut last = 0;
        for (i, &p) in self.probabilities.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            last = i;
            cumulative += p;
            if u < cumulative {
                return i;
            }
        }
        // Rounding left u just above the cumulative sum: the last task that can be drawn.
        last
    }

    /// The state to save with a checkpoint.
    pub fn state(&self) -> TemperatureSamplerState {
        TemperatureSamplerState {
            sizes: self.sizes.clone(),
            temperature: self.temperature,
            rng: self.rng.state(),
            draws: self.draws,
        }
    }

    /// Continues from a saved state; refuses a state saved with other sizes or temperature.
    pub fn restore(&mut self, state: &TemperatureSamplerState) -> Result<()> {
        if state.sizes != self.sizes || state.temperature != self.temperature {
            return Err(Error::Invalid(format!(
                "the saved task sampler was built for task sizes {:?} at temperature {}, \
                 this run has {:?} at temperature {}",
                state.sizes, state.temperature, self.sizes, self.temperature
            )));
        }
        self.rng = SplitMix64::new(state.rng);
        self.draws = state.draws;
        Ok(())
    }
}

/// The example order of one task: a shuffled permutation per epoch, epoch `e` shuffled by a
/// generator seeded with `seed + e` (as the seed reshuffled with `seed + epoch`).
#[derive(Clone, Debug)]
pub struct TaskIterator {
    num_examples: usize,
    seed: u64,
    epoch: u64,
    position: usize,
    order: Vec<usize>,
}

/// A [`TaskIterator`]'s position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskIteratorState {
    /// The task size it was built with (checked on restore).
    pub num_examples: usize,
    /// Its seed.
    pub seed: u64,
    /// The current epoch (0-based).
    pub epoch: u64,
    /// Examples already yielded in the current epoch.
    pub position: usize,
}

impl TaskIterator {
    /// An endless order over `0..num_examples`. With several tasks, give each its own seed,
    /// e.g. [`derive_seed`]`(seed, task_index)`.
    pub fn new(num_examples: usize, seed: u64) -> Self {
        Self {
            num_examples,
            seed,
            epoch: 0,
            position: 0,
            order: Self::permutation(num_examples, seed, 0),
        }
    }

    fn permutation(num_examples: usize, seed: u64, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..num_examples).collect();
        SplitMix64::new(seed.wrapping_add(epoch)).shuffle(&mut order);
        order
    }

    /// The number of examples of the task.
    pub fn num_examples(&self) -> usize {
        self.num_examples
    }

    /// The current epoch (0-based); it advances when an epoch's last example has been yielded
    /// and the next one is asked for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next example index; `None` only for a task without examples.
    pub fn next_index(&mut self) -> Option<usize> {
        if self.num_examples == 0 {
            return None;
        }
        if self.position == self.num_examples {
            self.epoch += 1;
            self.position = 0;
            self.order = Self::permutation(self.num_examples, self.seed, self.epoch);
        }
        let index = self.order[self.position];
        self.position += 1;
        Some(index)
    }

    /// The next `n` example indices (crossing into the next epoch when needed).
    pub fn take_indices(&mut self, n: usize) -> Vec<usize> {
        (0..n).map_while(|_| self.next_index()).collect()
    }

    /// The state to save with a checkpoint.
    pub fn state(&self) -> TaskIteratorState {
        TaskIteratorState {
            num_examples: self.num_examples,
            seed: self.seed,
            epoch: self.epoch,
            position: self.position,
        }
    }

    /// Continues from a saved state; refuses a state saved for another task size.
    pub fn restore(&mut self, state: &TaskIteratorState) -> Result<()> {
        if state.num_examples != self.num_examples || state.position > state.num_examples {
            return Err(Error::Invalid(format!(
                "the saved example order is for {} examples (position {}), this task has {}",
                state.num_examples, state.position, self.num_examples
            )));
        }
        self.seed = state.seed;
        self.epoch = state.epoch;
        self.position = state.position;
        self.order = Self::permutation(self.num_examples, self.seed, self.epoch);
        Ok(())
    }
}

impl Iterator for TaskIterator {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        self.next_index()
    }
}

/// Batches for multi-task training: a task drawn by temperature, then that task's next examples.
#[derive(Clone, Debug)]
pub struct MultiTaskSampler {
    tasks: TemperatureSampler,
    examples: Vec<TaskIterator>,
}

/// A [`MultiTaskSampler`]'s position (save it with checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiTaskSamplerState {
    /// The task draw.
    pub tasks: TemperatureSamplerState,
    /// Each task's example order.
    pub examples: Vec<TaskIteratorState>,
}

impl MultiTaskSampler {
    /// Tasks with `sizes` training examples; task `i`'s example order is seeded by
    /// [`derive_seed`]`(seed, i)`.
    pub fn new(sizes: &[usize], temperature: f64, seed: u64) -> Result<Self> {
        Ok(Self {
            tasks: TemperatureSampler::new(sizes, temperature, seed)?,
            examples: sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| TaskIterator::new(n, derive_seed(seed, i as u64)))
                .collect(),
        })
    }

    /// The probability of each task.
    pub fn probabilities(&self) -> &[f64] {
        self.tasks.probabilities()
    }

    /// The next batch: its task and `batch_size` example indices within that task.
    pub fn next_batch(&mut self, batch_size: usize) -> (usize, Vec<usize>) {
        let task = self.tasks.next_task();
        (task, self.examples[task].take_indices(batch_size))
    }

    /// The next mixed batch: for each of `batch_size` rows a task drawn by temperature and that
    /// task's next example, as `(task, example index)`.
    pub fn next_mixed_batch(&mut self, batch_size: usize) -> Vec<(usize, usize)> {
        (0..batch_size)
            .filter_map(|_| {
                let task = self.tasks.next_task();
                Some((task, self.examples[task].next_index()?))
            })
            .collect()
    }

    /// The epoch each task's example order is in.
    pub fn task_epochs(&self) -> Vec<u64> {
        self.examples.iter().map(TaskIterator::epoch).collect()
    }

    /// The state to save with a checkpoint.
    pub fn state(&self) -> MultiTaskSamplerState {
        MultiTaskSamplerState {
            tasks: self.tasks.state(),
            examples: self.examples.iter().map(TaskIterator::state).collect(),
        }
    }

    /// Continues from a saved state.
    pub fn restore(&mut self, state: &MultiTaskSamplerState) -> Result<()> {
        if state.examples.len() != self.examples.len() {
            return Err(Error::Invalid(format!(
                "the saved sampler has {} tasks, this run has {}",
                state.examples.len(),
                self.examples.len()
            )));
        }
        self.tasks.restore(&state.tasks)?;
        for (iterator, saved) in self.examples.iter_mut().zip(&state.examples) {
            iterator.restore(saved)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [usize; 3] = [100, 1000, 10000];

    fn frequencies(sizes: &[usize], temperature: f64, draws: usize, seed: u64) -> Vec<f64> {
        let mut sampler = TemperatureSampler::new(sizes, temperature, seed).unwrap();
        let mut counts = vec![0usize; sizes.len()];
        for _ in 0..draws {
            counts[sampler.next_task()] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn probabilities_follow_the_formula() {
        let total = 11_100.0;
        for t in [1.0, 2.0, 10.0] {
            let p = temperature_probabilities(&SIZES, t).unwrap();
            let w: Vec<f64> = SIZES
                .iter()
                .map(|&n| (n as f64 / total).powf(1.0 / t))
                .collect();
            let s: f64 = w.iter().sum();
            for i in 0..3 {
                assert!((p[i] - w[i] / s).abs() < 1e-12);
            }
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // T = 1 is proportional to size.
        let p = temperature_probabilities(&SIZES, 1.0).unwrap();
        for i in 0..3 {
            assert!((p[i] - SIZES[i] as f64 / total).abs() < 1e-12);
        }
        // Large T tends to uniform.
        let p = temperature_probabilities(&SIZES, 1e6).unwrap();
        for pi in p {
            assert!((pi - 1.0 / 3.0).abs() < 1e-4);
        }
        // Errors and empty tasks.
        assert!(temperature_probabilities(&[], 1.0).is_err());
        assert!(temperature_probabilities(&[0, 0], 1.0).is_err());
        assert!(temperature_probabilities(&[1, 2], 0.0).is_err());
        assert!(temperature_probabilities(&[1, 2], -1.0).is_err());
        assert_eq!(
            temperature_probabilities(&[0, 5], 10.0).unwrap(),
            [0.0, 1.0]
        );
    }

    #[test]
    fn empirical_frequencies_match_the_formula() {
        for t in [1.0, 2.0, 10.0] {
            let expected = temperature_probabilities(&SIZES, t).unwrap();
            let got = frequencies(&SIZES, t, 200_000, 42);
            for i in 0..3 {
                assert!(
                    (got[i] - expected[i]).abs() < 0.01,
                    "T={t}: {got:?} vs {expected:?}"
                );
            }
        }
        // T = 1: proportional to size, so the largest task dominates (0.9).
        let got = frequencies(&SIZES, 1.0, 200_000, 7);
        assert!((got[2] - 10_000.0 / 11_100.0).abs() < 0.01, "{got:?}");
        // Large T: close to uniform.
        let got = frequencies(&SIZES, 1000.0, 200_000, 7);
        for g in got {
            assert!((g - 1.0 / 3.0).abs() < 0.01);
        }
        // A task without examples is never drawn.
        let got = frequencies(&[0, 10, 0, 10], 3.0, 10_000, 1);
        assert_eq!((got[0], got[2]), (0.0, 0.0));
    }

    #[test]
    fn task_draws_are_deterministic_and_restorable() {
        let draw =
            |s: &mut TemperatureSampler, n| (0..n).map(|_| s.next_task()).collect::<Vec<_>>();
        let mut a = TemperatureSampler::new(&SIZES, 2.0, 5).unwrap();
        let mut b = TemperatureSampler::new(&SIZES, 2.0, 5).unwrap();
        assert_eq!(draw(&mut a, 1000), draw(&mut b, 1000));
        let mut c = TemperatureSampler::new(&SIZES, 2.0, 6).unwrap();
        let mut a2 = TemperatureSampler::new(&SIZES, 2.0, 5).unwrap();
        assert_ne!(draw(&mut a2, 100), draw(&mut c, 100));

        // Save mid-way (through JSON), restore into a fresh sampler, continue identically.
        let mut run = TemperatureSampler::new(&SIZES, 2.0, 9).unwrap();
        draw(&mut run, 537);
        let saved = serde_json::to_string(&run.state()).unwrap();
        let rest = draw(&mut run, 1000);
        let mut resumed = TemperatureSampler::new(&SIZES, 2.0, 9).unwrap();
        resumed
            .restore(&serde_json::from_str(&saved).unwrap())
            .unwrap();
        assert_eq!(resumed.draws(), 537);
        assert_eq!(draw(&mut resumed, 1000), rest);

        // A state from another configuration is refused.
        let mut other = TemperatureSampler::new(&SIZES, 1.0, 9).unwrap();
        assert!(other
            .restore(&serde_json::from_str(&saved).unwrap())
            .is_err());
        let mut other = TemperatureSampler::new(&[1, 2], 2.0, 9).unwrap();
        assert!(other
            .restore(&serde_json::from_str(&saved).unwrap())
            .is_err());
    }

    #[test]
    fn task_iterator_walks_permutations_epoch_by_epoch() {
        let mut it = TaskIterator::new(10, 3);
        let epoch0 = it.take_indices(10);
        assert_eq!(it.epoch(), 0);
        let epoch1 = it.take_indices(10);
        assert_eq!(it.epoch(), 1);
        for epoch in [&epoch0, &epoch1] {
            let mut sorted = epoch.clone();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(epoch0, epoch1, "reshuffled per epoch");
        assert_ne!(epoch0, (0..10).collect::<Vec<_>>(), "shuffled");
        // Epoch e is the permutation seeded by seed + e.
        assert_eq!(TaskIterator::new(10, 4).take_indices(10), epoch1);

        assert_eq!(TaskIterator::new(0, 1).next(), None);
        assert_eq!(
            TaskIterator::new(1, 1).take(3).collect::<Vec<_>>(),
            [0, 0, 0]
        );
    }

    #[test]
    fn task_iterator_restores_mid_epoch() {
        let mut run = TaskIterator::new(7, 11);
        run.take_indices(17); // epoch 2, position 3
        assert_eq!(run.epoch(), 2);
        let saved = serde_json::to_string(&run.state()).unwrap();
        let rest = run.take_indices(30);
        let mut resumed = TaskIterator::new(7, 11);
        resumed
            .restore(&serde_json::from_str(&saved).unwrap())
            .unwrap();
        assert_eq!(resumed.take_indices(30), rest);
        let mut wrong = TaskIterator::new(8, 11);
        assert!(wrong
            .restore(&serde_json::from_str(&saved).unwrap())
            .is_err());
    }

    #[test]
    fn multi_task_batches_are_deterministic_and_restorable() {
        let sizes = [5, 50, 500];
        let mut run = MultiTaskSampler::new(&sizes, 10.0, 42).unwrap();
        let mut twin = MultiTaskSampler::new(&sizes, 10.0, 42).unwrap();
        let first: Vec<_> = (0..200).map(|_| run.next_batch(4)).collect();
        let twin_first: Vec<_> = (0..200).map(|_| twin.next_batch(4)).collect();
        assert_eq!(first, twin_first);
        for (task, indices) in &first {
            assert_eq!(indices.len(), 4);
            assert!(indices.iter().all(|&i| i < sizes[*task]));
        }
        // The small task has cycled through several epochs.
        assert!(run.task_epochs()[0] > 0);

        let saved = serde_json::to_string(&run.state()).unwrap();
        let rest: Vec<_> = (0..300).map(|_| run.next_batch(4)).collect();
        let mut resumed = MultiTaskSampler::new(&sizes, 10.0, 42).unwrap();
        resumed
            .restore(&serde_json::from_str(&saved).unwrap())
            .unwrap();
        let resumed_rest: Vec<_> = (0..300).map(|_| resumed.next_batch(4)).collect();
        assert_eq!(resumed_rest, rest);

        let mut other = MultiTaskSampler::new(&sizes[..2], 10.0, 42).unwrap();
        assert!(other
            .restore(&serde_json::from_str(&saved).unwrap())
            .is_err());
    }

    #[test]
    fn tasks_get_independent_orders() {
        // Same size, same run seed: different tasks must not share an order.
        let a = TaskIterator::new(100, derive_seed(42, 0)).take_indices(100);
        let b = TaskIterator::new(100, derive_seed(42, 1)).take_indices(100);
        assert_ne!(a, b);
    }
}
