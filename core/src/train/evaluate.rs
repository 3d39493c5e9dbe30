//! Evaluation by generation: predictions for a task's validation or test rows, and the task
//! metrics over every evaluation task. The trainer evaluates with these during and after
//! training; `native eval` and `native predict` call them on a model they load.

use std::collections::BTreeMap;

use super::config::RunConfig;
use super::data::TaskData;
use super::gather::{gather_ids, is_mine, Ranks};
use crate::adapter::{AdapterSet, Adapters};
use crate::error::Result;
use crate::fused::FusedOps;
use crate::generation::{generate, GenerationConfig};
use crate::model::T5ForConditionalGeneration;
use crate::tasks;
use crate::tokenizer::T5Tokenizer;

/// Generated texts for the validation (or test) rows of one task, through its adapter when the
/// run trains adapters; each of `ranks` generates its share of the batches and every rank
/// returns all the texts ([`super::gather`]).
pub fn predict<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    set: &AdapterSet<B>,
    config: &RunConfig,
    td: &TaskData,
    tok: &T5Tokenizer,
    test: bool,
    ranks: &dyn Ranks,
) -> Result<Vec<String>> {
    let adapter_name = config.adapter_for(td.task.name()).map(str::to_string);
    let adapters = match (&adapter_name, config.train_adapters) {
        (Some(a), true) if !set.tasks.is_empty() => Some(Adapters::task(set, a)?),
        _ => None,
    };
    let mut gen = GenerationConfig::for_model(&model.config);
    gen.max_new_tokens = if test {
        config.test_max_target_length
    } else {
        config.val_max_target_length
    };
    gen.num_beams = config.eval_beams.max(1);
    let rows = td.rows(test);
    let batch = config.per_device_eval_batch_size.max(1);
    let mut mine = Vec::new();
    for (index, chunk) in rows.chunks(batch).enumerate() {
        if !is_mine(ranks, index) {
            continue;
        }
        let inputs: Vec<Vec<u32>> = chunk.iter().map(|(e, _)| e.input_ids.clone()).collect();
        let generated = generate(model, &inputs, &gen, adapters.as_ref())?;
        mine.extend((index * batch..).zip(generated));
    }
    let all = gather_ids(ranks, rows.len(), gen.max_new_tokens, mine)?;
    all.iter().map(|ids| tok.decode(ids)).collect()
}

/// Scores generated predictions on the validation (or test) split of every evaluation task;
/// keys are `<task>_<metric>` plus `average_metrics`. Every one of `ranks` calls it, generates
/// its share and returns the metrics of the whole split.
pub fn evaluate<B: FusedOps>(
    model: &T5ForConditionalGeneration<B>,
    set: &AdapterSet<B>,
    config: &RunConfig,
    data: &[TaskData],
    tok: &T5Tokenizer,
    test: bool,
    ranks: &dyn Ranks,
) -> Result<BTreeMap<String, f64>> {
    let mut per_task = BTreeMap::new();
    for td in data
        .iter()
        .filter(|t| config.eval_task_names().iter().any(|n| n == t.task.name()))
    {
        let rows = td.rows(test);
        if rows.is_empty() {
            continue;
        }
        let predictions = predict(model, set, config, td, tok, test, ranks)?;
        let references: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
        per_task.insert(
            td.task.name().to_string(),
            td.task.evaluate(&predictions, &references)?,
        );
    }
    let mut flat = BTreeMap::new();
    if !per_task.is_empty() {
        flat.insert(
            "average_metrics".to_string(),
            tasks::average_metrics(&per_task),
        );
    }
    for (task, metrics) in per_task {
        for (metric, value) in metrics {
            flat.insert(format!("{task}_{metric}"), value);
        }
    }
    Ok(flat)
}

/// Metrics as one line: `name value, ...` with two decimals.
pub fn format_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
