//! `native generate`: text in, text out, with greedy or beam search.

use std::io::{BufRead, Write};

use anyhow::{anyhow, bail, Context, Result};

use t5_core::adapter::Adapters;
use t5_core::generation::limits::{check_memory, memory_for, truncate_source, MAX_TOKENS};
use t5_core::generation::{generate, EarlyStopping, GenerationConfig};
use t5_core::model_dir::ModelDir;

use crate::adapters::AdapterSource;
use crate::backend::{run_on, Job};
use crate::cli::{EarlyStoppingArg, GenerateArgs};
use crate::model::resolve_model;

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let mut config = options(&args)?;
    let inputs = read_inputs(&args)?;
    let dir = resolve_model(&args.model)?;
    let tokenizer = dir.load_tokenizer()?;
    let ids = GenerationConfig::for_model(&dir.config);
    config.eos_token_id = ids.eos_token_id;
    config.pad_token_id = ids.pad_token_id;
    config.decoder_start_token_id = ids.decoder_start_token_id;
    let mut encoded = inputs
        .iter()
        .map(|text| tokenizer.encode(text))
        .collect::<t5_core::Result<Vec<_>>>()?;
    truncate_inputs(
        &mut encoded,
        args.max_source_length,
        dir.config.eos_token_id as u32,
    );
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

/// The generation options of the command line, each checked against its range before anything
/// is loaded (the token ids are the model's, set once it is known).
fn options(args: &GenerateArgs) -> Result<GenerationConfig> {
    if !(1..=MAX_TOKENS).contains(&args.max_source_length) {
        bail!(
            "--max-source-length must be in 1..={MAX_TOKENS}, got {}",
            args.max_source_length
        );
    }
    let mut config = GenerationConfig::for_model(&t5_core::T5Config::t5_small());
    config.max_new_tokens = args.max_new_tokens;
    config.min_new_tokens = args.min_new_tokens;
    config.num_beams = args.num_beams;
    config.length_penalty = args.length_penalty;
    config.early_stopping = match args.early_stopping {
        EarlyStoppingArg::False => EarlyStopping::Heuristic,
        EarlyStoppingArg::True => EarlyStopping::Stop,
        EarlyStoppingArg::Never => EarlyStopping::Never,
    };
    config
        .validate()
        .map_err(|(key, rule)| anyhow!("--{} {rule}", key.replace('_', "-")))?;
    Ok(config)
}

/// Cuts each input to `max_len` tokens as transformers' `truncation=True` does (its first
/// tokens and `</s>`), with one warning that says which inputs were cut.
fn truncate_inputs(encoded: &mut [Vec<u32>], max_len: usize, eos: u32) {
    let cut: Vec<(usize, usize)> = encoded
        .iter_mut()
        .enumerate()
        .filter_map(|(i, ids)| truncate_source(ids, max_len, eos).map(|n| (i + 1, n)))
        .collect();
    let Some(&(first, tokens)) = cut.first() else {
        return;
    };
    let which = match cut.len() {
        1 => format!("input {first} has {tokens} tokens"),
        n => format!("{n} inputs are longer (input {first}: {tokens} tokens)"),
    };
    tracing::warn!(
        "{which}, more than --max-source-length {max_len}: cut to the first {} tokens and </s>, \
         as transformers' truncation=True does; raise --max-source-length to keep more",
        max_len.saturating_sub(1)
    );
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
        let longest = self.encoded.iter().map(Vec::len).max().unwrap_or(0);
        let rows = self.batch_size.min(self.encoded.len()) * self.config.num_beams;
        let what = format!(
            "generating for inputs of up to {longest} tokens (--batch-size {}, --num-beams {}, \
             --max-new-tokens {})",
            self.batch_size, self.config.num_beams, self.config.max_new_tokens
        );
        let available = memory_for::<B>(&device);
        check_memory(
            &self.dir.config,
            rows,
            longest,
            self.config.max_new_tokens,
            available,
            &what,
        )?;
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
