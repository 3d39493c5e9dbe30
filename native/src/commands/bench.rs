//! `native bench`: generation throughput of a randomly initialized model (or a checkpoint), printed as JSON lines
//! in the schema of `benches/reference_generate.py` so that `benches/compare.py` can put ours and
//! PyTorch's side by side.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use t5_core::generation::limits::{check_memory, memory_for};
use t5_core::generation::{generate, synthetic_inputs, GenerationConfig};
use t5_core::{T5Config, T5ForConditionalGeneration};

use crate::backend::{run_on, Job};
use crate::cli::{BenchArgs, BenchSize, Workload};
use crate::model::resolve_model;
use burn::backend::Autodiff;
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::Optimizer;
use t5_core::adapter::lora::{LoraConfig, Modules};
use t5_core::adapter::{AdapterSet, Adapters, BottleneckConfig, SeedAdapterConfig, TaskAdapter};
use t5_core::model::FreezeOptions;
use t5_core::train::adapters::RunAdapters;
use t5_core::train::batch::Example;
use t5_core::train::optim::FusedAdamW;
use t5_core::train::step::{gradients, StepBatch, StepOptions};

pub fn run(args: BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let backend = args.backend;
    let lines = run_on(backend, BenchJob(args))?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

struct BenchJob(BenchArgs);

/// Peak resident set size of this process, from /proc (Linux); 0 elsewhere.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

impl Job for BenchJob {
    type Output = Vec<serde_json::Value>;

    fn run<B: t5_core::fused::FusedOps>(
        self,
        device: B::Device,
        backend: &str,
    ) -> Result<Self::Output> {
        if self.0.workload != Workload::Generate {
            return train_bench::<Autodiff<B>>(self.0, device, backend);
        }
        let args = self.0;
        B::seed(&device, 0);
        let model = match &args.model {
            Some(dir) => resolve_model(dir)?
                .load_model::<B>(&device)
                .with_context(|| format!("loading model `{dir}`"))?,
            None => T5ForConditionalGeneration::<B>::init(&random_config(&args)?, &device),
        };
        let config = model.config.clone();
        let mut lines = Vec::new();
        for &batch in &args.batch {
            for &beams in &args.beams {
                let mut gen = GenerationConfig::for_model(&config);
                gen.max_new_tokens = args.new_tokens;
                gen.min_new_tokens = args.new_tokens;
                gen.num_beams = beams;
                gen.validate()
                    .map_err(|(key, rule)| anyhow::anyhow!("{key} {rule}"))?;
                let what = format!(
                    "--batch {batch}, --beams {beams}, --src-len {}",
                    args.src_len
                );
                let available = memory_for::<B>(&device);
                check_memory(
                    &config,
                    batch * beams,
                    args.src_len,
                    args.new_tokens,
                    available,
                    &what,
                )?;
                let inputs = synthetic_inputs(batch, args.src_len, config.vocab_size, 0);
                for &n in &args.loras {
                    let set = random_loras::<B>(n, &config, &device)?;
                    let names: Vec<String> = set.names().iter().map(|n| n.to_string()).collect();
                    let rows: Vec<Option<&str>> = (0..batch)
                        .map(|r| names.get(r % n.max(1)).map(String::as_str))
                        .collect();
                    let adapters = Adapters::per_row(&set, &rows)?;
                    let adapters = (n > 0).then_some(&adapters);
                    let mut times = Vec::new();
                    for i in 0..args.warmup + args.repeats {
                        let start = Instant::now();
                        let out = generate(&model, &inputs, &gen, adapters)?;
                        let elapsed = start.elapsed().as_secs_f64();
                        if out.iter().any(|o| o.len() != args.new_tokens) {
                            bail!("generated fewer than {} tokens", args.new_tokens);
                        }
                        if i >= args.warmup {
                            times.push(elapsed);
                        }
                    }
                    times.sort_by(f64::total_cmp);
                    let median = times[times.len() / 2];
                    lines.push(serde_json::json!({
                        "impl": "ours",
                        "backend": backend,
                        "workload": "generate",
                        "size": if args.model.is_some() { "checkpoint".to_string() } else { size_name(args.size) },
                        "batch": batch,
                        "beams": beams,
                        "loras": n,
                        "new_tokens": args.new_tokens,
                        "src_len": args.src_len,
                        "median_s": median,
                        "min_s": times[0],
                        "tokens_per_s": (batch * args.new_tokens) as f64 / median,
                        "peak_rss_mb": peak_rss_mb(),
                        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                    }));
                }
            }
        }
        Ok(lines)
    }
}

/// `n` LoRAs named `lora0`, `lora1`, ... of rank 8 on every attention projection and `wi`/`wo`,
/// with random `B` (a fresh LoRA's `B` is zero; the work is the same either way).
fn random_loras<B: t5_core::fused::FusedOps>(
    n: usize,
    config: &T5Config,
    device: &B::Device,
) -> Result<AdapterSet<B>> {
    let lora = LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        target_modules: Modules::Names(["q", "k", "v", "o", "wi", "wo"].map(String::from).to_vec()),
        ..LoraConfig::default()
    };
    let mut set = AdapterSet::default();
    for i in 0..n {
        let mut adapter =
            TaskAdapter::init_lora(&format!("lora{i}"), lora.clone(), config, device)?;
        for l in adapter.linears.iter_mut().flatten() {
            let b = l.b.val();
            l.b = burn::module::Param::from_tensor(
                b.random_like(burn::tensor::Distribution::Normal(0.0, 0.02)),
            );
        }
        set.insert(adapter);
    }
    Ok(set)
}

