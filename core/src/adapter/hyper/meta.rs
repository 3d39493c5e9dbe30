//! The `meta-adapter` (HyperFormer's `MetaAdapterController` in every adapted sublayer,
//! `adapter_controller.py:115-183`): per sublayer, its own generators read the task vector; the
//! adapter norms are generated too (`conditional_layer_norm`) or plain norms shared by every task.

use burn::prelude::*;

use super::generator::{AdapterGenerators, GeneratedWeights};
use crate::adapter::bottleneck::AdapterNorms;
use crate::fused::FusedOps;

/// The hypernetwork of one adapted sublayer.
#[derive(Module, Debug)]
pub struct SublayerHyperNet<B: Backend> {
    pub generators: AdapterGenerators<B>,
    /// Plain norms (weight 1, bias 0), shared by every task, when they are not generated.
    pub norms: AdapterNorms<B>,
}

#[derive(Module, Debug)]
pub struct MetaAdapter<B: Backend> {
    /// Indexed by [`crate::adapter::set::position`]; `None` where no adapter sits.
    pub positions: Vec<Option<SublayerHyperNet<B>>>,
}

impl<B: FusedOps> MetaAdapter<B> {
    /// The weights of every position, one row per task vector.
    ///
    /// # Shapes
    /// - z: `[n, e]`
    pub fn generate(&self, z: Tensor<B, 2>) -> Vec<Option<GeneratedWeights<B>>> {
        self.positions
            .iter()
            .map(|p| p.as_ref().map(|s| s.generators.forward(z.clone())))
            .collect()
    }
}

impl<B: Backend> MetaAdapter<B> {
    /// The shared plain norms per position (`None` where there is no adapter).
    pub fn plain_norms(&self) -> Vec<Option<AdapterNorms<B>>> {
        self.positions
            .iter()
            .map(|p| p.as_ref().map(|s| s.norms.clone()))
            .collect()
    }
}
