//! The `native` binary end to end: outputs equal HF's, bad input is one line on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn native(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_native"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env(
            "HF_HOME",
            std::env::temp_dir().join("native-cli-test-empty-hf-home"),
        )
        .output()
        .expect("runs native")
}

fn golden(model: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(model).join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// HF's sequence without the start token, cut after EOS.
fn hf_ids(row: &serde_json::Value) -> Vec<u64> {
    let mut out = Vec::new();
    for t in row
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|v| v.as_u64().unwrap())
    {
        out.push(t);
        if t == 1 {
            break;
        }
    }
    out
}

#[test]
fn generate_json_prints_hf_ids() {
    for (model, key, beams) in [
        ("t5-v1_0", "greedy", "1"),
        ("t5-v1_1", "greedy", "1"),
        ("t5-v1_1", "beam4", "4"),
    ] {
        let g = golden(model);
        let texts: Vec<&str> = g["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let dir = fixtures().join(model);
        let mut args = vec![
            "generate",
            "--json",
            "--backend",
            "cpu",
            "--max-new-tokens",
            "16",
            "--num-beams",
            beams,
        ];
        if beams != "1" {
            args.extend(["--early-stopping", "true"]);
        }
        args.extend(["--model", dir.to_str().unwrap()]);
        args.extend(texts.iter().copied());
        let out = native(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), texts.len());
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["input"], texts[i]);
            let ids: Vec<u64> = line["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(ids, hf_ids(&g[key][i]), "{model} {key} row {i}");
            assert!(!line["output"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn generate_reads_stdin_one_input_per_line() {
    use std::io::Write;
    let dir = fixtures().join("t5-v1_0");
    let mut child = Command::new(env!("CARGO_BIN_EXE_native"))
        .args([
            "generate",
            "--backend",
            "cpu",
            "--max-new-tokens",
            "16",
            "--model",
            dir.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"translate English to German: the cat sat on the mat\n\nquestion: Where does the river flow? context: The river starts in the mountains.\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "die Katze sass auf der Matte");
}

/// Copies a fixture model into a temp dir so a test can damage it.
fn copy_model(model: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(model)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("INFO")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    for needle in needles {
        assert!(lines[0].contains(needle), "`{needle}` not in: {}", lines[0]);
    }
}

fn generate_with(dir: &Path) -> Output {
    native(&[
        "generate",
        "--backend",
        "cpu",
        "--model",
        dir.to_str().unwrap(),
        "hello",
    ])
}

#[test]
fn missing_path_is_one_line() {
    assert_one_line_error(
        &generate_with(Path::new("/no/such/model")),
        &["/no/such/model", "no such file"],
    );
}

#[test]
fn directory_without_config_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    assert_one_line_error(&generate_with(tmp.path()), &["no config.json"]);
}

#[test]
fn truncated_weights_are_one_line() {
    let tmp = copy_model("t5-v1_0");
    let file = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    assert_one_line_error(
        &generate_with(tmp.path()),
        &["model.safetensors", "truncated"],
    );
}

#[test]
fn shapes_that_contradict_the_config_are_one_line() {
    let tmp = copy_model("t5-v1_0");
    let file = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"d_ff\": 128", "\"d_ff\": 96");
    std::fs::write(&file, text).unwrap();
    assert_one_line_error(
        &generate_with(tmp.path()),
        &["DenseReluDense.wi.weight", "[128, 64]", "[96, 64]"],
    );
}

#[test]
fn missing_tokenizer_is_one_line() {
    let tmp = copy_model("t5-v1_0");
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    assert_one_line_error(&generate_with(tmp.path()), &["tokenizer.json"]);
}

#[test]
fn unknown_feed_forward_proj_is_one_line() {
    let tmp = copy_model("t5-v1_0");
    let file = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "\"feed_forward_proj\": \"relu\"",
        "\"feed_forward_proj\": \"gated-wiggle\"",
    );
    std::fs::write(&file, text).unwrap();
    assert_one_line_error(
        &generate_with(tmp.path()),
        &["config.json", "feed_forward_proj", "wiggle"],
    );
}

#[test]
fn another_architecture_is_one_line() {
    let tmp = copy_model("t5-v1_0");
    let file = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"model_type\": \"t5\"", "\"model_type\": \"bert\"");
    std::fs::write(&file, text).unwrap();
    assert_one_line_error(&generate_with(tmp.path()), &["bert", "not a T5"]);
}

#[test]
fn unreachable_hub_is_one_line() {
    // A port nobody listens on: bind, take the address, drop the listener.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_native"))
        .args([
            "generate",
            "--backend",
            "cpu",
            "--model",
            "google/flan-t5-base",
            "hello",
        ])
        .env("HF_ENDPOINT", format!("http://{addr}"))
        .env("HF_HOME", tempfile::tempdir().unwrap().path())
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert_one_line_error(&out, &["google/flan-t5-base", "could not reach"]);
}

#[test]
fn offline_without_cache_names_missing_files() {
    let out = native(&[
        "generate",
        "--backend",
        "cpu",
        "--model",
        "t5-small",
        "hello",
    ]);
    assert_one_line_error(
        &out,
        &[
            "t5-small",
            "config.json",
            "model.safetensors",
            "HF_HUB_OFFLINE",
        ],
    );
}

#[test]
fn help_documents_every_option() {
    let out = native(&["generate", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--model",
        "--max-new-tokens",
        "--num-beams",
        "--backend",
        "--json",
        "--length-penalty",
        "--early-stopping",
        "--hypernetwork",
    ] {
        assert!(help.contains(opt), "{opt} missing from help");
    }
}

#[test]
fn generate_with_an_adapterhub_adapter_prints_python_ids() {
    for (case, model) in [("houlsby-v1_1", "t5-v1_1"), ("pfeiffer-v1_0", "t5-v1_0")] {
        let adapter = fixtures().join("adapters").join(case);
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(adapter.join("golden.json")).unwrap())
                .unwrap();
        let texts: Vec<&str> = g["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let model_dir = fixtures().join(model);
        let mut args = vec![
            "generate",
            "--json",
            "--backend",
            "cpu",
            "--max-new-tokens",
            "16",
        ];
        args.extend([
            "--model",
            model_dir.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
        ]);
        args.extend(texts.iter().copied());
        let out = native(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        for (i, line) in stdout.lines().enumerate() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let ids: Vec<u64> = line["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(ids, hf_ids(&g["greedy"][i]), "{case} row {i}");
        }
    }
}

#[test]
fn several_adapters_switch_by_task() {
    let seed = fixtures().join("adapters").join("seed-v1_0");
    let model_dir = fixtures().join("t5-v1_0");
    let text = "question: Where is the cat? context: The cat sat on the mat.";
    let run = |task: &str| {
        native(&[
            "generate",
            "--backend",
            "cpu",
            "--max-new-tokens",
            "16",
            "--model",
            model_dir.to_str().unwrap(),
            "--adapter",
            seed.join("rte").to_str().unwrap(),
            "--adapter",
            seed.join("sst2").to_str().unwrap(),
            "--task",
            task,
            text,
        ])
    };
    let rte = run("rte");
    assert!(
        rte.status.success(),
        "{}",
        String::from_utf8_lossy(&rte.stderr)
    );
    assert_eq!(String::from_utf8(rte.stdout).unwrap().trim(), "entailment");
    let sst2 = run("sst2");
    assert_ne!(String::from_utf8(sst2.stdout).unwrap().trim(), "entailment");
    assert_one_line_error(&run("mnli"), &["unknown task `mnli`", "rte", "sst2"]);
}

#[test]
fn an_adapter_for_another_model_is_one_line() {
    let adapter = fixtures().join("adapters").join("houlsby-v1_1");
    let model_dir = fixtures().join("t5-v1_0");
    let out = native(&[
        "generate",
        "--backend",
        "cpu",
        "--model",
        model_dir.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "hello",
    ]);
    assert_one_line_error(&out, &["houlsby-v1_1", "decoder block 2"]);
    let unsupported = fixtures()
        .join("adapters")
        .join("unsupported")
        .join("parallel");
    let out = native(&[
        "generate",
        "--backend",
        "cpu",
        "--model",
        model_dir.to_str().unwrap(),
        "--adapter",
        unsupported.to_str().unwrap(),
        "hello",
    ]);
    assert_one_line_error(&out, &["parallel", "is_parallel"]);
}

fn hyper_fixture(case: &str) -> (PathBuf, serde_json::Value) {
    let dir = fixtures().join("hyper").join(case);
    let text = std::fs::read_to_string(dir.join("golden.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

fn ids_of(line: &serde_json::Value) -> Vec<u64> {
    line["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// `generate --json` on a hypernetwork case's golden texts, with `adapter_args` after the model.
fn generate_hyper_case(dir: &Path, g: &serde_json::Value, adapter_args: &[&str]) -> Output {
    let model = fixtures().join(g["base_model"].as_str().unwrap());
    let mut args = vec!["generate", "--json", "--backend", "cpu"];
    args.extend(["--max-new-tokens", "16", "--model", model.to_str().unwrap()]);
    args.extend(adapter_args);
    args.extend(
        g["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap()),
    );
    let out = native(&args);
    assert!(
        out.status.success(),
        "{} {adapter_args:?}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn generate_with_a_hypernetwork_prints_golden_ids_as_its_materialized_adapter() {
    // hyperformer++ generates norms; meta-adapter-taskdir shares plain ones across tasks and
    // its two tasks answer differently.
    for case in ["hyperformer++", "meta-adapter-taskdir"] {
        let (dir, g) = hyper_fixture(case);
        for task in ["rte", "sst2"] {
            let hyper = dir.to_str().unwrap();
            let out = generate_hyper_case(&dir, &g, &["--hypernetwork", hyper, "--task", task]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("generated adapter `{task}` from the hypernetwork")),
                "{stderr}"
            );
            let run = &g["runs"][task];
            let stdout = String::from_utf8(out.stdout).unwrap();
            for (i, line) in stdout.lines().enumerate() {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    ids_of(&line),
                    hf_ids(&run["greedy"][i]),
                    "{case} {task} {i}"
                );
                assert_eq!(line["output"], run["greedy_text"][i], "{case} {task} {i}");
            }
            let materialized = dir.join("materialized").join(task);
            let adapter = ["--adapter", materialized.to_str().unwrap()];
            let out = generate_hyper_case(&dir, &g, &adapter);
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                stdout,
                "{case} {task}"
            );
        }
    }
}

#[test]
fn hypernetwork_errors_are_one_line() {
    let dir = fixtures().join("hyper").join("hyperformer++");
    let run = |model: &str, extra: &[&str]| {
        let model = fixtures().join(model);
        let mut args = vec!["generate", "--backend", "cpu"];
        args.extend(["--model", model.to_str().unwrap()]);
        args.extend(extra);
        args.push("hello");
        native(&args)
    };
    let hyper = dir.to_str().unwrap();
    assert_one_line_error(
        &run("t5-v1_0", &["--hypernetwork", hyper, "--task", "cola"]),
        &[
            "hyperformer++/task_embeddings.safetensors",
            "no task `cola` (tasks: rte, sst2)",
        ],
    );
    assert_one_line_error(
        &run(
            "t5-v1_0",
            &["--hypernetwork", "/no/such/hypernet", "--task", "rte"],
        ),
        &["/no/such/hypernet"],
    );
    assert_one_line_error(
        &run("t5-v1_1", &["--hypernetwork", hyper, "--task", "rte"]),
        &[
            "hyperformer++/hypernetwork_config.json",
            "num_decoder_layers",
        ],
    );
    // Argument errors are clap's: the offending options, then usage.
    let out = run("t5-v1_0", &["--hypernetwork", hyper]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--task"));
    let adapter = dir.join("materialized").join("rte");
    let both = ["--hypernetwork", hyper, "--task", "rte", "--adapter"];
    let out = run(
        "t5-v1_0",
        &[&both[..], &[adapter.to_str().unwrap()]].concat(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// A run config over two custom tasks whose adapters come from the hypernetwork embeddings
/// `sst2` and `rte` (`task_embeddings`).
fn hyper_eval_config(tmp: &Path, model: &str, task_embedding_dim: usize) -> PathBuf {
    let data = fixtures().join("../../configs/data");
    let task = |name: &str, template: &str| {
        serde_json::json!({
            "name": name,
            "train_file": data.join(name).join("train.jsonl"),
            "validation_file": data.join(name).join("validation.jsonl"),
            "template": template, "target_field": "label", "metrics": ["accuracy"],
        })
    };
    let config = serde_json::json!({
        "model_name_or_path": fixtures().join(model),
        "tasks": ["sentiment", "similarity"],
        "custom_tasks": [
            task("sentiment", "sentence: {sentence}"),
            task("similarity", "sentence1: {sentence1} sentence2: {sentence2}"),
        ],
        "output_dir": tmp.join("out"), "do_eval": true, "n_val": 8, "val_max_target_length": 8,
        "train_adapters": true, "adapter_config_name": "meta-adapter",
        "task_embedding_dim": task_embedding_dim,
        "task_embeddings": {"sentiment": "sst2", "similarity": "rte"},
    });
    let path = tmp.join("run.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

#[test]
fn eval_and_predict_with_a_hypernetwork_equal_its_materialized_adapters() {
    let (dir, _) = hyper_fixture("meta-adapter-taskdir");
    let tmp = tempfile::tempdir().unwrap();
    let config = hyper_eval_config(tmp.path(), "t5-v1_1", 64);
    // The materialized adapters, renamed after the tasks they serve.
    let mut adapter_args = Vec::new();
    for (task, embedding) in [("sentiment", "sst2"), ("similarity", "rte")] {
        let to = tmp.path().join(task);
        std::fs::create_dir(&to).unwrap();
        let from = dir.join("materialized").join(embedding);
        std::fs::copy(
            from.join("adapter.safetensors"),
            to.join("adapter.safetensors"),
        )
        .unwrap();
        let text = std::fs::read_to_string(from.join("adapter_config.json")).unwrap();
        let text = text.replace(
            &format!("\"task\": \"{embedding}\""),
            &format!("\"task\": \"{task}\""),
        );
        std::fs::write(to.join("adapter_config.json"), text).unwrap();
        adapter_args.extend(["--adapter".to_string(), to.to_str().unwrap().to_string()]);
    }
    let hyper_args = [
        "--hypernetwork".to_string(),
        dir.to_str().unwrap().to_string(),
    ];
    let run = |command: &[&str], adapters: &[String]| {
        let mut args = command.to_vec();
        args.extend([config.to_str().unwrap(), "--backend", "cpu"]);
        args.extend(adapters.iter().map(String::as_str));
        let out = native(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{command:?}: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    };
    for task in ["sentiment", "similarity"] {
        let predict = ["predict", "--split", "validation", "--task", task];
        let (generated, _) = run(&predict, &hyper_args);
        assert_eq!(generated.lines().count(), 8, "{generated}");
        assert_eq!(generated, run(&predict, &adapter_args).0, "{task}");
    }
    let (metrics, stderr) = run(&["eval"], &hyper_args);
    assert!(
        stderr.contains("`sentiment` (embedding `sst2`), `similarity` (embedding `rte`)"),
        "{stderr}"
    );
    assert!(metrics.contains("sentiment_accuracy"), "{metrics}");
    assert_eq!(metrics, run(&["eval"], &adapter_args).0);
}
