//! The GLUE tasks, formatted as the seed formats them (google-research/ruse
//! `seq2seq/data/tasks.py`). Targets are the class index as text. GLUE's test labels are hidden,
//! so "test" is the validation split unless `split_validation_test` re-splits.

use super::builtin::{hub, labels, labels_with_words, task, tsv, validation_as_test};
use super::task::{Answer, SplitNames, SplitPolicy, Task};
use crate::metrics::Metric;

/// GLUE on the hub (the seed's `glue`).
const GLUE: &str = "nyu-mll/glue";

/// CoLA: is the sentence grammatical? 0 = unacceptable, 1 = acceptable. Matthews correlation.
pub(crate) fn cola() -> Task {
    let mut t = task(
        "cola",
        "sentence: {sentence}",
        "label",
        labels(&["0", "1"]),
        &[Metric::MatthewsCorrelation],
        SplitPolicy::Small,
        validation_as_test(),
        hub(GLUE, Some("cola"), &["sentence", "label"]),
    );
    t.tsv = Some(tsv(
        "CoLA",
        &[("sentence", "sentence"), ("label", "label")],
        Some(&["source", "label", "original_label", "sentence"]),
    ));
    t
}

/// SST-2: sentence sentiment, 0 = negative, 1 = positive.
pub(crate) fn sst2() -> Task {
    let mut t = task(
        "sst2",
        "sentence: {sentence}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Large,
        validation_as_test(),
        hub(GLUE, Some("sst2"), &["sentence", "label"]),
    );
    t.tsv = Some(tsv(
        "SST-2",
        &[("sentence", "sentence"), ("label", "label")],
        None,
    ));
    t
}

