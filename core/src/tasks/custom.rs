//! Tasks defined in a config file rather than in code: a `custom_tasks` entry of a run config.
//!
//! ```json
//! {
//!   "name": "my-nli",
//!   "train_file": "data/train.jsonl",
//!   "validation_file": "data/validation.jsonl",
//!   "template": "premise: {premise} hypothesis: {hypothesis}",
//!   "target_field": "label",
//!   "labels": ["entailment", "neutral", "contradiction"],
//!   "metrics": ["accuracy"],
//!   "split_policy": "small"
//! }
//! ```
//!
//! What the model generates follows from `labels` and `metrics`:
//! - `labels` given: a classification task; the target field must hold one of the labels.
//! - no `labels`, and `pearson` or `spearmanr` among the metrics: a regression task; the target
//!   field must hold a number, which is the target text as written.
//! - otherwise free text (e.g. with `bleu`), the target field as it is.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::registry;
use super::task::{Answer, SplitNames, SplitPolicy, Task};
use super::template::Template;
use crate::error::{Error, Result};
use crate::metrics::Metric;

/// The file format of a custom task's splits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFormat {
    /// One JSON object per line.
    #[default]
    #[serde(rename = "jsonl")]
    Jsonl,
    /// Tab-separated values with a header row naming the fields.
    #[serde(rename = "tsv")]
    Tsv,
}

/// A task described by data: where its splits are and how a record becomes a text-to-text
/// example. [`CustomTaskConfig::build`] checks it and makes the [`Task`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTaskConfig {
    /// Task name, as used in `tasks`, `eval_tasks`, `adapters`: the input prefix without
    /// adapters, and the adapter's (directory) name. Letters, digits, `_`, `-`, `.`; not a
    /// built-in task's name.
    pub name: String,
    /// The training split.
    #[serde(default)]
    pub train_file: Option<PathBuf>,
    /// The validation split.
    #[serde(default)]
    pub validation_file: Option<PathBuf>,
    /// The test split.
    #[serde(default)]
    pub test_file: Option<PathBuf>,
    /// `jsonl` (default) or `tsv`.
    #[serde(default)]
    pub format: DataFormat,
    /// Input template with `{field}` placeholders, e.g. `"premise: {premise} hypothesis: {hypothesis}"`.
    pub template: String,
    /// The record field holding the answer.
    pub target_field: String,
    /// Label words of a classification task (at least two, distinct, without surrounding
    /// spaces); absent for regression or free text.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Metric names: accuracy, f1 (two labels; the second is the positive class),
    /// matthews_correlation (needs labels), pearson, spearmanr (need no labels), bleu.
    /// Default `["accuracy"]`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// How `split_validation_test` treats the data: "keep" (default), "small" or "large".
    #[serde(default, skip_serializing_if = "SplitPolicy::is_keep")]
    pub split_policy: SplitPolicy,
}

fn default_metrics() -> Vec<String> {
    vec!["accuracy".into()]
}

