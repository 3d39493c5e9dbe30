//! Choosing the burn backend at run time and running a generic job on it.

use anyhow::{bail, Result};
use t5_core::backend::{probe_wgpu, Cpu, Wgpu};

use crate::cli::BackendArg;

/// A job that can run on any backend.
pub trait Job {
    type Output;
    fn run<B: t5_core::fused::FusedOps>(
        self,
        device: B::Device,
        backend_name: &str,
    ) -> Result<Self::Output>;
}

/// Runs `job` on the backend `choice` resolves to; `auto` says in one line when it falls back to
/// the CPU.
pub fn run_on<J: Job>(choice: BackendArg, job: J) -> Result<J::Output> {
    match choice {
        BackendArg::Cpu => job.run::<Cpu>(Default::default(), "cpu"),
        BackendArg::Wgpu => match probe_wgpu() {
            Some(info) => {
                tracing::info!("running on wgpu: {} ({})", info.name, info.api);
                job.run::<Wgpu>(Default::default(), "wgpu")
            }
            None => bail!("--backend wgpu: no wgpu adapter found (install a Vulkan/Metal/DX12 driver, or use --backend cpu)"),
        },
        BackendArg::Auto => match probe_wgpu() {
            Some(info) if info.is_hardware => {
                tracing::info!("running on GPU: {} ({})", info.name, info.api);
                job.run::<Wgpu>(Default::default(), "wgpu")
            }
            Some(info) => {
                tracing::info!(
                    "no GPU found (only the software adapter `{}`); running on CPU. Force it with --backend wgpu",
                    info.name
                );
                job.run::<Cpu>(Default::default(), "cpu")
            }
            None => {
                tracing::info!("no GPU found; running on CPU");
                job.run::<Cpu>(Default::default(), "cpu")
            }
        },
    }
}
