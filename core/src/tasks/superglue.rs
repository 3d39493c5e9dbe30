//! SuperGLUE tasks. BoolQ follows the seed (ruse's `boolq`: Google's BoolQ with "False"/"True"
//! targets); CB and RTE follow hyperformer's `superglue-cb` / `superglue-rte`; COPA is not in the
//! seed and uses T5's own field order. Test labels are hidden, so "test" is the validation split
//! unless `split_validation_test` re-splits it (all four are small).

use super::builtin::{hub, labels, task, validation_as_test};
use super::task::{Answer, SplitPolicy, Task};
use crate::metrics::Metric;

/// SuperGLUE on the hub (the seed's `super_glue`).
const SUPER_GLUE: &str = "aps/super_glue";

/// BoolQ: does the passage answer the question with yes? Targets "False"/"True" (Python's
/// `str(bool)`, as the seed). Read from `google/boolq` (the seed's `boolq`: the same 9427/3270
/// examples as SuperGLUE's), whose `answer` column is a boolean; the aliases also accept
/// SuperGLUE's 0/1 `label` should a loader put that in the `answer` field.
pub(crate) fn boolq() -> Task {
    let answer = Answer::Label {
        labels: vec!["False".into(), "True".into()],
        aliases: [
            ("false", "False"),
            ("true", "True"),
            ("0", "False"),
            ("1", "True"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
    };
    task(
        "boolq",
        "question: {question} passage: {passage}",
        "answer",
        answer,
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub("google/boolq", None, &["question", "passage", "answer"]),
    )
}

/// CommitmentBank: 0 = entailment, 1 = contradiction, 2 = neutral. Accuracy, as the seed
/// (SuperGLUE also reports macro-F1).
pub(crate) fn cb() -> Task {
    task(
        "cb",
        "premise: {premise} hypothesis: {hypothesis}",
        "label",
        labels(&["0", "1", "2"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(SUPER_GLUE, Some("cb"), &["premise", "hypothesis", "label"]),
    )
}

/// SuperGLUE's RTE (the GLUE data with premise/hypothesis names): 0 = entailment,
/// 1 = not entailment. Named apart from GLUE's `rte` so both can be trained together.
/// The seed listed it in neither split list (so its validation and test were the same data);
/// it is small like GLUE's `rte`.
pub(crate) fn superglue_rte() -> Task {
    task(
        "superglue-rte",
        "premise: {premise} hypothesis: {hypothesis}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(SUPER_GLUE, Some("rte"), &["premise", "hypothesis", "label"]),
    )
}

/// COPA: which choice is the cause/effect (`question`) of the premise? 0 = choice1, 1 = choice2.
/// Fields in T5's order (its GLUE preprocessor sorts them), which T5 v1.0 checkpoints saw in
/// pre-training.
pub(crate) fn copa() -> Task {
    task(
        "copa",
        "choice1: {choice1} choice2: {choice2} premise: {premise} question: {question}",
        "label",
        labels(&["0", "1"]),
        &[Metric::Accuracy],
        SplitPolicy::Small,
        validation_as_test(),
        hub(
            SUPER_GLUE,
            Some("copa"),
            &["premise", "choice1", "choice2", "question", "label"],
        ),
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
    fn boolq() {
        let t = super::boolq();
        let r = record(&[
            ("question", "is the sky blue"),
            ("passage", "The sky appears blue."),
            ("answer", "true"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "boolq question: is the sky blue passage: The sky appears blue."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "question: is the sky blue passage: The sky appears blue."
        );
        assert_eq!(t.format_target(&r).unwrap(), "True");
        for (value, word) in [
            ("false", "False"),
            ("False", "False"),
            ("1", "True"),
            ("0", "False"),
        ] {
            let r = record(&[("question", "q"), ("passage", "p"), ("answer", value)]);
            assert_eq!(t.format_target(&r).unwrap(), word, "{value}");
        }
        // "true" is not the label word "True": 2 of 4.
        assert_eq!(
            accuracy(
                &t,
                &["True", "False", "true", "False"],
                &["True", "False", "True", "True"]
            ),
            50.0
        );
    }

    #[test]
    fn cb() {
        let t = super::cb();
        let r = record(&[
            ("premise", "It was raining, I think."),
            ("hypothesis", "It was raining."),
            ("label", "2"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "cb premise: It was raining, I think. hypothesis: It was raining."
        );
        assert_eq!(t.format_target(&r).unwrap(), "2");
        assert_eq!(
            accuracy(&t, &["0", "1", "2", "2"], &["0", "1", "1", "2"]),
            75.0
        );
    }

    #[test]
    fn superglue_rte() {
        let t = super::superglue_rte();
        let r = record(&[
            ("premise", "Dana Reeve died of cancer."),
            ("hypothesis", "Dana Reeve is dead."),
            ("label", "0"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "superglue-rte premise: Dana Reeve died of cancer. hypothesis: Dana Reeve is dead."
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        assert_eq!(
            accuracy(&t, &["0", "0", "1"], &["0", "1", "1"]),
            200.0 / 3.0
        );
    }

    #[test]
    fn copa() {
        let t = super::copa();
        let r = record(&[
            ("premise", "My body cast a shadow over the grass."),
            ("choice1", "The sun was rising."),
            ("choice2", "The grass was cut."),
            ("question", "cause"),
            ("label", "0"),
        ]);
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "copa choice1: The sun was rising. choice2: The grass was cut. \
             premise: My body cast a shadow over the grass. question: cause"
        );
        assert_eq!(t.format_target(&r).unwrap(), "0");
        assert_eq!(accuracy(&t, &["1", "1"], &["0", "1"]), 50.0);
    }
}