/// The random model of `--size` and `--feed-forward-proj`, without dropout (as the PyTorch
/// reference), so that training steps do the same work on both sides.
fn random_config(args: &BenchArgs) -> Result<T5Config> {
    let mut config = T5Config::t5_small();
    // (d_model, d_kv, d_ff, heads, layers) of the original T5 checkpoints.
    let dims = match args.size {
        BenchSize::Tiny => (64, 16, 256, 4, 2),
        BenchSize::Small => (512, 64, 2048, 8, 6),
        BenchSize::Base => (768, 64, 3072, 12, 12),
        BenchSize::Large => (1024, 64, 4096, 16, 24),
        BenchSize::ThreeB => (1024, 128, 16384, 32, 24),
    };
    (
        config.d_model,
        config.d_kv,
        config.d_ff,
        config.num_heads,
        config.num_layers,
    ) = dims;
    config.num_decoder_layers = None;
    config.feed_forward_proj = args.feed_forward_proj.clone();
    config.tie_word_embeddings = !config.feed_forward_proj.starts_with("gated");
    config.dropout_rate = 0.0;
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// The name `--size` takes (`tiny`, ..., `3b`).
fn size_name(size: BenchSize) -> String {
    clap::ValueEnum::to_possible_value(&size)
        .expect("every size has a name")
        .get_name()
        .to_string()
}

/// Times training steps (forward, backward, AdamW) on a random model of `--size`.
fn train_bench<B: t5_core::fused::FusedAutodiff>(
    args: BenchArgs,
    device: B::Device,
    backend: &str,
) -> Result<Vec<serde_json::Value>> {
    B::seed(&device, 0);
    let config = random_config(&args)?;
    let batch = *args.batch.first().unwrap_or(&8);
    let what = format!(
        "--batch {batch}, --src-len {}, --tgt-len {}",
        args.src_len, args.tgt_len
    );
    let available = memory_for::<B>(&device);
    check_memory(&config, batch, args.src_len, args.tgt_len, available, &what)?;
    let src = synthetic_inputs(batch, args.src_len, config.vocab_size, 1);
    let tgt = synthetic_inputs(batch, args.tgt_len, config.vocab_size, 2);
    let examples: Vec<Example> = src
        .into_iter()
        .zip(tgt)
        .map(|(input_ids, labels)| Example { input_ids, labels })
        .collect();
    let adapters = args.workload == Workload::TrainAdapters;
    let mut model = T5ForConditionalGeneration::<B>::init(&config, &device).freeze(FreezeOptions {
        backbone: adapters,
        ..Default::default()
    });
    let mut set = AdapterSet::default();
    if adapters {
        let seed = SeedAdapterConfig {
            reduction_factor: args.reduction_factor,
            non_linearity: "relu".into(),
            ..SeedAdapterConfig::default()
        };
        let c = BottleneckConfig::seed(&seed, &config);
        set.insert(TaskAdapter::init("task", c, &config, &device)?);
    }
    // burn's AdamW defaults (as benches/reference_train.py), through the trainer's fused update.
    let adamw = FusedAdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-5,
        weight_decay: 1e-4,
    };
    let mut model_optim = OptimizerAdaptor::<_, T5ForConditionalGeneration<B>, B>::from(adamw);
    let mut set = RunAdapters::PerTask(set);
    let mut set_optim = OptimizerAdaptor::<_, RunAdapters<B>, B>::from(adamw);
    let trainable = if adapters {
        set.num_params()
    } else {
        model.num_trainable_params()
    };
    // The trainer's step: the batch in as many shards as the backend runs at once.
    let options = StepOptions {
        pad_token_id: config.pad_token_id as u32,
        label_smoothing: 0.1,
        scale: 1.0,
        shards: B::data_parallel_shards(),
    };
    let mut times = Vec::new();
    for i in 0..args.warmup + args.repeats {
        let start = Instant::now();
        let rows = StepBatch {
            examples: examples.iter().collect(),
            adapters: vec![adapters.then_some("task"); examples.len()],
            mean_over_tokens: None,
        };
        let grads = gradients(&model, &set, rows, options)?;
        if let Some(g) = grads.adapters {
            set = set_optim.step(1e-3, set, g);
        }
        if let Some(g) = grads.model {
            model = model_optim.step(1e-4, model, g);
        }
        // Make sure the step really ran before stopping the clock (lazy backends).
        let _ = B::sync(&device);
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(vec![serde_json::json!({
        "impl": "ours",
        "backend": backend,
        "workload": if adapters { "train-adapters" } else { "train-full" },
        "size": size_name(args.size),
        "batch": batch,
        "src_len": args.src_len,
        "tgt_len": args.tgt_len,
        "reduction_factor": if adapters { Some(args.reduction_factor) } else { None },
        "trainable_params": trainable,
        "total_params": model.num_params() + set.num_params(),
        "median_s": median,
        "min_s": times[0],
        "examples_per_s": batch as f64 / median,
        "peak_rss_mb": peak_rss_mb(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })])
}
