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

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use std::sync::{Barrier, Mutex};

    use burn::backend::Autodiff;
    use burn::module::AutodiffModule;

    use super::*;
    use crate::backend::Cpu;
    use crate::train::replicas::Alone;
    use crate::train::setup::Setup;

    /// Ranks on threads of one process, summing through shared memory.
    struct Shared {
        world: usize,
        barrier: Barrier,
        sum: Mutex<Vec<f32>>,
    }

    struct ThreadRank<'a>(usize, &'a Shared);

    impl Ranks for ThreadRank<'_> {
        fn rank(&self) -> usize {
            self.0
        }
        fn world(&self) -> usize {
            self.1.world
        }
        fn sum(&self, values: &[f32]) -> Result<Vec<f32>> {
            {
                let mut sum = self.1.sum.lock().unwrap();
                sum.resize(values.len(), 0.0);
                sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
            }
            self.1.barrier.wait();
            let out = self.1.sum.lock().unwrap().clone();
            if self.1.barrier.wait().is_leader() {
                self.1.sum.lock().unwrap().clear();
            }
            self.1.barrier.wait();
            Ok(out)
        }
    }

    /// Two ranks, each generating half of the batches, return the texts of one rank, in order.
    #[test]
    fn a_sharded_prediction_is_the_prediction_of_one_rank() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/data");
        let json = serde_json::json!({
            "model_name_or_path": "t5-tiny",
            "tokenizer_name": format!("{data}/tokenizer"),
            "tasks": ["sentiment"],
            "custom_tasks": [{"name": "sentiment", "template": "sentence: {sentence}",
                "train_file": format!("{data}/sentiment/train.jsonl"),
                "validation_file": format!("{data}/sentiment/validation.jsonl"),
                "target_field": "label", "metrics": ["accuracy"]}],
            "output_dir": "unused", "do_eval": true, "n_train": 8, "n_val": 7, "seed": 3,
            "per_device_eval_batch_size": 2, "val_max_target_length": 6,
        });
        let config = RunConfig::load_str(&json.to_string(), "test.json")
            .unwrap()
            .config;
        let setup = Setup::<Autodiff<Cpu>>::new(&config, &Default::default()).unwrap();
        let model = setup.trainable.model.valid();
        let adapters = setup.trainable.adapters.valid();
        let set = adapters.all().unwrap();
        let (td, tok) = (&setup.data[0], &setup.tokenizer);
        let one = predict(&model, set.as_ref(), &config, td, tok, false, &Alone).unwrap();
        assert_eq!(one.len(), 7);
        let shared = Shared {
            world: 2,
            barrier: Barrier::new(2),
            sum: Mutex::new(Vec::new()),
        };
        let two: Vec<Vec<String>> = std::thread::scope(|s| {
            let ranks: Vec<_> = (0..2)
                .map(|r| {
                    let (model, set, config, shared) = (&model, set.as_ref(), &config, &shared);
                    s.spawn(move || {
                        predict(model, set, config, td, tok, false, &ThreadRank(r, shared))
                    })
                })
                .collect();
            ranks
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(two[0], one);
        assert_eq!(two[1], one);
        // Random weights say different things to different inputs: the order is tested.
        assert!(one.iter().any(|p| p != &one[0]), "{one:?}");
    }
}
