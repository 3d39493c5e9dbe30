//! The seed corpus of every target (`fuzz/corpus/<target>/`), made from the repository's
//! fixtures and from small files written by `core` itself, so that the seeds stay a few KB and
//! follow the formats as they change. `T5_FUZZ_WRITE_SEEDS=1 cargo test -p t5-fuzz --test smoke
//! write_seeds` rewrites them.
//!
//! A seed named `ok-*` must be accepted by its target and one named `no-*` refused (the smoke
//! test checks both, so a seed that rots is noticed); libFuzzer mutates both kinds.

use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use t5_core::adapter::config::{BottleneckConfig, SeedAdapterConfig};
use t5_core::adapter::format::{adapterhub_config, save_adapter};
use t5_core::adapter::hyper::config::HyperNetworkConfig;
use t5_core::adapter::hyper::format::save_hypernetwork;
use t5_core::adapter::hyper::HyperNetwork;
use t5_core::adapter::lora::adapterhub::parse_adapterhub_lora;
use t5_core::adapter::lora::{LoraConfig, Modules};
use t5_core::adapter::set::{AdapterFormat, AdapterSet, TaskAdapter};
use t5_core::backend::Cpu;
use t5_core::weights::write_safetensors;

use crate::input::{join, tiny_model, TINY_MODEL};

/// One seed: its target, its file name and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Seed {
    Seed {
        target,
        name: name.into(),
        bytes: bytes.into(),
    }
}

/// The repository's root (fixtures and configs are read from there).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> Vec<u8> {
    let path = repo().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seeds of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    seeds.extend(configs());
    seeds.extend(data());
    seeds.extend(weights());
    seeds.extend(adapters());
    seeds.extend(hypernetworks());
    seeds.extend(npys());
    seeds.extend(texts());
    seeds
}

/// Replaces the folder of each target under `corpus` by its seeds.
pub fn write(corpus: &Path) -> std::io::Result<()> {
    let seeds = all();
    let mut targets: Vec<&str> = seeds.iter().map(|s| s.target).collect();
    targets.dedup();
    for target in targets {
        let dir = corpus.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
    }
    for s in &seeds {
        std::fs::write(corpus.join(s.target).join(&s.name), &s.bytes)?;
    }
    Ok(())
}

