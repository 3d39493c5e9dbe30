//! The checks a run config's values must pass, one group of keys at a time. Each message names
//! the key at fault and what to set instead. Task names are not looked up here: a name may be a
//! built-in task, a custom task, or (for evaluation only) a task of a later build.

use std::collections::BTreeSet;

use serde_json::Value;

use super::run::{EvaluationStrategy, RunConfig};
use crate::adapter::hyper::HyperConfig;
use crate::generation::limits::{MAX_NUM_BEAMS, MAX_TOKENS};
use crate::train::sampler::check_temperature;

type Check = std::result::Result<(), String>;

/// The largest batch (and gradient accumulation) accepted; within it, the memory check at
/// setup decides.
pub const MAX_BATCH: usize = 1 << 16;

impl RunConfig {
    /// Every check, in the order of the file's sections.
    pub(super) fn check(&self) -> Check {
        self.check_required()?;
        self.check_tasks()?;
        self.check_custom_tasks()?;
        self.check_adapter_map()?;
        self.check_counts()?;
        self.check_optimization()?;
        self.check_adapters()?;
        self.check_evaluation()
    }

    /// What a run cannot do without.
    fn check_required(&self) -> Check {
        if self.model_name_or_path.trim().is_empty() {
            return Err(
                "`model_name_or_path` is required (a model directory, hub name or preset)".into(),
            );
        }
        if self.output_dir.as_os_str().is_empty() {
            return Err("`output_dir` is required".into());
        }
        if !(self.do_train || self.do_eval || self.do_test) {
            return Err("nothing to do: set `do_train`, `do_eval` or `do_test` to true".into());
        }
        Ok(())
    }

    fn check_tasks(&self) -> Check {
        if self.tasks.is_empty() {
            return Err("`tasks` is empty; name at least one task".into());
        }
        check_names("tasks", &self.tasks)?;
        if let Some(eval) = &self.eval_tasks {
            if eval.is_empty() {
                return Err("`eval_tasks` is empty; omit it to evaluate on `tasks`".into());
            }
            check_names("eval_tasks", eval)?;
        }
        Ok(())
    }

    /// Each custom task is a valid task (the one check of [`CustomTaskConfig::build`]) with the
    /// data the run needs.
    ///
    /// [`CustomTaskConfig::build`]: crate::tasks::CustomTaskConfig::build
    fn check_custom_tasks(&self) -> Check {
        let mut names = BTreeSet::new();
        for task in &self.custom_tasks {
            task.build().map_err(|e| e.to_string())?;
            if task.train_file.is_none()
                && task.validation_file.is_none()
                && task.test_file.is_none()
            {
                return Err(format!(
                    "custom task `{}` has no data: set `train_file`, `validation_file` or `test_file`",
                    task.name
                ));
            }
            if !names.insert(task.name.as_str()) {
                return Err(format!("custom task `{}` is defined twice", task.name));
            }
            if self.do_train && self.tasks.contains(&task.name) && task.train_file.is_none() {
                return Err(format!(
                    "custom task `{}` is in `tasks` but has no `train_file`",
                    task.name
                ));
            }
        }
        Ok(())
    }

