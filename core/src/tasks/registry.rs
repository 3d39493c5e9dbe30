//! The built-in tasks by name (custom tasks from a config build themselves, see
//! [`CustomTaskConfig`](super::CustomTaskConfig), and [`resolve`](super::resolve) looks up both).

use super::task::Task;
use super::{extra, glue, superglue, translation};
use crate::error::{Error, Result};

/// Makes one built-in task.
type Constructor = fn() -> Task;

/// Every built-in task: its name and constructor.
const BUILT_IN: &[(&str, Constructor)] = &[
    ("cola", glue::cola),
    ("sst2", glue::sst2),
    ("mrpc", glue::mrpc),
    ("qqp", glue::qqp),
    ("stsb", glue::stsb),
    ("mnli", glue::mnli),
    ("qnli", glue::qnli),
    ("rte", glue::rte),
    ("wnli", glue::wnli),
    ("boolq", superglue::boolq),
    ("cb", superglue::cb),
    ("superglue-rte", superglue::superglue_rte),
    ("copa", superglue::copa),
    ("snli", extra::snli),
    ("scitail", extra::scitail),
    ("paws", extra::paws),
    ("imdb", extra::imdb),
    ("yelp_polarity", extra::yelp_polarity),
    ("trec", extra::trec),
    ("wmt16-en-ro", translation::wmt16_en_ro),
];

/// The built-in task names, GLUE first.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(name, _)| *name)
}

/// Whether `name` is a built-in task.
pub fn is_built_in(name: &str) -> bool {
    names().any(|n| n == name)
}

/// The built-in task called `name`; the error lists the known names.
pub fn get(name: &str) -> Result<Task> {
    BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "unknown task `{name}`; known tasks: {}",
                names().collect::<Vec<_>>().join(", ")
            ))
        })
}

/// Every built-in task.
pub fn all() -> Vec<Task> {
    BUILT_IN.iter().map(|(_, make)| make()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;
    use crate::tasks::SplitPolicy;

    #[test]
    fn every_built_in_is_consistent() {
        let tasks = all();
        assert_eq!(tasks.len(), 20);
        for (task, name) in tasks.iter().zip(names()) {
            assert_eq!(task.name(), name);
            assert!(!task.metrics().is_empty(), "{name}");
            assert!(task.template().fields().count() >= 1, "{name}");
            let hub = task.hub().expect("built-ins say where their data is");
            // Every template field and the target come from a hub column.
            for field in task.template().fields().chain([task.target_field()]) {
                assert!(
                    hub.columns.iter().any(|(f, _)| f == field),
                    "{name}: no column for `{field}`"
                );
            }
            if task.metrics().contains(&Metric::F1) {
                assert_eq!(task.labels().map(<[String]>::len), Some(2), "{name}");
            }
        }
    }

    #[test]
    fn the_seed_size_lists() {
        let policy = |n: &str| get(n).unwrap().split_policy();
        for n in [
            "cola",
            "wnli",
            "rte",
            "trec",
            "mrpc",
            "stsb",
            "imdb",
            "boolq",
            "cb",
            "superglue-rte",
            "copa",
        ] {
            assert_eq!(policy(n), SplitPolicy::Small, "{n}");
        }
        for n in ["sst2", "qqp", "qnli", "yelp_polarity"] {
            assert_eq!(policy(n), SplitPolicy::Large, "{n}");
        }
        for n in ["mnli", "snli", "scitail", "paws", "wmt16-en-ro"] {
            assert_eq!(policy(n), SplitPolicy::Keep, "{n}");
        }
    }

    #[test]
    fn unknown_task_lists_the_known_ones() {
        let err = get("glue-rte").unwrap_err().to_string();
        assert!(err.starts_with("unknown task `glue-rte`; known tasks: cola, sst2, mrpc"));
        assert!(err.ends_with("trec, wmt16-en-ro"), "{err}");
    }
}