/// MRPC: are the sentences paraphrases? 1 = yes. F1 of class 1 and accuracy.
pub(crate) fn mrpc() -> Task {
    let mut t = task(
        "mrpc",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "label",
        labels(&["0", "1"]),
        &[Metric::F1, Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(GLUE, Some("mrpc"), &["sentence1", "sentence2", "label"]),
    );
    t.tsv = Some(tsv(
        "MRPC",
        &[
            ("sentence1", "#1 String"),
            ("sentence2", "#2 String"),
            ("label", "Quality"),
        ],
        None,
    ));
    t
}

/// QQP: are the questions duplicates? 1 = yes. F1 of class 1 and accuracy.
pub(crate) fn qqp() -> Task {
    let mut t = task(
        "qqp",
        "question1: {question1} question2: {question2}",
        "label",
        labels(&["0", "1"]),
        &[Metric::F1, Metric::Accuracy],
        SplitPolicy::Large,
        validation_as_test(),
        hub(GLUE, Some("qqp"), &["question1", "question2", "label"]),
    );
    t.tsv = Some(tsv(
        "QQP",
        &[
            ("question1", "question1"),
            ("question2", "question2"),
            ("label", "is_duplicate"),
        ],
        None,
    ));
    t
}

/// STS-B: similarity from 0 to 5, generated as text on the 0.2 grid ("3.8"); Pearson and
/// Spearman correlations.
pub(crate) fn stsb() -> Task {
    let mut t = task(
        "stsb",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "label",
        Answer::StsbScore,
        &[Metric::Pearson, Metric::Spearmanr],
        SplitPolicy::Small,
        validation_as_test(),
        hub(GLUE, Some("stsb"), &["sentence1", "sentence2", "label"]),
    );
    t.tsv = Some(tsv(
        "STS-B",
        &[
            ("sentence1", "sentence1"),
            ("sentence2", "sentence2"),
            ("label", "score"),
        ],
        None,
    ));
    t
}

/// MNLI: 0 = entailment, 1 = neutral, 2 = contradiction. Validation on the mismatched and test
/// on the matched validation set, as the seed. The seed wrote `hypothesis` without its colon;
/// fixed here.
pub(crate) fn mnli() -> Task {
    let mut t = task(
        "mnli",
        "premise: {premise} hypothesis: {hypothesis}",
        "label",
        labels_with_words(
            &["0", "1", "2"],
            &[
                ("entailment", "0"),
                ("neutral", "1"),
                ("contradiction", "2"),
            ],
        ),
        &[Metric::Accuracy],
        SplitPolicy::Keep,
        SplitNames::new("train", "validation_mismatched", "validation_matched"),
        hub(GLUE, Some("mnli"), &["premise", "hypothesis", "label"]),
    );
    t.tsv = Some(tsv(
        "MNLI",
        &[
            ("premise", "sentence1"),
            ("hypothesis", "sentence2"),
            ("label", "gold_label"),
        ],
        None,
    ));
    t
}

/// QNLI: does the sentence answer the question? 0 = entailment, 1 = not entailment.
pub(crate) fn qnli() -> Task {
    let mut t = task(
        "qnli",
        "question: {question} sentence: {sentence}",
        "label",
        labels_with_words(&["0", "1"], &[("entailment", "0"), ("not_entailment", "1")]),
        &[Metric::Accuracy],
        SplitPolicy::Large,
        validation_as_test(),
        hub(GLUE, Some("qnli"), &["question", "sentence", "label"]),
    );
    t.tsv = Some(tsv(
        "QNLI",
        &[
            ("question", "question"),
            ("sentence", "sentence"),
            ("label", "label"),
        ],
        None,
    ));
    t
}

/// RTE: 0 = entailment, 1 = not entailment.
pub(crate) fn rte() -> Task {
    let mut t = task(
        "rte",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "label",
        labels_with_words(&["0", "1"], &[("entailment", "0"), ("not_entailment", "1")]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(GLUE, Some("rte"), &["sentence1", "sentence2", "label"]),
    );
    t.tsv = Some(tsv(
        "RTE",
        &[
            ("sentence1", "sentence1"),
            ("sentence2", "sentence2"),
            ("label", "label"),
        ],
        None,
    ));
    t
}

/// WNLI: 0 = not entailment, 1 = entailment.
pub(crate) fn wnli() -> Task {
    let mut t = task(
        "wnli",
        "sentence1: {sentence1} sentence2: {sentence2}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(GLUE, Some("wnli"), &["sentence1", "sentence2", "label"]),
    );
    t.tsv = Some(tsv(
        "WNLI",
        &[
            ("sentence1", "sentence1"),
            ("sentence2", "sentence2"),
            ("label", "label"),
        ],
        None,
    ));
    t
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

    fn scores(task: &Task, predictions: &[&str], references: &[&str]) -> Vec<(String, f64)> {
        task.evaluate(predictions, references)
            .unwrap()
            .into_iter()
            .collect()
    }

    fn assert_scores(got: Vec<(String, f64)>, want: &[(&str, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((name, value), (want_name, want_value)) in got.iter().zip(want) {
            assert_eq!(name, want_name);
            assert!(
                (value - want_value).abs() < 1e-9,
                "{name}: expected {want_value}, got {value}"
            );
        }
    }

    #[test]
    fn cola() {
        let t = super::cola();
        let r = record(&[
            ("sentence", "The book was read by Mary."),
            ("label", "1"),
            ("idx", "7"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "cola sentence: The book was read by Mary."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "sentence: The book was read by Mary."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        // refs 1,1,0,0 vs preds 1,0,0,0: TP=1 FN=1 TN=2 FP=0.
        // MCC = (1*2 - 0*1) / sqrt((1+0)(1+1)(2+0)(2+1)) = 2 / sqrt(12) = 0.57735.
        assert_scores(
            scores(&t, &["1", "0", "0", "0"], &["1", "1", "0", "0"]),
            &[("matthews_correlation", 100.0 * 2.0 / 12f64.sqrt())],
        );
    }

    #[test]
    fn sst2() {
        let t = super::sst2();
        let r = record(&[("sentence", "a gripping , funny film "), ("label", "1")]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "sst2 sentence: a gripping , funny film "
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        // 2 of 3 right ("positive" is not a label word).
        assert_scores(
            scores(&t, &["1", "0", "positive"], &["1", "0", "1"]),
            &[("accuracy", 200.0 / 3.0)],
        );
    }

    #[test]
    fn mrpc() {
        let t = super::mrpc();
        let r = record(&[
            ("sentence1", "He said hi."),
            ("sentence2", "He greeted us."),
            ("label", "1"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "mrpc sentence1: He said hi. sentence2: He greeted us."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        // (pred, ref): (1,1) TP, (0,1) FN, (1,0) FP, (0,0) TN, (2,0) invalid -> FP.
        // F1 = 2*1 / (2*1 + 2 + 1) = 2/5 = 40; accuracy 2/5 = 40.
        assert_scores(
            scores(&t, &["1", "0", "1", "0", "2"], &["1", "1", "0", "0", "0"]),
            &[("accuracy", 40.0), ("f1", 40.0)],
        );
    }

    #[test]
    fn qqp() {
        let t = super::qqp();
        let r = record(&[
            ("question1", "How do I learn Rust?"),
            ("question2", "What is the best way to learn Rust?"),
            ("label", "1"),
            ("idx", "3"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "qqp question1: How do I learn Rust? question2: What is the best way to learn Rust?"
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        // TP=2 (first two), FN=1 (invalid "yes" on a positive), TN=1: F1 = 4/5 = 80; acc 3/4.
        assert_scores(
            scores(&t, &["1", "1", "yes", "0"], &["1", "1", "1", "0"]),
            &[("accuracy", 75.0), ("f1", 80.0)],
        );
    }

    #[test]
    fn stsb() {
        let t = super::stsb();
        let r = record(&[
            ("sentence1", "A man plays a guitar."),
            ("sentence2", "A man plays an instrument."),
            ("label", "3.75"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "stsb sentence1: A man plays a guitar. sentence2: A man plays an instrument."
        );
        // round(3.75 * 5) / 5 = 19 / 5 = 3.8.
        assert_eq!(t.format_target(&r).unwrap(), "3.8");
        assert!(t.labels().is_none());
        // Predictions 1, 2, 3, and "three" (unparsable -> -1, the seed's convention);
        // references 1, 2, 3, 4.
        // Pearson: x = 1,2,3,-1 (mean 1.25), y = 1,2,3,4 (mean 2.5).
        // dx = -.25,.75,1.75,-2.25; dy = -1.5,-.5,.5,1.5.
        // Sxy = .375 - .375 + .875 - 3.375 = -2.5; Sxx = .0625+.5625+3.0625+5.0625 = 8.75; Syy = 5.
        // r = -2.5 / sqrt(43.75) = -0.3779645.
        // Spearman: ranks of x = 2,3,4,1, of y = 1,2,3,4: d = 1,1,1,-3, Σd² = 12,
        // rho = 1 - 6*12 / (4*15) = -0.2.
        assert_scores(
            scores(
                &t,
                &["1.0", "2", "3.0", "three"],
                &["1.0", "2.0", "3.0", "4.0"],
            ),
            &[("pearson", -250.0 / 43.75f64.sqrt()), ("spearmanr", -20.0)],
        );
    }

    #[test]
    fn mnli() {
        let t = super::mnli();
        let r = record(&[
            ("premise", "The cat sleeps."),
            ("hypothesis", "An animal rests."),
            ("label", "0"),
        ]);
        // "hypothesis:" with its colon (the seed had "hypothesis").
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "mnli premise: The cat sleeps. hypothesis: An animal rests."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        assert_eq!(
            t.source_split(super::super::Role::Validation),
            "validation_mismatched"
        );
        assert_eq!(
            t.source_split(super::super::Role::Test),
            "validation_matched"
        );
        assert_scores(
            scores(&t, &["0", "1", "1", "2"], &["0", "1", "2", "2"]),
            &[("accuracy", 75.0)],
        );
    }

    #[test]
    fn qnli() {
        let t = super::qnli();
        let r = record(&[
            ("question", "Where is Paris?"),
            ("sentence", "Paris is in France."),
            ("label", "0"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "qnli question: Where is Paris? sentence: Paris is in France."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        assert_scores(scores(&t, &["0", "0"], &["0", "1"]), &[("accuracy", 50.0)]);
    }

    #[test]
    fn rte() {
        let t = super::rte();
        let r = record(&[
            ("sentence1", "No weapons were found."),
            ("sentence2", "Weapons were found."),
            ("label", "1"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "rte sentence1: No weapons were found. sentence2: Weapons were found."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "sentence1: No weapons were found. sentence2: Weapons were found."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        // Whitespace around predictions is ignored: 4 of 5.
        assert_scores(
            scores(&t, &[" 1", "0 ", "1", "1", "0"], &["1", "0", "1", "0", "0"]),
            &[("accuracy", 80.0)],
        );
    }

    #[test]
    fn wnli() {
        let t = super::wnli();
        let r = record(&[
            (
                "sentence1",
                "The trophy didn't fit in the case because it was too big.",
            ),
            ("sentence2", "The trophy was too big."),
            ("label", "1"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "wnli sentence1: The trophy didn't fit in the case because it was too big. \
             sentence2: The trophy was too big."
        );
        assert_eq!(t.format_target(&r).unwrap(), "1");
        assert_scores(scores(&t, &["1"], &["1"]), &[("accuracy", 100.0)]);
    }

    #[test]
    fn unlabelled_rows_are_recognised_not_formatted() {
        let t = super::rte();
        let r = record(&[("sentence1", "a"), ("sentence2", "b"), ("label", "-1")]);
        assert!(!t.is_labelled(&r));
        let err = t.format_target(&r).unwrap_err().to_string();
        assert_eq!(
            err,
            "task `rte`: field `label` = \"-1\" is not one of the labels: 0, 1"
        );
        let stsb = super::stsb();
        let r = record(&[("sentence1", "a"), ("sentence2", "b"), ("label", "-1.0")]);
        assert!(!stsb.is_labelled(&r));
        assert!(stsb.format_target(&r).is_err());
        let r = record(&[("sentence1", "a"), ("sentence2", "b"), ("label", "2")]);
        assert!(stsb.is_labelled(&r));
    }

    #[test]
    fn missing_fields_are_reported_with_the_task() {
        let err = super::rte()
            .format_input(&record(&[("sentence1", "a"), ("label", "0")]), true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "task `rte`: record has no field `sentence2` (it has: label, sentence1)"
        );
    }
}
