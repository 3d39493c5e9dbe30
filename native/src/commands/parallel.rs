//! `native train` as a rank (or, with `--devices`, several ranks) of a data-parallel run: one
//! thread per device of this process, each joined to burn's collective.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use burn::backend::Autodiff;
use burn::tensor::backend::DeviceId;
use t5_core::train::collective::{Collective, Topology};
use t5_core::train::trainer::{self, RunSummary};
use t5_core::train::RunConfig;

use crate::backend::Job;
use crate::commands::train::Progress;

#[derive(Clone)]
pub struct ParallelJob {
    pub config: RunConfig,
    pub stop: Arc<AtomicBool>,
    pub topology: Topology,
    /// Device indices of this process (empty: the backend's default device).
    pub devices: Vec<usize>,
}

impl Job for ParallelJob {
    type Output = RunSummary;

    fn run<B: t5_core::fused::FusedOps>(
        self,
        device: B::Device,
        backend: &str,
    ) -> Result<RunSummary> {
        let devices: Vec<B::Device> = if self.devices.is_empty() {
            vec![device]
        } else {
            self.devices
                .iter()
                .map(|&i| nth_device::<B>(backend, i))
                .collect()
        };
        // Plain threads, not scoped ones: the first error ends the process at once, without
        // waiting for the other ranks to notice it (they would, at their timeout).
        let (tx, rx) = std::sync::mpsc::channel();
        for (local, device) in devices.into_iter().enumerate() {
            let (job, tx) = (self.clone(), tx.clone());
            std::thread::spawn(move || {
                let _ = tx.send((local, job.rank::<B>(local, device)));
            });
        }
        drop(tx);
        // The summary of this process's first rank (rank 0's on node 0).
        let mut first = None;
        for (local, result) in rx {
            let summary = result?;
            if local == 0 {
                first = Some(summary);
            }
        }
        first.ok_or_else(|| anyhow!("a training thread panicked"))
    }
}

impl ParallelJob {
    /// The run of device `local` of this process.
    fn rank<B: t5_core::fused::FusedOps>(
        &self,
        local: usize,
        device: B::Device,
    ) -> Result<RunSummary> {
        let t = &self.topology;
        let rank = t.node_rank * t.devices + local;
        let collective = Collective::<Autodiff<B>>::join(t, local, device.clone())?;
        if rank == 0 {
            eprintln!(
                "data-parallel run: {} ranks ({} nodes x {} devices); global batch {}",
                t.world(),
                t.nodes,
                t.devices,
                self.config.per_device_train_batch_size * t.world()
            );
        }
        let mut obs = Progress {
            bar: None,
            stop: self.stop.clone(),
            quiet: rank != 0,
        };
        let out =
            trainer::run_replicated::<Autodiff<B>>(&self.config, device, &collective, &mut obs);
        if let Some(bar) = &obs.bar {
            bar.finish_and_clear();
        }
        let out = out.with_context(|| {
            format!(
                "training with {} (rank {rank})",
                self.config.output_dir.display()
            )
        })?;
        if let Err(e) = collective.leave() {
            eprintln!("warning: {e}");
        }
        Ok(out)
    }
}

/// Device `index` of the backend: wgpu's discrete GPU `index`; the CPU backend has one device,
/// which its ranks share.
fn nth_device<B: t5_core::fused::FusedOps>(backend: &str, index: usize) -> B::Device {
    use burn::tensor::backend::Device;
    if backend == "wgpu" {
        // cubecl's id of `WgpuDevice::DiscreteGpu(index)`.
        B::Device::from_id(DeviceId::new(0, index as u16))
    } else {
        B::Device::default()
    }
}