impl CustomTaskConfig {
    /// The keys of a `custom_tasks` entry (kept in sync with the fields by a test).
    pub const KEYS: &'static [&'static str] = &[
        "name",
        "train_file",
        "validation_file",
        "test_file",
        "format",
        "template",
        "target_field",
        "labels",
        "metrics",
        "split_policy",
    ];

    /// Checks the task and makes it; every error names the task and says what to change. (Its
    /// data files are the run's business: `train::config` checks those.)
    pub fn build(&self) -> Result<Task> {
        self.check_name()?;
        let bad = |msg: String| Error::Invalid(format!("custom task `{}`: {msg}", self.name));
        let (template, target_field) = self.template_and_target().map_err(bad)?;
        self.check_labels().map_err(bad)?;
        let metrics = self.metrics().map_err(bad)?;
        let answer = match &self.labels {
            Some(labels) => Answer::Label {
                labels: labels.clone(),
                aliases: Vec::new(),
            },
            None if metrics.iter().any(|m| m.is_correlation()) => Answer::Number,
            None => Answer::Text,
        };
        Ok(Task {
            name: self.name.clone(),
            prefix: self.name.clone(),
            template,
            target_field,
            answer,
            metrics,
            split_policy: self.split_policy,
            splits: SplitNames::new("train", "validation", "test"),
            hub: None,
            tsv: None,
        })
    }

    /// The name becomes an adapter directory's name and must not hide a built-in task.
    fn check_name(&self) -> Result<()> {
        let name = self.name.as_str();
        if name.is_empty() {
            return Err(Error::Invalid("custom task: `name` is empty".into()));
        }
        if let Some(c) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(Error::Invalid(format!(
                "custom task name `{name}`: the name contains {c:?}; use letters, digits, `_`, \
                 `-` and `.` (it names adapter files)"
            )));
        }
        if registry::is_built_in(name) {
            return Err(Error::Invalid(format!(
                "custom task `{name}`: the name is taken by a built-in task; choose another name"
            )));
        }
        Ok(())
    }

    /// The parsed template, which must use some field but not the answer's.
    fn template_and_target(&self) -> std::result::Result<(Template, String), String> {
        let template = Template::parse(&self.template).map_err(|e| e.to_string())?;
        if template.fields().next().is_none() {
            return Err(format!(
                "template {:?} has no {{field}} placeholder, so every input would be the same",
                self.template
            ));
        }
        let target_field = self.target_field.trim();
        if target_field.is_empty() {
            return Err("`target_field` is empty".into());
        }
        if template.fields().any(|f| f == target_field) {
            return Err(format!(
                "the template shows the target field `{target_field}` in the input, which \
                 gives the answer away"
            ));
        }
        Ok((template, target_field.to_string()))
    }

    /// Label words must be distinct, non-empty and as predictions are read (trimmed).
    fn check_labels(&self) -> std::result::Result<(), String> {
        let Some(labels) = &self.labels else {
            return Ok(());
        };
        if labels.len() < 2 {
            return Err(format!(
                "`labels` needs at least two labels, got {}",
                labels.len()
            ));
        }
        for (i, label) in labels.iter().enumerate() {
            if label.trim().is_empty() {
                return Err(format!("label {i} is empty"));
            }
            if label.trim() != label {
                return Err(format!(
                    "label {label:?} has surrounding spaces; predictions are trimmed, so it \
                     could never match"
                ));
            }
            if labels[..i].contains(label) {
                return Err(format!("label {label:?} is listed twice"));
            }
        }
        Ok(())
    }

    /// The metrics by name, each one that fits the kind of answer.
    fn metrics(&self) -> std::result::Result<Vec<Metric>, String> {
        if self.metrics.is_empty() {
            return Err("`metrics` is empty; name at least one".into());
        }
        let n_labels = self.labels.as_ref().map(Vec::len);
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for metric_name in &self.metrics {
            let metric = Metric::from_name(metric_name).map_err(|e| e.to_string())?;
            if metrics.contains(&metric) {
                return Err(format!("metric `{metric}` is listed twice"));
            }
            match metric {
                Metric::F1 if n_labels != Some(2) => {
                    return Err(
                        "metric `f1` needs exactly two labels (the second is the positive class)"
                            .into(),
                    )
                }
                Metric::MatthewsCorrelation if n_labels.is_none() => {
                    return Err("metric `matthews_correlation` needs `labels`".into())
                }
                m if m.is_correlation() && n_labels.is_some() => {
                    return Err(format!(
                        "metric `{m}` scores numbers; remove `labels` to make a regression task"
                    ))
                }
                _ => {}
            }
            metrics.push(metric);
        }
        Ok(metrics)
    }
}