fn configs() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(repo().join("configs"))
        .expect("configs/")
        .map(|e| {
            e.expect("configs/")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        seeds.push(seed(
            "run_config",
            format!("ok-{name}"),
            read(&format!("configs/{name}")),
        ));
    }
    seeds.push(seed("run_config", "no-array", "[1, 2]"));
    seeds.push(seed(
        "run_config",
        "no-misspelled-key",
        r#"{"tasks": ["rte"], "learning_rat": 0.1}"#,
    ));
    seeds.push(seed(
        "run_config",
        "no-wrong-type",
        r#"{"tasks": ["rte"], "max_steps": "ten"}"#,
    ));
    for (name, path) in [
        ("ok-t5-v1_0", "tests/fixtures/t5-v1_0/config.json"),
        ("ok-t5-v1_1", "tests/fixtures/t5-v1_1/config.json"),
    ] {
        seeds.push(seed("model_config", name, read(path)));
    }
    seeds.push(seed("model_config", "ok-tiny", TINY_MODEL));
    seeds.push(seed("model_config", "ok-t5-small-defaults", "{}"));
    seeds.push(seed("model_config", "no-umt5", r#"{"model_type": "umt5"}"#));
    seeds.push(seed(
        "model_config",
        "no-zero-heads",
        r#"{"num_heads": 0, "feed_forward_proj": "gated-gelu"}"#,
    ));
    seeds
}

fn data() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for task in ["paraphrase", "sentiment", "similarity"] {
        let text = String::from_utf8(read(&format!("configs/data/{task}/validation.jsonl")))
            .expect("UTF-8");
        let lines: Vec<&str> = text.lines().take(3).collect();
        seeds.push(seed("jsonl", format!("ok-{task}"), lines.join("\n") + "\n"));
    }
    seeds.push(seed(
        "jsonl",
        "ok-nested-and-types",
        "{\"translation\": {\"en\": \"Hello\", \"ro\": \"Salut\"}, \"idx\": 3, \"ok\": true, \"x\": null, \"f\": 3.8}\n\n\
         {\"sentence\": \"caf\u{e9} \u{1f600}\", \"label\": -1}\r\n",
    ));
    seeds.push(seed("jsonl", "no-array-line", "{\"a\": 1}\n[1]\n"));
    for (name, path) in [
        (
            "ok-cola-headerless",
            "tests/fixtures/data/glue_data/CoLA/train.tsv",
        ),
        (
            "ok-mnli",
            "tests/fixtures/data/glue_data/MNLI/dev_mismatched.tsv",
        ),
        ("ok-mrpc", "tests/fixtures/data/glue_data/MRPC/train.tsv"),
    ] {
        seeds.push(seed("tsv", name, read(path)));
    }
    seeds.push(seed(
        "tsv",
        "no-ragged",
        "\u{feff}index\tsentence\tlabel\n0\tgood\t1\n1\tbad\n",
    ));
    for (name, path) in [
        ("ok-rte-train", "glue/rte/train-00000-of-00001.parquet"),
        ("ok-rte-test", "glue/rte/test-00000-of-00001.parquet"),
        ("ok-stsb", "glue/stsb/validation-00000-of-00001.parquet"),
        (
            "ok-wmt16-struct",
            "wmt16/ro-en/validation-00000-of-00001.parquet",
        ),
    ] {
        seeds.push(seed(
            "parquet",
            name,
            read(&format!("tests/fixtures/data/hub/{path}")),
        ));
    }
    let rte = read("tests/fixtures/data/hub/glue/rte/validation-00000-of-00001.parquet");
    seeds.push(seed("parquet", "no-truncated", &rte[..rte.len() / 2]));
    seeds
}

/// A safetensors file of `(name, dtype, shape, bytes)` tensors.
fn safetensors_file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).expect("a tensor")))
        .collect();
    safetensors::serialize(views, None).expect("serializable")
}

