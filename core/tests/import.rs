//! `native import` of a seed checkpoint (`tests/fixtures/bin/seed-checkpoint/`, made by
//! `make_bin_fixtures.py`: the t5-v1_0 backbone and the adapters of `adapters/seed-v1_0/{rte,sst2}`
//! under the seed's module names, saved by torch as `pytorch_model.bin`). After the import, the
//! model and each task's adapter reproduce that adapter's golden logits and greedy ids, on the CPU
//! and on wgpu; the adapter files hold exactly the reference's tensors. HyperFormer checkpoints
//! (`tests/fixtures/bin/hyper-checkpoints/`: a meta-adapter, HyperFormer and HyperFormer++ under
//! hyperformer's module names) become hypernetwork directories that reproduce the hyperformer-named
//! reference's logits and greedy ids.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use t5_core::adapter::hyper::load_hypernetwork;
use t5_core::adapter::{load_adapter, AdapterSet, Adapters};
use t5_core::checkpoint::{ModelDir, Weights};
use t5_core::generation::{generate, GenerationConfig};
use t5_core::import::{import_seed, ImportReport};

const TOL: f32 = 1e-4;
const TASKS: [&str; 2] = ["rte", "sst2"];

fn seed_checkpoint() -> PathBuf {
    fixtures().join("bin/seed-checkpoint")
}

fn import(src: &Path) -> (tempfile::TempDir, ImportReport) {
    let out = tempfile::tempdir().unwrap();
    let report = import_seed::<t5_core::backend::Cpu>(src, out.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    (out, report)
}

fn imported_matches_the_seed_reference<B: t5_core::fused::FusedOps>(device: &B::Device) {
    let (out, report) = import(&seed_checkpoint());
    let dir = ModelDir::open(out.path().join("model")).unwrap();
    let model = dir.load_model::<B>(device).unwrap();
    let mut set = AdapterSet::default();
    for task in TASKS {
        let path = out.path().join("adapters").join(task);
        set.insert(load_adapter::<B>(&path, &dir.config, device).unwrap());
    }
    assert_eq!(report.adapters.len(), 2);
    for task in TASKS {
        let g = json(
            fixtures()
                .join("adapters/seed-v1_0")
                .join(task)
                .join("golden.json"),
        );
        let adapters = Adapters::task(&set, task).unwrap();
        let ids = int_tensor::<B>(&g.ints("input_ids"), device);
        let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
        let labels = int_tensor::<B>(&g.ints("labels"), device);
        let out = model.forward_with_labels(ids, mask, labels, 0.0, Some(&adapters));
        let [b, t, _] = out.logits.dims();
        let got = host(out.logits.slice([0..b, 0..t, 0..8]));
        let (want, _) = g.floats("logits_slice");
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= TOL, "{task}: logits differ by {diff}");
        let mut config = GenerationConfig::for_model(&dir.config);
        config.max_new_tokens = 16;
        let greedy = generate(&model, &inputs_of(&g), &config, Some(&adapters)).unwrap();
        let want: Vec<Vec<u32>> = g
            .ints("greedy")
            .iter()
            .map(|r| strip_generated(r, 1))
            .collect();
        assert_eq!(greedy, want, "{task}: greedy");
    }
}

const HYPER: [&str; 3] = ["meta-adapter", "hyperformer", "hyperformer++"];

/// `bin/hyper-checkpoints/<name>/` with its backbone shard, `bin/t5-v1_0/pytorch_model.bin`,
/// copied in (committed once, not per checkpoint).
fn hyper_checkpoint(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("bin/hyper-checkpoints").join(name);
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        fixtures().join("bin/t5-v1_0/pytorch_model.bin"),
        tmp.path().join("pytorch_model-00001-of-00002.bin"),
    )
    .unwrap();
    tmp
}

