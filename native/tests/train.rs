//! `native train` end to end: clear errors for bad configs, adapters and hypernetworks trained
//! and resumed, the seed's published HyperFormer configs on tiny GLUE data; crashes, damaged
//! checkpoints and concurrent runs in [`crashes`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "train/adapter_kinds.rs"]
mod adapter_kinds;
#[path = "train/crashes.rs"]
mod crashes;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A small run on the embedded data: the tiny preset, a few dozen steps, checkpoints every 5.
fn small_config(output_dir: &Path, extra: serde_json::Value) -> serde_json::Value {
    let data = root().join("configs/data");
    let task = |name: &str, template: &str, labels: Option<Vec<&str>>, metrics: Vec<&str>| {
        let mut t = serde_json::json!({
            "name": name,
            "train_file": data.join(name).join("train.jsonl"),
            "validation_file": data.join(name).join("validation.jsonl"),
            "template": template,
            "target_field": "label",
            "metrics": metrics,
        });
        if let Some(l) = labels {
            t["labels"] = serde_json::json!(l);
        }
        t
    };
    let mut config = serde_json::json!({
        "model_name_or_path": "t5-tiny",
        "tokenizer_name": data.join("tokenizer"),
        "tasks": ["sentiment", "similarity"],
        "custom_tasks": [
            task("sentiment", "sentence: {sentence}", Some(vec!["0", "1"]), vec!["accuracy"]),
            task("similarity", "sentence1: {sentence1} sentence2: {sentence2}", None, vec!["pearson"]),
        ],
        "output_dir": output_dir,
        "do_train": true,
        "max_steps": 30,
        "learning_rate": 0.001,
        "warmup_steps": 5,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 2,
        "n_train": 64,
        "n_val": 16,
        "temperature": 2,
        "max_source_length": 48,
        "max_target_length": 6,
        "save_steps": 5,
        "save_total_limit": 2,
        "logging_steps": 5,
        "seed": 7,
        "backend": "cpu"
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn write_config(dir: &Path, config: &serde_json::Value) -> PathBuf {
    let path = dir.join("run.json");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    path
}

fn train(config: &Path) -> Output {
    train_with(config, &[])
}

/// `native train CONFIG` with extra arguments (`--max-steps 2`).
fn train_with(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_native"))
        .args(["train", config.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn assert_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "`{n}` not in {}", errors[0]);
    }
}

#[test]
fn bad_configs_and_data_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let run =
        |extra: serde_json::Value| train(&write_config(tmp.path(), &small_config(&out_dir, extra)));

    assert_error(
        &run(serde_json::json!({"learning_rat": 0.1})),
        &["run.json", "unknown key `learning_rat`", "learning_rate"],
    );
    assert_error(
        &run(serde_json::json!({"max_steps": "many"})),
        &["run.json", "max_steps"],
    );
    assert_error(
        &run(serde_json::json!({"tasks": []})),
        &["run.json", "tasks"],
    );
    assert_error(
        &run(serde_json::json!({"tasks": ["sentiment", "mnlii"]})),
        &["mnlii"],
    );

    // A duplicated key keeps its last value: `do_train` false, so there is nothing to do.
    let path = tmp.path().join("dup.json");
    std::fs::write(&path, "{\"tasks\": [\"rte\"], \"output_dir\": \"x\", \"model_name_or_path\": \"t5-tiny\", \"do_train\": true, \"do_train\": false}").unwrap();
    assert_error(&train(&path), &["dup.json", "nothing to do"]);

    // A missing data file and a malformed line.
    let mut config = small_config(&out_dir, serde_json::json!({}));
    config["custom_tasks"][0]["train_file"] = serde_json::json!(tmp.path().join("nope.jsonl"));
    assert_error(
        &train(&write_config(tmp.path(), &config)),
        &["nope.jsonl", "not found"],
    );
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"sentence\": \"fine\", \"label\": \"1\"}\n{\"sentence\": broken\n",
    )
    .unwrap();
    config["custom_tasks"][0]["train_file"] = serde_json::json!(bad);
    assert_error(
        &train(&write_config(tmp.path(), &config)),
        &["bad.jsonl", "line 2"],
    );
}

/// With `mixed_task_batches`, one batch holds several tasks and each row trains its own task's
/// adapter: after one step both adapters' projections moved; with one task per batch only one
/// did. The layer norms shared by all tasks (the seed's default) move in both cases, and both
/// adapter files carry the same shared values.
#[test]
fn mixed_task_batches_train_each_rows_adapter_and_shared_norms_train() {
    let tmp = tempfile::tempdir().unwrap();
    type Tensors = Vec<(String, Vec<u8>)>;
    let run = |name: &str, extra: serde_json::Value| -> Vec<Tensors> {
        let out_dir = tmp.path().join(name);
        let mut config = small_config(
            &out_dir,
            serde_json::json!({
                "train_adapters": true,
                "reduction_factor": 8,
                "max_steps": 1,
                "warmup_steps": 0,
                "gradient_accumulation_steps": 1,
                "per_device_train_batch_size": 16,
                "temperature": 1000,
                "save_steps": 0,
                "do_eval": false,
            }),
        );
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let out = train(&write_config(tmp.path(), &config));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ["sentiment", "similarity"]
            .iter()
            .map(|t| {
                let bytes =
                    std::fs::read(out_dir.join(format!("adapters/{t}/adapter.safetensors")))
                        .unwrap();
                let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
                let mut tensors: Tensors = file
                    .tensors()
                    .into_iter()
                    .map(|(n, v)| (n, v.data().to_vec()))
                    .collect();
                tensors.sort();
                tensors
            })
            .collect()
    };
    let part = |files: &[Tensors], norms: bool| -> Vec<Tensors> {
        files
            .iter()
            .map(|f| {
                f.iter()
                    .filter(|(n, _)| n.contains("norm") == norms)
                    .cloned()
                    .collect()
            })
            .collect()
    };
    let moved = |a: &[Tensors], b: &[Tensors]| a.iter().zip(b).filter(|(x, y)| x != y).count();

    let init = run("init", serde_json::json!({ "learning_rate": 0.0 }));
    let mixed = run("mixed", serde_json::json!({ "mixed_task_batches": true }));
    let single = run("single", serde_json::json!({ "mixed_task_batches": false }));
    assert_eq!(
        moved(&part(&mixed, false), &part(&init, false)),
        2,
        "a mixed batch trains both adapters"
    );
    assert_eq!(
        moved(&part(&single, false), &part(&init, false)),
        1,
        "a one-task batch trains one"
    );
    for files in [&mixed, &single] {
        let norms = part(files, true);
        assert!(!norms[0].is_empty());
        assert_eq!(norms[0], norms[1], "one set of shared norms in both files");
        assert_ne!(
            norms[0],
            part(&init, true)[0],
            "the shared norms were trained"
        );
    }
}

/// Sorted `(name, bytes)` of a safetensors file.
fn tensors_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// HyperFormer++ trains with mixed-task batches, resumes from a checkpoint to the same
/// hypernetwork, exports it with each task's generated adapter; then a new task trains its
/// embedding alone on the trained hypernetwork (`freeze_model_but_task_embeddings`).
#[test]
fn hypernetwork_runs_resume_export_and_take_a_new_task_by_its_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    let hyper = serde_json::json!({
        "train_adapters": true,
        "adapter_config_name": "meta-adapter",
        "efficient_unique_hyper_net": true,
        "task_embedding_dim": 8,
        "projected_task_embedding_dim": 8,
        "task_hidden_dim": 16,
        "reduction_factor": 8,
        "mixed_task_batches": true,
        "max_steps": 10,
        "do_eval": true,
    });
    let straight = tmp.path().join("straight");
    let out = train(&write_config(
        tmp.path(),
        &small_config(&straight, hyper.clone()),
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("hypernetwork:"),
        "the summary names the hypernetwork: {stderr}"
    );
    let files = ["hypernetwork.safetensors", "task_embeddings.safetensors"];
    let trained: Vec<_> = files
        .iter()
        .map(|f| tensors_of(&straight.join("hypernetwork").join(f)))
        .collect();
    for task in ["sentiment", "similarity"] {
        assert!(
            straight
                .join("adapters")
                .join(task)
                .join("adapter.safetensors")
                .is_file(),
            "{task}"
        );
    }
    // The same run from its step-5 checkpoint ends with the same hypernetwork, bit for bit.
    let resumed = tmp.path().join("resumed");
    std::fs::create_dir_all(&resumed).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in walk(from) {
            let target = to.join(entry.strip_prefix(from).unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&entry, target).unwrap();
        }
    };
    copy(
        &straight.join("checkpoint-5"),
        &resumed.join("checkpoint-5"),
    );
    let out = train(&write_config(
        tmp.path(),
        &small_config(&resumed, hyper.clone()),
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("resuming from"),
        "{stderr}"
    );
    for (f, want) in files.iter().zip(&trained) {
        assert!(
            &tensors_of(&resumed.join("hypernetwork").join(f)) == want,
            "{f} after resuming"
        );
    }
    // A new task by its embedding alone: the generators and the old embeddings stay as trained.
    let new = tmp.path().join("new-task");
    let mut extra = hyper.clone();
    extra["tasks"] = serde_json::json!(["similarity_new"]);
    extra["freeze_model_but_task_embeddings"] = serde_json::json!(true);
    extra["hypernetwork"] = serde_json::json!(straight.join("hypernetwork"));
    let mut config = small_config(&new, extra);
    let mut task = config["custom_tasks"][1].clone();
    task["name"] = serde_json::json!("similarity_new");
    config["custom_tasks"].as_array_mut().unwrap().push(task);
    let out = train(&write_config(tmp.path(), &config));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = new.join("hypernetwork");
    assert!(
        tensors_of(&dir.join(files[0])) == trained[0],
        "the generators did not move"
    );
    let embeddings = tensors_of(&dir.join(files[1]));
    let names: Vec<&str> = embeddings.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sentiment", "similarity", "similarity_new"]);
    assert!(
        embeddings[..2] == trained[1][..],
        "the old embeddings did not move"
    );
    assert!(new
        .join("adapters/similarity_new/adapter.safetensors")
        .is_file());
    // A trained hypernetwork continues only under its own settings.
    config["task_hidden_dim"] = serde_json::json!(32);
    config["output_dir"] = serde_json::json!(tmp.path().join("mismatch"));
    let out = train(&write_config(tmp.path(), &config));
    assert_error(
        &out,
        &[
            "hypernetwork_config.json",
            "`task_hidden_dim` is 16, but the run config asks for 32",
        ],
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `text` with its one `from` replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` once");
    text.replace(from, to)
}

/// The seed's published HyperFormer++ and HyperFormer configs (rabeehk/hyperformer, committed
/// verbatim) run unchanged but for the model, the data and the output: the text is edited, not
/// re-serialized, so the configs keep their duplicated `task_embedding_dim` and their line numbers.
/// Eight GLUE tasks from the TSV fixtures, split_validation_test, eval/save every 1000 steps,
/// cut to 2 steps: the run evaluates at the end and exports the hypernetwork and every adapter.
#[test]
fn published_hyperformer_configs_run_on_tiny_glue() {
    let tasks = ["rte", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "cola"];
    let fixtures = root().join("tests/fixtures");
    let quoted = |p: PathBuf| serde_json::to_string(&p).unwrap();
    let model = quoted(fixtures.join("t5-v1_0"));
    let data_dir = quoted(fixtures.join("data/glue_data"));
    let tmp = tempfile::tempdir().unwrap();
    for (file, variant) in [
        ("glue-t5-base-hyperformer++.json", "hyperformer++"),
        ("glue-t5-base-hyperformer.json", "hyperformer"),
    ] {
        let published = std::fs::read_to_string(root().join("configs").join(file)).unwrap();
        let mut text = replace_once(
            &published,
            r#""model_name_or_path": "t5-base""#,
            &format!(r#""model_name_or_path": {model}"#),
        );
        text = replace_once(
            &text,
            r#""tokenizer_name": "t5-base""#,
            &format!(r#""tokenizer_name": {model}"#),
        );
        // On the first line, so every other key keeps its line.
        text = replace_once(&text, "{\n", &format!("{{\"data_dir\": {data_dir},\n"));
        let config = tmp.path().join(file);
        std::fs::write(&config, &text).unwrap();
        let out_dir = tmp.path().join(variant);
        let out = train_with(
            &config,
            &[
                "--max-steps",
                "2",
                "--output-dir",
                out_dir.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");

        // The one warning: the seed's duplicated key, at its lines in the published file.
        let lines: Vec<String> = published
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("\"task_embedding_dim\""))
            .map(|(i, _)| format!("line {}", i + 1))
            .collect();
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{file}: {stderr}");
        assert!(
            warnings[0].contains(&format!(
                "duplicate key `task_embedding_dim` ({}): the last value (64) is used",
                lines.join(" and ")
            )),
            "{file}: {}",
            warnings[0]
        );
        // 12 training rows cannot spare 1000 for validation: the large tasks halve theirs.
        let halved: Vec<&str> = tasks
            .into_iter()
            .filter(|t| stderr.contains(&format!("task `{t}`: its 12 training examples cannot")))
            .collect();
        assert_eq!(halved, ["sst2", "qqp", "qnli"], "{file}: {stderr}");

        let hyper: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.join("hypernetwork/hypernetwork_config.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(hyper["variant"], variant, "{file}");
        assert_eq!(hyper["tasks"], serde_json::json!(tasks), "{file}");
        assert_eq!(hyper["task_embedding_dim"], 64, "{file}: the last value");
        for f in ["hypernetwork.safetensors", "task_embeddings.safetensors"] {
            assert!(
                out_dir.join("hypernetwork").join(f).is_file(),
                "{file}: {f}"
            );
        }
        for task in tasks {
            let adapter = out_dir.join("adapters").join(task);
            for f in ["adapter.safetensors", "adapter_config.json"] {
                assert!(adapter.join(f).is_file(), "{file}: {task}/{f}");
            }
        }
        // Evaluated once, at the end, on every task's validation and test halves.
        for results in ["val_results.json", "test_results.json"] {
            let metrics: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out_dir.join(results)).unwrap())
                    .unwrap();
            let metrics = metrics.as_object().unwrap();
            assert!(metrics.contains_key("average_metrics"), "{file}: {results}");
            for task in tasks {
                assert!(
                    metrics.keys().any(|k| k.starts_with(&format!("{task}_"))),
                    "{file}: {results} lacks {task}: {metrics:?}"
                );
            }
        }
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(saved["max_steps"], 2, "{file}");
        assert_eq!(saved["eval_steps"], 1000, "{file}");
    }
}
