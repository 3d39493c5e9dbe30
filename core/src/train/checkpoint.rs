//! Training checkpoints: `output_dir/checkpoint-<step>/`, everything a run needs to continue
//! exactly where it stopped (the trained parameters, their optimizer states, the sampler's
//! position and the best metric so far), written atomically. Each also holds the adapters of
//! that step as adapter directories (`adapter/<task>/`), usable as they are.
//!
//! Not the run's final outputs: the model export (`model/`, a model directory) and the adapter
//! directories (`adapters/<task>/`) are written once, at the end (see [`super::policy`]).

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use serde::{Deserialize, Serialize};

use super::sampler::{MultiTaskSampler, MultiTaskSamplerState};
use super::trainable::Trainable;
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::fused::FusedAutodiff;

/// The trainer's state between steps, saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: usize,
    pub sampler: MultiTaskSamplerState,
    pub best_metric: Option<f64>,
    pub best_checkpoint: Option<String>,
}

impl TrainerState {
    /// Before the first step.
    pub fn start(sampler: &MultiTaskSampler) -> Self {
        Self {
            step: 0,
            sampler: sampler.state(),
            best_metric: None,
            best_checkpoint: None,
        }
    }
}

/// The checkpoint file that marks a complete checkpoint (written last).
const STATE_FILE: &str = "trainer_state.json";
type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The directory name of the checkpoint after `step`.
pub fn name(step: usize) -> String {
    format!("checkpoint-{step}")
}

/// The complete checkpoints in `output_dir`, oldest first.
pub fn list(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Deletes the oldest checkpoints beyond `limit`, never the best one.
pub fn prune(out_dir: &Path, limit: Option<usize>, best: Option<&str>) {
    let Some(limit) = limit else { return };
    let all = list(out_dir);
    let removable: Vec<&(usize, PathBuf)> = all
        .iter()
        .filter(|(_, p)| Some(p.file_name().unwrap().to_string_lossy().as_ref()) != best)
        .collect();
    let keep = if best.is_some() {
        limit.saturating_sub(1)
    } else {
        limit
    };
    if removable.len() > keep {
        for (_, p) in &removable[..removable.len() - keep] {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

impl<B: FusedAutodiff> Trainable<B> {
    /// Writes a checkpoint into `dir` (via a temporary directory renamed over it, so a crash
    /// leaves the previous checkpoint or the new one).
    pub fn save(&self, dir: &Path, state: &TrainerState, config: &T5Config) -> Result<()> {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let rec = Rec::new();
        let io = |e: burn::record::RecorderError| Error::checkpoint(&tmp, e.to_string());
        if self.backbone_trains {
            rec.record(self.model.clone().into_record(), tmp.join("model"))
                .map_err(io)?;
            // One snapshot of the optimizer states serves both files.
            let (decay, no_decay) = self.model_optim.to_record();
            rec.record(decay, tmp.join("optimizer-model-decay"))
                .map_err(io)?;
            rec.record(no_decay, tmp.join("optimizer-model-no-decay"))
                .map_err(io)?;
        }
        if !self.adapters.is_empty() {
            rec.record(self.adapters.clone().into_record(), tmp.join("adapters"))
                .map_err(io)?;
            let (decay, no_decay) = self.adapters_optim.to_record();
            rec.record(decay, tmp.join("optimizer-adapters-decay"))
                .map_err(io)?;
            rec.record(no_decay, tmp.join("optimizer-adapters-no-decay"))
                .map_err(io)?;
            self.adapters.valid().export(
                &tmp.join("adapter"),
                &tmp.join("hypernetwork"),
                config,
            )?;
        }
        let text = serde_json::to_string_pretty(state).expect("serializable");
        crate::io::write_atomic(&tmp.join(STATE_FILE), text.as_bytes())?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
    }

    /// Loads the checkpoint in `dir` into these parameters and optimizers; returns its state.
    pub fn restore(&mut self, dir: &Path, device: &B::Device) -> Result<TrainerState> {
        let rec = Rec::new();
        let io = |e: burn::record::RecorderError| Error::checkpoint(dir, e.to_string());
        if self.backbone_trains {
            let r = rec.load(dir.join("model"), device).map_err(io)?;
            self.model = self.model.clone().load_record(r);
            let d = rec
                .load(dir.join("optimizer-model-decay"), device)
                .map_err(io)?;
            let n = rec
                .load(dir.join("optimizer-model-no-decay"), device)
                .map_err(io)?;
            self.model_optim.load_records(d, n);
        }
        if !self.adapters.is_empty() {
            let r = rec.load(dir.join("adapters"), device).map_err(io)?;
            self.adapters = self.adapters.clone().load_record(r);
            let d = rec
                .load(dir.join("optimizer-adapters-decay"), device)
                .map_err(io)?;
            let n = rec
                .load(dir.join("optimizer-adapters-no-decay"), device)
                .map_err(io)?;
            self.adapters_optim.load_records(d, n);
        }
        crate::io::read_json(&dir.join(STATE_FILE))
    }
}
