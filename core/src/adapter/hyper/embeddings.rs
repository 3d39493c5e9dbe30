//! Task embeddings (HyperFormer's `TaskEmbeddingController`, `adapter_utils.py:62-92`): one raw
//! vector `e_τ` per name, trained or fixed, and the optional `TaskHyperNet` projection that turns
//! raw embeddings into the task vectors the generators read.

use burn::module::{Param, ParamId};
use burn::prelude::*;

use super::generator::Projector;
use crate::error::{Error, Result};
use crate::fused::FusedOps;

#[derive(Module, Debug)]
pub struct TaskEmbeddings<B: Backend> {
    /// `[t]` per name, in `names` order: N(0, 1) when fresh (`adapter_utils.py:84`).
    pub table: Vec<Param<Tensor<B, 1>>>,
    /// With `train_task_embeddings`: `TaskHyperNet(t -> h -> p)`.
    pub task_projector: Option<Projector<B>>,
    pub names: Vec<String>,
}

impl<B: Backend> TaskEmbeddings<B> {
    /// A fresh N(0, 1) embedding of size `t` per name.
    pub fn init(
        names: Vec<String>,
        t: usize,
        projector: Option<Projector<B>>,
        device: &B::Device,
    ) -> Self {
        let table = names
            .iter()
            .map(|_| {
                burn::module::Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                }
                .init([t], device)
            })
            .collect();
        Self {
            table,
            task_projector: projector,
            names,
        }
    }

    /// The index of embedding `name`, or an error listing the known ones.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::Invalid(format!(
                "the hypernetwork has no task `{name}` (tasks: {})",
                self.names.join(", ")
            ))
        })
    }

    /// Adds (or replaces) embedding `name` with `value`.
    pub fn insert(&mut self, name: &str, value: Tensor<B, 1>) {
        let param = Param::initialized(ParamId::new(), value.require_grad());
        match self.names.iter().position(|n| n == name) {
            Some(i) => self.table[i] = param,
            None => {
                self.names.push(name.to_string());
                self.table.push(param);
            }
        }
    }

    /// Stops (or starts) the raw embeddings from training.
    pub fn set_trainable(mut self, trainable: bool) -> Self {
        self.table = self
            .table
            .into_iter()
            .map(|p| p.set_require_grad(trainable))
            .collect();
        self
    }

    /// The raw embeddings of `names`, one row each.
    ///
    /// # Shapes
    /// - output: `[names.len(), t]`
    pub fn raw(&self, names: &[&str]) -> Result<Tensor<B, 2>> {
        let rows = names
            .iter()
            .map(|n| Ok(self.table[self.index(n)?].val()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(rows, 0))
    }
}

impl<B: FusedOps> TaskEmbeddings<B> {
    /// The task vectors of raw embeddings: projected by the `TaskHyperNet` when there is one.
    ///
    /// # Shapes
    /// - raw: `[n, t]` -> `[n, p or t]`
    pub fn task_vectors(&self, raw: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.task_projector {
            Some(projector) => projector.forward(raw),
            None => raw,
        }
    }
}
