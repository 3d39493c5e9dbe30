//! `native import`: a seed checkpoint into this toolkit's model and adapter (or hypernetwork)
//! directories ([`t5_core::import`]). Runs on the CPU: it only moves tensors.

use anyhow::{Context, Result};
use t5_core::backend::Cpu;
use t5_core::import::import_seed;

use crate::cli::ImportArgs;

pub fn run(args: ImportArgs) -> Result<()> {
    let report = import_seed::<Cpu>(&args.checkpoint, &args.output, &Default::default())
        .with_context(|| format!("importing {}", args.checkpoint.display()))?;
    println!("model: {}", report.model.display());
    if let Some((dir, hyper)) = &report.hypernetwork {
        println!(
            "hypernetwork ({}, tasks {}): {}",
            hyper.variant,
            hyper.tasks.join(", "),
            dir.display()
        );
    }
    for (task, dir) in &report.adapters {
        println!("adapter `{task}`: {}", dir.display());
    }
    if let Some((from, to)) = &report.run_config {
        println!("run config: {} (from {})", to.display(), from.display());
    }
    if !report.unknown.is_empty() {
        eprintln!(
            "warning: {} tensors of the checkpoint are neither the backbone's nor an adapter's or hypernetwork's \
             and were not imported: {}",
            report.unknown.len(),
            report.unknown.join(", ")
        );
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    Ok(())
}
