//! `native merge-adapters` end to end: a PEFT merge and an AdapterHub average equal the
//! libraries' (`tests/fixtures/merge/`, checked in full by `core/tests/merge_adapters.rs`), and
//! bad input is one line naming the adapter at fault.

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

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every f32 tensor of a safetensors file, by name.
fn tensors(file: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn assert_same(got: &Path, want: &Path) {
    let (got, want) = (tensors(got), tensors(want));
    assert_eq!(got.len(), want.len());
    for ((n, g), (m, w)) in got.iter().zip(&want) {
        assert_eq!(n, m);
        let diff = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= 1e-5, "{n} differs by {diff}");
    }
}

#[test]
fn merges_loras_as_peft_and_averages_bottlenecks_as_adapterhub() {
    let m = fixtures().join("merge");
    let model = fixtures().join("t5-v1_0");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ties");
    let (a, b) = (m.join("lora-a"), m.join("lora-b"));
    let args = [
        "merge-adapters",
        "--model",
        path(&model),
        "--adapter",
        path(&a),
        "--adapter",
        path(&b),
        "--weights",
        "0.8",
        "-0.5",
        "--combination",
        "ties",
        "--density",
        "0.5",
        "--output",
        path(&out),
    ];
    let run = native(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same(
        &out.join("adapter_model.safetensors"),
        &m.join("peft-ties").join("adapter_model.safetensors"),
    );

    let avg = tmp.path().join("avg");
    let run = native(&[
        "merge-adapters",
        "--model",
        path(&model),
        "--adapter",
        path(&m.join("bn-a")),
        "--adapter",
        path(&m.join("bn-b")),
        "--weights",
        "0.7",
        "-0.2",
        "--combination",
        "average",
        "--output",
        path(&avg),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same(
        &avg.join("adapter.safetensors"),
        &m.join("bn-average").join("adapter.safetensors"),
    );
}

#[test]
fn bad_input_is_one_line_naming_the_adapter() {
    let m = fixtures().join("merge");
    let model = fixtures().join("t5-v1_0");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let missing = m.join("no-such-adapter");
    let r4 = fixtures().join("peft").join("lora-v1_0");
    for (adapters, combination, expect) in [
        (
            vec![m.join("lora-a"), m.join("bn-a")],
            "linear",
            "bn-a: a bottleneck adapter while",
        ),
        (
            vec![m.join("lora-a"), missing.clone()],
            "linear",
            "no-such-adapter",
        ),
        (vec![m.join("lora-a"), r4], "linear", "ranks [2, 4] differ"),
        (
            vec![m.join("bn-a"), m.join("bn-b")],
            "svd",
            "only `--combination average`",
        ),
    ] {
        let mut args = vec!["merge-adapters", "--model", path(&model)];
        for a in &adapters {
            args.extend(["--adapter", path(a)]);
        }
        args.extend([
            "--weights",
            "1",
            "1",
            "--combination",
            combination,
            "--output",
            path(&out),
        ]);
        let run = native(&args);
        assert!(!run.status.success());
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err}");
    }
}
