//! A run's output directory and the files in it that are not checkpoints or exports:
//! `config.json` (the resolved run config), `metrics.jsonl` (one JSON line per logged step or
//! evaluation), `val_results.json` / `test_results.json` and `training_curves.svg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::config::RunConfig;
use super::plot::{training_curves, Series};
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The resolved run config, next to the run's results.
const RUN_CONFIG_FILE: &str = "config.json";
const METRICS_FILE: &str = "metrics.jsonl";
const CURVES_FILE: &str = "training_curves.svg";

/// Where a run writes.
pub struct Outputs {
    pub dir: PathBuf,
}

impl Outputs {
    /// Prepares `output_dir` (emptied first with `overwrite_output_dir` when training) and
    /// writes the resolved config into it.
    pub fn create(config: &RunConfig) -> Result<Self> {
        let dir = config.output_dir.clone();
        if config.overwrite_output_dir && dir.exists() && config.do_train {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_atomic(
            &dir.join(RUN_CONFIG_FILE),
            config.resolved_json().as_bytes(),
        )?;
        Ok(Self { dir })
    }

    /// `checkpoint-<step>/`.
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.dir.join(checkpoint::name(step))
    }

    /// Starts a fresh `metrics.jsonl` (a resumed run appends to its own).
    pub fn restart_log(&self) {
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

    fn append(&self, value: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let path = self.dir.join(METRICS_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{value}").map_err(|e| Error::io(&path, e))
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
