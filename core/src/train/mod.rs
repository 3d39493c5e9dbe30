//! Multi-task training: the run config, samplers, batches, schedules and the trainer.

pub mod batch;
pub mod config;
pub mod sampler;
pub mod schedule;

pub use config::{CustomTaskConfig, DataFormat, EvaluationStrategy, LrScheduler, RunConfig};
pub use sampler::{
    derive_seed, temperature_probabilities, MultiTaskSampler, MultiTaskSamplerState, SplitMix64,
    TaskIterator, TaskIteratorState, TemperatureSampler, TemperatureSamplerState,
};
