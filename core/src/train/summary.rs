//! The parameter summary printed when training starts: how much of the model trains.

use std::fmt;

use burn::module::Module;
use burn::prelude::*;

use super::adapters::RunAdapters;
use crate::model::T5ForConditionalGeneration;

/// Parameter counts of a backbone and its adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterSummary {
    pub backbone: usize,
    /// Backbone parameters that train (all of them in full fine-tuning; unfrozen norms/head with
    /// adapters).
    pub backbone_trainable: usize,
    /// Per task: its adapter parameters (shared norms counted once, under `shared`), or its
    /// task embedding with a hypernetwork.
    pub per_task: Vec<(String, usize)>,
    /// Parameters every task uses: shared adapter norms, or the hypernetwork's generators.
    pub shared: usize,
    /// Of `shared` and `per_task`, those that train.
    pub adapters_trainable: usize,
    /// What `shared` is, for the printout.
    pub shared_label: &'static str,
}

impl ParameterSummary {
    pub fn new<B: Backend>(
        model: &T5ForConditionalGeneration<B>,
        adapters: &RunAdapters<B>,
        backbone_trainable: usize,
    ) -> Self {
        let (per_task, shared, shared_label) = match adapters {
            RunAdapters::PerTask(s) => (
                s.tasks
                    .iter()
                    .map(|t| (t.name.clone(), t.num_params()))
                    .collect(),
                s.shared_norms.num_params(),
                "adapter layer norms shared by all tasks",
            ),
            RunAdapters::Generated(g) => {
                let e = &g.hyper.embeddings;
                let per_task: Vec<(String, usize)> = e
                    .names
                    .iter()
                    .zip(&e.table)
                    .map(|(n, p)| (n.clone(), p.num_params()))
                    .collect();
                let embeddings: usize = per_task.iter().map(|(_, n)| n).sum();
                (per_task, g.hyper.num_params() - embeddings, "hypernetwork")
            }
        };
        Self {
            backbone: model.num_params(),
            backbone_trainable,
            per_task,
            shared,
            adapters_trainable: trainable_params(adapters, B::ad_enabled(&model.device())),
            shared_label,
        }
    }

    pub fn total(&self) -> usize {
        self.backbone + self.shared + self.per_task.iter().map(|(_, n)| n).sum::<usize>()
    }

    pub fn trainable(&self) -> usize {
        self.adapters_trainable + self.backbone_trainable
    }
}

/// Parameters of `module` that ask for a gradient (all of them on a backend without autodiff).
fn trainable_params<B: Backend, M: Module<B>>(module: &M, autodiff: bool) -> usize {
    struct Count(usize, bool);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            if !self.1 || p.is_require_grad() {
                self.0 += p.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count(0, autodiff);
    module.visit(&mut count);
    count.0
}

fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

impl fmt::Display for ParameterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        writeln!(
            f,
            "parameters: {total} total, {} trainable ({:.2}%)",
            self.trainable(),
            pct(self.trainable(), total)
        )?;
        writeln!(
            f,
            "  backbone: {} ({} trainable)",
            self.backbone, self.backbone_trainable
        )?;
        if self.shared > 0 {
            writeln!(
                f,
                "  {}: {} ({:.2}% of the backbone)",
                self.shared_label,
                self.shared,
                pct(self.shared, self.backbone)
            )?;
        }
        let what = if self.shared_label == "hypernetwork" {
            "task embedding"
        } else {
            "adapter"
        };
        for (task, n) in &self.per_task {
            writeln!(
                f,
                "  {what} `{task}`: {n} ({:.2}% of the backbone)",
                pct(*n, self.backbone)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{AdapterSet, BottleneckConfig, SeedAdapterConfig, TaskAdapter};
    use crate::T5Config;

    #[test]
    fn t5_small_seed_adapter_counts() {
        type B = crate::backend::Cpu;
        let device = Default::default();
        let mut c = T5Config::t5_small();
        // Tiny vocabulary: the count of the rest does not depend on it.
        c.vocab_size = 8;
        let model = T5ForConditionalGeneration::<B>::init(&c, &device);
        for (rf, per_position) in [
            (32usize, 512 * 16 + 16 + 16 * 512 + 512 + 2 * 512),
            (16, 512 * 32 + 32 + 32 * 512 + 512 + 2 * 512),
        ] {
            let seed = SeedAdapterConfig {
                reduction_factor: rf,
                non_linearity: "relu".into(),
                ..SeedAdapterConfig::default()
            };
            let config = BottleneckConfig::seed(&seed, &c);
            let mut set = AdapterSet::default();
            set.insert(TaskAdapter::<B>::init("rte", config, &c, &device).unwrap());
            let s = ParameterSummary::new(&model, &RunAdapters::PerTask(set), 0);
            // 6 + 6 blocks, two adapted sublayers each.
            assert_eq!(s.per_task[0].1, 24 * per_position);
            assert_eq!(s.trainable(), 24 * per_position);
            assert!(s.to_string().contains("adapter `rte`"));
        }
    }
}
