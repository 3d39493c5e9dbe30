//! The seed's tasks beyond GLUE and SuperGLUE: NLI (SNLI, SciTail), paraphrase (PAWS),
//! sentiment (IMDB, Yelp polarity) and question classification (TREC).

use super::builtin::{all_splits, hub, labels, task};
use super::task::{Answer, HubSource, SplitNames, SplitPolicy, Task};
use crate::metrics::Metric;

/// SNLI: 0 = entailment, 1 = neutral, 2 = contradiction. Pairs without a gold label carry `-1`
/// ([`Task::is_labelled`] is false for them).
pub(crate) fn snli() -> Task {
    task(
        "snli",
        "premise: {premise} hypothesis: {hypothesis}",
        "label",
        labels(&["0", "1", "2"]),
        &[Metric::Accuracy],
        SplitPolicy::Keep,
        all_splits(),
        hub(
            "stanfordnlp/snli",
            None,
            &["premise", "hypothesis", "label"],
        ),
    )
}

/// SciTail: does the premise entail the science fact? Its `gold_label` is a word; targets are
/// "0" = entailment, "1" = neutral (hyperformer's mapping, "to be similar to other data sets";
/// ruse's last version generated the words themselves). Either the word or the digit is accepted.
pub(crate) fn scitail() -> Task {
    let answer = Answer::Label {
        labels: vec!["0".into(), "1".into()],
        aliases: vec![
            ("entailment".into(), "0".into()),
            ("neutral".into(), "1".into()),
        ],
    };
    task(
        "scitail",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "gold_label",
        answer,
        &[Metric::Accuracy],
        SplitPolicy::Keep,
        all_splits(),
        hub(
            "allenai/scitail",
            Some("snli_format"),
            &["sentence1", "sentence2", "gold_label"],
        ),
    )
}

/// PAWS (labeled_final): are the sentences paraphrases? 1 = yes.
pub(crate) fn paws() -> Task {
    task(
        "paws",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Keep,
        all_splits(),
        hub(
            "google-research-datasets/paws",
            Some("labeled_final"),
            &["sentence1", "sentence2", "label"],
        ),
    )
}

/// IMDB reviews: 0 = negative, 1 = positive. The seed gives the bare text, no field name.
/// No validation split: its test split serves as validation and is halved by
/// `split_validation_test`.
pub(crate) fn imdb() -> Task {
    task(
        "imdb",
        "{text}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        SplitNames::new("train", "test", "test"),
        hub("stanfordnlp/imdb", Some("plain_text"), &["text", "label"]),
    )
}

/// Yelp reviews: 0 = negative (1–2 stars), 1 = positive (3–4 stars). No validation split: 1000
/// training reviews become it under `split_validation_test`, and the test split stays the test.
pub(crate) fn yelp_polarity() -> Task {
    task(
        "yelp_polarity",
        "sentence: {text}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Large,
        SplitNames::new("train", "test", "test"),
        hub(
            "fancyzhx/yelp_polarity",
            Some("plain_text"),
            &["text", "label"],
        ),
    )
}

/// TREC question type, coarse: 0 ABBR, 1 ENTY, 2 DESC, 3 HUM, 4 LOC, 5 NUM. The hub calls the
/// column `coarse_label` (the seed's script version called it `label-coarse`). The repository
/// holds a loading script; its parquet files are on the hub's `refs/convert/parquet` branch.
pub(crate) fn trec() -> Task {
    task(
        "trec",
        "sentence: {text}",
        "coarse_label",
        labels(&["0", "1", "2", "3", "4", "5"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        SplitNames::new("train", "test", "test"),
        HubSource {
            repo: "CogComp/trec@refs/convert/parquet".into(),
            config: None,
            columns: vec![
                ("text".into(), "text".into()),
                ("coarse_label".into(), "coarse_label".into()),
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Record;

    fn record(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn accuracy(task: &Task, predictions: &[&str], references: &[&str]) -> f64 {
        let scores = task.evaluate(predictions, references).unwrap();
        assert_eq!(scores.keys().collect::<Vec<_>>(), ["accuracy"]);
        scores["accuracy"]
    }

    #[test]
    fn snli() {
        let t = super::snli();
        let r = record(&[
            ("premise", "A dog runs."),
            ("hypothesis", "An animal moves."),
            ("label", "0"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "snli premise: A dog runs. hypothesis: An animal moves."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        let unlabelled = record(&[("premise", "a"), ("hypothesis", "b"), ("label", "-1")]);
        assert!(!t.is_labelled(&unlabelled));
        assert_eq!(
            accuracy(&t, &["0", "2", "1", "1"], &["0", "2", "2", "1"]),
            75.0
        );
    }

    #[test]
    fn scitail() {
        let t = super::scitail();
        let r = record(&[
            ("sentence1", "Plants make food by photosynthesis."),
            ("sentence2", "Photosynthesis makes food."),
            ("gold_label", "entailment"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "scitail sentence1: Plants make food by photosynthesis. \
             sentence2: Photosynthesis makes food."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        let neutral = record(&[
            ("sentence1", "a"),
            ("sentence2", "b"),
            ("gold_label", "neutral"),
        ]);
        assert_eq!(t.format_target(&neutral).unwrap(), "1");
        // The words are not label words once generated: 1 of 2.
        assert_eq!(accuracy(&t, &["1", "entailment"], &["1", "0"]), 50.0);
    }

    #[test]
    fn paws() {
        let t = super::paws();
        let r = record(&[
            ("sentence1", "Bradd Crellin represented BARLA."),
            ("sentence2", "BARLA was represented by Bradd Crellin."),
            ("label", "1"),
            ("id", "12"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "paws sentence1: Bradd Crellin represented BARLA. \
             sentence2: BARLA was represented by Bradd Crellin."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        assert_eq!(
            accuracy(&t, &["1", "1", "0", "0"], &["1", "0", "0", "0"]),
            75.0
        );
    }

    #[test]
    fn imdb() {
        let t = super::imdb();
        let r = record(&[
            ("text", "One of the best films I have seen."),
            ("label", "1"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "imdb One of the best films I have seen."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "One of the best films I have seen."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        assert_eq!(accuracy(&t, &["0", "0"], &["0", "1"]), 50.0);
    }

    #[test]
    fn yelp_polarity() {
        let t = super::yelp_polarity();
        let r = record(&[("text", "Cold food, rude staff."), ("label", "0")]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "yelp_polarity sentence: Cold food, rude staff."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        assert_eq!(accuracy(&t, &["0", "1", "1"], &["0", "1", "1"]), 100.0);
    }

    #[test]
    fn trec() {
        let t = super::trec();
        let r = record(&[
            ("text", "How far is it from Denver to Aspen ?"),
            ("coarse_label", "5"),
            ("fine_label", "40"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "trec sentence: How far is it from Denver to Aspen ?"
        );
        assert_eq!(t.format_target(&r).unwrap(), "5");
        // "6" is not a TREC class: 3 of 5.
        assert_eq!(
            accuracy(&t, &["5", "4", "3", "6", "0"], &["5", "4", "3", "2", "1"]),
            60.0
        );
    }
}
