//! `native bench`: generation throughput of a randomly initialized model, printed as JSON lines
//! in the schema of `benches/reference_generate.py` so that `benches/compare.py` can put ours and
//! PyTorch's side by side.

use std::time::Instant;

use anyhow::{bail, Result};
use burn::prelude::*;
use t5_core::generation::{generate, GenerationConfig};
use t5_core::{T5Config, T5ForConditionalGeneration};

use crate::backend::{run_on, Job};
use crate::cli::BenchArgs;

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

/// Deterministic pseudo-random source ids (a 64-bit LCG), avoiding the special ids 0..3.
fn source_ids(batch: usize, len: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..batch)
        .map(|_| {
            let mut row: Vec<u32> = (0..len - 1)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    3 + ((state >> 33) as usize % (vocab - 3)) as u32
                })
                .collect();
            row.push(1);
            row
        })
        .collect()
}

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

    fn run<B: Backend>(self, device: B::Device, backend: &str) -> Result<Self::Output> {
        let args = self.0;
        B::seed(&device, 0);
        let mut config = T5Config::t5_small();
        config.feed_forward_proj = args.feed_forward_proj.clone();
        config.tie_word_embeddings = !config.feed_forward_proj.starts_with("gated");
        config.validate().map_err(anyhow::Error::msg)?;
        let model = T5ForConditionalGeneration::<B>::init(&config, &device);
        let mut lines = Vec::new();
        for &batch in &args.batch {
            for &beams in &args.beams {
                let inputs = source_ids(batch, args.src_len, config.vocab_size, 0);
                let mut gen = GenerationConfig::for_model(&config);
                gen.max_new_tokens = args.new_tokens;
                gen.min_new_tokens = args.new_tokens;
                gen.num_beams = beams;
                let mut times = Vec::new();
                for i in 0..args.warmup + args.repeats {
                    let start = Instant::now();
                    let out = generate(&model, &inputs, &gen, None)?;
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
                    "batch": batch,
                    "beams": beams,
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
        Ok(lines)
    }
}
