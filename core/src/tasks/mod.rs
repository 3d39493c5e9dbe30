//! Tasks as text-to-text problems, the way the seed project (google-research/ruse `seq2seq`,
//! hyperformer) frames them.
//!
//! A [`Task`] turns a [`Record`] (named text fields of one example) into
//! - an input: `"{field}: {value}"` pairs joined by spaces in the seed's field order, e.g.
//!   `sentence1: … sentence2: …`, preceded by the task name (`rte sentence1: …`) only when
//!   training without adapters ([`Task::format_input`]'s `prefix_task_name`);
//! - a target: the label word (`"0"`, `"1"`, …; BoolQ `"False"`/`"True"`), STS-B's score on the
//!   0.2 grid (`"3.8"`), or the translation;
//!
//! and scores generated texts with its metrics ([`Task::evaluate`], see [`crate::metrics`]).
//!
//! - [`registry`]: the 20 built-in tasks by name (GLUE, SuperGLUE, the seed's
//!   others, WMT16 en→ro); custom tasks from a config ([`CustomTaskConfig`]); [`resolve`]
//!   looks names up in both;
//! - [`split_validation_test`], [`take_n`], [`sample_n`]: the seed's splits, deterministic in
//!   `data_seed`;
//! - [`average_metrics`]: the single number the seed selects checkpoints by.
//!
//! Departures from the seed, each a fix: MNLI's `hypothesis:` gets its colon; STS-B targets are
//! rounded to the 0.2 grid (the seed's rounding kept one decimal); `n_obs = -1` keeps every
//! example (the seed dropped the last); WMT16's prefix is T5's `translate English to Romanian:`.

mod builtin;
mod custom;
mod extra;
mod glue;
pub mod registry;
pub mod source;
mod split;
mod superglue;
mod task;
mod template;
mod translation;

pub use crate::data::Record;
pub use custom::{resolve, CustomTaskConfig, DataFormat};
pub use split::{sample_n, split_validation_test, take_n, Splits, LARGE_VALIDATION_SIZE};
pub use task::{
    average_metrics, round_stsb, Answer, HubSource, Role, SplitNames, SplitPolicy, Task,
    TextExample, TsvLayout,
};
pub use template::Template;
