//! `native import` end to end, and `.bin` checkpoints through `native generate`: a seed
//! checkpoint imported, then generating with the imported model and adapter prints the seed
//! reference's ids; a HyperFormer checkpoint imported, then generating with the imported model
//! and hypernetwork prints the hyperformer-named reference's ids; a hostile `.bin` is one line on
//! stderr and runs nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn native(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_native"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("runs native")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn an_imported_seed_checkpoint_generates_the_seeds_ids() {
    let out = tempfile::tempdir().unwrap();
    let src = fixtures().join("bin/seed-checkpoint");
    let run = native(&[
        "import",
        src.to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("adapter `rte`") && stdout.contains("adapter `sst2`"),
        "{stdout}"
    );
    assert!(
        stderr.contains("note:") && stderr.contains("no tokenizer.json"),
        "{stderr}"
    );
    let model = out.path().join("model");
    std::fs::copy(
        fixtures().join("tokenizer/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    for task in ["rte", "sst2"] {
        let g = json(
            &fixtures()
                .join("adapters/seed-v1_0")
                .join(task)
                .join("golden.json"),
        );
        let adapter = out.path().join("adapters").join(task);
        let mut args = vec![
            "generate",
            "--json",
            "--backend",
            "cpu",
            "--max-new-tokens",
            "16",
        ];
        args.extend(["--model", model.to_str().unwrap()]);
        args.extend(["--adapter", adapter.to_str().unwrap()]);
        let texts: Vec<&str> = g["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        args.extend(texts.iter().copied());
        let gen = native(&args);
        assert!(
            gen.status.success(),
            "{}",
            String::from_utf8_lossy(&gen.stderr)
        );
        for (i, line) in String::from_utf8(gen.stdout).unwrap().lines().enumerate() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let want = expected_ids(&g["greedy"][i]);
            let got: Vec<u64> = line["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{task} row {i}");
        }
    }
}

/// The ids of golden row `row` as `native generate` prints them: without the start token, up to
/// and including the first EOS.
fn expected_ids(row: &serde_json::Value) -> Vec<u64> {
    row.as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|v| v.as_u64().unwrap())
        .scan(false, |done, t| {
            (!*done).then(|| {
                *done = t == 1;
                t
            })
        })
        .collect()
}

#[test]
fn an_imported_hyperformer_checkpoint_generates_the_references_ids() {
    // bin/hyper-checkpoints/hyperformer++ with its backbone shard copied in (committed once).
    let src = tempfile::tempdir().unwrap();
    let committed = fixtures().join("bin/hyper-checkpoints/hyperformer++");
    for entry in std::fs::read_dir(&committed).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), src.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        fixtures().join("bin/t5-v1_0/pytorch_model.bin"),
        src.path().join("pytorch_model-00001-of-00002.bin"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = native(&[
        "import",
        src.path().to_str().unwrap(),
        "--output",
        out.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("hypernetwork (hyperformer++"), "{stdout}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let model = out.path().join("model");
    std::fs::copy(
        fixtures().join("tokenizer/tokenizer.json"),
        model.join("tokenizer.json"),
    )
    .unwrap();
    let hyper = out.path().join("hypernetwork");
    let g = json(&committed.join("golden.json"));
    let texts: Vec<&str> = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for task in ["rte", "sst2"] {
        let mut args = vec!["generate", "--json", "--backend", "cpu"];
        args.extend(["--max-new-tokens", "16", "--task", task]);
        args.extend(["--model", model.to_str().unwrap()]);
        args.extend(["--hypernetwork", hyper.to_str().unwrap()]);
        args.extend(texts.iter().copied());
        let gen = native(&args);
        assert!(
            gen.status.success(),
            "{}",
            String::from_utf8_lossy(&gen.stderr)
        );
        for (i, line) in String::from_utf8(gen.stdout).unwrap().lines().enumerate() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let got: Vec<u64> = line["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                got,
                expected_ids(&g["runs"][task]["greedy"][i]),
                "{task} row {i}"
            );
        }
    }
}

#[test]
fn a_hostile_bin_is_one_line_and_runs_nothing() {
    let marker = Path::new("/tmp/t5-bin-fixture-pwned");
    let _ = std::fs::remove_file(marker);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("bin/t5-v1_0/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("tokenizer/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("bin/hostile/os-system.bin"),
        dir.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let out = native(&[
        "generate",
        "--backend",
        "cpu",
        "--model",
        dir.path().to_str().unwrap(),
        "hello",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("INFO")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains("pytorch_model.bin")
            && lines[0].contains("`posix.system`"),
        "{stderr}"
    );
    assert!(!marker.exists(), "the pickle's command ran");
}
