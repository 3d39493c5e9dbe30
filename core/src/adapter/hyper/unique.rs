//! HyperFormer and HyperFormer++: one hypernetwork per stack (`AdapterLayersHyperNetController`,
//! `AdapterLayersOneHyperNetController`, `adapter_modeling.py:73-238`). The generators read the
//! projection of `[task ; layer (; position)]` embeddings; HyperFormer has separate generators for
//! the self-attention and feed-forward adapters, HyperFormer++ one set shared by both, told apart
//! by the position embedding.

use burn::module::Param;
use burn::prelude::*;

use super::generator::{AdapterGenerators, GeneratedWeights, Projector};
use crate::adapter::bottleneck::AdapterLayerNorm;
use crate::adapter::set::Sublayer;
use crate::fused::{self, FusedOps};

/// The eps of the input LayerNorm (`adapter_modeling.py:92-94`), unlike the adapters' 1e-5.
pub const INPUT_NORM_EPS: f64 = 1e-6;

/// HyperFormer++'s position id of a sublayer: row 0 of the position embeddings is the
/// feed-forward adapter (`adapter_modeling.py:213-214`), the reverse of [`Sublayer`]'s numbering.
pub fn hyperformer_position(sublayer: Sublayer) -> usize {
    match sublayer {
        Sublayer::FeedForward => 0,
        Sublayer::SelfAttention => 1,
    }
}

/// The hypernetwork of one stack (encoder or decoder).
#[derive(Module, Debug)]
pub struct StackHyperNet<B: Backend> {
    /// `[blocks, t]`, N(0, 1).
    pub layer_embeddings: Param<Tensor<B, 2>>,
    /// HyperFormer++: `[2, t]`, N(0, 1), row 0 feed-forward.
    pub position_embeddings: Option<Param<Tensor<B, 2>>>,
    /// `TaskHyperNet(2t or 3t -> h -> p)`.
    pub input_projector: Projector<B>,
    /// With `unique_hyper_net_layer_norm`: LayerNorm over `p`, eps 1e-6.
    pub input_norm: Option<AdapterLayerNorm<B>>,
    /// HyperFormer: indexed by [`Sublayer`] (self-attention, feed-forward); HyperFormer++: one.
    pub generators: Vec<AdapterGenerators<B>>,
}

impl<B: FusedOps> StackHyperNet<B> {
    fn efficient(&self) -> bool {
        self.position_embeddings.is_some()
    }

    /// The generators' inputs for every (block, input kind), rows ordered block-major then
    /// task: one kind per block for HyperFormer, one per position (feed-forward first) for ++.
    ///
    /// # Shapes
    /// - z: `[n, t]` -> `[blocks · kinds · n, p]`
    fn inputs(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = z.dims()[0];
        let layers = self.layer_embeddings.val();
        let [blocks, t] = layers.dims();
        let row =
            |table: &Tensor<B, 2>, i: usize| table.clone().slice([i..i + 1, 0..t]).repeat_dim(0, n);
        let mut parts = Vec::new();
        for l in 0..blocks {
            match &self.position_embeddings {
                Some(positions) => {
                    let positions = positions.val();
                    for k in 0..2 {
                        let x = vec![z.clone(), row(&layers, l), row(&positions, k)];
                        parts.push(Tensor::cat(x, 1));
                    }
                }
                None => parts.push(Tensor::cat(vec![z.clone(), row(&layers, l)], 1)),
            }
        }
        let x = self.input_projector.forward(Tensor::cat(parts, 0));
        match &self.input_norm {
            Some(ln) => fused::layer_norm(x, ln.weight.val(), ln.bias.val(), ln.eps),
            None => x,
        }
    }

    /// The weights of this stack's positions (`2 · blocks`, [`Sublayer`] order inside a block),
    /// one row per task vector.
    ///
    /// # Shapes
    /// - z: `[n, t]`
    pub fn generate(&self, z: Tensor<B, 2>) -> Vec<GeneratedWeights<B>> {
        let n = z.dims()[0];
        let blocks = self.layer_embeddings.val().dims()[0];
        let x = self.inputs(z);
        let sublayers = [Sublayer::SelfAttention, Sublayer::FeedForward];
        if self.efficient() {
            let all = self.generators[0].forward(x);
            (0..blocks)
                .flat_map(|l| sublayers.map(|s| (l, s)))
                .map(|(l, s)| all.narrow((2 * l + hyperformer_position(s)) * n, n))
                .collect()
        } else {
            let by_kind: Vec<GeneratedWeights<B>> = sublayers
                .iter()
                .map(|&s| self.generators[s as usize].forward(x.clone()))
                .collect();
            (0..blocks)
                .flat_map(|l| sublayers.map(|s| (l, s)))
                .map(|(l, s)| by_kind[s as usize].narrow(l * n, n))
                .collect()
        }
    }
}

/// One [`StackHyperNet`] per stack.
#[derive(Module, Debug)]
pub struct UniqueHyperNet<B: Backend> {
    pub encoder: StackHyperNet<B>,
    pub decoder: StackHyperNet<B>,
}

impl<B: FusedOps> UniqueHyperNet<B> {
    /// The weights of every position of the model, one row per task vector.
    pub fn generate(&self, z: Tensor<B, 2>) -> Vec<Option<GeneratedWeights<B>>> {
        let mut out: Vec<_> = self
            .encoder
            .generate(z.clone())
            .into_iter()
            .map(Some)
            .collect();
        out.extend(self.decoder.generate(z).into_iter().map(Some));
        out
    }
}
