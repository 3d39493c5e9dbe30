//! Shorthands the built-in task tables share.

use super::task::{Answer, HubSource, SplitNames, SplitPolicy, Task, TsvLayout};
use super::template::Template;
use crate::metrics::Metric;

/// A built-in task whose input prefix is its name.
#[allow(clippy::too_many_arguments)]
pub(crate) fn task(
    name: &str,
    template: &str,
    target_field: &str,
    answer: Answer,
    metrics: &[Metric],
    split_policy: SplitPolicy,
    splits: SplitNames,
    hub: HubSource,
) -> Task {
    Task {
        name: name.to_string(),
        prefix: name.to_string(),
        // Built-in templates are constants; the tests parse every one of them.
        template: Template::parse(template).expect("built-in template"),
        target_field: target_field.to_string(),
        answer,
        metrics: metrics.to_vec(),
        split_policy,
        splits,
        hub: Some(hub),
        tsv: None,
    }
}

/// Label words, with no aliases.
pub(crate) fn labels(words: &[&str]) -> Answer {
    Answer::Label {
        labels: words.iter().map(|w| w.to_string()).collect(),
        aliases: Vec::new(),
    }
}

/// A hub source whose record fields are named like its columns.
pub(crate) fn hub(repo: &str, config: Option<&str>, columns: &[&str]) -> HubSource {
    HubSource {
        repo: repo.to_string(),
        config: config.map(str::to_string),
        columns: columns
            .iter()
            .map(|c| (c.to_string(), c.to_string()))
            .collect(),
    }
}

/// `train` / `validation` / `validation`: the test split is unlabelled, so "test" is the
/// validation split unless `split_validation_test` re-splits it.
pub(crate) fn validation_as_test() -> SplitNames {
    SplitNames::new("train", "validation", "validation")
}

/// `train` / `validation` / `test`, all labelled.
pub(crate) fn all_splits() -> SplitNames {
    SplitNames::new("train", "validation", "test")
}

/// GLUE's TSV layout: `columns` are `(record field, TSV column)`, `header` the column names of
/// files that have no header line.
pub(crate) fn tsv(dir: &str, columns: &[(&str, &str)], header: Option<&[&str]>) -> TsvLayout {
    TsvLayout {
        dir: dir.to_string(),
        header: header.map(|h| h.iter().map(|c| c.to_string()).collect()),
        columns: columns
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect(),
    }
}

/// Label indices that GLUE's TSVs write as words (`aliases`: word → index).
pub(crate) fn labels_with_words(indices: &[&str], aliases: &[(&str, &str)]) -> Answer {
    Answer::Label {
        labels: indices.iter().map(|w| w.to_string()).collect(),
        aliases: aliases
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
}
