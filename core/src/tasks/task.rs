//! A task: how a record becomes a text-to-text example, and how the generated text is scored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::template::{field, Template};
use crate::data::Record;
use crate::error::{Error, Result};
use crate::metrics::{self, Metric};

/// What the model must generate, which decides how targets are written and predictions read.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// One of a fixed list of label words (`"0"`, `"1"`, … or `"False"`/`"True"`).
    /// `aliases` rewrite source values into label words before the check (BoolQ's `true` →
    /// `True`, SciTail's `entailment` → `0`).
    Label {
        labels: Vec<String>,
        aliases: Vec<(String, String)>,
    },
    /// STS-B's similarity score: the float label rounded to the nearest multiple of 0.2 and
    /// written with one decimal (`3.8`), read back as a number for the correlations.
    StsbScore,
    /// A number written as text, kept as the source writes it; read back as a number.
    Number,
    /// Free text (translation), kept as it is.
    Text,
}

/// How [`split_validation_test`](super::split_validation_test) re-splits a task that lacks a
/// labelled test set (the seed's `small_datasets_without_all_splits` and
/// `large_data_without_all_splits`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitPolicy {
    /// A small data set: its validation split is shuffled and halved into validation and test.
    Small,
    /// A large data set: 1000 shuffled training examples become the validation split, the rest
    /// stay for training, and the validation split becomes the test split.
    Large,
    /// Labelled validation and test splits exist already; nothing moves.
    #[default]
    Keep,
}

impl SplitPolicy {
    /// Whether this is the default, which a config need not spell out.
    pub fn is_keep(&self) -> bool {
        *self == SplitPolicy::Keep
    }
}

/// The three roles a split plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Train,
    Validation,
    Test,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Train => "train",
            Role::Validation => "validation",
            Role::Test => "test",
        }
    }
}

/// Which source split plays each role (the seed's `split_to_data_split`); GLUE's test splits are
/// unlabelled, so most tasks evaluate "test" on the validation split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitNames {
    pub train: String,
    pub validation: String,
    pub test: String,
}

impl SplitNames {
    pub fn new(train: &str, validation: &str, test: &str) -> Self {
        Self {
            train: train.into(),
            validation: validation.into(),
            test: test.into(),
        }
    }

    pub fn get(&self, role: Role) -> &str {
        match role {
            Role::Train => &self.train,
            Role::Validation => &self.validation,
            Role::Test => &self.test,
        }
    }
}

/// Where a built-in task's data lives on the Hugging Face hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSource {
    /// Dataset repository, e.g. `nyu-mll/glue` (the seed's `glue`; the short ids redirect).
    /// A revision may follow `@` (`CogComp/trec@refs/convert/parquet`).
    pub repo: String,
    /// Configuration (subset), e.g. `rte`; `None` for single-configuration data sets.
    pub config: Option<String>,
    /// `(record field, hub column)`: which column fills each record field. A dotted column
    /// reads inside a struct column (`translation.en`).
    pub columns: Vec<(String, String)>,
}

/// How a GLUE task's files look as GLUE distributes them (`glue_data/<dir>/train.tsv`,
/// `dev.tsv`): their own column names, label words instead of indices for the NLI tasks, and for
/// CoLA no header line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsvLayout {
    /// GLUE's directory name, e.g. `SST-2`.
    pub dir: String,
    /// Column names of files without a header line (CoLA); `None`: the first line names them.
    pub header: Option<Vec<String>>,
    /// `(record field, TSV column)`.
    pub columns: Vec<(String, String)>,
}

/// A record formatted as text (the tokenizer turns it into a
/// [`train::batch::Example`](crate::train::batch::Example)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextExample {
    /// The encoder's input text.
    pub input: String,
    /// The text the decoder learns to generate.
    pub target: String,
}

/// A text-to-text task. Built-in tasks come from [`registry::get`](super::registry::get), custom
/// ones from a [`CustomTaskConfig`](super::CustomTaskConfig).
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) template: Template,
    pub(crate) target_field: String,
    pub(crate) answer: Answer,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) split_policy: SplitPolicy,
    pub(crate) splits: SplitNames,
    pub(crate) hub: Option<HubSource>,
    pub(crate) tsv: Option<TsvLayout>,
}

