//! `native eval` and `native predict`: a model (and adapters) on the tasks of a run config.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use t5_core::adapter::AdapterSet;
use t5_core::fused::FusedOps;
use t5_core::generation::limits::{memory_for, MAX_TOKENS};
use t5_core::train::data::{prepare_data, TaskData};
use t5_core::train::evaluate::{evaluate, format_metrics, predict};
use t5_core::train::replicas::Alone;
use t5_core::train::setup::{check_batch_memory, load_tokenizer};
use t5_core::train::RunConfig;
use t5_core::{T5ForConditionalGeneration, T5Tokenizer};

use crate::adapters::AdapterSource;
use crate::backend::{run_on, Job};
use crate::cli::{EvalArgs, PredictArgs, SplitArg};
use crate::model::resolve_model;

struct Setup {
    config: RunConfig,
    model: String,
    adapters: AdapterSource,
    test: bool,
}

/// The command line's adapters: `--adapter` directories, or `--hypernetwork` with `tasks`.
struct AdapterArgs {
    dirs: Vec<PathBuf>,
    hypernetwork: Option<PathBuf>,
    /// The tasks evaluated (predict's one task), or `None` for the config's eval tasks.
    tasks: Option<Vec<String>>,
}

fn setup(
    config_path: &std::path::Path,
    model: Option<String>,
    adapters: AdapterArgs,
    split: SplitArg,
    max_source_length: Option<usize>,
) -> Result<Setup> {
    let mut config = super::train::load_config(config_path)?;
    if let Some(n) = max_source_length {
        if !(1..=MAX_TOKENS).contains(&n) {
            bail!("--max-source-length must be in 1..={MAX_TOKENS}, got {n}");
        }
        config.max_source_length = n;
    }
    let model = model.unwrap_or_else(|| config.model_name_or_path.clone());
    let test = split == SplitArg::Test;
    let tasks = adapters
        .tasks
        .unwrap_or_else(|| config.eval_task_names().to_vec());
    let generated = generated_adapters(&config, &tasks);
    let adapters = AdapterSource::new(adapters.dirs, adapters.hypernetwork, generated);
    config.do_train = false;
    config.do_eval = !test;
    config.do_test = test;
    config.train_adapters = !adapters.is_empty();
    Ok(Setup {
        config,
        model,
        adapters,
        test,
    })
}

/// The adapters that evaluate `eval_tasks` (a training task's, or the one `adapters` maps an
/// eval task to), each with the hypernetwork embedding it is generated from (its own unless
/// `task_embeddings` maps it), as the trainer generates them.
fn generated_adapters(config: &RunConfig, eval_tasks: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in eval_tasks.iter().filter_map(|t| config.adapter_for(t)) {
        if !out.iter().any(|(n, _)| n == name) {
            let embedding = config.hyper.embedding_of(name);
            out.push((name.to_string(), embedding.to_string()));
        }
    }
    out
}

/// A setup's model, adapters, tokenizer and data, loaded.
struct Loaded<B: FusedOps> {
    model: T5ForConditionalGeneration<B>,
    set: AdapterSet<B>,
    tok: T5Tokenizer,
    data: Vec<TaskData>,
}

/// Loads the model, tokenizer, adapters and data of a setup.
fn load<B: FusedOps>(s: &Setup, device: &B::Device) -> Result<Loaded<B>> {
    let dir = resolve_model(&s.model)?;
    let (tok, _) = load_tokenizer(&s.config, Some(&dir))?;
    let data = prepare_data(&s.config, &tok, dir.config.eos_token_id as u32)?;
    check_batch_memory(&s.config, &dir.config, &data, memory_for::<B>(device))?;
    let model = dir.load_model::<B>(device)?;
    let set = s.adapters.load::<B>(&model.config, device)?;
    Ok(Loaded {
        model,
        set,
        tok,
        data,
    })
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let adapters = AdapterArgs {
        dirs: args.adapters,
        hypernetwork: args.hypernetwork,
        tasks: None,
    };
    let s = setup(
        &args.config,
        args.model,
        adapters,
        args.split,
        args.max_source_length,
    )?;
    let backend = args.backend;
    let metrics = run_on(backend, EvalJob(s))?;
    eprintln!("{}", format_metrics(&metrics));
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    Ok(())
}

struct EvalJob(Setup);

impl Job for EvalJob {
    type Output = std::collections::BTreeMap<String, f64>;
    fn run<B: t5_core::fused::FusedOps>(self, device: B::Device, _: &str) -> Result<Self::Output> {
        let Loaded {
            model,
            set,
            tok,
            data,
        } = load::<B>(&self.0, &device)?;
        Ok(evaluate(
            &model,
            &set,
            &self.0.config,
            &data,
            &tok,
            self.0.test,
            &Alone,
        )?)
    }
}

pub fn run_predict(args: PredictArgs) -> Result<()> {
    let adapters = AdapterArgs {
        dirs: args.adapters,
        hypernetwork: args.hypernetwork,
        tasks: Some(vec![args.task.clone()]),
    };
    let s = setup(
        &args.config,
        args.model,
        adapters,
        args.split,
        args.max_source_length,
    )?;
    let lines = run_on(args.backend, PredictJob(s, args.task.clone()))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    match &args.output {
        Some(path) => t5_core::io::write_atomic(path, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

struct PredictJob(Setup, String);

impl Job for PredictJob {
    type Output = Vec<serde_json::Value>;
    fn run<B: t5_core::fused::FusedOps>(self, device: B::Device, _: &str) -> Result<Self::Output> {
        let Loaded {
            model,
            set,
            tok,
            data,
        } = load::<B>(&self.0, &device)?;
        let Some(td) = data.iter().find(|d| d.task.name() == self.1) else {
            bail!(
                "task `{}` is not among the config's tasks ({})",
                self.1,
                self.0.config.tasks.join(", ")
            );
        };
        let predictions = predict(&model, &set, &self.0.config, td, &tok, self.0.test, &Alone)?;
        Ok(td
            .rows(self.0.test)
            .iter()
            .zip(predictions)
            .map(|((ex, target), prediction)| {
                serde_json::json!({"input": tok.decode(&ex.input_ids).unwrap_or_default(), "prediction": prediction, "target": target})
            })
            .collect())
    }
}