/// The tasks called `names`, each custom task (from `custom`) or built-in, in the order asked.
/// Every custom task is checked, used or not; the error for an unknown name lists both kinds.
pub fn resolve(names: &[String], custom: &[CustomTaskConfig]) -> Result<Vec<Task>> {
    let custom_tasks = custom
        .iter()
        .map(CustomTaskConfig::build)
        .collect::<Result<Vec<Task>>>()?;
    for (i, task) in custom_tasks.iter().enumerate() {
        if custom_tasks[..i].iter().any(|t| t.name() == task.name()) {
            return Err(Error::Invalid(format!(
                "custom task `{}` is defined twice",
                task.name()
            )));
        }
    }
    names
        .iter()
        .map(|name| {
            if let Some(task) = custom_tasks.iter().find(|t| t.name() == name) {
                return Ok(task.clone());
            }
            registry::get(name).map_err(|_| {
                let mut known: Vec<&str> = registry::names().collect();
                known.extend(custom_tasks.iter().map(|t| t.name()));
                Error::Invalid(format!(
                    "unknown task `{name}`; known tasks: {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Record;

    fn spec() -> CustomTaskConfig {
        CustomTaskConfig {
            name: "my-nli".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "premise: {premise} hypothesis: {hypothesis}".into(),
            target_field: "label".into(),
            labels: Some(vec![
                "entailment".into(),
                "neutral".into(),
                "contradiction".into(),
            ]),
            metrics: vec!["accuracy".into()],
            split_policy: SplitPolicy::Small,
        }
    }

    fn record(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(spec: CustomTaskConfig) -> String {
        spec.build().unwrap_err().to_string()
    }

    #[test]
    fn classification_task_from_json() {
        let json = r#"{
            "name": "my-nli",
            "template": "premise: {premise} hypothesis: {hypothesis}",
            "target_field": "label",
            "labels": ["entailment", "neutral", "contradiction"],
            "metrics": ["accuracy"],
            "split_policy": "small"
        }"#;
        let parsed: CustomTaskConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, spec());
        let t = parsed.build().unwrap();
        let r = record(&[
            ("premise", "A."),
            ("hypothesis", "B."),
            ("label", "neutral"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "my-nli premise: A. hypothesis: B."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "premise: A. hypothesis: B."
        );
        assert_eq!(t.format_target(&r).unwrap(), "neutral");
        assert_eq!(t.split_policy(), SplitPolicy::Small);
        let bad = record(&[("premise", "A."), ("hypothesis", "B."), ("label", "maybe")]);
        assert!(t.format_target(&bad).is_err());
        let scores = t
            .evaluate(&["neutral", "entailment"], &["neutral", "contradiction"])
            .unwrap();
        assert_eq!(scores["accuracy"], 50.0);
    }

    #[test]
    fn unknown_json_fields_are_rejected_with_the_valid_ones() {
        let json = r#"{"name": "x", "template": "{a}", "target_field": "b", "metrics": ["bleu"],
                       "label": ["0", "1"]}"#;
        let err = serde_json::from_str::<CustomTaskConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `label`"), "{err}");
        assert!(err.contains("`labels`"), "{err}");
    }

    #[test]
    fn regression_and_free_text_tasks() {
        let reg = CustomTaskConfig {
            name: "similarity".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "a: {a} b: {b}".into(),
            target_field: "score".into(),
            labels: None,
            metrics: vec!["pearson".into(), "spearmanr".into()],
            split_policy: SplitPolicy::Keep,
        }
        .build()
        .unwrap();
        assert_eq!(reg.answer(), &Answer::Number);
        let r = record(&[("a", "x"), ("b", "y"), ("score", " 0.75 ")]);
        assert_eq!(reg.format_target(&r).unwrap(), "0.75");
        let scores = reg.evaluate(&["1", "2", "3"], &["2", "4", "6"]).unwrap();
        assert!((scores["pearson"] - 100.0).abs() < 1e-9);
        assert!((scores["spearmanr"] - 100.0).abs() < 1e-9);

        let text = CustomTaskConfig {
            name: "summarize".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "summarize: {document}".into(),
            target_field: "summary".into(),
            labels: None,
            metrics: vec!["bleu".into()],
            split_policy: SplitPolicy::Keep,
        }
        .build()
        .unwrap();
        assert_eq!(text.answer(), &Answer::Text);
        assert_eq!(
            text.format_input(&record(&[("document", "d")]), true)
                .unwrap(),
            "summarize summarize: d"
        );
    }

    #[test]
    fn validation_errors() {
        let with = |f: &dyn Fn(&mut CustomTaskConfig)| {
            let mut s = spec();
            f(&mut s);
            error(s)
        };
        assert_eq!(
            with(&|s| s.name = "rte".into()),
            "custom task `rte`: the name is taken by a built-in task; choose another name"
        );
        assert!(with(&|s| s.name = "my nli".into()).contains("the name contains ' '"));
        assert_eq!(with(&|s| s.name.clear()), "custom task: `name` is empty");
        assert!(with(&|s| s.template = "premise: {premise".into())
            .starts_with("custom task `my-nli`: template \"premise: {premise\": `{` at byte 9"));
        assert!(with(&|s| s.template = "no fields".into()).contains("has no {field} placeholder"));
        assert!(with(&|s| s.template = "{premise} {label}".into())
            .contains("shows the target field `label`"));
        assert!(with(&|s| s.target_field = " ".into()).contains("`target_field` is empty"));
        assert!(with(&|s| s.labels = Some(vec!["only".into()])).contains("at least two labels"));
        assert!(with(&|s| s.labels = Some(vec!["a".into(), "a".into()]))
            .contains("label \"a\" is listed twice"));
        assert!(with(&|s| s.labels = Some(vec!["a".into(), " b".into()]))
            .contains("surrounding spaces"));
        assert!(with(&|s| s.metrics.clear()).contains("`metrics` is empty"));
        assert_eq!(
            with(&|s| s.metrics = vec!["acc".into()]),
            "custom task `my-nli`: unknown metric `acc`; expected one of: accuracy, f1, \
             matthews_correlation, pearson, spearmanr, bleu"
        );
        assert!(
            with(&|s| s.metrics = vec!["accuracy".into(), "accuracy".into()])
                .contains("metric `accuracy` is listed twice")
        );
        // Three labels: no binary F1.
        assert!(with(&|s| s.metrics = vec!["f1".into()]).contains("`f1` needs exactly two labels"));
        assert!(with(&|s| s.metrics = vec!["pearson".into()]).contains("remove `labels`"));
        assert!(with(&|s| {
            s.labels = None;
            s.metrics = vec!["matthews_correlation".into()];
        })
        .contains("`matthews_correlation` needs `labels`"));
    }

    #[test]
    fn binary_f1_uses_the_second_label_as_positive() {
        let t = CustomTaskConfig {
            name: "spam".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "email: {text}".into(),
            target_field: "label".into(),
            labels: Some(vec!["ham".into(), "spam".into()]),
            metrics: vec!["f1".into(), "matthews_correlation".into()],
            split_policy: SplitPolicy::Keep,
        }
        .build()
        .unwrap();
        // (pred, ref): (spam,spam) TP, (ham,spam) FN, (ham,ham) TN, (spam,ham) FP.
        // F1 = 2/(2+1+1) = 50; MCC = (1*1 - 1*1)/... = 0.
        let s = t
            .evaluate(
                &["spam", "ham", "ham", "spam"],
                &["spam", "spam", "ham", "ham"],
            )
            .unwrap();
        assert_eq!(s["f1"], 50.0);
        assert_eq!(s["matthews_correlation"], 0.0);
    }

    #[test]
    fn resolve_mixes_custom_and_built_in() {
        let spec = CustomTaskConfig {
            name: "my-nli".into(),
            train_file: None,
            validation_file: None,
            test_file: None,
            format: DataFormat::Jsonl,
            template: "premise: {premise} hypothesis: {hypothesis}".into(),
            target_field: "label".into(),
            labels: Some(vec!["yes".into(), "no".into()]),
            metrics: vec!["accuracy".into()],
            split_policy: SplitPolicy::Keep,
        };
        let tasks = resolve(
            &["rte".into(), "my-nli".into()],
            std::slice::from_ref(&spec),
        )
        .unwrap();
        assert_eq!(tasks[0].name(), "rte");
        assert_eq!(tasks[1].name(), "my-nli");
        assert!(matches!(tasks[1].answer(), Answer::Label { .. }));

        let err = resolve(&["nope".into()], std::slice::from_ref(&spec))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("wmt16-en-ro, my-nli"), "{err}");
        let err = resolve(&[], &[spec.clone(), spec]).unwrap_err().to_string();
        assert_eq!(err, "custom task `my-nli` is defined twice");
    }
}