fn imported_hypernetworks_match_hyperformer<B: t5_core::fused::FusedOps>(device: &B::Device) {
    for name in HYPER {
        let src = hyper_checkpoint(name);
        let (out, report) = import(src.path());
        assert!(report.unknown.is_empty(), "{name}: {:?}", report.unknown);
        assert!(report.adapters.is_empty(), "{name}");
        let (path, config) = report.hypernetwork.as_ref().expect("a hypernetwork");
        assert_eq!(config.variant, name);
        assert_eq!(config.tasks, TASKS);
        let dir = ModelDir::open(out.path().join("model")).unwrap();
        let model = dir.load_model::<B>(device).unwrap();
        let hyper = load_hypernetwork::<B>(path, &dir.config, device).unwrap();
        let g = json(
            fixtures()
                .join("bin/hyper-checkpoints")
                .join(name)
                .join("golden.json"),
        );
        for task in TASKS {
            let set = hyper.generate(&[task]).unwrap();
            let adapters = Adapters::task(&set, task).unwrap();
            let ids = int_tensor::<B>(&g.ints("input_ids"), device);
            let mask = int_tensor::<B>(&g.ints("attention_mask"), device);
            let labels = int_tensor::<B>(&g.ints("labels"), device);
            let logits = model
                .forward_with_labels(ids, mask, labels, 0.0, Some(&adapters))
                .logits;
            let [b, t, _] = logits.dims();
            let got = host(logits.slice([0..b, 0..t, 0..8]));
            let run = &g.get("runs")[task];
            let (want, _) = flatten_f32(&run["logits_slice"]);
            let diff = max_abs_diff(&got, &want);
            assert!(diff <= TOL, "{name}/{task}: logits differ by {diff}");
            eprintln!("{name}/{task}: max |logits - hyperformer's| = {diff:.2e}");
            let mut gen = GenerationConfig::for_model(&dir.config);
            gen.max_new_tokens = 16;
            let greedy = generate(&model, &inputs_of(&g), &gen, Some(&adapters)).unwrap();
            let want: Vec<Vec<u32>> = int_rows(&run["greedy"])
                .iter()
                .map(|r| strip_generated(r, 1))
                .collect();
            assert_eq!(greedy, want, "{name}/{task}: greedy");
        }
    }
}

mod cpu {
    #[test]
    fn imported_matches_the_seed_reference() {
        super::imported_matches_the_seed_reference::<t5_core::backend::Cpu>(&Default::default());
    }

    #[test]
    fn imported_hypernetworks_match_hyperformer() {
        super::imported_hypernetworks_match_hyperformer::<t5_core::backend::Cpu>(
            &Default::default(),
        );
    }
}

mod wgpu {
    #[test]
    fn imported_matches_the_seed_reference() {
        super::imported_matches_the_seed_reference::<t5_core::backend::Wgpu>(&Default::default());
    }

    #[test]
    fn imported_hypernetworks_match_hyperformer() {
        super::imported_hypernetworks_match_hyperformer::<t5_core::backend::Wgpu>(
            &Default::default(),
        );
    }
}

/// The hypernetwork files hold the committed case's tensors bit for bit under our names, and
/// `run.json` is a run config that trains on from the imported hypernetwork.
#[test]
fn hypernetwork_files_and_run_config() {
    for name in ["meta-adapter", "hyperformer++"] {
        let src = hyper_checkpoint(name);
        let (_out, report) = import(src.path());
        assert_eq!(report.notes.len(), 1, "{name}: {:?}", report.notes);
        let (path, _) = report.hypernetwork.as_ref().unwrap();
        for file in ["hypernetwork.safetensors", "task_embeddings.safetensors"] {
            let mut want =
                Weights::from_file(&fixtures().join("hyper").join(name).join(file)).unwrap();
            let mut got = Weights::from_file(&path.join(file)).unwrap();
            assert_eq!(got.names(), want.names(), "{name}/{file}");
            let names: Vec<String> = want.names().iter().map(|n| n.to_string()).collect();
            for n in names {
                let shape = want.shape(&n).unwrap().to_vec();
                assert_eq!(
                    got.take_values(&n, &shape).unwrap(),
                    want.take_values(&n, &shape).unwrap(),
                    "{name}/{file}: {n}"
                );
            }
        }
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path.join("hypernetwork_config.json")).unwrap(),
        )
        .unwrap();
        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                fixtures()
                    .join("hyper")
                    .join(name)
                    .join("hypernetwork_config.json"),
            )
            .unwrap(),
        )
        .unwrap();
        for (key, value) in reference.as_object().unwrap() {
            assert_eq!(&config[key], value, "{name}: {key}");
        }
        let (_, run) = report.run_config.as_ref().unwrap();
        let loaded = t5_core::train::config::RunConfig::load(run).unwrap();
        assert_eq!(loaded.config.tasks, TASKS);
        let text = std::fs::read_to_string(run).unwrap();
        let run: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(run["hypernetwork"], path.display().to_string());
        assert_eq!(run["adapter_config_name"], "meta-adapter");
    }
}

