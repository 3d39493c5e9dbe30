//! `native train CONFIG`: the main job.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use burn::backend::Autodiff;
use indicatif::{ProgressBar, ProgressStyle};
use t5_core::backend::BackendKind;
use t5_core::train::collective::Topology;
use t5_core::train::lock::OutputLock;
use t5_core::train::trainer::{self, Observer, RunSummary};
use t5_core::train::RunConfig;

use crate::backend::{run_on, Job};
use crate::cli::{BackendArg, TrainArgs};
use crate::commands::parallel::ParallelJob;

pub fn run(args: TrainArgs) -> Result<()> {
    let mut config = load_config(&args.config)?;
    if let Some(dir) = args.output_dir {
        config.output_dir = dir;
    }
    if let Some(steps) = args.max_steps {
        config.max_steps = steps;
    }
    let backend = args.backend.unwrap_or(match config.backend {
        BackendKind::Auto => BackendArg::Auto,
        BackendKind::Wgpu => BackendArg::Wgpu,
        BackendKind::Cpu => BackendArg::Cpu,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let output_dir = config.output_dir.clone();
    // The first Ctrl-C asks for a checkpoint and a clean stop (the output directory's lock goes
    // with the run); a second one exits at once, removing the lock file first.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            OutputLock::abandon(&output_dir);
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint before stopping (Ctrl-C again to abort)");
    })
    .context("installing the Ctrl-C handler")?;
    let topology = Topology {
        nodes: args.nodes,
        node_rank: args.node_rank,
        coordinator: args.coordinator,
        devices: args.devices.len().max(1),
        timeout: Duration::from_secs(args.collective_timeout.max(1)),
    };
    let summary = if topology.world() == 1 && args.devices.is_empty() {
        run_on(backend, TrainJob { config, stop })?
    } else {
        topology.check()?;
        let job = ParallelJob {
            config,
            stop,
            topology,
            devices: args.devices,
        };
        run_on(backend, job)?
    };
    tracing::info!(
        "done: {} steps in {:.0} s ({:.1} examples/s)",
        summary.steps,
        summary.seconds,
        summary.examples_per_s
    );
    Ok(())
}

/// Reads a run config and prints its warnings (`warning: <path>: <msg>`) on stderr, before
/// anything else is printed, so they are not lost above a long run's output.
pub fn load_config(path: &Path) -> Result<RunConfig> {
    let loaded = RunConfig::load(path)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {}: {warning}", path.display());
    }
    Ok(loaded.config)
}

struct TrainJob {
    config: RunConfig,
    stop: Arc<AtomicBool>,
}

impl Job for TrainJob {
    type Output = RunSummary;

    fn run<B: t5_core::fused::FusedOps>(
        self,
        device: B::Device,
        _backend: &str,
    ) -> Result<RunSummary> {
        let mut obs = Progress {
            bar: None,
            stop: self.stop,
            quiet: false,
        };
        let out = trainer::run::<Autodiff<B>>(&self.config, device, &mut obs);
        if let Some(bar) = &obs.bar {
            bar.finish_and_clear();
        }
        out.with_context(|| format!("training with {}", self.config.output_dir.display()))
    }
}

/// A progress bar with loss, learning rate, examples/s and ETA (none when `quiet`: the ranks
/// other than 0 of a data-parallel run, which print only warnings).
pub(crate) struct Progress {
    pub bar: Option<ProgressBar>,
    pub stop: Arc<AtomicBool>,
    pub quiet: bool,
}

impl Observer for Progress {
    fn message(&mut self, text: &str) {
        if self.quiet && !text.starts_with("warning") {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn start(&mut self, total_steps: usize, first_step: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(total_steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
            )
            .expect("valid template"),
        );
        bar.set_position(first_step as u64);
        self.bar = Some(bar);
    }

    fn step(&mut self, step: usize, loss: f64, lr: f64, examples_per_s: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {loss:.4}  lr {lr:.2e}  {examples_per_s:.1} ex/s"
            ));
        }
    }

    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
