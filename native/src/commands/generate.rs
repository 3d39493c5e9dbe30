//! `native generate`: text in, text out, with greedy or beam search.

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};

use t5_core::adapter::Adapters;
use t5_core::generation::{generate, EarlyStopping, GenerationConfig};
use t5_core::model_dir::ModelDir;

use crate::adapters::AdapterSource;
use crate::backend::{run_on, Job};
use crate::cli::{EarlyStoppingArg, GenerateArgs};

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.num_beams == 0 {
        bail!("--num-beams must be at least 1");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let inputs = read_inputs(&args)?;
    let dir = ModelDir::resolve(&args.model)
        .with_context(|| format!("loading model `{}`", args.model))?;
    let tokenizer = dir.load_tokenizer()?;
    let mut config = GenerationConfig::for_model(&dir.config);
    config.max_new_tokens = args.max_new_tokens;
    config.min_new_tokens = args.min_new_tokens;
    config.num_beams = args.num_beams;
    config.length_penalty = args.length_penalty;
    config.early_stopping = match args.early_stopping {
        EarlyStoppingArg::False => EarlyStopping::Heuristic,
        EarlyStoppingArg::True => EarlyStopping::Stop,
        EarlyStoppingArg::Never => EarlyStopping::Never,
    };
    let encoded = inputs
        .iter()
        .map(|text| tokenizer.encode(text))
        .collect::<t5_core::Result<Vec<_>>>()?;
    if args.task.is_some() && args.adapters.is_empty() && args.hypernetwork.is_none() {
        bail!("--task needs at least one --adapter, or --hypernetwork");
    }
    // With --hypernetwork, --task names the embedding and the adapter generated from it.
    let tasks = args.task.iter().map(|t| (t.clone(), t.clone())).collect();
    let job = GenerateJob {
        dir,
        config,
        encoded,
        batch_size: args.batch_size,
        adapters: AdapterSource::new(args.adapters.clone(), args.hypernetwork.clone(), tasks),
        task: args.task.clone(),
    };
    let outputs = run_on(args.backend, job)?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (input, ids) in inputs.iter().zip(outputs) {
        let text = tokenizer.decode(&ids)?;
        if args.json {
            let line = serde_json::json!({ "input": input, "output": text, "ids": ids });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}

fn read_inputs(args: &GenerateArgs) -> Result<Vec<String>> {
    if !args.text.is_empty() {
        return Ok(args.text.clone());
    }
    let lines: Vec<String> = match &args.input_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading stdin")?,
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("no input: pass TEXT arguments, --input-file, or lines on stdin");
    }
    Ok(lines)
}

struct GenerateJob {
    dir: ModelDir,
    config: GenerationConfig,
    encoded: Vec<Vec<u32>>,
    batch_size: usize,
    adapters: AdapterSource,
    task: Option<String>,
}

impl Job for GenerateJob {
    type Output = Vec<Vec<u32>>;

    fn run<B: t5_core::fused::FusedOps>(
        self,
        device: B::Device,
        _backend: &str,
    ) -> Result<Self::Output> {
        let model = self.dir.load_model::<B>(&device)?;
        let set = self.adapters.load::<B>(&model.config, &device)?;
        let task = match (&self.task, set.tasks.len()) {
            (Some(task), _) => Some(task.clone()),
            (None, 0) => None,
            (None, 1) => Some(set.tasks[0].name.clone()),
            (None, _) => bail!(
                "several adapters are attached ({}); choose one with --task",
                set.names().join(", ")
            ),
        };
        let adapters = task.map(|t| Adapters::task(&set, &t)).transpose()?;
        let mut outputs = Vec::with_capacity(self.encoded.len());
        for chunk in self.encoded.chunks(self.batch_size) {
            outputs.extend(generate(&model, chunk, &self.config, adapters.as_ref())?);
        }
        Ok(outputs)
    }
}
