//! Multi-task training: the run config, samplers, batches, schedules and the trainer.

pub mod batch;
pub mod config;
pub mod optim;
pub mod plot;
pub mod sampler;
pub mod schedule;
pub mod step;
pub mod summary;
pub mod trainer;

pub use config::{EvaluationStrategy, LrScheduler, RunConfig};
pub use sampler::{
    temperature_probabilities, MultiTaskSampler, MultiTaskSamplerState, TaskIterator,
    TaskIteratorState, TemperatureSampler, TemperatureSamplerState,
};
