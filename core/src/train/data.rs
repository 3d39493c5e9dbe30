//! A run's data: every task the config names, read, split, limited and tokenized once, for
//! training and for evaluation alike (`native eval` and `native predict` read it the same way).

use super::batch::{truncate, Example};
use super::config::RunConfig;
use crate::data::{read_records, Record};
use crate::error::{Error, Result};
use crate::tasks::{self, Role, Task};
use crate::tokenizer::T5Tokenizer;

/// A task's tokenized splits; evaluation keeps the target texts to score against.
pub struct TaskData {
    pub task: Task,
    pub train: Vec<Example>,
    pub validation: Vec<(Example, String)>,
    pub test: Vec<(Example, String)>,
}

impl TaskData {
    /// The validation rows, or the test rows.
    pub fn rows(&self, test: bool) -> &[(Example, String)] {
        if test {
            &self.test
        } else {
            &self.validation
        }
    }
}

/// Reads, splits, limits and tokenizes every task named in the run config: the training tasks,
/// then the evaluation tasks that are not among them.
pub fn prepare_data(config: &RunConfig, tok: &T5Tokenizer, eos: u32) -> Result<Vec<TaskData>> {
    let mut names: Vec<String> = config.tasks.clone();
    for t in config.eval_task_names() {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    let tasks = tasks::resolve(&names, &config.custom_tasks)?;
    tasks
        .into_iter()
        .map(|task| prepare_task(config, task, tok, eos))
        .collect()
}

/// One task's splits: read (only what the run needs), re-split when asked, cut to `n_*`, then
/// tokenized.
fn prepare_task(config: &RunConfig, task: Task, tok: &T5Tokenizer, eos: u32) -> Result<TaskData> {
    let name = task.name().to_string();
    let training = config.tasks.contains(&name) && config.do_train;
    let train = if training || config.split_validation_test {
        load_split(config, &task, Role::Train, training)?
    } else {
        Vec::new()
    };
    let validation = load_split(
        config,
        &task,
        Role::Validation,
        config.do_eval || config.split_validation_test,
    )?;
    // Re-splitting makes the test split from the others, except for a task that has its own
    // (MNLI's matched set), which it keeps.
    let test = if config.split_validation_test && !task.split_policy().is_keep() {
        None
    } else {
        Some(load_split(config, &task, Role::Test, config.do_test)?)
    };
    let data_seed = config.effective_data_seed();
    let (train, validation, test) = if config.split_validation_test {
        let s = tasks::split_validation_test(&task, train, validation, test, data_seed)?;
        (s.train, s.validation, s.test)
    } else {
        (train, validation, test.unwrap_or_default())
    };
    let train = tasks::take_n(train, Some(config.n_train))?;
    let validation = tasks::take_n(validation, Some(config.n_val))?;
    let test = tasks::take_n(test, Some(config.n_test))?;
    let train = tokenize(&task, train, tok, config, config.max_target_length, eos)?
        .into_iter()
        .map(|(e, _)| e)
        .collect::<Vec<_>>();
    if training && train.is_empty() {
        let why = if config.n_train == 0 {
            "`n_train` is 0; set -1 (all) or a count".to_string()
        } else {
            "its training split has no labelled examples".to_string()
        };
        return Err(Error::Invalid(format!("task `{name}`: {why}")));
    }
    let val_max = config.val_max_target_length;
    Ok(TaskData {
        validation: tokenize(&task, validation, tok, config, val_max, eos)?,
        test: tokenize(&task, test, tok, config, config.test_max_target_length, eos)?,
        task,
        train,
    })
}

/// Reads one split of `task`: custom tasks from the files their config names; built-in tasks
/// from `data_dir` when it is set, else from the hub (downloaded once into the HF cache). A split
/// that is not `required` is read only when it is at hand locally.
fn load_split(config: &RunConfig, task: &Task, role: Role, required: bool) -> Result<Vec<Record>> {
    if let Some(custom) = config.custom_task(task.name()) {
        let file = match role {
            Role::Train => &custom.train_file,
            Role::Validation => &custom.validation_file,
            Role::Test => &custom.test_file,
        };
        return match file {
            Some(path) if path.is_file() || required => read_records(path),
            _ => Ok(Vec::new()),
        };
    }
    if let Some(dir) = &config.data_dir {
        return match tasks::source::load_local(task, role, dir)? {
            Some(records) => Ok(records),
            None if required => Err(tasks::source::not_found(task, role, dir)),
            None => Ok(Vec::new()),
        };
    }
    if !required {
        return Ok(Vec::new());
    }
    #[cfg(all(feature = "hub", feature = "parquet"))]
    {
        tasks::source::load_from_hub(task, role, &crate::hub::HubOptions::from_env())
    }
    #[cfg(not(all(feature = "hub", feature = "parquet")))]
    Err(crate::Error::Invalid(format!(
        "task `{}`: set `data_dir` to local copies of its data (this build cannot download datasets)",
        task.name()
    )))
}

/// The labelled records as tokenized examples with their target texts. Inputs carry the task
/// name as a prefix only without adapters (with adapters the adapter says which task it is).
fn tokenize(
    task: &Task,
    records: Vec<Record>,
    tok: &T5Tokenizer,
    config: &RunConfig,
    max_target: usize,
    eos: u32,
) -> Result<Vec<(Example, String)>> {
    let prefix = !config.train_adapters;
    records
        .into_iter()
        .filter(|r| task.is_labelled(r))
        .map(|r| {
            let ex = task.format(&r, prefix)?;
            let input_ids = truncate(tok.encode(&ex.input)?, config.max_source_length, eos);
            let labels = truncate(tok.encode(&ex.target)?, max_target, eos);
            Ok((Example { input_ids, labels }, ex.target))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// GLUE's TSV fixtures under `split_validation_test`: MNLI keeps its own test split (the
    /// matched set), and a large task whose 12 training rows cannot spare 1000 halves its
    /// validation split instead.
    #[test]
    fn split_validation_test_on_the_glue_fixtures() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let tok = T5Tokenizer::from_file(&fixtures.join("t5-v1_0/tokenizer.json")).unwrap();
        let config = RunConfig {
            tasks: vec!["mnli".into(), "sst2".into(), "rte".into()],
            data_dir: Some(fixtures.join("data/glue_data")),
            split_validation_test: true,
            do_train: true,
            do_eval: true,
            do_test: true,
            ..RunConfig::default()
        };
        let data = prepare_data(&config, &tok, 1).unwrap();
        let sizes: Vec<(&str, usize, usize, usize)> = data
            .iter()
            .map(|t| {
                let n = (t.train.len(), t.validation.len(), t.test.len());
                (t.task.name(), n.0, n.1, n.2)
            })
            .collect();
        assert_eq!(
            sizes,
            [("mnli", 12, 12, 12), ("sst2", 12, 6, 6), ("rte", 12, 6, 6)]
        );
        // MNLI's test rows are the matched set's (its first pair), not the mismatched set's.
        let matched = tok
            .encode(
                "mnli premise: The cat visits the museum at home. \
                 hypothesis: The cat visits something.",
            )
            .unwrap();
        assert!(data[0].test.iter().any(|(e, _)| e.input_ids == matched));
        assert!(data[0]
            .validation
            .iter()
            .all(|(e, _)| e.input_ids != matched));
    }
}