fn weights() -> Vec<Seed> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("model.safetensors");
    let tensors = vec![
        (
            "shared.weight".to_string(),
            vec![3, 2],
            vec![0.5, -1.0, 2.0, 0.0, 1e-3, -7.25],
        ),
        (
            "final_layer_norm.weight".to_string(),
            vec![2],
            vec![1.0, 1.0],
        ),
    ];
    let metadata = [("format".to_string(), "pt".to_string())].into();
    write_safetensors(&path, &tensors, Some(metadata)).expect("a safetensors file");
    let f16: Vec<u8> = [1.0f32, -2.5, 65504.0, 0.0]
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = [1.0f32, 3.0e38]
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let mut seeds = vec![
        seed(
            "safetensors",
            "ok-f32-with-metadata",
            std::fs::read(&path).expect("written"),
        ),
        seed(
            "safetensors",
            "ok-f16-bf16",
            safetensors_file(&[
                ("a.weight", Dtype::F16, vec![2, 2], f16),
                ("b", Dtype::BF16, vec![2], bf16),
            ]),
        ),
        seed("safetensors", "ok-no-tensors", safetensors_file(&[])),
        seed(
            "safetensors",
            "no-i64",
            safetensors_file(&[("ids", Dtype::I64, vec![1], vec![7, 0, 0, 0, 0, 0, 0, 0])]),
        ),
    ];
    let whole = std::fs::read(&path).expect("written");
    seeds.push(seed(
        "safetensors",
        "no-truncated",
        &whole[..whole.len() - 3],
    ));
    for (name, path) in [
        ("ok-zip-dtypes", "dtypes.bin"),
        ("ok-legacy-dtypes", "dtypes-legacy.bin"),
        ("no-os-system", "hostile/os-system.bin"),
        ("no-offset-past-end", "hostile/offset-past-end.bin"),
        ("ok-non-contiguous", "hostile/non-contiguous.bin"),
        ("no-expanded", "hostile/expanded.bin"),
    ] {
        seeds.push(seed(
            "torch_bin",
            name,
            read(&format!("tests/fixtures/bin/{path}")),
        ));
    }
    seeds.push(seed(
        "shard_index",
        "ok-fixture",
        read("tests/fixtures/t5-v1_1-bf16-sharded/model.safetensors.index.json"),
    ));
    seeds.push(seed(
        "shard_index",
        "ok-two-shards",
        r#"{"metadata": {"total_size": 64}, "weight_map": {"shared.weight": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}}"#,
    ));
    seeds.push(seed("shard_index", "no-empty-map", r#"{"weight_map": {}}"#));
    seeds
}

/// The two files of an adapter directory that `save_adapter` writes for `adapter`, as one input.
fn adapter_input(adapter: TaskAdapter<Cpu>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let name = adapter.name.clone();
    let mut set = AdapterSet::default();
    set.insert(adapter);
    save_adapter(&set, &name, tiny_model(), dir.path()).expect("an adapter directory");
    let config = std::fs::read(dir.path().join("adapter_config.json")).expect("written");
    // A PEFT LoRA's weights file has PEFT's name.
    let weights = std::fs::read(dir.path().join("adapter.safetensors"))
        .or_else(|_| std::fs::read(dir.path().join("adapter_model.safetensors")))
        .expect("written");
    join(&[&config, &weights])
}

/// A PEFT LoRA (names, a rank pattern, rsLoRA) and an AdapterHub LoRA on the tiny model.
fn lora_seeds() -> Vec<Seed> {
    let model = tiny_model();
    let device = Default::default();
    let peft = LoraConfig {
        r: 2,
        lora_alpha: 4.0,
        target_modules: Modules::Names(["q", "v", "wi", "wo"].map(String::from).to_vec()),
        rank_pattern: [("decoder.block.0.layer.1.EncDecAttention.q".to_string(), 1)].into(),
        use_rslora: true,
        ..LoraConfig::default()
    };
    let hub_config = json!({
        "config": {"architecture": "lora", "selfattn_lora": true, "intermediate_lora": true,
                   "output_lora": true, "attn_matrices": ["q", "k", "v"], "r": 2, "alpha": 4,
                   "dropout": 0.0, "leave_out": [1], "composition_mode": "add", "init_weights": "lora",
                   "use_gating": false},
        "hidden_size": model.d_model, "model_class": "T5ForConditionalGeneration",
        "model_name": "t5", "model_type": "t5", "name": "ah_lora", "version": "adapters.1.3.0"
    });
    let (name, hub) = parse_adapterhub_lora(&hub_config, model).expect("a valid AdapterHub LoRA");
    let mut hub_lora = TaskAdapter::<Cpu>::init_lora(&name, hub, model, &device).expect("a LoRA");
    hub_lora.format = AdapterFormat::AdapterHub {
        name,
        config: hub_config,
    };
    let peft_lora = TaskAdapter::<Cpu>::init_lora("lora", peft, model, &device).expect("a LoRA");
    vec![
        seed("adapter", "ok-peft-lora", adapter_input(peft_lora)),
        seed("adapter", "ok-adapterhub-lora", adapter_input(hub_lora)),
    ]
}

fn adapters() -> Vec<Seed> {
    let model = tiny_model();
    let device = Default::default();
    let fresh = |name: &str, config: BottleneckConfig| {
        TaskAdapter::<Cpu>::init(name, config, model, &device).expect("a valid adapter")
    };
    let seed_options = SeedAdapterConfig {
        reduction_factor: 4,
        ..SeedAdapterConfig::default()
    };
    let encoder_only = SeedAdapterConfig {
        add_adapter_in_self_attention: false,
        add_adapters_in_decoder: false,
        add_layer_norm_before_adapter: true,
        non_linearity: "gelu_new".into(),
        ..seed_options.clone()
    };
    let houlsby = BottleneckConfig {
        reduction_factor: 2.0,
        ..BottleneckConfig::houlsby()
    };
    let pfeiffer = BottleneckConfig {
        reduction_factor: 2.0,
        ..BottleneckConfig::pfeiffer()
    };
    let normed = BottleneckConfig {
        ln_before: true,
        ln_after: true,
        leave_out: vec![1],
        ..houlsby.clone()
    };
    let hub = |name: &str, config: BottleneckConfig| {
        let mut adapter = fresh(name, config.clone());
        adapter.format = AdapterFormat::AdapterHub {
            name: name.into(),
            config: adapterhub_config(name, &config, model),
        };
        adapter
    };
    let mut seeds = lora_seeds();
    seeds.extend([
        seed(
            "adapter",
            "ok-seed",
            adapter_input(fresh("rte", BottleneckConfig::seed(&seed_options, model))),
        ),
        seed(
            "adapter",
            "ok-seed-encoder-only",
            adapter_input(fresh("sst2", BottleneckConfig::seed(&encoder_only, model))),
        ),
        seed(
            "adapter",
            "ok-bottleneck",
            adapter_input(fresh("cola", houlsby)),
        ),
        seed(
            "adapter",
            "ok-adapterhub-pfeiffer",
            adapter_input(hub("pfeiffer", pfeiffer)),
        ),
        seed(
            "adapter",
            "ok-adapterhub-norms",
            adapter_input(hub("houlsby", normed)),
        ),
    ]);
    // The options AdapterHub has and we refuse, each at the tiny model's width.
    let mut unsupported: Vec<_> =
        std::fs::read_dir(repo().join("tests/fixtures/adapters/unsupported"))
            .expect("the unsupported adapter fixtures")
            .map(|e| e.expect("a fixture").path())
            .collect();
    unsupported.sort();
    for dir in unsupported {
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(dir.join("adapter_config.json")).expect("a config"),
        )
        .expect("JSON");
        config["hidden_size"] = json!(model.d_model);
        let name = dir
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        seeds.push(seed(
            "adapter",
            format!("no-{name}"),
            serde_json::to_vec(&config).expect("JSON"),
        ));
    }
    seeds
}

