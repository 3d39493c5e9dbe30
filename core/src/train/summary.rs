//! The parameter summary printed when training starts: how much of the model trains.

use std::fmt;

use burn::module::Module;
use burn::prelude::*;

use crate::adapter::AdapterSet;
use crate::model::T5ForConditionalGeneration;

/// Parameter counts of a backbone and its adapters.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterSummary {
    pub backbone: usize,
    /// Backbone parameters that train (all of them in full fine-tuning; unfrozen norms/head with
    /// adapters).
    pub backbone_trainable: usize,
    /// Per task: its adapter parameters (shared norms counted once, under `shared`).
    pub per_task: Vec<(String, usize)>,
    pub shared: usize,
}

impl ParameterSummary {
    pub fn new<B: Backend>(
        model: &T5ForConditionalGeneration<B>,
        adapters: Option<&AdapterSet<B>>,
        backbone_trainable: usize,
    ) -> Self {
        let per_task = adapters
            .map(|s| {
                s.tasks
                    .iter()
                    .map(|t| (t.name.clone(), t.num_params()))
                    .collect()
            })
            .unwrap_or_default();
        let shared = adapters.map(|s| s.shared_norms.num_params()).unwrap_or(0);
        Self {
            backbone: model.num_params(),
            backbone_trainable,
            per_task,
            shared,
        }
    }

    pub fn total(&self) -> usize {
        self.backbone + self.shared + self.per_task.iter().map(|(_, n)| n).sum::<usize>()
    }

    pub fn trainable(&self) -> usize {
        self.total() - self.backbone + self.backbone_trainable
    }
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
                "  adapter layer norms shared by all tasks: {} ({:.2}% of the backbone)",
                self.shared,
                pct(self.shared, self.backbone)
            )?;
        }
        for (task, n) in &self.per_task {
            writeln!(
                f,
                "  adapter `{task}`: {n} ({:.2}% of the backbone)",
                pct(*n, self.backbone)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{BottleneckConfig, SeedAdapterConfig, TaskAdapter};
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
            let s = ParameterSummary::new(&model, Some(&set), 0);
            // 6 + 6 blocks, two adapted sublayers each.
            assert_eq!(s.per_task[0].1, 24 * per_position);
            assert_eq!(s.trainable(), 24 * per_position);
            assert!(s.to_string().contains("adapter `rte`"));
        }
    }
}
