//! A LoRA, (IA)³ adapter or Compacter per task trained by `native train`
//! (`adapter_config_name: "lora"`, `"ia3"`, `"compacter"`): exported in PEFT's format (the
//! Compacter in the `adapters` library's), resumed exactly, usable by `generate --adapter`, and
//! (LoRA, (IA)³) folded into the backbone by `native merge` with the same generations.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::{small_config, tensors_of, train, write_config};

fn native(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_native"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A backbone to adapt (two steps of full fine-tuning of the tiny preset, under `tmp/base`):
/// its model directory.
fn backbone(tmp: &Path) -> std::path::PathBuf {
    let base = tmp.join("base");
    let mut full = small_config(&base, json!({"max_steps": 2, "do_eval": false}));
    full["save_steps"] = json!(0);
    ok(&train(&write_config(tmp, &full)));
    base.join("model")
}

fn lora_config(out: &Path, backbone: &Path) -> serde_json::Value {
    small_config(
        out,
        json!({
            "model_name_or_path": backbone,
            "train_adapters": true,
            "adapter_config_name": "lora",
            "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q", "v", "wo"], "lora_dropout": 0.1},
            "learning_rate": 0.01,
            "max_steps": 10,
            "do_eval": false,
        }),
    )
}

#[test]
fn lora_runs_export_peft_files_resume_exactly_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let model = backbone(tmp.path());
    // Uninterrupted, and stopped after step 5 then resumed.
    let whole = tmp.path().join("whole");
    ok(&train(&write_config(
        tmp.path(),
        &lora_config(&whole, &model),
    )));
    let parts = tmp.path().join("parts");
    let mut first = lora_config(&parts, &model);
    first["max_steps"] = json!(5);
    ok(&train(&write_config(tmp.path(), &first)));
    ok(&train(&write_config(
        tmp.path(),
        &lora_config(&parts, &model),
    )));
    for task in ["sentiment", "similarity"] {
        let dir = whole.join("adapters").join(task);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap())
                .unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["r"], 4);
        let tensors = tensors_of(&dir.join("adapter_model.safetensors"));
        // q and v in 2 + 2 self-attentions and 2 cross-attentions, wo in 4 blocks: A and B each.
        assert_eq!(tensors.len(), 2 * (12 + 4), "{task}");
        assert!(tensors
            .iter()
            .all(|(n, _)| n.starts_with("base_model.model.")));
        assert_eq!(
            tensors,
            tensors_of(
                &parts
                    .join("adapters")
                    .join(task)
                    .join("adapter_model.safetensors")
            ),
            "{task}: a resumed run ends with the uninterrupted run's LoRA"
        );
    }

    generate_equals_merged(&model, &whole.join("adapters/sentiment"), tmp.path());
}

/// `generate` with the adapter and `generate` on the backbone with the adapter merged (by
/// `native merge`, into a new directory under `tmp`) give the same text.
fn generate_equals_merged(model: &Path, adapter: &Path, tmp: &Path) {
    let text = "sentence: a fine and moving film";
    let with_adapter = ok(&native(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--backend",
        "cpu",
        text,
    ]));
    let merged = tmp.join("merged");
    let merge = || {
        native(&[
            "merge",
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--output",
            merged.to_str().unwrap(),
        ])
    };
    ok(&merge());
    let plain = ok(&native(&[
        "generate",
        "--model",
        merged.to_str().unwrap(),
        "--backend",
        "cpu",
        text,
    ]));
    assert_eq!(with_adapter, plain);
    // A second merge into the same directory is refused: nothing is overwritten.
    assert!(!merge().status.success());
}

#[test]
fn ia3_runs_export_peft_files_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let model = backbone(tmp.path());
    let out = tmp.path().join("ia3");
    let config = small_config(
        &out,
        json!({
            "model_name_or_path": model,
            "train_adapters": true,
            "adapter_config_name": "ia3",
            "ia3": {},
            "learning_rate": 0.05,
            "max_steps": 6,
            "do_eval": false,
        }),
    );
    ok(&train(&write_config(tmp.path(), &config)));
    let dir = out.join("adapters/sentiment");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "IA3");
    assert_eq!(config["feedforward_modules"], json!(["wo"]));
    let tensors = tensors_of(&dir.join("adapter_model.safetensors"));
    // PEFT's T5 defaults: k and v in 2 + 2 self-attentions and 2 cross-attentions, wo in 4 blocks.
    assert_eq!(tensors.len(), 12 + 4);
    assert!(tensors.iter().all(|(n, _)| n.ends_with(".ia3_l")));
    generate_equals_merged(&model, &dir, tmp.path());
}

#[test]
fn compacter_runs_export_adapterhub_files() {
    let tmp = tempfile::tempdir().unwrap();
    let model = backbone(tmp.path());
    let out = tmp.path().join("compacter");
    let config = small_config(
        &out,
        json!({
            "model_name_or_path": model,
            "train_adapters": true,
            "adapter_config_name": "compacter",
            "compacter": {"reduction_factor": 4, "phm_c_init": "uniform"},
            "learning_rate": 0.01,
            "max_steps": 6,
            "do_eval": false,
        }),
    );
    ok(&train(&write_config(tmp.path(), &config)));
    let dir = out.join("adapters/sentiment");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["name"], "sentiment");
    assert_eq!(config["config"]["phm_layer"], true);
    assert_eq!(config["config"]["phm_c_init"], "uniform");
    assert_eq!(config["config"]["reduction_factor"], 4.0);
    let tensors = tensors_of(&dir.join("adapter.safetensors"));
    assert!(tensors
        .iter()
        .any(|(n, _)| n == "shared_parameters.sentiment.phm_rule"));
    assert!(tensors
        .iter()
        .any(|(n, _)| n.ends_with(".adapters.sentiment.adapter_up.W_left")));
    ok(&native(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        dir.to_str().unwrap(),
        "--backend",
        "cpu",
        "sentence: a fine and moving film",
    ]));
}
