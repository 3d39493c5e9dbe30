//! The run config's tests: parsing, refused keys, checks, and the shipped configs.

use super::keys::SEED_KEYS_NOT_IMPLEMENTED;
use super::*;
use crate::backend::BackendKind;
use crate::tasks::{CustomTaskConfig, DataFormat, SplitPolicy};

const MINIMAL: &str = r#"{
    "model_name_or_path": "t5-small",
    "output_dir": "outputs/x",
    "tasks": ["rte"],
    "do_train": true
}"#;

fn parse(text: &str) -> Result<RunConfig> {
    RunConfig::from_str(text, "configs/x.json")
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// MINIMAL with extra `"key": value` lines.
fn with(extra: &str) -> String {
    MINIMAL.replacen('{', &format!("{{\n{extra},"), 1)
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.tasks, ["rte"]);
    assert_eq!(c.eval_task_names(), ["rte"]);
    assert_eq!(c.effective_data_seed(), 42);
    assert_eq!(c.max_steps, -1);
    assert_eq!(c.num_train_epochs, 3.0);
    assert_eq!(c.learning_rate, 3e-4);
    assert_eq!(c.lr_scheduler, LrScheduler::Linear);
    assert_eq!(c.per_device_eval_batch_size, 8);
    assert_eq!(c.adapter.reduction_factor, 16);
    assert_eq!(c.adapter.non_linearity, "swish");
    assert!(c.adapter.add_layer_norm_after_adapter && !c.adapter.add_layer_norm_before_adapter);
    assert_eq!(c.metric_for_best_model, "average_metrics");
    assert_eq!(c.backend, BackendKind::Auto);
    assert_eq!(c.evaluation_strategy, EvaluationStrategy::No);
}

#[test]
fn seed_style_config_parses() {
    // The seed's `configs/test.json`, less its not-implemented keys and its duplicate.
    let text = r#"{
    "print_num_parameters": true,
    "model_name_or_path": "t5-small", "tokenizer_name": "t5-small",
    "learning_rate": 1e-2, "output_dir": "outputs/test", "overwrite_output_dir": true,
    "max_source_length": 128, "max_target_length": 128,
    "val_max_target_length": 128, "test_max_target_length": 128,
    "num_train_epochs": 3, "max_steps": 1000, "warmup_steps": 500, "eval_steps": 200,
    "tasks": ["rte"], "eval_tasks": ["rte"], "label_smoothing": 0.1,
    "freeze_encoder": false, "freeze_embeds": false,
    "per_device_train_batch_size": 64, "per_device_eval_batch_size": 64,
    "save_steps": 1000, "save_total_limit": 1, "logging_first_step": true, "logging_steps": 200,
    "adapter_config_name": "adapter", "temperature": 10, "do_eval": true,
    "predict_with_generate": true, "do_train": true, "n_train": 500, "n_val": 500,
    "reduction_factor": 32, "non_linearity": "relu", "unfreeze_lm_head": false,
    "unfreeze_layer_norms": true, "train_adapters": true,
    "lr_scheduler": "constant_w_warmup", "evaluation_strategy": "steps", "backend": "cpu"
    }"#;
    let c = parse(text).unwrap();
    assert_eq!(c.temperature, 10.0);
    assert_eq!(c.num_train_epochs, 3.0);
    assert_eq!(c.save_total_limit, Some(1));
    assert_eq!(c.lr_scheduler, LrScheduler::ConstantWithWarmup);
    assert_eq!(c.evaluation_strategy, EvaluationStrategy::Steps);
    assert_eq!(c.backend, BackendKind::Cpu);
    assert_eq!(RunConfig::limit(c.n_train), Some(500));
    assert_eq!(RunConfig::limit(c.n_test), None);
    assert_eq!(c.total_steps(123_456), 1000);
}

