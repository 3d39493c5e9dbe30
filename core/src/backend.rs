//! The backends this crate is built and tested with, and how to pick one at run time.

/// The pure-Rust CPU backend (burn's Flex), also used in the browser without WebGPU.
#[cfg(feature = "cpu")]
pub type Cpu = burn::backend::Flex;

/// burn's wgpu backend: Vulkan, Metal, DX12 natively; WebGPU in the browser.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The wgpu backend when a GPU adapter exists, else the CPU.
    Auto,
    Wgpu,
    Cpu,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!("unknown backend `{other}`; use auto, wgpu or cpu")),
        }
    }
}

/// What a wgpu probe found.
#[derive(Clone, Debug)]
pub struct AdapterInfo {
    pub name: String,
    /// `Vulkan`, `Metal`, ...
    pub api: String,
    /// False for software rasterizers (lavapipe/llvmpipe, SwiftShader, WARP).
    pub is_hardware: bool,
}

/// Looks for the adapter burn's wgpu backend would take, without initializing burn (which
/// panics when there is none).
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
pub fn probe_wgpu() -> Option<AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
    };
    let adapter = pollster::block_on(instance.request_adapter(&options)).ok()?;
    let info = adapter.get_info();
    Some(AdapterInfo {
        name: info.name,
        api: format!("{:?}", info.backend),
        is_hardware: !matches!(info.device_type, wgpu::DeviceType::Cpu),
    })
}