    /// `adapters` points eval tasks at the adapters of trained tasks.
    fn check_adapter_map(&self) -> Check {
        let Some(adapters) = &self.adapters else {
            return Ok(());
        };
        if !self.train_adapters {
            return Err(
                "`adapters` maps eval tasks to trained adapters, but `train_adapters` is false"
                    .into(),
            );
        }
        let eval = self.eval_task_names();
        for (eval_task, adapter) in adapters {
            if !eval.contains(eval_task) {
                return Err(format!(
                    "`adapters` maps `{eval_task}`, which is not an eval task ({})",
                    eval.join(", ")
                ));
            }
            if !self.tasks.contains(adapter) {
                return Err(format!(
                    "`adapters` maps `{eval_task}` to `{adapter}`, which is not a training task \
                     (adapters exist for: {})",
                    self.tasks.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Example limits, lengths, batch sizes and step counts.
    fn check_counts(&self) -> Check {
        for (key, n) in [
            ("n_train", self.n_train),
            ("n_val", self.n_val),
            ("n_test", self.n_test),
        ] {
            if n < -1 {
                return Err(format!("`{key}` must be -1 (all) or a count, got {n}"));
            }
        }
        if self.do_train && self.n_train == 0 {
            return Err(
                "`n_train` is 0: training would have no examples; set -1 (all) or a count".into(),
            );
        }
        for (key, n, max) in [
            ("max_source_length", self.max_source_length, MAX_TOKENS),
            ("max_target_length", self.max_target_length, MAX_TOKENS),
            (
                "val_max_target_length",
                self.val_max_target_length,
                MAX_TOKENS,
            ),
            (
                "test_max_target_length",
                self.test_max_target_length,
                MAX_TOKENS,
            ),
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
                MAX_BATCH,
            ),
            (
                "per_device_eval_batch_size",
                self.per_device_eval_batch_size,
                MAX_BATCH,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
                MAX_BATCH,
            ),
            ("eval_beams", self.eval_beams, MAX_NUM_BEAMS),
            ("logging_steps", self.logging_steps, usize::MAX),
        ] {
            if n == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
            if n > max {
                return Err(format!("`{key}` must be in 1..={max}, got {n}"));
            }
        }
        Ok(())
    }

    fn check_optimization(&self) -> Check {
        if !(self.num_train_epochs >= 0.0 && self.num_train_epochs.is_finite()) {
            return Err(format!(
                "`num_train_epochs` must be a finite number >= 0, got {}",
                self.num_train_epochs
            ));
        }
        if self.do_train && self.max_steps <= 0 && self.num_train_epochs <= 0.0 {
            return Err(format!(
                "`num_train_epochs` must be positive when `max_steps` is not set, got {}",
                self.num_train_epochs
            ));
        }
        let non_negative = |key: &str, value: f64, rule: &str| {
            if value >= 0.0 && value.is_finite() {
                Ok(())
            } else {
                Err(format!("`{key}` must be {rule}, got {value}"))
            }
        };
        let fraction = |key: &str, value: f64| {
            if (0.0..1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("`{key}` must be in [0, 1), got {value}"))
            }
        };
        non_negative("learning_rate", self.learning_rate, "a non-negative number")?;
        non_negative("weight_decay", self.weight_decay, ">= 0")?;
        non_negative("adam_epsilon", self.adam_epsilon, ">= 0")?;
        fraction("adam_beta1", self.adam_beta1)?;
        fraction("adam_beta2", self.adam_beta2)?;
        non_negative(
            "max_grad_norm",
            self.max_grad_norm,
            ">= 0 (0 disables clipping)",
        )?;
        fraction("label_smoothing", self.label_smoothing)?;
        check_temperature(self.temperature).map_err(|why| format!("`temperature` {why}"))
    }

    /// The adapter kind and shape (checked even without `train_adapters`: `native eval` and a
    /// later run may use them).
    fn check_adapters(&self) -> Check {
        match self.adapter_config_name.as_str() {
            "adapter" => self.adapter.check()?,
            "meta-adapter" => self.check_hyper()?,
            "lora" => return self.check_lora(),
            // The targets (and a Compacter's dimensions) are checked against the backbone when
            // the run starts.
            "ia3" | "compacter" | "compacter++" => return Ok(()),
            other => {
                return Err(format!(
                    "`adapter_config_name` `{other}` is unknown: the names are `adapter` (one \
                     adapter per task), `meta-adapter` (adapters generated by a \
                     hypernetwork), `lora` (a LoRA per task, configured by the `lora` \
                     object), `ia3` (an (IA)³ adapter per task, configured by `ia3`) and \
                     `compacter` / `compacter++` (configured by `compacter`); for the seed's hypernetwork variants use `meta-adapter` \
                     with `unique_hyper_net` / `efficient_unique_hyper_net` / \
                     `parametric_task_embedding`"
                ))
            }
        }
        if self.train_adapters
            && !self.adapter.add_adapter_in_feed_forward
            && !self.adapter.add_adapter_in_self_attention
        {
            return Err(
                "`train_adapters` is true but both `add_adapter_in_feed_forward` and \
                 `add_adapter_in_self_attention` are false: there would be no adapter"
                    .into(),
            );
        }
        Ok(())
    }

    /// `lora`: what can be checked without the backbone (the targets are matched against it
    /// when the run starts).
    fn check_lora(&self) -> Check {
        self.lora.check().map_err(|e| format!("`lora`: {e}"))
    }

    /// `meta-adapter`: the hypernetwork's keys, and a `task_embeddings` map over training tasks.
    fn check_hyper(&self) -> Check {
        if !self.train_adapters {
            return Err(
                "`adapter_config_name: \"meta-adapter\"` needs `train_adapters: true`: the \
                 hypernetwork and its task embeddings are what trains"
                    .into(),
            );
        }
        self.hyper.check(&self.adapter)?;
        let Some(map) = &self.hyper.task_embeddings else {
            return Ok(());
        };
        for (task, embedding) in map {
            if !self.tasks.contains(task) {
                return Err(format!(
                    "`task_embeddings` maps `{task}`, which is not a training task ({}); map \
                     eval-only tasks to a trained task with `adapters`",
                    self.tasks.join(", ")
                ));
            }
            if embedding.trim().is_empty() {
                return Err(format!(
                    "`task_embeddings` maps `{task}` to an empty embedding name"
                ));
            }
        }
        Ok(())
    }

    /// Keys that are accepted but change nothing. With `adapter`, every hypernetwork key that
    /// is not at its default: the seed accepted and ignored them ("doesn't have a `…`
    /// attribute"), so a seed config keeps working, but the user should know. Except
    /// `train_adapters_blocks`, which the seed's plain adapter has too (its layer-norm-only
    /// baseline, docs/HYPERNETWORKS.md section 6).
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        for (key, set) in [
            (
                "lora",
                self.lora != crate::adapter::lora::LoraConfig::default(),
            ),
            ("ia3", self.ia3 != crate::adapter::ia3::Ia3Config::default()),
            ("compacter", !self.compacter.is_empty()),
        ] {
            if set && !self.adapter_config_name.starts_with(key) {
                ignored.push(format!(
                    "`{key}` has no effect with `adapter_config_name: \"{}\"` (it configures `{key}`); ignored",
                    self.adapter_config_name
                ));
            }
        }
        if self.adapter_config_name == "meta-adapter" {
            return [self.hyper.warnings(), ignored].concat();
        }
        let (Ok(Value::Object(set)), Ok(Value::Object(default))) = (
            serde_json::to_value(&self.hyper),
            serde_json::to_value(HyperConfig::default()),
        ) else {
            return Vec::new();
        };
        set.iter()
            .filter(|(key, value)| default.get(*key) != Some(value))
            .filter(|(key, _)| key.as_str() != "train_adapters_blocks")
            .map(|(key, _)| {
                format!(
                    "`{key}` has no effect with `adapter_config_name: \"{}\"` (it configures \
                     `meta-adapter`); ignored, as the seed did",
                    self.adapter_config_name
                )
            })
            .chain(ignored)
            .collect()
    }

    /// When to evaluate and what to keep.
    fn check_evaluation(&self) -> Check {
        if self.evaluation_strategy == EvaluationStrategy::Steps && self.eval_steps == 0 {
            return Err(
                "`eval_steps` must be at least 1 with `evaluation_strategy: \"steps\"`".into(),
            );
        }
        if self.save_total_limit == Some(0) {
            return Err(
                "`save_total_limit` must be at least 1 (null keeps every checkpoint)".into(),
            );
        }
        if self.load_best_model_at_end && self.evaluation_strategy == EvaluationStrategy::No {
            return Err(
                "`load_best_model_at_end` needs evaluations during training: set \
                 `evaluation_strategy` to \"steps\" or \"epoch\""
                    .into(),
            );
        }
        if self.metric_for_best_model.trim().is_empty() {
            return Err("`metric_for_best_model` is empty".into());
        }
        Ok(())
    }
}

fn first_duplicate(items: &[String]) -> Option<&str> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .find(|item| !seen.insert(item.as_str()))
        .map(String::as_str)
}

fn check_names(key: &str, names: &[String]) -> Check {
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(format!("`{key}` contains an empty task name"));
    }
    if let Some(dup) = first_duplicate(names) {
        return Err(format!("`{key}` lists `{dup}` twice"));
    }
    Ok(())
}