fn hypernetworks() -> Vec<Seed> {
    let device = Default::default();
    let mut seeds = Vec::new();
    for variant in [
        "meta-adapter",
        "hyperformer",
        "hyperformer++",
        "hyperformer++-options",
    ] {
        let mut config: Value = serde_json::from_slice(&read(&format!(
            "tests/fixtures/hyper/{variant}/hypernetwork_config.json"
        )))
        .expect("JSON");
        for (key, value) in [
            ("d_model", 8),
            ("num_layers", 1),
            ("num_decoder_layers", 1),
            ("task_embedding_dim", 4),
            ("projected_task_embedding_dim", 4),
            ("task_hidden_dim", 4),
            ("reduction_factor", 4),
        ] {
            config[key] = json!(value);
        }
        let config: HyperNetworkConfig =
            serde_json::from_value(config).expect("a hypernetwork config");
        let hyper = HyperNetwork::<Cpu>::init(config, &device).expect("a valid hypernetwork");
        let dir = tempfile::tempdir().expect("a temporary folder");
        save_hypernetwork(&hyper, dir.path()).expect("a hypernetwork directory");
        let file = |name: &str| std::fs::read(dir.path().join(name)).expect("written");
        let (config, weights, embeddings) = (
            file("hypernetwork_config.json"),
            file("hypernetwork.safetensors"),
            file("task_embeddings.safetensors"),
        );
        seeds.push(seed(
            "hypernetwork",
            format!("ok-{variant}"),
            join(&[&config, &weights, &embeddings]),
        ));
        if variant == "meta-adapter" {
            // Embeddings whose task is not the config's.
            let renamed = String::from_utf8(config.clone())
                .expect("UTF-8")
                .replace("\"rte\"", "\"mnli\"");
            seeds.push(seed(
                "hypernetwork",
                "no-unknown-task",
                join(&[renamed.as_bytes(), &weights, &embeddings]),
            ));
        }
    }
    seeds
}

