//! `native merge`: a LoRA or (IA)³ adapter folded into its backbone, written as a plain HF model
//! directory (PEFT's `merge_and_unload` followed by `save_pretrained`).

use anyhow::{bail, Context, Result};
use t5_core::adapter::load_adapter;
use t5_core::backend::Cpu;
use t5_core::files::TOKENIZER_FILE;
use t5_core::io::file_inside;
use t5_core::model::merge_adapter;
use t5_core::model_dir::export::save_pretrained;

use crate::cli::MergeArgs;
use crate::model::resolve_model;

pub fn run(args: MergeArgs) -> Result<()> {
    if args.output.exists() && std::fs::read_dir(&args.output)?.next().is_some() {
        bail!(
            "{}: not empty; merge writes a new model directory (choose an empty or new one)",
            args.output.display()
        );
    }
    let dir = resolve_model(&args.model)?;
    // Merging is a few additions: the CPU does it at once, and no GPU memory is held.
    let device = Default::default();
    let model = dir.load_model::<Cpu>(&device)?;
    let adapter = load_adapter::<Cpu>(&args.adapter, &dir.config, &device)
        .with_context(|| format!("loading the adapter {}", args.adapter.display()))?;
    let merged = merge_adapter(model, &adapter)?;
    let tokenizer = file_inside(&dir.path, TOKENIZER_FILE, None)?;
    let tokenizer = tokenizer.is_file().then_some(tokenizer.as_path());
    save_pretrained(&merged, tokenizer, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "merged {} ({} layers) into {}: {}",
        args.adapter.display(),
        adapter.linears.iter().flatten().count() + adapter.scales.iter().flatten().count(),
        args.model,
        args.output.display()
    );
    Ok(())
}
