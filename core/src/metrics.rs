//! Evaluation metrics, all scaled to 0–100 (correlations to −100–100) like the seed project.
//!
//! The seed (google-research/ruse `seq2seq/metrics/metrics.py`, with its successor
//! rabeehk/hyperformer) decodes the generated text, strips it, and scores strings:
//!
//! | name                   | what                                   | seed's implementation        |
//! |------------------------|----------------------------------------|------------------------------|
//! | `accuracy`             | exact match of stripped strings        | numpy `==`                   |
//! | `f1`                   | binary F1 of the positive label        | `f1_score_with_invalid`      |
//! | `matthews_correlation` | Matthews correlation (multi-class)     | `sklearn.matthews_corrcoef`  |
//! | `pearson`              | Pearson's r                            | `scipy.stats.pearsonr`       |
//! | `spearmanr`            | Spearman's ρ, ties get average ranks   | `scipy.stats.spearmanr`      |
//! | `bleu`                 | corpus BLEU, sacrebleu's defaults      | `sacrebleu.corpus_bleu`      |
//!
//! A prediction that is not a valid label always counts as wrong:
//! - `accuracy`: it simply never equals the reference.
//! - `f1`: the seed replaces it by the opposite of the reference, so it is a false negative when
//!   the reference is the positive label and a false positive otherwise.
//! - `matthews_correlation`: the seed parses labels with `int(s)` and maps failures to `-1`, one
//!   extra class that no reference has; here every prediction outside the label list goes to that
//!   one extra class, which gives sklearn's multi-class value exactly.
//! - `pearson` / `spearmanr`: the seed parses with `float(s)` and maps failures to `-1.0`
//!   ([`UNPARSABLE_NUMBER`]), a value outside STS-B's 0–5 range; we do the same (and treat
//!   `nan`/`inf`, which Python would accept, as unparsable too).
//!
//! When a correlation is undefined (a constant input) it is 0, as in hyperformer, which guards
//! scipy's NaN that way; sklearn's MCC and F1 are 0 in their undefined cases too.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A metric a task can be scored with; [`Metric::name`] is the key in evaluation results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Accuracy,
    F1,
    MatthewsCorrelation,
    Pearson,
    Spearmanr,
    Bleu,
}

impl Metric {
    /// Every metric, in the order of the table above.
    pub const ALL: [Metric; 6] = [
        Metric::Accuracy,
        Metric::F1,
        Metric::MatthewsCorrelation,
        Metric::Pearson,
        Metric::Spearmanr,
        Metric::Bleu,
    ];

    /// The name used in configs and as the key of evaluation results (HF `evaluate`'s GLUE names).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::MatthewsCorrelation => "matthews_correlation",
            Metric::Pearson => "pearson",
            Metric::Spearmanr => "spearmanr",
            Metric::Bleu => "bleu",
        }
    }

    /// Parses a metric name; the error lists the valid names.
    pub fn from_name(name: &str) -> Result<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let valid: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                Error::Invalid(format!(
                    "unknown metric `{name}`; expected one of: {}",
                    valid.join(", ")
                ))
            })
    }

    /// Whether the metric reads predictions as numbers (`pearson`, `spearmanr`).
    pub fn is_correlation(self) -> bool {
        matches!(self, Metric::Pearson | Metric::Spearmanr)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Metric> {
        Metric::from_name(s)
    }
}

/// Predictions and references must pair up one to one, and there must be something to score.
fn check_pairs(metric: &str, predictions: usize, references: usize) -> Result<()> {
    if predictions != references {
        return Err(Error::Invalid(format!(
            "{metric}: {predictions} predictions but {references} references"
        )));
    }
    if predictions == 0 {
        return Err(Error::Invalid(format!("{metric}: no examples to score")));
    }
    Ok(())
}

/// Percentage of predictions equal to their reference, both trimmed.
pub fn accuracy<P: AsRef<str>, R: AsRef<str>>(predictions: &[P], references: &[R]) -> Result<f64> {
    check_pairs("accuracy", predictions.len(), references.len())?;
    let correct = predictions
        .iter()
        .zip(references)
        .filter(|(p, r)| p.as_ref().trim() == r.as_ref().trim())
        .count();
    Ok(100.0 * correct as f64 / predictions.len() as f64)
}

