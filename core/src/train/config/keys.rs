//! Which keys a run config may hold: the schema's own, the seed's keys this project refuses on
//! purpose (each with the reason), and for any other key a "did you mean" and the valid ones.

use serde_json::{Map, Value};

use super::run::RunConfig;
use super::strict::Places;
use crate::tasks::CustomTaskConfig;

/// Keys of the seed's configs that this project deliberately does not implement, and why.
pub(super) const SEED_KEYS_NOT_IMPLEMENTED: &[(&str, &str)] = &[
    (
        "conditional_layer_norm_for_T5",
        "(T5's own layer norms generated per task) is a ruse-only variant HyperFormer dropped, \
         which is not implemented",
    ),
    ("one_layer_adapter_hyper_net", RUSE_GENERATOR),
    ("adapter_hyper_net_with_bias", RUSE_GENERATOR),
    ("one_layer_adapter_hyper_net_with_linear", RUSE_GENERATOR),
    ("save_task_embeddings", SAVED_EMBEDDINGS),
    ("save_task_embeddings_dir", SAVED_EMBEDDINGS),
    (
        "sampling",
        "was the seed's switch for multi-task sampling; tasks are always sampled here, with \
         probability ∝ (n_i/N)^(1/temperature) (temperature 1 = proportional to size)",
    ),
    (
        "gcs_bucket",
        "is the seed's Google Cloud Storage upload, which is not implemented",
    ),
    (
        "do_finetune",
        "is the seed's few-shot fine-tuning on eval tasks, which is not implemented",
    ),
    (
        "n_finetune",
        "is the seed's few-shot fine-tuning on eval tasks, which is not implemented",
    ),
    (
        "eval_output_dir",
        "is not implemented: evaluation results are written under `output_dir`",
    ),
    (
        "cache_dir",
        "is not implemented: downloads go to the Hugging Face cache (set HF_HOME to move it)",
    ),
    (
        "config_name",
        "is not implemented: the model's config.json comes from `model_name_or_path`",
    ),
    ("adafactor", "is not implemented: the optimizer is AdamW"),
    (
        "sortish_sampler",
        "is not implemented: batches come from the multi-task sampler",
    ),
];

const RUSE_GENERATOR: &str = "is a ruse-only generator variant HyperFormer dropped, which is not \
                              implemented (the generators are HyperFormer's: one linear layer)";

const SAVED_EMBEDDINGS: &str = "is not needed: task embeddings are always saved in \
                                `output_dir/hypernetwork/task_embeddings.safetensors`";

/// Refuses unknown keys at the top level and in `custom_tasks` entries.
pub(super) fn check_keys(
    object: &Map<String, Value>,
    places: &Places,
) -> std::result::Result<(), String> {
    let valid = RunConfig::valid_keys();
    let valid_refs: Vec<&str> = valid.iter().map(String::as_str).collect();
    for key in object.keys() {
        if valid_refs.contains(&key.as_str()) {
            continue;
        }
        let at = places.at(key);
        if let Some((_, why)) = SEED_KEYS_NOT_IMPLEMENTED.iter().find(|(k, _)| *k == key) {
            let found = if at.is_empty() {
                String::new()
            } else {
                format!(" (found{at})")
            };
            return Err(format!("`{key}` {why}; remove it{found}"));
        }
        return Err(unknown_key_message(key, &at, "", &valid_refs));
    }
    if let Some(Value::Array(tasks)) = object.get("custom_tasks") {
        for (i, task) in tasks.iter().enumerate() {
            if let Value::Object(task) = task {
                for key in task.keys() {
                    if !CustomTaskConfig::KEYS.contains(&key.as_str()) {
                        let prefix = format!("custom_tasks[{i}].");
                        let at = places.at(&format!("{prefix}{key}"));
                        return Err(unknown_key_message(
                            key,
                            &at,
                            &prefix,
                            CustomTaskConfig::KEYS,
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn unknown_key_message(key: &str, at: &str, prefix: &str, valid: &[&str]) -> String {
    let mut candidates: Vec<(&str, Option<&str>)> = valid.iter().map(|k| (*k, None)).collect();
    if prefix.is_empty() {
        candidates.extend(
            SEED_KEYS_NOT_IMPLEMENTED
                .iter()
                .map(|(k, why)| (*k, Some(*why))),
        );
    }
    let best = candidates
        .iter()
        .map(|(k, why)| (edit_distance(key, k), *k, *why))
        .min_by_key(|(d, _, _)| *d);
    let hint = match best {
        Some((d, close, why)) if d <= (key.chars().count() / 4).clamp(1, 3) => match why {
            None => format!(" (did you mean `{close}`?)"),
            Some(why) => format!(" (did you mean the seed's `{close}`? That key {why})"),
        },
        _ => String::new(),
    };
    format!(
        "unknown key `{prefix}{key}`{at}{hint}; valid keys: {}",
        valid.join(", ")
    )
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