/// A `.npy` file: `version` 1 has a u16 header length, 2 and 3 a u32 one.
fn npy_file(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': ({shape}), }}");
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn npys() -> Vec<Seed> {
    let f4: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f8: Vec<u8> = [0.25f64, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vec![
        seed(
            "npy",
            "ok-ruse-rte",
            read("tests/fixtures/hyper/meta-adapter-taskdir/task_embedding_dir/rte.npy"),
        ),
        seed("npy", "ok-f4-v1", npy_file(1, "<f4", false, "4,", &f4)),
        seed("npy", "ok-f8-v2", npy_file(2, "<f8", false, "1, 2", &f8)),
        seed(
            "npy",
            "ok-f4-v3-matrix",
            npy_file(3, "<f4", false, "2, 2", &f4),
        ),
        seed("npy", "ok-scalar", npy_file(1, "<f4", false, "", &f4[..4])),
        seed("npy", "no-int", npy_file(1, "<i8", false, "2,", &f8)),
        seed("npy", "no-fortran", npy_file(1, "<f4", true, "2, 2", &f4)),
        seed(
            "npy",
            "no-short-data",
            npy_file(1, "<f4", false, "3,", &f4[..8]),
        ),
    ]
}

fn texts() -> Vec<Seed> {
    [
        ("ok-sentence", "sst2 sentence: it 's a charming and often affecting journey . </s>"),
        ("ok-pair", "rte sentence1: A man is playing a guitar. sentence2: A person plays music."),
        ("ok-special-tokens", "<pad></s><unk><extra_id_0> x <extra_id_99><extra_id_100>"),
        ("ok-unicode", "Caf\u{e9} na\u{ef}ve \u{fb01} \u{2163} \u{ff21}\u{ff22} \u{65e5}\u{672c}\u{8a9e} \u{1f600}\u{200d}\u{1f467} e\u{301} \u{5d0}\u{5d1} \u{feff}"),
        ("ok-whitespace", "\t  a\n\nb\r\n \u{a0}\u{3000}c\u{0}d\u{7f} "),
        ("ok-empty", ""),
    ]
    .into_iter()
    .map(|(name, text)| seed("tokenizer", name, text))
    .chain(tokenizer_files())
    .collect()
}

/// The fixture tokenizer cut to its first 40 pieces and 4 added tokens (its precompiled
/// normalizer kept), with and without a normalizer.
fn tokenizer_files() -> Vec<Seed> {
    let mut tokenizer: Value =
        serde_json::from_slice(&read("tests/fixtures/tokenizer/tokenizer.json")).expect("JSON");
    let vocab = tokenizer["model"]["vocab"]
        .as_array_mut()
        .expect("a vocabulary");
    vocab.truncate(40);
    let added = tokenizer["added_tokens"]
        .as_array_mut()
        .expect("added tokens");
    let extra = added.pop().expect("an <extra_id_*>");
    added.truncate(3);
    let mut extra = extra;
    extra["id"] = json!(40);
    added.push(extra);
    let small = serde_json::to_vec(&tokenizer).expect("JSON");
    tokenizer["normalizer"] = Value::Null;
    let bare = serde_json::to_vec(&tokenizer).expect("JSON");
    vec![
        seed("tokenizer_json", "ok-t5-40-pieces", small),
        seed("tokenizer_json", "ok-no-normalizer", bare),
        seed(
            "tokenizer_json",
            "no-bpe-without-merges",
            r#"{"model": {"type": "BPE", "vocab": {}}}"#,
        ),
    ]
}