#[test]
fn unknown_key_lists_valid_keys_and_suggests() {
    let e = err(&with(r#""learning_rat": 0.1"#));
    assert!(
        e.starts_with("configs/x.json: unknown key `learning_rat`"),
        "{e}"
    );
    assert!(e.contains("did you mean `learning_rate`?"), "{e}");
    assert!(e.contains("valid keys: adam_beta1, "), "{e}");
    assert!(e.contains("warmup_steps"), "{e}");
    assert!(
        e.contains("`learning_rat` at line 2 column 1 (did you mean"),
        "{e}"
    );

    // The seed's misspelled key: close to a not-implemented key, not to a valid one.
    let e = err(&with(r#""parameteric_task_embedding": true"#));
    assert!(
        e.contains("unknown key `parameteric_task_embedding`"),
        "{e}"
    );
    assert!(
        e.contains("did you mean the seed's `parametric_task_embedding`? That key belongs"),
        "{e}"
    );
    assert!(e.contains("valid keys: "), "{e}");

    // Nothing close: no suggestion.
    let e = err(&with(r#""zzzzzzzzzz": 1"#));
    assert!(!e.contains("did you mean"), "{e}");
}

#[test]
fn seed_keys_not_implemented_say_so() {
    for key in [
        "task_embedding_dim",
        "projected_task_embedding_dim",
        "hidden_dim",
        "train_task_embeddings",
        "task_embedding_dir",
        "unique_hyper_net",
        "conditional_layer_norm",
        "train_adapters_blocks",
        "remove_original_layer_norms",
    ] {
        let e = err(&with(&format!(r#""{key}": 1"#)));
        assert!(e.contains(&format!("`{key}`")), "{e}");
        assert!(e.contains("not implemented"), "{e}");
    }
    let e = err(&with(r#""unique_hyper_net": false"#));
    assert!(
        e.contains("`unique_hyper_net` belongs to the seed's meta-adapter/HyperFormer"),
        "{e}"
    );
    assert!(e.contains("which is not implemented"), "{e}");
}

#[test]
fn duplicate_key_is_an_error() {
    let e = err(&with(r#""do_train": false"#));
    assert!(
        e.starts_with("configs/x.json: duplicate key `do_train`"),
        "{e}"
    );
    assert!(e.contains("line "), "{e}");
    // Nested, too.
    let e = err(&with(
        r#""custom_tasks": [{"name": "a", "template": "{x}", "template": "{y}", "target_field": "y", "train_file": "a.jsonl"}]"#,
    ));
    assert!(
        e.contains("duplicate key `custom_tasks[0].template`"),
        "{e}"
    );
    // The same key in two different objects is fine.
    let ok = with(
        r#""adapters": {"mrpc": "rte"}, "train_adapters": true, "eval_tasks": ["rte", "mrpc"]"#,
    );
    parse(&ok).unwrap();
}

#[test]
fn wrong_type_names_the_key() {
    let e = err(&with(r#""learning_rate": "fast""#));
    assert!(e.contains("`learning_rate`"), "{e}");
    assert!(
        e.contains("invalid type: string \"fast\", expected f64"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
    let e = err(&with(r#""per_device_train_batch_size": -4"#));
    assert!(e.contains("`per_device_train_batch_size`"), "{e}");
    let e = err(&with(r#""lr_scheduler": "polynomial""#));
    assert!(
        e.contains("`lr_scheduler`") && e.contains("unknown variant"),
        "{e}"
    );
    let e = err(&with(r#""backend": "tpu""#));
    assert!(
        e.contains("`backend`") && e.contains("unknown backend `tpu`"),
        "{e}"
    );
    let e = err(&with(
        r#""custom_tasks": [{"name": "a", "template": "{x}", "train_file": "a.jsonl"}]"#,
    ));
    assert!(
        e.contains("`custom_tasks[0]`: missing field `target_field`"),
        "{e}"
    );
    let e = err(&with(
        r#""custom_tasks": [{"name": "a", "template": "{x}", "target": "y", "train_file": "a.jsonl"}]"#,
    ));
    assert!(e.contains("unknown key `custom_tasks[0].target`"), "{e}");
    assert!(
        e.contains("did you mean `target_field`?") || e.contains("valid keys"),
        "{e}"
    );
}

#[test]
fn malformed_json_is_a_json_error() {
    let e = parse("{\"tasks\": [\"rte\",}").unwrap_err();
    assert!(matches!(e, Error::Json { .. }), "{e}");
    let e = err("[1, 2]");
    assert!(e.contains("must be a JSON object"), "{e}");
}

#[test]
fn validate_catches_bad_values() {
    let cases: &[(&str, &str)] = &[
        (
            r#""gradient_accumulation_steps": 0"#,
            "gradient_accumulation_steps",
        ),
        (r#""learning_rate": -0.001"#, "learning_rate"),
        (r#""temperature": 0"#, "temperature"),
        (r#""label_smoothing": 1.0"#, "label_smoothing"),
        (r#""adam_beta2": 1.0"#, "adam_beta2"),
        (r#""n_train": -2"#, "n_train"),
        (r#""non_linearity": "mish""#, "non_linearity"),
        (r#""save_total_limit": 0"#, "save_total_limit"),
        (
            r#""load_best_model_at_end": true"#,
            "load_best_model_at_end",
        ),
        (r#""eval_tasks": []"#, "eval_tasks"),
        (r#""eval_tasks": ["rte", "rte"]"#, "twice"),
        (r#""adapter_config_name": "madeup""#, "unknown"),
    ];
    for (extra, needle) in cases {
        let e = err(&with(extra));
        assert!(e.contains(needle), "{extra}: {e}");
    }
    let e = err(&with(r#""adapter_config_name": "meta-adapter""#));
    assert!(
        e.contains("meta-adapter") && e.contains("not implemented"),
        "{e}"
    );

    let e = err(&MINIMAL.replace(r#"["rte"]"#, "[]"));
    assert!(e.contains("`tasks` is empty"), "{e}");
    let e = err(&MINIMAL.replace(r#""do_train": true"#, r#""do_train": false"#));
    assert!(e.contains("nothing to do"), "{e}");
    let e = err(r#"{"tasks": ["rte"], "output_dir": "o", "do_eval": true}"#);
    assert!(e.contains("`model_name_or_path` is required"), "{e}");

    // Built in code: `validate` gives `Error::Invalid`.
    let c = RunConfig {
        gradient_accumulation_steps: 0,
        ..parse(MINIMAL).unwrap()
    };
    assert!(matches!(c.validate(), Err(Error::Invalid(_))));
}

#[test]
fn adapters_must_point_at_trained_tasks() {
    let ok = with(
        r#""tasks": ["rte", "mnli"], "eval_tasks": ["rte", "cb"], "train_adapters": true, "adapters": {"cb": "mnli"}"#,
    )
    .replacen(r#""tasks": ["rte"],"#, "", 1);
    let c = parse(&ok).unwrap();
    assert_eq!(c.adapter_for("cb"), Some("mnli"));
    assert_eq!(c.adapter_for("rte"), Some("rte"));
    assert_eq!(c.adapter_for("boolq"), None);

    let e = err(&with(
        r#""eval_tasks": ["rte", "cb"], "train_adapters": true, "adapters": {"cb": "mnli"}"#,
    ));
    assert!(e.contains("`mnli`, which is not a training task"), "{e}");
    let e = err(&with(
        r#""train_adapters": true, "adapters": {"cb": "rte"}"#,
    ));
    assert!(e.contains("`cb`, which is not an eval task"), "{e}");
    let e = err(&with(r#""adapters": {"rte": "rte"}"#));
    assert!(e.contains("`train_adapters` is false"), "{e}");
}

#[test]
fn eval_only_tasks_are_allowed() {
    let c = parse(&with(r#""eval_tasks": ["rte", "some_unknown_task"]"#)).unwrap();
    assert_eq!(c.eval_task_names(), ["rte", "some_unknown_task"]);
}

#[test]
fn custom_tasks() {
    let text = with(
        r#""custom_tasks": [{
            "name": "my_nli", "train_file": "data/train.tsv", "validation_file": "data/dev.tsv",
            "format": "tsv", "template": "premise: {premise} hypothesis: {hypothesis}",
            "target_field": "label", "labels": ["yes", "no"], "metrics": ["accuracy", "f1"]
        }, {
            "name": "echo", "test_file": "echo.jsonl", "template": "echo: {text}", "target_field": "reply"
        }]"#,
    );
    let c = parse(&text).unwrap();
    let nli = c.custom_task("my_nli").unwrap();
    assert_eq!(nli.format, DataFormat::Tsv);
    let nli_task = nli.build().unwrap();
    let fields: Vec<&str> = nli_task.template().fields().collect();
    assert_eq!(fields, ["premise", "hypothesis"]);
    let echo = c.custom_task("echo").unwrap();
    assert_eq!(echo.format, DataFormat::Jsonl);
    assert_eq!(echo.metrics, ["accuracy"]);
    assert_eq!(echo.labels, None);

    let bad = |task: &str| err(&with(&format!(r#""custom_tasks": [{task}]"#)));
    let e = bad(r#"{"name": "a", "template": "x: {x", "target_field": "y", "train_file": "a"}"#);
    assert!(e.contains("without a `}`"), "{e}");
    let e = bad(r#"{"name": "a", "template": "x: {}", "target_field": "y", "train_file": "a"}"#);
    assert!(e.contains("must be a field name"), "{e}");
    let e = bad(r#"{"name": "a b", "template": "{x}", "target_field": "y", "train_file": "a"}"#);
    assert!(e.contains("custom task name `a b`"), "{e}");
    let e = bad(r#"{"name": "a", "template": "{x}", "target_field": "y"}"#);
    assert!(e.contains("has no data"), "{e}");
    let e = bad(
        r#"{"name": "a", "template": "{x}", "target_field": "y", "train_file": "a", "format": "csv"}"#,
    );
    assert!(e.contains("unknown variant `csv`"), "{e}");
    let e = bad(
        r#"{"name": "a", "template": "{x}", "target_field": "y", "train_file": "a"}, {"name": "a", "template": "{x}", "target_field": "y", "train_file": "b"}"#,
    );
    assert!(e.contains("defined twice"), "{e}");
    let e = err(&with(
        r#""tasks": ["mine"], "custom_tasks": [{"name": "mine", "template": "{x}", "target_field": "y", "test_file": "t"}]"#,
    )
    .replacen(r#""tasks": ["rte"],"#, "", 1));
    assert!(e.contains("has no `train_file`"), "{e}");
}

#[test]
fn custom_task_keys_match_the_struct() {
    let task = CustomTaskConfig {
        name: "a".into(),
        train_file: None,
        validation_file: None,
        test_file: None,
        format: DataFormat::Jsonl,
        template: "{x}".into(),
        target_field: "y".into(),
        labels: None,
        metrics: vec!["accuracy".into()],
        // Not the default, which is left out when written.
        split_policy: SplitPolicy::Small,
    };
    let Value::Object(map) = serde_json::to_value(task).unwrap() else {
        panic!("not an object")
    };
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    let mut expected = CustomTaskConfig::KEYS.to_vec();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn not_implemented_keys_are_not_valid_keys() {
    let valid = RunConfig::valid_keys();
    for (key, _) in SEED_KEYS_NOT_IMPLEMENTED {
        assert!(!valid.iter().any(|k| k == key), "{key}");
    }
    assert!(valid.len() > 60, "{valid:?}");
}

#[test]
fn resolved_json_round_trips() {
    let c = parse(&with(r#""seed": 7, "lr_scheduler": "cosine""#)).unwrap();
    let json = c.resolved_json();
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["eval_tasks"], serde_json::json!(["rte"]));
    assert_eq!(value["data_seed"], 7);
    assert_eq!(value["backend"], "auto");
    assert_eq!(value["lr_scheduler"], "cosine");
    assert_eq!(value["warmup_steps"], 0);
    let back = parse(&json).unwrap();
    assert_eq!(back, c.resolved());
    assert_eq!(back.resolved_json(), json);
}

#[test]
fn total_steps_from_epochs() {
    let mut c = parse(MINIMAL).unwrap();
    c.per_device_train_batch_size = 8;
    c.gradient_accumulation_steps = 2;
    c.num_train_epochs = 3.0;
    // ceil(100 / 16) = 7 steps per epoch.
    assert_eq!(c.steps_per_epoch(100), 7);
    assert_eq!(c.total_steps(100), 21);
    c.num_train_epochs = 0.5;
    assert_eq!(c.total_steps(100), 4);
    assert_eq!(c.total_steps(0), 0);
    c.max_steps = 10;
    assert_eq!(c.total_steps(100), 10);
    c.max_steps = 0;
    assert_eq!(c.total_steps(100), 4);
}

#[test]
fn from_file_reads_and_labels_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(RunConfig::from_file(&path).unwrap().tasks, ["rte"]);
    std::fs::write(&path, with(r#""tasks": ["mrpc"]"#)).unwrap();
    let e = RunConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: duplicate key `tasks`", path.display())),
        "{e}"
    );
    let missing = dir.path().join("missing.json");
    assert!(matches!(
        RunConfig::from_file(&missing),
        Err(Error::Io { .. })
    ));
}

/// Every shipped config (except `configs/test*.json`, written and tested elsewhere) parses.
#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.starts_with("test") {
            continue;
        }
        let c = RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.do_train, "{name}");
        seen.push(name);
    }
    seen.sort();
    for expected in [
        "glue-t5-base-adapters.json",
        "glue-t5-small-adapters.json",
        "glue-t5-small-full.json",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
}