/// Binary F1 of the `positive` label, ×100 (sklearn's `f1_score`, `pos_label` = `positive`).
///
/// A reference is positive when it equals `positive`, negative otherwise. A prediction counts as
/// positive only when it equals `positive`; a prediction that is neither `positive` nor its
/// (negative) reference is an invalid label, which the seed turns into the opposite of the
/// reference: a false positive. All strings are trimmed. 0 when there is no positive at all.
pub fn f1<P: AsRef<str>, R: AsRef<str>>(
    predictions: &[P],
    references: &[R],
    positive: &str,
) -> Result<f64> {
    check_pairs("f1", predictions.len(), references.len())?;
    let positive = positive.trim();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (p, r) in predictions.iter().zip(references) {
        let (p, r) = (p.as_ref().trim(), r.as_ref().trim());
        match (r == positive, p == positive) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            // A true negative only when the prediction is exactly the negative reference.
            (false, false) if p != r => fp += 1,
            (false, false) => {}
        }
    }
    let denominator = 2 * tp + fp + fn_;
    Ok(if denominator == 0 {
        0.0
    } else {
        100.0 * (2 * tp) as f64 / denominator as f64
    })
}

/// Matthews correlation coefficient over `labels` (any number of classes), ×100.
///
/// sklearn's multi-class formula on the confusion matrix `C` with `t_k` true and `p_k` predicted
/// counts of class `k`, `c` correct and `s` examples:
/// `(c·s − Σ t_k p_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²))`, 0 when the denominator is 0.
/// For two classes this is `(TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))`.
/// Predictions outside `labels` all fall into one extra class (the seed's `-1`).
/// A reference outside `labels` is an error.
pub fn matthews_correlation<P: AsRef<str>, R: AsRef<str>, L: AsRef<str>>(
    predictions: &[P],
    references: &[R],
    labels: &[L],
) -> Result<f64> {
    check_pairs("matthews_correlation", predictions.len(), references.len())?;
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_ref().trim(), i))
        .collect();
    let invalid = labels.len();
    let mut true_counts = vec![0f64; labels.len() + 1];
    let mut pred_counts = vec![0f64; labels.len() + 1];
    let mut correct = 0f64;
    for (p, r) in predictions.iter().zip(references) {
        let r = r.as_ref().trim();
        let t = *index.get(r).ok_or_else(|| {
            Error::Invalid(format!(
                "matthews_correlation: reference `{r}` is not one of the labels"
            ))
        })?;
        let p = index.get(p.as_ref().trim()).copied().unwrap_or(invalid);
        true_counts[t] += 1.0;
        pred_counts[p] += 1.0;
        if p == t {
            correct += 1.0;
        }
    }
    let s = predictions.len() as f64;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let cov_tp = correct * s - dot(&true_counts, &pred_counts);
    let cov_pp = s * s - dot(&pred_counts, &pred_counts);
    let cov_tt = s * s - dot(&true_counts, &true_counts);
    Ok(if cov_pp * cov_tt == 0.0 {
        0.0
    } else {
        100.0 * cov_tp / (cov_tt * cov_pp).sqrt()
    })
}

/// What an unparsable number becomes before a correlation: the seed's `string_to_float` default.
pub const UNPARSABLE_NUMBER: f64 = -1.0;

/// Reads a generated number: trimmed, finite, else `None` (see [`UNPARSABLE_NUMBER`]).
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Pearson's correlation coefficient, ×100; 0 when either input is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pairs("pearson", x.len(), y.len())?;
    Ok(100.0 * correlation(x, y))
}

/// Spearman's rank correlation, ×100: Pearson's r of the ranks, ties sharing their average rank
/// (scipy's `spearmanr`); 0 when either input is constant.
pub fn spearmanr(x: &[f64], y: &[f64]) -> Result<f64> {
    check_pairs("spearmanr", x.len(), y.len())?;
    Ok(100.0 * correlation(&average_ranks(x), &average_ranks(y)))
}