/// The adapter files hold the reference's tensors bit for bit, under its names; the run config
/// is carried over and the activation taken from it; nothing is left unexplained but the missing
/// tokenizer.json.
#[test]
fn adapter_files_and_run_config_are_the_seeds() {
    let (out, report) = import(&seed_checkpoint());
    assert!(report.unknown.is_empty(), "{:?}", report.unknown);
    // The seed saved no tokenizer.json (its tokenizer was the slow SentencePiece one): said once.
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].contains("no tokenizer.json"),
        "{:?}",
        report.notes
    );
    for task in TASKS {
        let reference = fixtures().join("adapters/seed-v1_0").join(task);
        let mut want = Weights::from_file(&reference.join("adapter.safetensors")).unwrap();
        let path = out.path().join("adapters").join(task);
        let mut got = Weights::from_file(&path.join("adapter.safetensors")).unwrap();
        assert_eq!(got.names(), want.names(), "{task}");
        let names: Vec<String> = want.names().iter().map(|n| n.to_string()).collect();
        for name in names {
            let shape = want.shape(&name).unwrap().to_vec();
            assert_eq!(
                got.take_values(&name, &shape).unwrap(),
                want.take_values(&name, &shape).unwrap(),
                "{task}: {name}"
            );
        }
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(reference.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config, reference, "{task}: adapter_config.json");
    }
    let (_, run) = report.run_config.unwrap();
    let loaded = t5_core::train::config::RunConfig::load(&run).unwrap();
    assert_eq!(loaded.config.tasks, ["rte", "sst2"]);
}

/// Without the run config the activation is assumed, with a note; keys of no known module are
/// listed, also among a hypernetwork's.
#[test]
fn what_cannot_be_placed_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "pytorch_model.bin"] {
        std::fs::copy(seed_checkpoint().join(f), tmp.path().join(f)).unwrap();
    }
    let (_, report) = import(tmp.path());
    assert!(
        report.notes.iter().any(|n| n.contains("`swish`")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.adapters.len(), 2);

    // A state dict with an extra tensor and a HyperFormer one, as safetensors for brevity.
    let mut w = Weights::from_dir(&seed_checkpoint()).unwrap();
    let mut tensors = Vec::new();
    for name in w.names().iter().map(|n| n.to_string()).collect::<Vec<_>>() {
        let shape = w.shape(&name).unwrap().to_vec();
        let values = w.take_values(&name, &shape).unwrap();
        tensors.push((name, shape, values));
    }
    tensors.push(("classifier.weight".into(), vec![2], vec![0.5, 0.5]));
    std::fs::remove_file(tmp.path().join("pytorch_model.bin")).unwrap();
    let st = tmp.path().join("model.safetensors");
    t5_core::weights::write_safetensors(&st, &tensors, None).unwrap();
    let (_, report) = import(tmp.path());
    assert_eq!(report.unknown, ["classifier.weight"]);

    // A hypernetwork key no rule names is listed, not dropped.
    let src = hyper_checkpoint("hyperformer++");
    let mut w = Weights::from_dir(src.path()).unwrap();
    let mut tensors = Vec::new();
    for name in w.names().iter().map(|n| n.to_string()).collect::<Vec<_>>() {
        let shape = w.shape(&name).unwrap().to_vec();
        let values = w.take_values(&name, &shape).unwrap();
        tensors.push((name, shape, values));
    }
    tensors.push((
        "encoder.adapter_layers_hyper_net.extra_hyper_net.weight".into(),
        vec![2],
        vec![0.0, 1.0],
    ));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.path().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    t5_core::weights::write_safetensors(&tmp.path().join("model.safetensors"), &tensors, None)
        .unwrap();
    let (_, report) = import(tmp.path());
    assert_eq!(
        report.unknown,
        ["encoder.adapter_layers_hyper_net.extra_hyper_net.weight"]
    );
    assert!(report.hypernetwork.is_some());
}
