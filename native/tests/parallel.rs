//! Data-parallel `native train` on burn's collective: two ranks (`--devices 0,1`, two threads
//! sharing the CPU) against one rank on the same global batches; killed and resumed; topologies
//! refused. Two processes are refused for now (see `MULTI_NODE` in `commands/train.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A small run on the embedded data (the tiny preset: no dropout, whose masks differ between
/// one rank and two by design), `batch` rows per rank, no evaluation.
fn config(dir: &Path, name: &str, batch: usize, extra: serde_json::Value) -> PathBuf {
    let data = root().join("configs/data");
    let task = |name: &str, template: &str| {
        serde_json::json!({
            "name": name,
            "train_file": data.join(name).join("train.jsonl"),
            "validation_file": data.join(name).join("validation.jsonl"),
            "template": template,
            "target_field": "label",
            "metrics": ["accuracy"],
        })
    };
    let mut config = serde_json::json!({
        "model_name_or_path": "t5-tiny",
        "tokenizer_name": data.join("tokenizer"),
        "tasks": ["sentiment", "paraphrase"],
        "custom_tasks": [
            task("sentiment", "sentence: {sentence}"),
            task("paraphrase", "sentence1: {sentence1} sentence2: {sentence2}"),
        ],
        "output_dir": dir.join(name),
        "do_train": true,
        "max_steps": 6,
        "learning_rate": 0.001,
        "warmup_steps": 2,
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": 2,
        "n_train": 48,
        "temperature": 2,
        "max_source_length": 32,
        "max_target_length": 4,
        "save_steps": 100,
        "logging_steps": 1,
        "seed": 11,
        "backend": "cpu"
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

fn native() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_native"));
    c.env_remove("SLURM_NNODES").env_remove("SLURM_NODEID");
    c
}

/// `native train CONFIG --devices 0,1`, started.
fn spawn_two(config: &Path) -> Child {
    native()
        .args(["train", config.to_str().unwrap(), "--devices", "0,1"])
        .args(["--collective-timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(name, values)` of the f32 tensors of a safetensors file, sorted by name.
fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (n, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Each tensor of `a` within `rel` of `b`'s, relative to `b`'s largest value.
fn assert_close(a: &Path, b: &Path, rel: f32) {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let scale = vb.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let diff = va
            .iter()
            .zip(vb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= rel * scale,
            "{na}: max difference {diff} (scale {scale})"
        );
    }
}

/// The trained weights of a run: the model, or each task's adapter.
fn weights(dir: &Path, adapters: bool) -> Vec<PathBuf> {
    if adapters {
        ["sentiment", "paraphrase"]
            .iter()
            .map(|t| dir.join(format!("adapters/{t}/adapter.safetensors")))
            .collect()
    } else {
        vec![dir.join("model/model.safetensors")]
    }
}

/// Full fine-tuning, adapters only, and adapters with mixed-task batches: two ranks of 4 rows
/// end with the weights of one rank on batches of 8, the same batches.
#[test]
fn two_ranks_train_as_one_on_the_global_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let modes = [
        ("full", serde_json::json!({"train_adapters": false})),
        ("adapters", serde_json::json!({"train_adapters": true})),
        (
            "mixed",
            serde_json::json!({"train_adapters": true, "mixed_task_batches": true}),
        ),
    ];
    for (name, extra) in modes {
        let adapters = name != "full";
        let one = config(tmp.path(), &format!("{name}-one"), 8, extra.clone());
        let out = native()
            .args(["train", one.to_str().unwrap()])
            .output()
            .unwrap();
        assert_ok(&out);
        let two = config(tmp.path(), &format!("{name}-two"), 4, extra);
        let out = spawn_two(&two).wait_with_output().unwrap();
        assert_ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("data-parallel run: 2 ranks"), "{stderr}");
        for (a, b) in weights(&tmp.path().join(format!("{name}-two")), adapters)
            .iter()
            .zip(weights(&tmp.path().join(format!("{name}-one")), adapters))
        {
            assert_close(a, &b, 1e-5);
        }
        // One line per step: rank 1 logs nothing.
        let metrics = std::fs::read_to_string(tmp.path().join(format!("{name}-two/metrics.jsonl")));
        assert_eq!(metrics.unwrap().lines().count(), 6, "{name}");
    }
}

/// Waits until `path` exists (or `limit` passes).
fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A two-rank run killed (SIGKILL) after its first checkpoint, then started again: it ends with
/// the weights of the same run left alone.
#[test]
fn a_killed_two_rank_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = serde_json::json!({"max_steps": 16, "save_steps": 3, "save_total_limit": 2});
    let whole = config(tmp.path(), "whole", 4, extra.clone());
    assert_ok(&spawn_two(&whole).wait_with_output().unwrap());

    let killed = config(tmp.path(), "killed", 4, extra);
    let dir = tmp.path().join("killed");
    let mut run = spawn_two(&killed);
    assert!(wait_for(
        &dir.join("checkpoint-3"),
        Duration::from_secs(300)
    ));
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        !dir.join("model").exists(),
        "the run ended before it was killed"
    );
    let out = spawn_two(&killed).wait_with_output().unwrap();
    assert_ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("resuming from"), "{log}");
    assert_close(
        &dir.join("model/model.safetensors"),
        &tmp.path().join("whole/model/model.safetensors"),
        1e-6,
    );
}

/// Topologies that cannot work are one clear error before anything runs.
#[test]
fn bad_topologies_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = config(tmp.path(), "bad", 4, serde_json::json!({}));
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--nodes",
                "2",
                "--node-rank",
                "2",
                "--coordinator",
                "127.0.0.1:29500",
            ],
            "`--node-rank` 2 is not below `--nodes` 2",
        ),
        (
            &["--nodes", "2", "--node-rank", "1"],
            "`--coordinator`: needed with more than one node",
        ),
        (
            &["--nodes", "2", "--coordinator", "localhost"],
            "`localhost` is not HOST:PORT",
        ),
        (
            &["--nodes", "2", "--coordinator", "127.0.0.1:29500"],
            "burn-collective 0.21.0",
        ),
    ];
    for (args, needle) in cases {
        let out = native()
            .args(["train", run.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(needle), "{needle} not in {stderr}");
    }
    assert!(!tmp.path().join("bad").exists(), "nothing was written");

    // Rank 0 cannot take its output directory (a file is in the way): the run ends with its
    // error at once, not when rank 1 gives up waiting for it (600 s by default).
    std::fs::write(tmp.path().join("bad"), "").unwrap();
    let started = Instant::now();
    let out = native()
        .args(["train", run.to_str().unwrap(), "--devices", "0,1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
    assert!(stderr.contains("(rank 0)"), "{stderr}");
}