/// Pearson's r in [−1, 1], 0 when undefined. Centered sums keep it exact for the small integer
/// inputs of the tests and stable for large offsets.
fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx * syy).sqrt();
    if r.is_finite() {
        // Rounding can push |r| a hair past 1.
        r.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// 1-based ranks; tied values all get the mean of the ranks they span (scipy's `rankdata`,
/// method "average"). NaNs sort last.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean is (start + 1 + end) / 2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Largest n-gram order of BLEU.
pub const BLEU_MAX_ORDER: usize = 4;

/// Corpus BLEU and the statistics it came from (sacrebleu's `BLEUScore`).
#[derive(Clone, Debug, PartialEq)]
pub struct BleuScore {
    /// BLEU, 0–100.
    pub score: f64,
    /// Matched n-grams of each order (clipped by the reference counts), summed over the corpus.
    pub correct: [usize; BLEU_MAX_ORDER],
    /// Hypothesis n-grams of each order, summed over the corpus.
    pub total: [usize; BLEU_MAX_ORDER],
    /// n-gram precisions in percent, after smoothing.
    pub precisions: [f64; BLEU_MAX_ORDER],
    /// `exp(1 − ref_len/sys_len)` when the hypotheses are shorter, else 1.
    pub brevity_penalty: f64,
    /// Hypothesis tokens.
    pub sys_len: usize,
    /// Reference tokens (per segment, the reference length closest to the hypothesis).
    pub ref_len: usize,
}

/// Corpus BLEU with one reference per hypothesis, as `sacrebleu.corpus_bleu(hyps, [refs])` with
/// its defaults: the `13a` tokenizer ([`tokenize_13a`]), case-sensitive, 1- to 4-grams, the
/// brevity penalty, and `exp` smoothing (an order with no match gets precision
/// `100 / (2^k · total)` for its k-th such order, as mteval-v13a). The seed called this through
/// `calculate_bleu` and rounded to 4 decimals; we do not round.
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[R],
) -> Result<BleuScore> {
    corpus_bleu_multi(hypotheses, &[references])
}

/// Corpus BLEU with several references per hypothesis, laid out as sacrebleu's: each element of
/// `reference_streams` is one full set of references, parallel to `hypotheses`. n-gram counts
/// are clipped by their maximum over the references; the reference length of a segment is the
/// one closest to the hypothesis length (the shorter on a tie).
pub fn corpus_bleu_multi<H: AsRef<str>, R: AsRef<str>, S: AsRef<[R]>>(
    hypotheses: &[H],
    reference_streams: &[S],
) -> Result<BleuScore> {
    if reference_streams.is_empty() {
        return Err(Error::Invalid("bleu: no references".into()));
    }
    for stream in reference_streams {
        check_pairs("bleu", hypotheses.len(), stream.as_ref().len())?;
    }
    let mut correct = [0usize; BLEU_MAX_ORDER];
    let mut total = [0usize; BLEU_MAX_ORDER];
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (i, hypothesis) in hypotheses.iter().enumerate() {
        let refs: Vec<String> = reference_streams
            .iter()
            .map(|s| bleu_preprocess(s.as_ref()[i].as_ref()))
            .collect();
        let ref_tokens: Vec<Vec<&str>> = refs.iter().map(|r| py_split(r)).collect();
        let mut ref_counts: HashMap<&[&str], usize> = HashMap::new();
        for tokens in &ref_tokens {
            for (ngram, count) in ngram_counts(tokens) {
                let entry = ref_counts.entry(ngram).or_insert(0);
                *entry = (*entry).max(count);
            }
        }
        let hyp = bleu_preprocess(hypothesis.as_ref());
        let hyp_tokens = py_split(&hyp);
        for (ngram, count) in ngram_counts(&hyp_tokens) {
            let order = ngram.len() - 1;
            total[order] += count;
            correct[order] += count.min(ref_counts.get(ngram).copied().unwrap_or(0));
        }
        sys_len += hyp_tokens.len();
        ref_len += closest_ref_len(hyp_tokens.len(), ref_tokens.iter().map(Vec::len));
    }
    Ok(bleu_from_stats(correct, total, sys_len, ref_len))
}

