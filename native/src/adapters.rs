//! Where a command's adapters come from: adapter directories (`--adapter`), or a trained
//! hypernetwork (`--hypernetwork`) that generates them from task embeddings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use t5_core::adapter::hyper::{load_hypernetwork, HyperNetwork};
use t5_core::adapter::{load_adapter, AdapterSet};
use t5_core::config::T5Config;
use t5_core::files::TASK_EMBEDDINGS;
use t5_core::fused::FusedOps;

/// The adapters a command attaches to the backbone.
#[derive(Clone, Debug)]
pub enum AdapterSource {
    /// Adapter directories, each named by its task.
    Dirs(Vec<PathBuf>),
    /// A hypernetwork directory and the adapters to generate from it, as (adapter name,
    /// embedding name) pairs.
    Hypernetwork {
        dir: PathBuf,
        tasks: Vec<(String, String)>,
    },
}

impl AdapterSource {
    /// `--hypernetwork` when given, else the `--adapter` directories; `tasks` as in
    /// [`AdapterSource::Hypernetwork`].
    pub fn new(
        dirs: Vec<PathBuf>,
        hypernetwork: Option<PathBuf>,
        tasks: Vec<(String, String)>,
    ) -> Self {
        match hypernetwork {
            Some(dir) => AdapterSource::Hypernetwork { dir, tasks },
            None => AdapterSource::Dirs(dirs),
        }
    }

    /// Whether no adapter is attached at all.
    pub fn is_empty(&self) -> bool {
        matches!(self, AdapterSource::Dirs(dirs) if dirs.is_empty())
    }

    /// Loads (or generates) the adapters for the backbone `model`.
    pub fn load<B: FusedOps>(&self, model: &T5Config, device: &B::Device) -> Result<AdapterSet<B>> {
        match self {
            AdapterSource::Dirs(dirs) => load_dirs(dirs, model, device),
            AdapterSource::Hypernetwork { dir, tasks } => {
                // The loader's errors already name the file at fault.
                let hyper = load_hypernetwork::<B>(dir, model, device)?;
                generate(&hyper, dir, tasks, device)
            }
        }
    }
}

fn load_dirs<B: FusedOps>(
    dirs: &[PathBuf],
    model: &T5Config,
    device: &B::Device,
) -> Result<AdapterSet<B>> {
    let mut set = AdapterSet::default();
    for dir in dirs {
        let adapter = load_adapter::<B>(dir, model, device)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
        tracing::info!("attached adapter `{}` from {}", adapter.name, dir.display());
        set.insert(adapter);
    }
    Ok(set)
}

/// The adapters of `tasks` generated in one pass (what the trainer evaluates with), timed.
fn generate<B: FusedOps>(
    hyper: &HyperNetwork<B>,
    dir: &Path,
    tasks: &[(String, String)],
    device: &B::Device,
) -> Result<AdapterSet<B>> {
    if tasks.is_empty() {
        return Ok(AdapterSet::default());
    }
    let start = Instant::now();
    let embeddings: Vec<&str> = tasks.iter().map(|(_, e)| e.as_str()).collect();
    let raw = hyper
        .embeddings
        .raw(&embeddings)
        .with_context(|| dir.join(TASK_EMBEDDINGS).display().to_string())?;
    let names = tasks.iter().map(|(name, _)| name.clone()).collect();
    let set = hyper.generate_from(raw, names);
    B::sync(device)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        "generated {} {} from the hypernetwork {} in {ms:.1} ms",
        if tasks.len() == 1 {
            "adapter"
        } else {
            "adapters"
        },
        describe(tasks),
        dir.display()
    );
    Ok(set)
}

/// "`rte`, `sentiment` (embedding `sst2`)".
fn describe(tasks: &[(String, String)]) -> String {
    tasks
        .iter()
        .map(|(name, embedding)| {
            if name == embedding {
                format!("`{name}`")
            } else {
                format!("`{name}` (embedding `{embedding}`)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
