//! Issue 14, path containment: a model, adapter or hypernetwork directory (or a hub cache entry)
//! from anywhere never makes us read outside it. A shard name with `..`, an absolute shard
//! name, and links that point out are refused with one line naming the file and the entry; the
//! hub cache's own links (`snapshots/<commit>/<file>` → `../../blobs/<etag>`) still load.
#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use t5_core::adapter::load_adapter;
use t5_core::model_dir::{ModelDir, Weights};
use t5_core::Error;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A copy of a fixture directory in a fresh temporary directory (`<tmp>/model`), with an
/// `outside/` folder beside it.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dir)
}

/// Rewrites the index so that every tensor of `shard` is said to live in `entry` instead.
fn rename_shard_in_index(dir: &Path, shard: &str, entry: &str) {
    let file = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(&format!("\"{shard}\""), &format!("\"{entry}\"")),
    )
    .unwrap();
}

fn outside(err: Error) -> String {
    assert!(matches!(err, Error::Outside { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    msg
}

const SHARD: &str = "model-00002-of-00004.safetensors";

#[test]
fn a_shard_named_with_dot_dot_is_refused_even_when_the_file_is_there() {
    let (tmp, dir) = copy_fixture("t5-v1_1-bf16-sharded");
    // A valid shard placed outside the model directory: it used to load silently.
    std::fs::rename(dir.join(SHARD), tmp.path().join("outside").join(SHARD)).unwrap();
    let entry = format!("../outside/{SHARD}");
    rename_shard_in_index(&dir, SHARD, &entry);
    let msg = outside(Weights::from_dir(&dir).err().unwrap());
    assert!(
        msg.contains("model.safetensors.index.json")
            && msg.contains(&format!("entry `{entry}`"))
            && msg.contains("`..`"),
        "{msg}"
    );
}

#[test]
fn an_absolute_shard_name_is_refused() {
    let (tmp, dir) = copy_fixture("t5-v1_1-bf16-sharded");
    let target = tmp.path().join("outside").join(SHARD);
    std::fs::rename(dir.join(SHARD), &target).unwrap();
    for entry in [target.display().to_string(), "/etc/passwd".to_string()] {
        let (_tmp, dir) = copy_fixture("t5-v1_1-bf16-sharded");
        rename_shard_in_index(&dir, SHARD, &entry);
        let msg = outside(Weights::from_dir(&dir).err().unwrap());
        assert!(
            msg.contains(&format!("entry `{entry}`")) && msg.contains("absolute path"),
            "{msg}"
        );
    }
}

#[test]
fn a_shard_that_links_out_of_the_directory_is_refused() {
    let (tmp, dir) = copy_fixture("t5-v1_1-bf16-sharded");
    let target = tmp.path().join("outside").join(SHARD);
    std::fs::rename(dir.join(SHARD), &target).unwrap();
    symlink(&target, dir.join(SHARD)).unwrap();
    let msg = outside(Weights::from_dir(&dir).err().unwrap());
    assert!(
        msg.contains("model.safetensors.index.json")
            && msg.contains(&format!("entry `{SHARD}` resolves to"))
            && msg.contains("outside"),
        "{msg}"
    );
    // A link that stays inside the directory is fine.
    std::fs::remove_file(dir.join(SHARD)).unwrap();
    std::fs::rename(&target, dir.join("moved.safetensors")).unwrap();
    symlink("moved.safetensors", dir.join(SHARD)).unwrap();
    let model = ModelDir::open(&dir).unwrap();
    model.load_model::<Flex>(&Default::default()).unwrap();
}

#[test]
fn model_files_that_link_out_are_refused() {
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        let (tmp, dir) = copy_fixture("t5-v1_0");
        let target = tmp.path().join("outside").join(file);
        std::fs::rename(dir.join(file), &target).unwrap();
        symlink(&target, dir.join(file)).unwrap();
        let err = ModelDir::open(&dir)
            .and_then(|m| m.load_tokenizer().map(|_| m))
            .and_then(|m| m.load_model::<Flex>(&Default::default()).map(|_| ()))
            .err()
            .unwrap();
        let msg = outside(err);
        assert!(
            msg.starts_with(&dir.join(file).display().to_string())
                && msg.contains("is a link to")
                && msg.contains(&target.display().to_string()),
            "{msg}"
        );
    }
}

#[test]
fn adapter_files_that_link_out_are_refused() {
    let model = ModelDir::open(fixtures().join("t5-v1_0")).unwrap();
    for file in ["adapter.safetensors", "adapter_config.json"] {
        let (tmp, dir) = copy_fixture("adapters/pfeiffer-v1_0");
        let target = tmp.path().join("outside").join(file);
        std::fs::rename(dir.join(file), &target).unwrap();
        symlink(&target, dir.join(file)).unwrap();
        let err = load_adapter::<Flex>(&dir, &model.config, &Default::default())
            .err()
            .unwrap();
        let msg = outside(err);
        assert!(msg.contains(file) && msg.contains("is a link to"), "{msg}");
    }
}

#[test]
fn hypernetwork_files_that_link_out_are_refused() {
    use t5_core::adapter::hyper::load_hypernetwork;
    let model = ModelDir::open(fixtures().join("t5-v1_0")).unwrap();
    let (tmp, dir) = copy_fixture("hyper/hyperformer++");
    load_hypernetwork::<Flex>(&dir, &model.config, &Default::default()).unwrap();
    let file = "task_embeddings.safetensors";
    let target = tmp.path().join("outside").join(file);
    std::fs::rename(dir.join(file), &target).unwrap();
    symlink(&target, dir.join(file)).unwrap();
    let err = load_hypernetwork::<Flex>(&dir, &model.config, &Default::default())
        .err()
        .unwrap();
    let msg = outside(err);
    assert!(msg.contains(file) && msg.contains("is a link to"), "{msg}");
}

/// `<cache>/models--org--<name>/` with `refs/main`, every file of the `t5-v1_0` fixture as a
/// blob and `snapshots/<commit>/<file>` links to the blobs, as Python's `huggingface_hub`
/// lays them out. Returns the snapshot.
#[cfg(feature = "hub")]
fn cached_model(cache: &Path, name: &str) -> PathBuf {
    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.join(format!("models--org--{name}"));
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let blob = format!("blob-{file}");
        std::fs::copy(
            fixtures().join("t5-v1_0").join(file),
            repo.join("blobs").join(&blob),
        )
        .unwrap();
        symlink(format!("../../blobs/{blob}"), snapshot.join(file)).unwrap();
    }
    snapshot
}

#[cfg(feature = "hub")]
fn offline(cache: &Path) -> t5_core::hub::HubOptions {
    t5_core::hub::HubOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        cache_dir: Some(cache.to_path_buf()),
        offline: true,
        progress: false,
    }
}