/// sacrebleu's `_preprocess_segment` without lowercasing: strip trailing whitespace, tokenize.
fn bleu_preprocess(segment: &str) -> String {
    tokenize_13a(segment.trim_end_matches(is_py_space))
}

/// Every n-gram of order 1..=4 with its count.
fn ngram_counts<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    for n in 1..=BLEU_MAX_ORDER {
        for ngram in tokens.windows(n) {
            *counts.entry(ngram).or_insert(0) += 1;
        }
    }
    counts
}

/// The reference length closest to the hypothesis length, the shorter one on a tie.
fn closest_ref_len(hyp_len: usize, ref_lens: impl Iterator<Item = usize>) -> usize {
    ref_lens
        .min_by_key(|&r| (r.abs_diff(hyp_len), r))
        .unwrap_or(0)
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"`, `effective_order=False`.
fn bleu_from_stats(
    correct: [usize; BLEU_MAX_ORDER],
    total: [usize; BLEU_MAX_ORDER],
    sys_len: usize,
    ref_len: usize,
) -> BleuScore {
    let brevity_penalty = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0.0; BLEU_MAX_ORDER];
    let mut score = 0.0;
    // No match at all: 0 without smoothing (sacrebleu #141).
    if correct.iter().any(|&c| c > 0) {
        let mut smooth = 1.0;
        for n in 0..BLEU_MAX_ORDER {
            if total[n] == 0 {
                // Hypotheses too short for this order: its precision stays 0, and so does BLEU.
                break;
            }
            precisions[n] = if correct[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * total[n] as f64)
            } else {
                100.0 * correct[n] as f64 / total[n] as f64
            };
        }
        // sacrebleu's `my_log` floors log(0) at -9999999999, which makes BLEU exactly 0.
        let log_sum: f64 = precisions
            .iter()
            .map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() })
            .sum();
        score = brevity_penalty * (log_sum / BLEU_MAX_ORDER as f64).exp();
    }
    BleuScore {
        score,
        correct,
        total,
        precisions,
        brevity_penalty,
        sys_len,
        ref_len,
    }
}

/// sacrebleu's `13a` tokenizer (mteval-v13a's, the WMT standard), character for character:
/// drop `<skipped>`, join `-`+newline, newlines to spaces, unescape `&quot; &amp; &lt; &gt;`, then
/// four regex passes over ` line `:
/// 1. `[{-~[-\` -&(-+:-@/]` → ` \1 ` (punctuation and symbols except `' - . ,` get spaces);
/// 2. `([^0-9])([.,])` → `\1 \2 ` (period/comma not after a digit);
/// 3. `([.,])([^0-9])` → ` \1 \2` (period/comma not before a digit);
/// 4. `([0-9])(-)` → `\1 \2 ` (dash after a digit);
///
/// and finally whitespace runs become single spaces (Python's `str.split`).
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let chars: Vec<char> = format!(" {line} ").chars().collect();

    // Pass 1: one-character pattern.
    let mut pass1 = Vec::with_capacity(chars.len() * 2);
    for &c in &chars {
        if is_13a_symbol(c) {
            pass1.extend([' ', c, ' ']);
        } else {
            pass1.push(c);
        }
    }
    let is_digit = |c: char| c.is_ascii_digit();
    let is_period_comma = |c: char| c == '.' || c == ',';
    let pass2 = substitute_pairs(
        &pass1,
        |a, b| !is_digit(a) && is_period_comma(b),
        |a, b| vec![a, ' ', b, ' '],
    );
    let pass3 = substitute_pairs(
        &pass2,
        |a, b| is_period_comma(a) && !is_digit(b),
        |a, b| vec![' ', a, ' ', b],
    );
    let pass4 = substitute_pairs(
        &pass3,
        |a, b| is_digit(a) && b == '-',
        |a, b| vec![a, ' ', b, ' '],
    );
    let text: String = pass4.into_iter().collect();
    py_split(&text).join(" ")
}

