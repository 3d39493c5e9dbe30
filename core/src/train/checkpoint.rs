//! Training checkpoints: `output_dir/checkpoint-<step>/`, everything a run needs to continue
//! exactly where it stopped (the trained parameters, their optimizer states, the sampler's
//! position and the best metric so far), written atomically with a [manifest](super::manifest)
//! last that proves it whole. Each also holds the adapters of that step as adapter directories
//! (`adapter/<task>/`), usable as they are.
//!
//! Not the run's final outputs: the model export (`model/`, a model directory) and the adapter
//! directories (`adapters/<task>/`) are written once, at the end (see [`super::policy`]).

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::manifest;
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

/// The trainer's state (the last file before the manifest).
const STATE_FILE: &str = "trainer_state.json";
type Rec = NamedMpkFileRecorder<FullPrecisionSettings>;

/// The directory name of the checkpoint after `step`.
pub fn name(step: usize) -> String {
    format!("checkpoint-{step}")
}

/// The checkpoint directories in `output_dir`, oldest first, whole or not (see [`verify`]).
pub fn list(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().is_dir().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Checks that the checkpoint in `dir` is whole: its manifest is there and every file it lists
/// has its size and checksum. The error names the file at fault.
pub fn verify(dir: &Path) -> Result<()> {
    manifest::verify(dir)
}

/// Deletes checkpoints beyond `limit`, never the best one: first those that are not whole (by
/// their files' sizes), then the oldest.
pub fn prune(out_dir: &Path, limit: Option<usize>, best: Option<&str>) {
    let Some(limit) = limit else { return };
    let mut removable: Vec<(bool, usize, PathBuf)> = list(out_dir)
        .into_iter()
        .filter(|(_, p)| p.file_name().map(|n| n.to_string_lossy()).as_deref() != best)
        .map(|(step, p)| (manifest::looks_complete(&p), step, p))
        .collect();
    removable.sort();
    let keep = if best.is_some() {
        limit.saturating_sub(1)
    } else {
        limit
    };
    if removable.len() > keep {
        for (_, _, p) in &removable[..removable.len() - keep] {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

impl<B: FusedAutodiff> Trainable<B> {
    /// Writes a checkpoint into `dir`: every file into a temporary directory, flushed to disk,
    /// then the manifest of them all, then the directory renamed over `dir`. A crash leaves the
    /// previous checkpoint or the new one, and a checkpoint damaged later fails [`verify`].
    pub fn save(&self, dir: &Path, state: &TrainerState, config: &T5Config) -> Result<()> {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let rec = Rec::new();
        let io = |e: burn::record::RecorderError| Error::checkpoint(&tmp, e.to_string());
        if self.backbone_trains {
            rec.record(self.model.clone().into_record(), tmp.join(MODEL))
                .map_err(io)?;
            // One snapshot of the optimizer states serves both files.
            let (decay, no_decay) = self.model_optim.to_record();
            rec.record(decay, tmp.join(MODEL_DECAY)).map_err(io)?;
            rec.record(no_decay, tmp.join(MODEL_NO_DECAY)).map_err(io)?;
        }
        if !self.adapters.is_empty() {
            rec.record(self.adapters.clone().into_record(), tmp.join(ADAPTERS))
                .map_err(io)?;
            let (decay, no_decay) = self.adapters_optim.to_record();
            rec.record(decay, tmp.join(ADAPTERS_DECAY)).map_err(io)?;
            rec.record(no_decay, tmp.join(ADAPTERS_NO_DECAY))
                .map_err(io)?;
            self.adapters.valid().export(
                &tmp.join("adapter"),
                &tmp.join("hypernetwork"),
                config,
            )?;
        }
        let text = serde_json::to_string_pretty(state).expect("serializable");
        crate::io::write_atomic(&tmp.join(STATE_FILE), text.as_bytes())?;
        manifest::write(&tmp)?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
        sync_dir(dir.parent().unwrap_or(Path::new(".")));
        Ok(())
    }

    /// Loads the checkpoint in `dir` into these parameters and optimizers, after checking that
    /// it is whole; returns its state. Errors name the file at fault.
    pub fn restore(&mut self, dir: &Path, device: &B::Device) -> Result<TrainerState> {
        verify(dir)?;
        self.restore_verified(dir, device)
    }

    /// [`Self::restore`] of a checkpoint that [`verify`] has just passed.
    pub fn restore_verified(&mut self, dir: &Path, device: &B::Device) -> Result<TrainerState> {
        let rec = Rec::new();
        if self.backbone_trains {
            self.model = load_into(self.model.clone(), &rec, dir, MODEL, device)?;
            let d = load(&rec, dir, MODEL_DECAY, device)?;
            let n = load(&rec, dir, MODEL_NO_DECAY, device)?;
            self.model_optim.load_records(d, n);
        }
        if !self.adapters.is_empty() {
            self.adapters = load_into(self.adapters.clone(), &rec, dir, ADAPTERS, device)?;
            let d = load(&rec, dir, ADAPTERS_DECAY, device)?;
            let n = load(&rec, dir, ADAPTERS_NO_DECAY, device)?;
            self.adapters_optim.load_records(d, n);
        }
        crate::io::read_json(&dir.join(STATE_FILE))
    }
}

/// The records of a checkpoint, by file stem (burn adds `.mpk`).
const MODEL: &str = "model";
const MODEL_DECAY: &str = "optimizer-model-decay";
const MODEL_NO_DECAY: &str = "optimizer-model-no-decay";
const ADAPTERS: &str = "adapters";
const ADAPTERS_DECAY: &str = "optimizer-adapters-decay";
const ADAPTERS_NO_DECAY: &str = "optimizer-adapters-no-decay";

/// Loads the record `dir/<stem>.mpk`; an error names that file.
fn load<B: FusedAutodiff, R: burn::record::Record<B>>(
    rec: &Rec,
    dir: &Path,
    stem: &str,
    device: &B::Device,
) -> Result<R> {
    rec.load(dir.join(stem), device)
        .map_err(|e| record_error(&dir.join(format!("{stem}.mpk")), e))
}

/// `module` with the parameters of the record `dir/<stem>.mpk`, which must have this module's
/// parameters and shapes (burn's records would take tensors of any shape).
fn load_into<B: FusedAutodiff, M: Module<B>>(
    module: M,
    rec: &Rec,
    dir: &Path,
    stem: &str,
    device: &B::Device,
) -> Result<M> {
    let want = shapes(&module);
    let loaded = module.load_record(load(rec, dir, stem, device)?);
    let got = shapes(&loaded);
    if let Some(((name, w), (_, g))) = want.iter().zip(&got).find(|(w, g)| w != g) {
        return Err(Error::checkpoint(
            dir.join(format!("{stem}.mpk")),
            format!(
                "`{name}` has shape {g:?} there but {w:?} in this run's model: the checkpoint \
                 was saved for another model or adapter configuration"
            ),
        ));
    }
    Ok(loaded)
}

/// Each float parameter of `module` by its path, with its shape.
fn shapes<B: burn::tensor::backend::Backend, M: Module<B>>(
    module: &M,
) -> Vec<(String, Vec<usize>)> {
    #[derive(Default)]
    struct Shapes {
        path: Vec<String>,
        found: Vec<(String, Vec<usize>)>,
    }
    impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Shapes {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let shape = param.val().dims().to_vec();
            self.found.push((self.path.join("."), shape));
        }
    }
    let mut v = Shapes::default();
    module.visit(&mut v);
    v.found
}

/// A burn record error as one line about `file`. burn appends to every failed read a note on
/// its record format of version 0.14; a checkpoint written by this build has the current
/// format, so the note would only mislead and is left out.
fn record_error(file: &Path, e: burn::record::RecorderError) -> Error {
    use burn::record::RecorderError as E;
    let text = match e {
        E::FileNotFound(_) => return Error::checkpoint(file, "missing"),
        E::DeserializeError(t) | E::Unknown(t) => t,
    };
    let cut = ["\\nThe internal data format", "\nThe internal data format"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    let detail: Vec<&str> = text[..cut]
        .split(['\n', '\r'])
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\\'))
        .filter(|l| !l.is_empty() && *l != "Unable to load record.")
        .collect();
    Error::checkpoint(
        file,
        format!(
            "cannot be read as this run's checkpoint (saved for another model or adapter \
             configuration, or damaged): {}",
            detail.join("; ")
        ),
    )
}

/// Flushes a directory's entries (the rename of a checkpoint) to disk, where the system can.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    type B = burn::backend::Autodiff<crate::backend::Cpu>;

    /// What loading `bytes` as a `Linear` record says, for a file whose manifest is in order.
    fn load_error(bytes: &[u8]) -> String {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("model.mpk"), bytes).unwrap();
        let device = Default::default();
        let r: Result<<Linear<B> as Module<B>>::Record> =
            load(&Rec::new(), tmp.path(), MODEL, &device);
        r.err().expect("an error").to_string()
    }

    #[test]
    fn an_unreadable_record_names_the_file_without_burns_format_note() {
        let tmp = tempfile::tempdir().unwrap();
        let device = Default::default();
        let linear: Linear<B> = LinearConfig::new(4, 3).init(&device);
        Rec::new()
            .record(linear.into_record(), tmp.path().join(MODEL))
            .unwrap();
        let whole = std::fs::read(tmp.path().join("model.mpk")).unwrap();
        for bytes in [&whole[..whole.len() / 2], b"not a record", &[][..]] {
            let e = load_error(bytes);
            assert!(e.contains("model.mpk: cannot be read"), "{e}");
            assert!(!e.contains("0.14"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn a_record_of_other_shapes_is_refused_naming_the_parameter() {
        let tmp = tempfile::tempdir().unwrap();
        let device = Default::default();
        let other: Linear<B> = LinearConfig::new(5, 3).init(&device);
        Rec::new()
            .record(other.into_record(), tmp.path().join(MODEL))
            .unwrap();
        let mine: Linear<B> = LinearConfig::new(4, 3).init(&device);
        let e = load_into(mine, &Rec::new(), tmp.path(), MODEL, &device)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.mpk: `weight` has shape [5, 3] there but [4, 3]"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_record_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let device = Default::default();
        let r: Result<<Linear<B> as Module<B>>::Record> =
            load(&Rec::new(), tmp.path(), MODEL_DECAY, &device);
        let e = r.err().expect("an error").to_string();
        assert!(e.ends_with("optimizer-model-decay.mpk: missing"), "{e}");
    }
}
