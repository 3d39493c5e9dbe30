//! The fused operations on burn's CPU backend (Flex): the one-pass kernels of
//! [`crate::kernels`].

use burn::backend::Flex;

use super::FusedOps;

impl FusedOps for Flex {}
