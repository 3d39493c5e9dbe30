//! Multi-task training and evaluation of a run config.
//!
//! - the run: [`config`] (the JSON run config), [`data`] (its tasks, tokenized),
//!   [`evaluate`] (evaluation and prediction by generation);
//! - the trainer: [`setup`] → [`trainable`] (one optimizer step, over [`step`]'s gradients and
//!   [`optim`]'s AdamW) → [`policy`] (logging, evaluation, [`checkpoint`]s, the export), told
//!   as a story by [`trainer::run`];
//! - its parts: [`batch`], [`sampler`], [`schedule`], [`outputs`], [`plot`], [`summary`].

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod observer;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod policy;
pub mod sampler;
pub mod schedule;
pub mod setup;
pub mod step;
pub mod summary;
pub mod trainable;
pub mod trainer;

pub use config::{EvaluationStrategy, LoadedConfig, LrScheduler, RunConfig};
pub use sampler::{
    temperature_probabilities, MultiTaskSampler, MultiTaskSamplerState, TaskIterator,
    TaskIteratorState, TemperatureSampler, TemperatureSamplerState,
};
