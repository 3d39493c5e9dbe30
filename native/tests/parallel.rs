//! Data-parallel `native train`: two processes on 127.0.0.1, one CPU rank each, against one
//! process on the same global batches; killed and resumed; a rank gone; ranks that disagree.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A small run on the embedded data (the tiny preset), `batch` rows per rank, no dropout (masks
/// differ between one process and two by design), no evaluation.
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

/// A port whose next two are likely free too (the coordinator and each node's data service).
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if port < 65000 && (1..=2).all(|i| free(port + i)) {
            return port;
        }
    }
}

fn native() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_native"));
    c.env_remove("SLURM_NNODES").env_remove("SLURM_NODEID");
    c
}

/// Starts rank `rank` of `nodes` with the coordinator on `port`.
fn spawn_rank(config: &Path, rank: usize, nodes: usize, port: u16, extra: &[&str]) -> Child {
    native()
        .args(["train", config.to_str().unwrap()])
        .args(["--nodes", &nodes.to_string(), "--node-rank", &rank.to_string()])
        .args(["--coordinator", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn two_ranks(config: &Path, extra: &[&str]) -> [Output; 2] {
    let port = free_port();
    let a = spawn_rank(config, 0, 2, port, extra);
    let b = spawn_rank(config, 1, 2, port, extra);
    [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
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
        assert!(diff <= rel * scale, "{na}: max difference {diff} (scale {scale})");
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
/// end with the weights of one process on batches of 8, the same batches.
#[test]
fn two_processes_train_as_one_on_the_global_batch() {
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
        let outs = two_ranks(&two, &["--collective-timeout", "120"]);
        outs.iter().for_each(assert_ok);
        for (a, b) in weights(&tmp.path().join(format!("{name}-two")), adapters)
            .iter()
            .zip(weights(&tmp.path().join(format!("{name}-one")), adapters))
        {
            assert_close(a, &b, 1e-5);
        }
        // Rank 1 wrote nothing: rank 0's outputs are the run's.
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

/// Every rank killed (SIGKILL) after the first checkpoint, then started again: the run ends
/// with the weights of the same two-process run left alone.
#[test]
fn killed_ranks_resume_to_the_weights_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = serde_json::json!({"max_steps": 16, "save_steps": 3, "save_total_limit": 2});
    let whole = config(tmp.path(), "whole", 4, extra.clone());
    two_ranks(&whole, &[]).iter().for_each(assert_ok);

    let killed = config(tmp.path(), "killed", 4, extra);
    let dir = tmp.path().join("killed");
    let port = free_port();
    let mut ranks = [
        spawn_rank(&killed, 0, 2, port, &[]),
        spawn_rank(&killed, 1, 2, port, &[]),
    ];
    assert!(wait_for(&dir.join("checkpoint-3"), Duration::from_secs(300)));
    for r in &mut ranks {
        r.kill().unwrap();
        r.wait().unwrap();
    }
    assert!(
        !dir.join("model").exists(),
        "the run ended before it was killed"
    );
    let outs = two_ranks(&killed, &[]);
    outs.iter().for_each(assert_ok);
    let log = String::from_utf8_lossy(&outs[0].stderr);
    assert!(log.contains("resuming from"), "{log}");
    assert_close(
        &dir.join("model/model.safetensors"),
        &tmp.path().join("whole/model/model.safetensors"),
        1e-6,
    );
}

/// A rank that exits mid-run, a node that never comes, ranks with different configs: errors
/// on the others within the timeout, never a hang.
#[test]
fn ranks_gone_or_at_odds_are_errors_within_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let long = serde_json::json!({"max_steps": 100000});
    let run = config(tmp.path(), "gone", 4, long.clone());
    let port = free_port();
    let timeout = ["--collective-timeout", "10"];
    let rank0 = spawn_rank(&run, 0, 2, port, &timeout);
    let mut rank1 = spawn_rank(&run, 1, 2, port, &timeout);
    let metrics = tmp.path().join("gone/metrics.jsonl");
    assert!(wait_for(&metrics, Duration::from_secs(300)));
    rank1.kill().unwrap();
    let killed = Instant::now();
    let out = rank0.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(killed.elapsed() < Duration::from_secs(60), "{stderr}");
    assert!(stderr.contains("error:") && stderr.contains("rank 0"), "{stderr}");

    // Rank 1 never comes: rank 0 gives up after the timeout.
    let alone = config(tmp.path(), "alone", 4, long.clone());
    let start = Instant::now();
    let out = spawn_rank(&alone, 0, 2, free_port(), &["--collective-timeout", "5"])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(60), "{stderr}");
    assert!(stderr.contains("no answer from the other ranks"), "{stderr}");

    // Two configs: both ranks refuse to start.
    let a = config(tmp.path(), "odds", 4, long.clone());
    let b = config(
        tmp.path(),
        "odds-b",
        4,
        serde_json::json!({"max_steps": 100000, "learning_rate": 0.002, "output_dir": tmp.path().join("odds")}),
    );
    let port = free_port();
    let ra = spawn_rank(&a, 0, 2, port, &timeout);
    let rb = spawn_rank(&b, 1, 2, port, &timeout);
    for out in [ra.wait_with_output().unwrap(), rb.wait_with_output().unwrap()] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("another run config"), "{stderr}");
    }
}
