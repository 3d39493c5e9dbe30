//! `native merge-adapters`: several adapters of one model combined into a new adapter directory,
//! LoRAs as PEFT's `add_weighted_adapter` does, bottleneck adapters as the `adapters` library's
//! `average_adapter` does (see `t5_core::adapter::merge`).

use anyhow::{anyhow, bail, Context, Result};
use t5_core::adapter::load_adapter;
use t5_core::adapter::merge::{
    average_bottlenecks, average_weights, merge_loras, save_averaged, save_merged_lora,
    seeded_masks, Combination, LoraMerge, MajoritySign,
};
use t5_core::adapter::TaskAdapter;
use t5_core::backend::Cpu;

use crate::cli::{CombinationArg, MajoritySignArg, MergeAdaptersArgs};
use crate::model::resolve_model;

pub fn run(args: MergeAdaptersArgs) -> Result<()> {
    if args.output.exists() && std::fs::read_dir(&args.output)?.next().is_some() {
        bail!(
            "{}: not empty; merge-adapters writes a new adapter directory (choose an empty or new one)",
            args.output.display()
        );
    }
    let dir = resolve_model(&args.model)?;
    // A few small tensor sums and at most an SVD per layer: the CPU does it at once.
    let device = Default::default();
    let mut inputs: Vec<TaskAdapter<Cpu>> = Vec::new();
    for path in &args.adapters {
        let adapter = load_adapter::<Cpu>(path, &dir.config, &device)
            .with_context(|| format!("loading adapter {}", path.display()))?;
        if let Some(first) = inputs.first() {
            if first.lora.is_some() != adapter.lora.is_some() {
                bail!(
                    "{}: {} while {} is {}: LoRAs and bottleneck adapters cannot be merged together",
                    path.display(),
                    kind(&adapter),
                    args.adapters[0].display(),
                    kind(first)
                );
            }
        }
        inputs.push(adapter);
    }
    let refs: Vec<&TaskAdapter<Cpu>> = inputs.iter().collect();
    let lora = refs[0].lora.is_some();
    match (lora, combination(args.combination)) {
        (false, None) => average(&args, &refs, &dir.config),
        (false, Some(c)) => bail!(
            "{}: a bottleneck adapter; only `--combination average` combines bottleneck adapters (got {c:?})",
            args.adapters[0].display()
        ),
        (true, None) => bail!(
            "{}: a LoRA; combine LoRAs with one of PEFT's combinations (linear, cat, svd, ties, dare_linear, dare_ties, ...), not `average`",
            args.adapters[0].display()
        ),
        (true, Some(c)) => merge_lora(&args, &refs, &dir.config, c),
    }
}

fn kind(adapter: &TaskAdapter<Cpu>) -> &'static str {
    if adapter.lora.is_some() {
        "a LoRA"
    } else {
        "a bottleneck adapter"
    }
}

fn name(args: &MergeAdaptersArgs) -> Result<String> {
    match &args.name {
        Some(name) => Ok(name.clone()),
        None => args
            .output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{}: give --name for the new adapter", args.output.display())),
    }
}

fn average(
    args: &MergeAdaptersArgs,
    inputs: &[&TaskAdapter<Cpu>],
    model: &t5_core::config::T5Config,
) -> Result<()> {
    let given = (!args.weights.is_empty()).then_some(args.weights.as_slice());
    let weights =
        average_weights(given, inputs.len(), !args.no_normalize).map_err(|e| anyhow!(e))?;
    let merged = average_bottlenecks(inputs, &weights, &name(args)?).map_err(|e| anyhow!(e))?;
    save_averaged(merged, model, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "averaged {} bottleneck adapters (weights {weights:?}) into {}",
        inputs.len(),
        args.output.display()
    );
    Ok(())
}

fn merge_lora(
    args: &MergeAdaptersArgs,
    inputs: &[&TaskAdapter<Cpu>],
    model: &t5_core::config::T5Config,
    combination: Combination,
) -> Result<()> {
    if args.weights.is_empty() {
        bail!(
            "--weights: give one weight per adapter (PEFT's add_weighted_adapter has no default)"
        );
    }
    let options = LoraMerge {
        combination,
        weights: args.weights.clone(),
        svd_rank: args.svd_rank,
        svd_clamp: args.svd_clamp,
        density: args.density,
        majority_sign: match args.majority_sign_method {
            MajoritySignArg::Total => MajoritySign::Total,
            MajoritySignArg::Frequency => MajoritySign::Frequency,
        },
    };
    let mut masks = seeded_masks(args.seed, args.density.unwrap_or(1.0));
    let merged = merge_loras(inputs, model, &options, &mut masks).map_err(|e| anyhow!(e))?;
    save_merged_lora(&merged, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "merged {} LoRAs ({combination:?}, r {}) into {}",
        inputs.len(),
        merged.config["r"],
        args.output.display()
    );
    Ok(())
}

/// PEFT's combination for `c`; `None` for `average`.
fn combination(c: CombinationArg) -> Option<Combination> {
    Some(match c {
        CombinationArg::Linear => Combination::Linear,
        CombinationArg::Cat => Combination::Cat,
        CombinationArg::Svd => Combination::Svd,
        CombinationArg::Ties => Combination::Ties,
        CombinationArg::TiesSvd => Combination::TiesSvd,
        CombinationArg::DareLinear => Combination::DareLinear,
        CombinationArg::DareLinearSvd => Combination::DareLinearSvd,
        CombinationArg::DareTies => Combination::DareTies,
        CombinationArg::DareTiesSvd => Combination::DareTiesSvd,
        CombinationArg::MagnitudePrune => Combination::MagnitudePrune,
        CombinationArg::MagnitudePruneSvd => Combination::MagnitudePruneSvd,
        CombinationArg::Average => return None,
    })
}