/// The first regex's character class: `{|}~`, `[\]^_\``, space to `&`, `(` to `+`, `:` to `@`, `/`.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// `re.sub` of a two-character pattern: scan left to right, and after a match resume after it
/// (matches never overlap), exactly as Python's regex engine does for a fixed-width pattern.
fn substitute_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> Vec<char>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Python's `str.isspace`: Unicode White_Space plus the ASCII separators U+001C–U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no arguments.
fn py_split(text: &str) -> Vec<&str> {
    text.split(is_py_space).filter(|t| !t.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn metric_names_round_trip_and_unknown_lists_valid() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()).unwrap(), m);
            assert_eq!(m.to_string().parse::<Metric>().unwrap(), m);
        }
        let err = Metric::from_name("acc").unwrap_err().to_string();
        assert!(err.contains("unknown metric `acc`"), "{err}");
        assert!(err.contains("accuracy, f1, matthews_correlation, pearson, spearmanr, bleu"));
    }

    #[test]
    fn accuracy_trims_and_counts_invalid_as_wrong() {
        // 3 of 4 match: " 1" == "1", "0" == "0", "1" == "1 "; "maybe" is not a label.
        let p = [" 1", "0", "maybe", "1"];
        let r = ["1", "0", "0", "1 "];
        assert_close(accuracy(&p, &r).unwrap(), 75.0);
    }

    #[test]
    fn pairs_must_match_and_not_be_empty() {
        let err = accuracy(&["1"], &["1", "0"]).unwrap_err().to_string();
        assert_eq!(err, "accuracy: 1 predictions but 2 references");
        let empty: [&str; 0] = [];
        assert!(accuracy(&empty, &empty).is_err());
        assert!(pearson(&[], &[]).is_err());
    }

    #[test]
    fn f1_from_known_counts() {
        // pos = "1". Pairs (pred, ref):
        // (1,1) TP, (1,1) TP, (0,1) FN, (1,0) FP, (0,0) TN, (x,0) invalid on a negative -> FP,
        // (x,1) invalid on a positive -> FN.
        // TP=2, FP=2, FN=2: F1 = 2*2 / (2*2 + 2 + 2) = 4/8 = 50.
        let p = ["1", "1", "0", "1", "0", "x", "x"];
        let r = ["1", "1", "1", "0", "0", "0", "1"];
        assert_close(f1(&p, &r, "1").unwrap(), 50.0);
        // TP=3, FP=1, FN=0: 6/7.
        let p = ["1", "1", "1", "1", "0"];
        let r = ["1", "1", "1", "0", "0"];
        assert_close(f1(&p, &r, "1").unwrap(), 600.0 / 7.0);
        // No positives anywhere: sklearn's zero_division gives 0.
        assert_close(f1(&["0", "0"], &["0", "0"], "1").unwrap(), 0.0);
    }

    #[test]
    fn matthews_binary_by_hand() {
        // Confusion matrix (true rows, predicted columns) over labels 0/1:
        //            pred 0  pred 1
        //   true 0     TN=3    FP=1
        //   true 1     FN=2    TP=4
        // MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
        //     = (12 - 2) / sqrt(5 * 6 * 4 * 5) = 10 / sqrt(600) = 0.40824829...
        let r = ["0", "0", "0", "0", "1", "1", "1", "1", "1", "1"];
        let p = ["0", "0", "0", "1", "0", "0", "1", "1", "1", "1"];
        let expected = 100.0 * 10.0 / 600f64.sqrt();
        assert_close(matthews_correlation(&p, &r, &["0", "1"]).unwrap(), expected);
        // sklearn.metrics.matthews_corrcoef gives 0.408248290463863 for the same lists.
        assert_close(expected, 40.8248290463863);
    }

    #[test]
    fn matthews_invalid_predictions_form_one_extra_class() {
        // References 0,0,1,1; predictions 0,"?",1,"??". The seed maps both invalid strings to -1:
        // classes {-1, 0, 1}: t = (0, 2, 2), p = (2, 1, 1), correct c = 2, s = 4.
        // cov_tp = c*s - t.p = 8 - (0*2 + 2*1 + 2*1) = 4
        // cov_pp = s^2 - p.p = 16 - (4 + 1 + 1) = 10
        // cov_tt = s^2 - t.t = 16 - (0 + 4 + 4) = 8
        // MCC = 4 / sqrt(80) = 0.4472135955 (sklearn on [0,0,1,1] vs [0,-1,1,-1] agrees).
        let r = ["0", "0", "1", "1"];
        let p = ["0", "?", "1", "??"];
        assert_close(
            matthews_correlation(&p, &r, &["0", "1"]).unwrap(),
            100.0 * 4.0 / 80f64.sqrt(),
        );
        // Constant predictions: the denominator is 0 and so is MCC.
        assert_close(
            matthews_correlation(&["1", "1"], &r[1..3], &["0", "1"]).unwrap(),
            0.0,
        );
        // A reference outside the labels is a data error.
        assert!(matthews_correlation(&["0"], &["2"], &["0", "1"]).is_err());
    }

    #[test]
    fn pearson_small_vectors() {
        // x = 1..5, y = 2,4,5,4,5: means 3 and 4; dx = -2,-1,0,1,2; dy = -2,0,1,0,1.
        // Sxy = 4+0+0+0+2 = 6, Sxx = 10, Syy = 4+0+1+0+1 = 6: r = 6 / sqrt(60) = 0.7745966692.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [2.0, 4.0, 5.0, 4.0, 5.0];
        assert_close(pearson(&x, &y).unwrap(), 100.0 * 6.0 / 60f64.sqrt());
        // Perfect linear relations.
        assert_close(pearson(&x, &[3.0, 5.0, 7.0, 9.0, 11.0]).unwrap(), 100.0);
        assert_close(pearson(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap(), -100.0);
        // A constant side is undefined: 0 like hyperformer's NaN guard.
        assert_close(pearson(&x, &[3.0; 5]).unwrap(), 0.0);
    }

    #[test]
    fn ranks_average_ties() {
        // Sorted: 1 (rank 1), 2,2 (ranks 2,3 -> 2.5), 3 (rank 4), 5,5,5 (ranks 5,6,7 -> 6).
        assert_eq!(
            average_ranks(&[5.0, 2.0, 1.0, 5.0, 3.0, 2.0, 5.0]),
            vec![6.0, 2.5, 1.0, 6.0, 4.0, 2.5, 6.0]
        );
    }

    #[test]
    fn spearman_small_vectors() {
        // Monotone but not linear: rho = 1.
        assert_close(
            spearmanr(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]).unwrap(),
            100.0,
        );
        // Without ties: rho = 1 - 6 Σd² / (n(n²-1)). x = 1,2,3,4,5 and y = 2,1,4,3,5:
        // d = -1,1,-1,1,0, Σd² = 4, rho = 1 - 24/120 = 0.8.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_close(spearmanr(&x, &[2.0, 1.0, 4.0, 3.0, 5.0]).unwrap(), 80.0);
        // With ties: y = 2,4,5,4,5 has ranks 1, 2.5, 4.5, 2.5, 4.5 (mean 3).
        // d(rank) = -2,-0.5,1.5,-0.5,1.5; dx = -2,-1,0,1,2.
        // Sxy = 4 + 0.5 + 0 - 0.5 + 3 = 7; Sxx = 10; Syy = 4 + .25 + 2.25 + .25 + 2.25 = 9.
        // rho = 7 / sqrt(90) = 0.7378647873726218 (scipy.stats.spearmanr agrees).
        assert_close(
            spearmanr(&x, &[2.0, 4.0, 5.0, 4.0, 5.0]).unwrap(),
            100.0 * 7.0 / 90f64.sqrt(),
        );
        assert_close(spearmanr(&x, &[1.0; 5]).unwrap(), 0.0);
    }

    #[test]
    fn numbers_parse_like_float_but_finite() {
        assert_eq!(parse_number(" 3.8 "), Some(3.8));
        assert_eq!(parse_number("4"), Some(4.0));
        assert_eq!(parse_number("3.8 points"), None);
        assert_eq!(parse_number("nan"), None);
        assert_eq!(parse_number("inf"), None);
    }

    #[test]
    fn tokenizer_13a_matches_sacrebleu() {
        // Expected strings printed by sacrebleu 2.6.0's Tokenizer13a on the same inputs.
        let cases = [
            (
                "Hello, world! It's 3.5 dollars, e.g. 1,000.",
                "Hello , world ! It's 3.5 dollars , e . g . 1,000 .",
            ),
            ("a...b", "a . . . b"),
            (
                "x-y 3-4 (ok) [z] {w} a/b",
                "x-y 3 - 4 ( ok ) [ z ] { w } a / b",
            ),
            ("&quot;Hi&quot; &amp; &lt;b&gt;", "\" Hi \" & < b >"),
            ("end-\nline\nnext", "endline next"),
            ("3.14, 2,5 a.b .x", "3.14 , 2,5 a . b . x"),
            ("   spaced\tout  ", "spaced out"),
            ("Ünïcode «quotes» ș ț.", "Ünïcode «quotes» ș ț ."),
        ];
        for (input, expected) in cases {
            assert_eq!(bleu_preprocess(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn bleu_by_hand_with_smoothing() {
        // hyp "the cat sat on the mat", ref "the cat is on the mat":
        // 1-grams 5/6 (the×2, cat, on, mat), 2-grams 3/5 (the cat, on the, the mat),
        // 3-grams 1/4 (on the mat), 4-grams 0/3 -> exp smoothing 100/(2*3) = 16.67%.
        // Same length, BP = 1. BLEU = (83.33 * 60 * 25 * 16.67)^(1/4) = 2083333.33^(1/4) = 37.99.
        let b = corpus_bleu(&["the cat sat on the mat"], &["the cat is on the mat"]).unwrap();
        assert_eq!(b.correct, [5, 3, 1, 0]);
        assert_eq!(b.total, [6, 5, 4, 3]);
        assert_close(b.brevity_penalty, 1.0);
        let expected = (100.0 * 5.0 / 6.0 * 60.0 * 25.0 * (100.0f64 / 6.0)).powf(0.25);
        assert_close(b.score, expected);
        assert_close(b.score, 37.99178428257963); // sacrebleu.corpus_bleu
    }

    #[test]
    fn bleu_brevity_penalty_and_degenerate_cases() {
        // All n-grams match but 4 tokens against 6: BP = exp(1 - 6/4) = exp(-0.5).
        let b = corpus_bleu(&["a b c d"], &["a b c d e f"]).unwrap();
        assert_close(b.score, 100.0 * (-0.5f64).exp());
        assert_close(b.score, 60.653065971263366); // sacrebleu.corpus_bleu
                                                   // Nothing matches: 0.
        assert_eq!(corpus_bleu(&["x y"], &["a b"]).unwrap().score, 0.0);
        // Too short for 3- and 4-grams: precision 0 there, so BLEU is 0 (no effective order).
        assert_eq!(corpus_bleu(&["a b"], &["a b"]).unwrap().score, 0.0);
        assert!(corpus_bleu(&["a"], &["a", "b"]).is_err());
    }

    #[test]
    fn bleu_sacrebleu_readme_example() {
        // The example of sacrebleu's README:
        // BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)
        let sys = [
            "The dog bit the man.",
            "It wasn't surprising.",
            "The man had just bitten him.",
        ];
        let refs = [
            vec![
                "The dog bit the man.",
                "It was not unexpected.",
                "The man bit him first.",
            ],
            vec![
                "The dog had bit the man.",
                "No one was surprised.",
                "The man had bitten the dog.",
            ],
        ];
        let b = corpus_bleu_multi(&sys, &refs).unwrap();
        assert_eq!(b.correct, [14, 7, 5, 3]);
        assert_eq!(b.total, [17, 14, 11, 8]);
        assert_eq!((b.sys_len, b.ref_len), (17, 18));
        assert!((b.score - 48.530827009929865).abs() < 1e-9, "{}", b.score);
        // With the first reference set only (sacrebleu: 45.06750632106114).
        let b = corpus_bleu(&sys, &refs[0]).unwrap();
        assert_eq!(b.correct, [12, 6, 4, 3]);
        assert!((b.score - 45.06750632106114).abs() < 1e-9, "{}", b.score);
    }
}
