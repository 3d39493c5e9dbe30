//! The fused operations on burn's wgpu backend: CubeCL kernels.

use super::FusedOps;

impl FusedOps for crate::backend::Wgpu {}
