//! PyTorch `.bin` files (`tests/fixtures/make_bin_fixtures.py`): every dtype and container read
//! to the values torch saved, and hostile files refused with one line, running nothing. The
//! models saved as `.bin` are in `parity.rs` beside their safetensors twins.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use t5_core::checkpoint::{ModelDir, Weights};

fn bin(name: &str) -> PathBuf {
    fixtures().join("bin").join(name)
}

fn read_torch(path: &Path) -> t5_core::error::Result<Weights> {
    let bytes = std::fs::read(path).unwrap();
    Weights::from_torch_buffers(vec![(path.to_path_buf(), Arc::from(bytes))])
}

/// The error of reading `path`, checked to be one line that names the file.
fn refusal(path: &Path) -> String {
    let err = read_torch(path).err().expect("refused").to_string();
    assert!(!err.contains('\n'), "not one line: {err}");
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    err
}

#[test]
fn every_dtype_and_both_containers_read_as_torch_saved() {
    let want = json(bin("dtypes.json"));
    for file in ["dtypes.bin", "dtypes-legacy.bin"] {
        let mut w = read_torch(&bin(file)).unwrap_or_else(|e| panic!("{e}"));
        let names = want.0.as_object().unwrap();
        assert_eq!(w.names().len(), names.len(), "{file}: {:?}", w.names());
        for (name, t) in names {
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let got = w
                .take_values(name, &shape)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let (values, _) = flatten_f32(&t["values"]);
            assert_eq!(got, values, "{file}: `{name}`");
        }
    }
}

#[test]
fn a_pickle_that_calls_os_system_is_refused_and_nothing_runs() {
    let marker = Path::new("/tmp/t5-bin-fixture-pwned");
    let _ = std::fs::remove_file(marker);
    let err = refusal(&bin("hostile/os-system.bin"));
    assert!(
        err.contains("`posix.system`") && err.contains("nothing was run"),
        "{err}"
    );
    assert!(!marker.exists(), "the pickle's command ran");
}

#[test]
fn a_tensor_past_its_storage_is_refused_and_a_strided_view_is_read() {
    let err = refusal(&bin("hostile/offset-past-end.bin"));
    assert!(
        err.contains("at offset 100 lies past the end of storage `0` (4 elements)"),
        "{err}"
    );
    // arange(4) viewed with size (2, 2) and stride (1, 2): its transpose, as torch.load reads it
    // (torch.save's own transposed view is `transposed` in dtypes.bin).
    let mut w = read_torch(&bin("hostile/non-contiguous.bin")).unwrap();
    assert_eq!(w.take_values("w", &[2, 2]).unwrap(), [0.0, 2.0, 1.0, 3.0]);
    // An expanded view (stride 0) with more elements than its storage is refused.
    let err = refusal(&bin("hostile/expanded.bin"));
    assert!(err.contains("an expanded view"), "{err}");
}

#[test]
fn truncated_files_are_refused_at_every_length() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["dtypes.bin", "dtypes-legacy.bin"] {
        let bytes = std::fs::read(bin(name)).unwrap();
        let path = tmp.path().join(name);
        for len in (0..bytes.len()).step_by(7) {
            std::fs::write(&path, &bytes[..len]).unwrap();
            refusal(&path);
        }
    }
    let big = std::fs::read(bin("t5-v1_0/pytorch_model.bin")).unwrap();
    let path = tmp.path().join("pytorch_model.bin");
    std::fs::write(&path, &big[..big.len() / 2]).unwrap();
    let err = refusal(&path);
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn other_files_are_not_mistaken_for_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pytorch_model.bin");
    std::fs::write(&path, b"<html>404</html>").unwrap();
    assert!(refusal(&path).contains("not a PyTorch checkpoint"));
    // A pickle of a plain list, not a state dict.
    std::fs::write(&path, b"\x80\x02]q\x00.").unwrap();
    assert!(refusal(&path).contains("not a PyTorch checkpoint"));
}

/// A `.bin` directory goes through the same containment as safetensors: a shard named outside
/// the directory is refused, a missing one is named.
#[test]
fn bin_shards_stay_inside_their_directory() {
    let src = bin("t5-v1_1-bf16-sharded-legacy");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let index = dir.join("pytorch_model.bin.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    let model = ModelDir::open(&dir).unwrap();
    std::fs::write(
        &index,
        text.replace("pytorch_model-00002-of-00003.bin", "../outside.bin"),
    )
    .unwrap();
    let err = model.load_model::<t5_core::backend::Cpu>(&Default::default());
    let err = err.err().unwrap().to_string();
    assert!(
        err.contains("`../outside.bin`") && err.contains("refused"),
        "{err}"
    );
    std::fs::write(&index, &text).unwrap();
    std::fs::remove_file(dir.join("pytorch_model-00003-of-00003.bin")).unwrap();
    let err = model.load_model::<t5_core::backend::Cpu>(&Default::default());
    let err = err.err().unwrap().to_string();
    assert!(
        err.contains("missing") && err.contains("pytorch_model-00003-of-00003.bin"),
        "{err}"
    );
}

/// With both, safetensors wins (as in transformers); without weights the message lists both.
#[test]
fn safetensors_are_preferred_and_absence_names_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        bin("hostile/os-system.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    std::fs::copy(
        model_dir("t5-v1_0").join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    assert!(Weights::from_dir(tmp.path()).is_ok());
    let empty = tempfile::tempdir().unwrap();
    let err = Weights::from_dir(empty.path()).err().unwrap().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("pytorch_model.bin"),
        "{err}"
    );
}
