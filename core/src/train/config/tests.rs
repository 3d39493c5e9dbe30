//! The run config's tests: parsing, refused keys, checks, and the shipped configs.

use super::keys::SEED_KEYS_NOT_IMPLEMENTED;
use super::*;
use crate::adapter::hyper::{HyperConfig, Variant};
use crate::backend::BackendKind;
use crate::tasks::{CustomTaskConfig, DataFormat, SplitPolicy};

const MINIMAL: &str = r#"{
    "model_name_or_path": "t5-small",
    "output_dir": "outputs/x",
    "tasks": ["rte"],
    "do_train": true
}"#;

fn load(text: &str) -> Result<LoadedConfig> {
    RunConfig::load_str(text, "configs/x.json")
}

fn parse(text: &str) -> Result<RunConfig> {
    load(text).map(|loaded| loaded.config)
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

    // The seed's misspelled key (its `configs/test.json`), now close to a valid key.
    let e = err(&with(r#""parameteric_task_embedding": true"#));
    assert!(
        e.contains("unknown key `parameteric_task_embedding`"),
        "{e}"
    );
    assert!(
        e.contains("did you mean `parametric_task_embedding`?"),
        "{e}"
    );

    // Close to a refused seed key, not to a valid one: the suggestion says why.
    let e = err(&with(r#""save_task_embedding": true"#));
    assert!(
        e.contains("did you mean the seed's `save_task_embeddings`? That key is not needed"),
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
        "conditional_layer_norm_for_T5",
        "one_layer_adapter_hyper_net",
        "adapter_hyper_net_with_bias",
        "one_layer_adapter_hyper_net_with_linear",
    ] {
        let e = err(&with(&format!(r#""{key}": true"#)));
        assert!(e.contains(&format!("`{key}`")), "{e}");
        assert!(
            e.contains("ruse-only") && e.contains("HyperFormer dropped"),
            "{e}"
        );
        assert!(e.contains("remove it (found at line 2 column 1)"), "{e}");
    }
    for key in ["save_task_embeddings", "save_task_embeddings_dir"] {
        let e = err(&with(&format!(r#""{key}": "x""#)));
        assert!(
            e.contains(&format!(
                "`{key}` is not needed: task embeddings are always saved in \
                 `output_dir/hypernetwork/task_embeddings.safetensors`"
            )),
            "{e}"
        );
    }
    let e = err(&with(r#""adafactor": true"#));
    assert!(e.contains("`adafactor` is not implemented"), "{e}");
}

#[test]
fn duplicate_key_last_wins_with_warning() {
    let loaded = load(&with(r#""do_train": false"#)).unwrap();
    assert!(loaded.config.do_train);
    assert_eq!(
        loaded.warnings,
        [
            "duplicate key `do_train` (line 2 and line 6): the last value (true) is used, as the \
          seed's JSON reader does"
        ]
    );
    // Nested, too, with the path; three times names every line.
    let loaded = load(&with(
        "\"custom_tasks\": [{\"name\": \"a\", \"template\": \"{x}\",\n\"template\": \"{y}\", \
         \"template\": \"{z}\", \"target_field\": \"y\", \"train_file\": \"a.jsonl\"}]",
    ))
    .unwrap();
    assert_eq!(loaded.config.custom_tasks[0].template, "{z}");
    assert_eq!(
        loaded.warnings,
        [
            "duplicate key `custom_tasks[0].template` (line 2, line 3 and line 3): the last value \
          (\"{z}\") is used, as the seed's JSON reader does"
        ]
    );
    // A long value is cut short.
    let loaded = load(&with(&format!(
        r#""tokenizer_name": "{}", "tokenizer_name": "{}""#,
        "a".repeat(10),
        "b".repeat(60)
    )))
    .unwrap();
    assert_eq!(
        loaded.config.tokenizer_name.as_deref(),
        Some(&*"b".repeat(60))
    );
    assert!(loaded.warnings[0].contains(&format!("(\"{}...)", "b".repeat(36))));
    // The same key in two different objects is no duplicate.
    let ok = with(
        r#""adapters": {"mrpc": "rte"}, "train_adapters": true, "eval_tasks": ["rte", "mrpc"]"#,
    );
    assert_eq!(load(&ok).unwrap().warnings, Vec::<String>::new());
    // The value used is the one checked, and its place is the one reported.
    let e = err(&with(
        "\"learning_rate\": 0.1,\n\"learning_rate\": \"fast\"",
    ));
    assert!(e.contains("`learning_rate`: invalid type"), "{e}");
    assert!(e.contains("at line 3 column 1"), "{e}");
    // A `"key":` inside a string value is not a key: places stay in step.
    let e = err(&with(
        "\"tokenizer_name\": \"\\\"x\\\": 1\",\n\"seed\": \"s\"",
    ));
    assert!(
        e.contains("`seed`: invalid type") && e.contains("at line 3 column 1"),
        "{e}"
    );
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
    for name in ["hyperformer", "parametric-meta-adapter"] {
        let e = err(&with(&format!(r#""adapter_config_name": "{name}""#)));
        assert!(
            e.contains(&format!("`adapter_config_name` `{name}` is unknown"))
                && e.contains(
                    "use `meta-adapter` with `unique_hyper_net` / `efficient_unique_hyper_net` \
                     / `parametric_task_embedding`"
                ),
            "{e}"
        );
    }

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
    assert_eq!(RunConfig::load(&path).unwrap().config.tasks, ["rte"]);
    std::fs::write(&path, with(r#""task": ["mrpc"]"#)).unwrap();
    let e = RunConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: unknown key `task`", path.display())),
        "{e}"
    );
    let missing = dir.path().join("missing.json");
    assert!(matches!(RunConfig::load(&missing), Err(Error::Io { .. })));
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
        let c = RunConfig::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        assert!(c.do_train, "{name}");
        seen.push(name);
    }
    seen.sort();
    for expected in [
        "glue-t5-base-adapters.json",
        "glue-t5-base-hyperformer++.json",
        "glue-t5-base-hyperformer.json",
        "glue-t5-small-adapters.json",
        "glue-t5-small-full.json",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
}

/// MINIMAL as a `meta-adapter` run, with extra `"key": value` lines.
fn meta(extra: &str) -> String {
    with(&format!(
        r#""adapter_config_name": "meta-adapter", "train_adapters": true,
"task_embedding_dim": 8{}{extra}"#,
        if extra.is_empty() { "" } else { ",\n" }
    ))
}

#[test]
fn hyper_keys_are_run_config_keys() {
    let loaded = load(&meta(
        r#""unique_hyper_net": true, "projected_task_embedding_dim": 8, "task_hidden_dim": 16,
"train_task_embeddings": true, "task_embeddings": {"rte": "shared"},
"unique_hyper_net_layer_norm": false, "conditional_layer_norm": true"#,
    ))
    .unwrap();
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let h = &loaded.config.hyper;
    assert_eq!(h.variant(), Variant::HyperFormer);
    assert_eq!(h.task_embedding_dim, Some(8));
    assert_eq!((h.projected_task_embedding_dim, h.task_hidden_dim), (8, 16));
    assert!(h.train_task_embeddings && !h.unique_hyper_net_layer_norm && h.conditional_layer_norm);
    assert_eq!(h.embedding_of("rte"), "shared");
    assert!(h.embeddings_trainable());
    // Defaults: the seed's.
    let h = parse(MINIMAL).unwrap().hyper;
    assert_eq!(h, HyperConfig::default());
    assert_eq!(
        (h.projected_task_embedding_dim, h.task_hidden_dim),
        (64, 128)
    );
    assert!(h.unique_hyper_net_layer_norm && h.train_adapters_blocks);
    let valid = RunConfig::valid_keys();
    for key in [
        "task_embedding_dim",
        "efficient_unique_hyper_net",
        "hypernetwork",
    ] {
        assert!(valid.iter().any(|k| k == key), "{key}");
    }
}

#[test]
fn meta_adapter_checks() {
    let e = err(&with(
        r#""adapter_config_name": "meta-adapter", "task_embedding_dim": 8"#,
    ));
    assert!(e.contains("needs `train_adapters: true`"), "{e}");
    let e = err(&with(
        r#""adapter_config_name": "meta-adapter", "train_adapters": true"#,
    ));
    assert!(e.contains("needs `task_embedding_dim`"), "{e}");
    let e = err(&meta(r#""task_embeddings": {"cola": "rte"}"#));
    assert!(
        e.contains("`task_embeddings` maps `cola`, which is not a training task"),
        "{e}"
    );
    let e = err(&meta(r#""generate_classifier_weights": true"#));
    assert!(
        e.contains("`generate_classifier_weights: true` is not implemented"),
        "{e}"
    );
    let e = err(&meta(
        r#""efficient_unique_hyper_net": true, "train_task_embeddings": true"#,
    ));
    assert!(e.contains("`projected_task_embedding_dim` (64)"), "{e}");
    let e = err(&meta(r#""freeze_model_but_task_embeddings": true"#));
    assert!(e.contains("needs `hypernetwork`"), "{e}");
    let e = err(&meta(r#""task_hidden_dim": "wide""#));
    assert!(
        e.contains("`task_hidden_dim`: invalid type: string \"wide\""),
        "{e}"
    );
    assert!(e.contains("at line 4 column 1"), "{e}");
    let e = err(&meta(r#""reduction_factor": 0"#));
    assert!(e.contains("reduction_factor"), "{e}");
    // Accepted with a warning: HyperConfig's own.
    let loaded = load(&meta(r#""hidden_dim": 128"#)).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].starts_with("`hidden_dim` has no effect"));
}

#[test]
fn hyper_keys_with_adapter_warn_per_key() {
    let loaded = load(&with(
        r#""task_embedding_dim": 64, "unique_hyper_net": true, "task_hidden_dim": 128,
"remove_original_layer_norms": true, "train_adapters_blocks": false"#,
    ))
    .unwrap();
    assert!(!loaded.config.hyper.train_adapters_blocks);
    // `task_hidden_dim` 128 is the default, and the plain adapter has `train_adapters_blocks`
    // too: no warning.
    let keys = [
        "remove_original_layer_norms",
        "task_embedding_dim",
        "unique_hyper_net",
    ];
    let mut warnings = loaded.warnings;
    warnings.sort();
    assert_eq!(warnings.len(), keys.len(), "{warnings:?}");
    for (warning, key) in warnings.iter().zip(keys) {
        assert_eq!(
            warning,
            &format!(
                "`{key}` has no effect with `adapter_config_name: \"adapter\"` (it configures \
                 `meta-adapter`); ignored, as the seed did"
            )
        );
    }
}

/// The seed's successor's published configs run unchanged: the duplicated `task_embedding_dim`
/// is their only warning, and its last value (64) is the one used.
#[test]
fn published_hyperformer_configs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for (file, variant, last_line) in [
        (
            "glue-t5-base-hyperformer++.json",
            Variant::HyperFormerPlusPlus,
            40,
        ),
        ("glue-t5-base-hyperformer.json", Variant::HyperFormer, 41),
    ] {
        let loaded = RunConfig::load(dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.warnings,
            [format!(
                "duplicate key `task_embedding_dim` (line 26 and line {last_line}): the last \
                 value (64) is used, as the seed's JSON reader does"
            )],
            "{file}"
        );
        let c = loaded.config;
        let h = &c.hyper;
        assert_eq!(h.variant(), variant, "{file}");
        assert_eq!(h.task_embedding_dim, Some(64));
        assert_eq!(
            (h.projected_task_embedding_dim, h.task_hidden_dim),
            (64, 128)
        );
        assert!(h.conditional_layer_norm && h.unique_hyper_net_layer_norm);
        assert!(!h.train_task_embeddings && h.embeddings_trainable());
        assert!(h.train_adapters_blocks && !h.freeze_model_but_task_embeddings);
        assert_eq!(c.adapter_config_name, "meta-adapter");
        assert!(c.train_adapters && c.unfreeze_layer_norms && !c.unfreeze_lm_head);
        assert_eq!(c.adapter.reduction_factor, 32);
        assert_eq!(c.adapter.non_linearity, "gelu_new");
        let a = &c.adapter;
        assert!(a.add_layer_norm_after_adapter && !a.add_layer_norm_before_adapter);
        assert_eq!(c.model_name_or_path, "t5-base");
        assert_eq!(
            (c.learning_rate, c.max_steps, c.temperature),
            (3e-4, 65536, 10.0)
        );
        assert_eq!(c.tasks.len(), 8);
    }
}

/// Each hypernetwork fixture's `run_config_keys` (what its PyTorch reference ran with) is a
/// run config's keys with the same values.
#[test]
fn fixture_run_config_keys_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hyper");
    for (case, variant) in [
        ("hyperformer++", Variant::HyperFormerPlusPlus),
        ("hyperformer++-options", Variant::HyperFormerPlusPlus),
        ("hyperformer", Variant::HyperFormer),
        ("meta-adapter", Variant::MetaAdapter),
        ("meta-adapter-taskdir", Variant::MetaAdapter),
    ] {
        let golden = std::fs::read_to_string(dir.join(case).join("golden.json")).unwrap();
        let golden: Value = serde_json::from_str(&golden).unwrap();
        let Value::Object(keys) = golden["run_config_keys"].clone() else {
            panic!("{case}: no run_config_keys")
        };
        let mut run = keys.clone();
        for (key, value) in serde_json::json!({"model_name_or_path": "t5-small",
            "output_dir": "outputs/x", "do_train": true, "train_adapters": true})
        .as_object()
        .unwrap()
        {
            run.insert(key.clone(), value.clone());
        }
        let loaded = load(&Value::Object(run).to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.warnings, Vec::<String>::new(), "{case}");
        assert_eq!(loaded.config.hyper.variant(), variant, "{case}");
        let read = serde_json::to_value(&loaded.config).unwrap();
        for (key, value) in &keys {
            assert_eq!(&read[key], value, "{case}: {key}");
        }
    }
}

/// Issue 14: sizes that would abort on allocation, and numbers that would make training
/// degenerate silently, are refused naming the key and the valid range.
#[test]
fn sizes_and_numbers_out_of_range_name_the_key_and_range() {
    let cases: &[(&str, &str)] = &[
        (
            r#""per_device_train_batch_size": 1000000000000"#,
            "`per_device_train_batch_size` must be in 1..=65536, got 1000000000000",
        ),
        (
            r#""per_device_eval_batch_size": 100000"#,
            "`per_device_eval_batch_size` must be in 1..=65536",
        ),
        (
            r#""max_source_length": 10000000"#,
            "`max_source_length` must be in 1..=65536",
        ),
        (r#""eval_beams": 1000"#, "`eval_beams` must be in 1..=128"),
        (
            r#""temperature": 1e-300"#,
            "`temperature` must be a finite number >= 0.01",
        ),
        (r#""n_train": 0"#, "`n_train` is 0"),
    ];
    for (extra, needle) in cases {
        let e = err(&with(extra));
        assert!(
            e.starts_with("configs/x.json: ") && e.contains(needle),
            "{extra}: {e}"
        );
    }
    // 1e12 is a float in JSON: a type error that names the key.
    let e = err(&with(r#""per_device_train_batch_size": 1e12"#));
    assert!(e.contains("`per_device_train_batch_size`"), "{e}");
    // n_train: 0 is fine when nothing trains.
    let eval_only = MINIMAL.replace(r#""do_train": true"#, r#""do_eval": true"#);
    let c = parse(&eval_only.replacen('{', r#"{"n_train": 0,"#, 1));
    assert!(c.is_ok(), "{c:?}");
}
