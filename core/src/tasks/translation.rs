//! Translation: WMT16 English → Romanian, scored with corpus BLEU.

use super::builtin::{all_splits, task};
use super::task::{Answer, HubSource, SplitPolicy, Task};
use crate::metrics::Metric;

/// WMT16 en→ro (the seed's `wmt16-en-ro`). The input prefix is T5's pre-training instruction
/// `translate English to Romanian:`, so pretrained T5 checkpoints translate out of the box; the
/// seed wrote `Translate English to Romanian` (capital T, no colon). As for every task, the
/// prefix is left out when training with adapters (`prefix_task_name = false`), leaving the
/// bare English sentence.
pub(crate) fn wmt16_en_ro() -> Task {
    let mut t = task(
        "wmt16-en-ro",
        "{en}",
        "ro",
        Answer::Text,
        &[Metric::Bleu],
        SplitPolicy::Keep,
        all_splits(),
        HubSource {
            repo: "wmt/wmt16".into(),
            config: Some("ro-en".into()),
            columns: vec![
                ("en".into(), "translation.en".into()),
                ("ro".into(), "translation.ro".into()),
            ],
        },
    );
    t.prefix = "translate English to Romanian:".into();
    t
}

#[cfg(test)]
mod tests {
    use crate::data::Record;

    #[test]
    fn wmt16_en_ro() {
        let t = super::wmt16_en_ro();
        let r: Record = [
            ("en", "The house is wonderful."),
            ("ro", "Casa este minunată."),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            t.format_input(&r, true).unwrap(),
            "translate English to Romanian: The house is wonderful."
        );
        assert_eq!(
            t.format_input(&r, false).unwrap(),
            "The house is wonderful."
        );
        assert_eq!(t.format_target(&r).unwrap(), "Casa este minunată.");
        assert!(t.labels().is_none());

        // One exact translation and one partial, as a corpus:
        // hyp 1 "Casa este minunată ." (13a splits the period) = its reference: 4 tokens.
        // hyp 2 "Casa este mare ." vs ref "Casa este frumoasă .": 4 tokens.
        // 1-grams 4 + 3 = 7 / 8; 2-grams 3 + 1 = 4 / 6 ("Casa este");
        // 3-grams 2 + 0 = 2 / 4; 4-grams 1 + 0 = 1 / 2. Lengths equal, BP = 1.
        // BLEU = 100 * (7/8 * 4/6 * 2/4 * 1/2)^(1/4) = 100 * (0.1458333)^(1/4) = 61.7965 (sacrebleu: 61.79654585112238)
        let scores = t
            .evaluate(
                &["Casa este minunată.", "Casa este mare."],
                &["Casa este minunată.", "Casa este frumoasă."],
            )
            .unwrap();
        let expected = 100.0 * (7.0 / 8.0 * 4.0 / 6.0 * 2.0 / 4.0 * 1.0 / 2.0f64).powf(0.25);
        assert_eq!(scores.keys().collect::<Vec<_>>(), ["bleu"]);
        assert!((scores["bleu"] - expected).abs() < 1e-9, "{scores:?}");
    }
}
