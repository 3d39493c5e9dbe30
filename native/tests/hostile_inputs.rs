//! Issue 14's hostile and careless inputs against the `native` binary: each is one line on
//! stderr (or, for a too-long input, a warning and a result), never an abort, a panic or a read
//! outside the model directory.

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
            std::env::temp_dir().join("native-hostile-empty-hf-home"),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs native")
}

/// A failure whose stderr is one `error: ` line holding every needle.
fn one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected a failure:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("internal error") && !stderr.contains("panicked"),
        "{stderr}"
    );
    for needle in needles {
        assert!(lines[0].contains(needle), "`{needle}` not in: {}", lines[0]);
    }
    lines[0].to_string()
}

/// A copy of a fixture model in `<tmp>/model`, with `<tmp>/outside` beside it.
fn copy_model(model: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    for entry in std::fs::read_dir(fixtures().join(model)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    (tmp, dir)
}

fn generate(model: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["generate", "--backend", "cpu", "--max-new-tokens", "4"];
    args.extend(["--model", model.to_str().unwrap()]);
    args.extend(extra);
    native(&args)
}

#[test]
fn a_100000_character_input_is_truncated_with_a_warning_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.txt");
    let text = format!(
        "translate English to German: {}",
        "the cat sat on the mat. ".repeat(4200)
    );
    assert!(text.len() > 100_000);
    std::fs::write(&input, format!("{text}\nthe cat\n")).unwrap();
    let model = fixtures().join("t5-v1_0");
    let out = generate(&model, &["--input-file", input.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("input 1 has")
            && warnings[0].contains("more than --max-source-length 512")
            && warnings[0].contains("truncation=True"),
        "{stderr}"
    );
    // The limit is an option; out of its range it is refused before anything is loaded.
    for n in ["0", "100000"] {
        let out = generate(&model, &["--max-source-length", n, "hi"]);
        one_line_error(&out, &["--max-source-length must be in 1..=65536", n]);
    }
}

#[test]
fn numeric_options_out_of_range_are_one_line() {
    let model = fixtures().join("t5-v1_0");
    for (flag, value, needle) in [
        (
            "--length-penalty",
            "NaN",
            "--length-penalty must be a finite number, got NaN",
        ),
        (
            "--length-penalty",
            "-inf",
            "--length-penalty must be a finite number, got -inf",
        ),
        ("--num-beams", "0", "--num-beams must be in 1..=128, got 0"),
        (
            "--num-beams",
            "100000",
            "--num-beams must be in 1..=128, got 100000",
        ),
        (
            "--max-new-tokens",
            "1000000000",
            "--max-new-tokens must be at most 65536",
        ),
    ] {
        let arg = format!("{flag}={value}");
        let model = model.to_str().unwrap();
        let out = native(&["generate", "--backend", "cpu", "--model", model, &arg, "hi"]);
        one_line_error(&out, &[needle]);
    }
}

#[test]
fn config_json_with_zero_layers_or_a_wrong_type_names_the_key() {
    let (_tmp, dir) = copy_model("t5-v1_0");
    let config = dir.join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    for (from, to, needles) in [
        (
            "\"num_layers\": 2",
            "\"num_layers\": 0",
            vec!["`num_layers` must be in 1..=1024, got 0"],
        ),
        (
            "\"d_model\": 64",
            "\"d_model\": 0",
            vec!["`d_model` must be in 1..=65536, got 0"],
        ),
        ("\"num_heads\": 4", "\"num_heads\": 0", vec!["`num_heads`"]),
        (
            "\"vocab_size\": 500",
            "\"vocab_size\": 0",
            vec!["`vocab_size`"],
        ),
        (
            "\"d_ff\": 128",
            "\"d_ff\": 1000000000000",
            vec!["`d_ff` must be in 1..=1048576"],
        ),
        (
            "\"num_layers\": 2",
            "\"num_layers\": \"two\"",
            vec!["config.json: `num_layers`: invalid type: string \"two\", expected usize at line"],
        ),
    ] {
        std::fs::write(&config, original.replace(from, to)).unwrap();
        assert_ne!(
            std::fs::read_to_string(&config).unwrap(),
            original,
            "{from}"
        );
        let line = one_line_error(&generate(&dir, &["hi"]), &needles);
        // serde's position once, not once per cause.
        assert!(line.matches(" at line ").count() <= 1, "{line}");
    }
    // Malformed JSON: serde's message and place, once.
    std::fs::write(&config, &original[..original.len() / 2]).unwrap();
    let line = one_line_error(&generate(&dir, &["hi"]), &["config.json", "EOF"]);
    assert_eq!(line.matches(" at line ").count(), 1, "{line}");
}

#[test]
fn a_shard_outside_the_model_directory_is_refused() {
    const SHARD: &str = "model-00002-of-00004.safetensors";
    let (tmp, dir) = copy_model("t5-v1_1-bf16-sharded");
    std::fs::rename(dir.join(SHARD), tmp.path().join("outside").join(SHARD)).unwrap();
    let index = dir.join("model.safetensors.index.json");
    let original = std::fs::read_to_string(&index).unwrap();
    let absolute = tmp.path().join("outside").join(SHARD);
    for (entry, why) in [
        (format!("../outside/{SHARD}"), "(`..`)"),
        (absolute.display().to_string(), "is an absolute path"),
    ] {
        std::fs::write(&index, original.replace(SHARD, &entry)).unwrap();
        one_line_error(
            &generate(&dir, &["hi"]),
            &[
                "model.safetensors.index.json",
                &format!("entry `{entry}`"),
                why,
                "refused",
            ],
        );
    }
    #[cfg(unix)]
    {
        std::fs::write(&index, &original).unwrap();
        std::os::unix::fs::symlink(&absolute, dir.join(SHARD)).unwrap();
        one_line_error(
            &generate(&dir, &["hi"]),
            &[
                "model.safetensors.index.json",
                &format!("entry `{SHARD}` resolves to"),
                "outside",
            ],
        );
    }
}

#[test]
fn non_finite_adapter_weights_are_one_line_naming_the_tensor() {
    let adapter = tempfile::tempdir().unwrap();
    let source = fixtures().join("adapters/seed-v1_0/rte");
    std::fs::copy(
        source.join("adapter_config.json"),
        adapter.path().join("adapter_config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(source.join("adapter.safetensors")).unwrap();
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = parsed.names().into_iter().map(String::from).collect();
    names.sort();
    let bad = names[0].clone();
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = names
        .iter()
        .map(|name| {
            let view = parsed.tensor(name).unwrap();
            let mut data = view.data().to_vec();
            if *name == bad {
                data[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
            }
            (name.clone(), data, view.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, d, s)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (n.clone(), view.unwrap())
        })
        .collect();
    let file = adapter.path().join("adapter.safetensors");
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let model = fixtures().join("t5-v1_0");
    let out = generate(
        &model,
        &["--adapter", adapter.path().to_str().unwrap(), "hi"],
    );
    one_line_error(
        &out,
        &[
            "adapter.safetensors",
            &format!("tensor `{bad}`"),
            "non-finite",
        ],
    );
}

#[test]
fn a_preset_name_is_not_a_trained_model() {
    for preset in ["t5-tiny", "t5-mini"] {
        one_line_error(
            &generate(Path::new(preset), &["hi"]),
            &[
                &format!("`{preset}` is a built-in preset"),
                "not a trained model",
            ],
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = fixtures().join("../../configs/data/sentiment");
    let config = serde_json::json!({
        "model_name_or_path": "t5-tiny",
        "tokenizer_name": fixtures().join("tokenizer"),
        "tasks": ["sentiment"],
        "custom_tasks": [{
            "name": "sentiment", "template": "sentence: {sentence}", "target_field": "label",
            "metrics": ["accuracy"], "validation_file": data.join("validation.jsonl"),
        }],
        "output_dir": tmp.path().join("out"), "do_eval": true,
    });
    let path = tmp.path().join("run.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let args = ["--backend", "cpu", "--split", "validation"];
    let config = path.to_str().unwrap();
    let mut predict = vec!["predict", config, "--task", "sentiment"];
    predict.extend(args);
    one_line_error(&native(&predict), &["`t5-tiny` is a built-in preset"]);
    let mut eval = vec!["eval", config];
    eval.extend(args);
    one_line_error(&native(&eval), &["`t5-tiny` is a built-in preset"]);
    let mut short = vec!["eval", config, "--max-source-length", "0"];
    short.extend(args);
    one_line_error(
        &native(&short),
        &["--max-source-length must be in 1..=65536, got 0"],
    );
}

#[test]
fn run_config_sizes_and_numbers_out_of_range_are_one_line_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let base = serde_json::json!({
        "model_name_or_path": "t5-tiny",
        "tokenizer_name": fixtures().join("tokenizer"),
        "tasks": ["rte"],
        "output_dir": tmp.path().join("out"),
        "do_train": true,
    });
    for (key, value, needle) in [
        (
            "per_device_train_batch_size",
            serde_json::json!(1_000_000_000_000u64),
            "`per_device_train_batch_size` must be in 1..=65536, got 1000000000000",
        ),
        (
            "temperature",
            serde_json::json!(1e-300),
            "`temperature` must be a finite number >= 0.01",
        ),
        ("n_train", serde_json::json!(0), "`n_train` is 0"),
        (
            "eval_beams",
            serde_json::json!(1000),
            "`eval_beams` must be in 1..=128",
        ),
    ] {
        let mut config = base.clone();
        config[key] = value;
        let path = tmp.path().join("run.json");
        std::fs::write(&path, config.to_string()).unwrap();
        one_line_error(
            &native(&["train", path.to_str().unwrap()]),
            &["run.json", needle],
        );
    }
}
