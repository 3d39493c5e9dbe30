//! A run's output directory and the files in it that are not checkpoints or exports:
//! `config.json` (the resolved run config), `metrics.jsonl` (one JSON line per logged step or
//! evaluation), `val_results.json` / `test_results.json` and `training_curves.svg`; and the
//! directory's [lock](super::lock), held while the run lasts. In a data-parallel run only rank 0
//! writes; the other ranks hold a [follower](Outputs::follower) that reads checkpoints only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::config::RunConfig;
use super::lock::{OutputLock, LOCK_FILE};
use super::observer::Observer;
use super::plot::{training_curves, Series};
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The resolved run config, next to the run's results.
const RUN_CONFIG_FILE: &str = "config.json";
const METRICS_FILE: &str = "metrics.jsonl";
const CURVES_FILE: &str = "training_curves.svg";

/// Where a run writes, locked against other runs until this is dropped.
pub struct Outputs {
    pub dir: PathBuf,
    /// `None` for a follower, which writes nothing.
    lock: Option<OutputLock>,
}

impl Outputs {
    /// Takes `output_dir` for this run (refused while another run holds it; a lock left by a
    /// killed run is taken over with a warning), empties it with `overwrite_output_dir` when
    /// training, and writes the resolved config into it.
    pub fn create(config: &RunConfig, obs: &mut dyn Observer) -> Result<Self> {
        let dir = config.output_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (lock, stale) = OutputLock::acquire(&dir)?;
        if let Some(holder) = stale {
            obs.message(&format!(
                "warning: {}: taking over the lock of a run that is gone ({holder})",
                dir.join(LOCK_FILE).display()
            ));
        }
        if config.overwrite_output_dir && config.do_train {
            empty_but_lock(&dir)?;
        }
        write_atomic(
            &dir.join(RUN_CONFIG_FILE),
            config.resolved_json().as_bytes(),
        )?;
        Ok(Self {
            dir,
            lock: Some(lock),
        })
    }

    /// The output directory as a rank other than 0 of a data-parallel run sees it: it resumes
    /// from its checkpoints and writes nothing (no lock, no log, no results).
    pub fn follower(config: &RunConfig) -> Self {
        Self {
            dir: config.output_dir.clone(),
            lock: None,
        }
    }

    /// Whether this run writes its outputs (false on a follower).
    pub fn writes(&self) -> bool {
        self.lock.is_some()
    }

    /// `checkpoint-<step>/`.
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.dir.join(checkpoint::name(step))
    }

    /// Starts a fresh `metrics.jsonl` (a resumed run appends to its own).
    pub fn restart_log(&self) {
        if !self.writes() {
            return;
        }
        let _ = std::fs::remove_file(self.dir.join(METRICS_FILE));
    }

    /// The training loss of a step.
    pub fn log_step(&self, step: usize, loss: f64, lr: f64, examples_per_s: f64) -> Result<()> {
        self.append(&serde_json::json!({
            "step": step, "loss": loss, "lr": lr, "examples_per_s": examples_per_s
        }))
    }

    /// An evaluation during training, each metric as `eval_<name>`.
    pub fn log_eval(&self, step: usize, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let mut line = serde_json::json!({ "step": step });
        for (k, v) in metrics {
            line[format!("eval_{k}")] = serde_json::json!(v);
        }
        self.append(&line)
    }

    /// Keeps the lines of `metrics.jsonl` up to `step`, for a run resumed from that step's
    /// checkpoint: the steps after it are done again and logged again. A line cut short by a
    /// crash goes too.
    pub fn truncate_log(&self, step: usize) -> Result<()> {
        if !self.writes() {
            return Ok(());
        }
        let path = self.dir.join(METRICS_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step as u64)
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        if kept != text {
            write_atomic(&path, kept.as_bytes())?;
        }
        Ok(())
    }

    fn append(&self, value: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        if !self.writes() {
            return Ok(());
        }
        let path = self.dir.join(METRICS_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // One write per line, so a crash cuts at most the last line short.
        f.write_all(format!("{value}\n").as_bytes())
            .map_err(|e| Error::io(&path, e))
    }

    /// The final metrics of a split (`val_results.json`, `test_results.json`).
    pub fn write_results(&self, test: bool, metrics: &BTreeMap<String, f64>) -> Result<()> {
        let name = if test {
            "test_results.json"
        } else {
            "val_results.json"
        };
        let text = serde_json::to_string_pretty(metrics).expect("json");
        write_atomic(&self.dir.join(name), text.as_bytes())
    }

    /// `training_curves.svg` from `metrics.jsonl`, titled `title`.
    pub fn write_curves(&self, title: &str) -> Result<()> {
        write_plot(
            &self.dir.join(METRICS_FILE),
            &self.dir.join(CURVES_FILE),
            title,
        )
    }
}

/// Removes everything in `dir` but its lock file (`overwrite_output_dir`).
fn empty_but_lock(dir: &Path) -> Result<()> {
    let io = |e| Error::io(dir, e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let gone = if entry.file_type().map_err(io)?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn write_plot(metrics: &Path, out: &Path, title: &str) -> Result<()> {
    let text = std::fs::read_to_string(metrics).unwrap_or_default();
    let mut loss = Series {
        name: "loss",
        points: Vec::new(),
    };
    let mut evals: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(l) = v["loss"].as_f64() {
            loss.points.push((step, l));
        }
        for (k, val) in v.as_object().into_iter().flatten() {
            if let (Some(name), Some(x)) = (k.strip_prefix("eval_"), val.as_f64()) {
                evals.entry(name.to_string()).or_default().push((step, x));
            }
        }
    }
    let metrics: Vec<Series> = evals
        .iter()
        .map(|(k, p)| Series {
            name: k,
            points: p.clone(),
        })
        .collect();
    let svg = training_curves(title, &[loss], &metrics);
    write_atomic(out, svg.as_bytes())
}