impl Task {
    /// The task's name: the registry key, the adapter name and (usually) the input prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prepended to the input (with a space) when training without adapters: the task name, or
    /// for translation the instruction T5 was pre-trained with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The record field the target is made from.
    pub fn target_field(&self) -> &str {
        &self.target_field
    }

    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// The label words of a classification task.
    pub fn labels(&self) -> Option<&[String]> {
        match &self.answer {
            Answer::Label { labels, .. } => Some(labels),
            _ => None,
        }
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    pub fn split_policy(&self) -> SplitPolicy {
        self.split_policy
    }

    /// The source split that plays `role` when the data is used as is (no
    /// `split_validation_test`); with it, see [`split_validation_test`](super::split_validation_test).
    pub fn source_split(&self, role: Role) -> &str {
        self.splits.get(role)
    }

    pub fn split_names(&self) -> &SplitNames {
        &self.splits
    }

    /// Where to download the data; `None` for custom tasks.
    pub fn hub(&self) -> Option<&HubSource> {
        self.hub.as_ref()
    }

    /// The layout of GLUE's own TSV files for this task; `None` outside GLUE.
    pub fn tsv_layout(&self) -> Option<&TsvLayout> {
        self.tsv.as_ref()
    }

    /// The encoder input: the template filled from `record`, after `"{prefix} "` when
    /// `prefix_task_name` (the seed prepends the task name only when training without adapters,
    /// since an adapter already tells tasks apart).
    pub fn format_input(&self, record: &Record, prefix_task_name: bool) -> Result<String> {
        let body = self.template.render(record).map_err(|e| self.context(e))?;
        Ok(if prefix_task_name {
            format!("{} {body}", self.prefix)
        } else {
            body
        })
    }

    /// The target text; errors when the record's value is not a valid answer (e.g. the `-1` of
    /// an unlabelled test row: check [`Task::is_labelled`] first to skip those).
    pub fn format_target(&self, record: &Record) -> Result<String> {
        let value = field(record, &self.target_field).map_err(|e| self.context(e))?;
        let bad = |what: String| {
            Error::Invalid(format!(
                "task `{}`: field `{}` = {value:?} {what}",
                self.name, self.target_field
            ))
        };
        match &self.answer {
            Answer::Label { labels, aliases } => {
                let v = value.trim();
                let word = aliases
                    .iter()
                    .find(|(from, _)| from == v)
                    .map_or(v, |(_, to)| to.as_str());
                if labels.iter().any(|l| l == word) {
                    Ok(word.to_string())
                } else {
                    Err(bad(format!(
                        "is not one of the labels: {}",
                        labels.join(", ")
                    )))
                }
            }
            Answer::StsbScore => match metrics::parse_number(value) {
                Some(score) if (0.0..=5.0).contains(&score) => Ok(round_stsb(score)),
                _ => Err(bad("is not a similarity score between 0 and 5".into())),
            },
            Answer::Number => match metrics::parse_number(value) {
                Some(_) => Ok(value.trim().to_string()),
                None => Err(bad("is not a number".into())),
            },
            Answer::Text => Ok(value.to_string()),
        }
    }

    /// Input and target together.
    pub fn format(&self, record: &Record, prefix_task_name: bool) -> Result<TextExample> {
        Ok(TextExample {
            input: self.format_input(record, prefix_task_name)?,
            target: self.format_target(record)?,
        })
    }

    /// False for rows without a label: Hugging Face writes `-1` for the unlabelled test splits
    /// of GLUE/SuperGLUE and for SNLI pairs without a gold label. The seed trained on SNLI's as
    /// a target "-1"; loaders should skip them. A missing field counts as labelled, so that
    /// [`Task::format_target`] reports it.
    pub fn is_labelled(&self, record: &Record) -> bool {
        let Some(value) = record.get(&self.target_field) else {
            return true;
        };
        match &self.answer {
            Answer::Label { labels, .. } => {
                let v = value.trim();
                v != "-1" || labels.iter().any(|l| l == "-1")
            }
            Answer::StsbScore => metrics::parse_number(value) != Some(-1.0),
            Answer::Number | Answer::Text => true,
        }
    }

    /// Scores generated texts against the targets, one entry per metric (keys are
    /// [`Metric::name`]s, values ×100). Predictions and references are trimmed; a prediction that
    /// is not a valid label counts as wrong (see [`crate::metrics`]).
    pub fn evaluate<P: AsRef<str>, R: AsRef<str>>(
        &self,
        predictions: &[P],
        references: &[R],
    ) -> Result<BTreeMap<String, f64>> {
        let mut scores = BTreeMap::new();
        for &metric in &self.metrics {
            let score = self
                .score(metric, predictions, references)
                .map_err(|e| self.context(e))?;
            scores.insert(metric.name().to_string(), score);
        }
        Ok(scores)
    }

    fn score<P: AsRef<str>, R: AsRef<str>>(
        &self,
        metric: Metric,
        predictions: &[P],
        references: &[R],
    ) -> Result<f64> {
        let labels = || {
            self.labels().ok_or_else(|| {
                Error::Invalid(format!("metric `{metric}` needs a task with labels"))
            })
        };
        match metric {
            Metric::Accuracy => metrics::accuracy(predictions, references),
            Metric::F1 => match labels()? {
                [_, positive] => metrics::f1(predictions, references, positive),
                other => Err(Error::Invalid(format!(
                    "metric `f1` needs exactly two labels, not {}",
                    other.len()
                ))),
            },
            Metric::MatthewsCorrelation => {
                metrics::matthews_correlation(predictions, references, labels()?)
            }
            Metric::Pearson | Metric::Spearmanr => {
                let (x, y) = numbers(predictions, references)?;
                if metric == Metric::Pearson {
                    metrics::pearson(&x, &y)
                } else {
                    metrics::spearmanr(&x, &y)
                }
            }
            Metric::Bleu => Ok(metrics::corpus_bleu(predictions, references)?.score),
        }
    }

    /// Prefixes an `Invalid` message with the task name.
    fn context(&self, error: Error) -> Error {
        match error {
            Error::Invalid(msg) => Error::Invalid(format!("task `{}`: {msg}", self.name)),
            other => other,
        }
    }
}

/// Predictions and references as numbers: an unparsable prediction becomes
/// [`metrics::UNPARSABLE_NUMBER`] (the seed's convention); an unparsable reference is an error.
fn numbers<P: AsRef<str>, R: AsRef<str>>(
    predictions: &[P],
    references: &[R],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let x = predictions
        .iter()
        .map(|p| metrics::parse_number(p.as_ref()).unwrap_or(metrics::UNPARSABLE_NUMBER))
        .collect();
    let y = references
        .iter()
        .map(|r| {
            metrics::parse_number(r.as_ref()).ok_or_else(|| {
                Error::Invalid(format!("reference {:?} is not a number", r.as_ref()))
            })
        })
        .collect::<Result<_>>()?;
    Ok((x, y))
}

/// STS-B's score on the 0.2 grid with one decimal: `round(5x) / 5`, ties to even like T5's
/// `tf.round`. The seed computed `np.round((x * 5) / 5, decimals=1)`, which is just `x` to one
/// decimal (a misplaced parenthesis) and so produced 51 classes instead of 26.
pub fn round_stsb(score: f64) -> String {
    format!("{:.1}", (score * 5.0).round_ties_even() / 5.0)
}

/// Mean of every metric value of every task (the seed's average over its flattened results).
/// NaN when there is none.
pub fn average_metrics(per_task: &BTreeMap<String, BTreeMap<String, f64>>) -> f64 {
    let values: Vec<f64> = per_task
        .values()
        .flat_map(|m| m.values().copied())
        .collect();
    values.iter().sum::<f64>() / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stsb_rounds_to_the_point_two_grid() {
        let cases = [
            (0.0, "0.0"),
            (3.8, "3.8"),
            (3.75, "3.8"), // 18.75 -> 19 -> 3.8
            (3.65, "3.6"), // 18.25 -> 18 -> 3.6
            (3.7, "3.6"),  // 18.5 is a tie -> 18 (even) -> 3.6
            (1.5, "1.6"),  // 7.5 is a tie -> 8 (even) -> 1.6
            (2.5, "2.4"),  // 12.5 is a tie -> 12 (even) -> 2.4
            (4.93, "5.0"),
            (5.0, "5.0"),
            (0.35, "0.4"),
        ];
        for (x, want) in cases {
            assert_eq!(round_stsb(x), want, "{x}");
        }
    }

    #[test]
    fn average_is_the_mean_of_all_values() {
        let mut per_task = BTreeMap::new();
        per_task.insert(
            "mrpc".to_string(),
            BTreeMap::from([("f1".to_string(), 80.0), ("accuracy".to_string(), 70.0)]),
        );
        per_task.insert(
            "rte".to_string(),
            BTreeMap::from([("accuracy".to_string(), 60.0)]),
        );
        // (80 + 70 + 60) / 3 = 70: every value counts once, not every task.
        assert_eq!(average_metrics(&per_task), 70.0);
        assert!(average_metrics(&BTreeMap::new()).is_nan());
    }
}