#[cfg(feature = "hub")]
#[test]
fn hub_cache_links_into_blobs_load_but_links_out_of_the_repository_do_not() {
    use t5_core::hub::fetch_model;
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cached_model(cache.path(), "good");
    let dir = fetch_model("org/good", &offline(cache.path())).unwrap();
    assert_eq!(dir, snapshot);
    let model = ModelDir::open(&dir).unwrap();
    model.load_tokenizer().unwrap();
    model.load_model::<Flex>(&Default::default()).unwrap();

    // A poisoned cache entry: the snapshot's weights link to a file outside the repository.
    let snapshot = cached_model(cache.path(), "poisoned");
    let elsewhere = cache.path().join("elsewhere.safetensors");
    std::fs::copy(fixtures().join("t5-v1_0/model.safetensors"), &elsewhere).unwrap();
    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    symlink(&elsewhere, snapshot.join("model.safetensors")).unwrap();
    let dir = fetch_model("org/poisoned", &offline(cache.path())).unwrap();
    let err = ModelDir::open(&dir)
        .unwrap()
        .load_model::<Flex>(&Default::default())
        .err()
        .unwrap();
    let msg = outside(err);
    assert!(
        msg.contains("model.safetensors")
            && msg.contains(&elsewhere.display().to_string())
            && msg.contains("models--org--poisoned"),
        "{msg}"
    );
}

#[cfg(feature = "hub")]
#[test]
fn a_cached_dataset_file_that_links_out_is_refused() {
    use t5_core::hub::fetch_dataset_split;
    const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("datasets--org--glue");
    let split = repo.join("snapshots").join(COMMIT).join("rte");
    std::fs::create_dir_all(&split).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let secret = cache.path().join("secret.parquet");
    std::fs::write(&secret, b"PAR1").unwrap();
    symlink(&secret, split.join("train-00000-of-00001.parquet")).unwrap();
    let err = fetch_dataset_split("org/glue", Some("rte"), "train", &offline(cache.path()))
        .err()
        .unwrap();
    let msg = outside(err);
    assert!(
        msg.contains("train-00000-of-00001.parquet") && msg.contains("secret.parquet"),
        "{msg}"
    );
}
