//! `fetch_model` and `fetch_dataset_split` against a fake Hugging Face hub (`fake_hub/`) served on
//! 127.0.0.1 by a thread of the test.
//!
//! The fake hub answers the two kinds of requests hf-hub 0.4.3's sync client makes:
//! - `GET /api/models/<id>/revision/<rev>?blobs=true`: the repository listing (`sha`, and
//!   `siblings` with each file's `blobId` and, for LFS files, `lfs.sha256`);
//! - `GET /<id>/resolve/<rev>/<file>` with a `Range` header: first `bytes=0-0` (hf-hub's
//!   `metadata()`: it needs `X-Repo-Commit`, `ETag` or `X-Linked-Etag`, and the total size from
//!   `Content-Range: bytes 0-0/<size>`), then `bytes=<start>-` for the download itself.
//!
//! Errors look like the hub's: 401 + `X-Error-Code: RepoNotFound` for an unknown repository,
//! 404 + `EntryNotFound` for a missing file. Every response closes its connection.
#![cfg(feature = "hub")]

mod fake_hub;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_hub::{blob_name, FakeHub, FakeRepo, COMMIT};
use t5_core::hub::{fetch_dataset_split, fetch_model, HubOptions};
use t5_core::Error;

const COMMIT2: &str = "fedcba9876543210fedcba9876543210fedcba98";

// -------------------------------------------------------------------------- fixtures --

const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn config_json() -> Vec<u8> {
    br#"{"model_type":"t5","d_model":8,"d_kv":4,"d_ff":16,"num_layers":1,"num_heads":2,"vocab_size":32}"#.to_vec()
}

/// A sharded repository with extra files that must not be downloaded.
fn sharded_repo() -> FakeRepo {
    let index = serde_json::json!({
        "metadata": { "total_size": 4096 },
        "weight_map": {
            "shared.weight": SHARD1,
            "encoder.block.0.layer.0.SelfAttention.q.weight": SHARD1,
            "decoder.block.0.layer.0.SelfAttention.q.weight": SHARD2,
        }
    });
    FakeRepo::new(&[
        ("config.json", config_json()),
        (
            "tokenizer.json",
            br#"{"version":"1.0","model":{"type":"Unigram"}}"#.to_vec(),
        ),
        (
            "generation_config.json",
            br#"{"decoder_start_token_id":0}"#.to_vec(),
        ),
        (
            "model.safetensors.index.json",
            index.to_string().into_bytes(),
        ),
        (SHARD1, bytes(1, 3000)),
        (SHARD2, bytes(2, 1096)),
        ("pytorch_model.bin", bytes(3, 500)),
        ("README.md", b"# tiny".to_vec()),
    ])
}

/// Only PyTorch weights, unsharded.
fn bin_only_repo() -> FakeRepo {
    FakeRepo::new(&[
        ("config.json", config_json()),
        ("tokenizer.json", b"{}".to_vec()),
        ("pytorch_model.bin", bytes(4, 100)),
    ])
}

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: Some(endpoint.to_string()),
        cache_dir: Some(cache.to_path_buf()),
        offline: false,
        progress: false,
    }
}

fn offline(cache: &Path) -> HubOptions {
    // The endpoint must not matter offline: point it nowhere.
    HubOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        cache_dir: Some(cache.to_path_buf()),
        offline: true,
        progress: false,
    }
}

/// ureq 2 (under hf-hub) sends every request through `*_PROXY` and ignores `NO_PROXY`, so a
/// proxy in the environment would swallow requests to 127.0.0.1.
fn proxied() -> bool {
    let proxied = [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));
    if proxied {
        eprintln!("skipped: a *_PROXY variable is set and hf-hub's HTTP client would use it for 127.0.0.1");
    }
    proxied
}

/// An address where nothing listens.
fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn snapshot_dir(cache: &Path, folder: &str) -> PathBuf {
    cache.join(folder).join("snapshots").join(COMMIT)
}

fn expect_err(result: t5_core::Result<PathBuf>) -> Error {
    match result {
        Ok(dir) => panic!("expected an error, got {}", dir.display()),
        Err(e) => e,
    }
}

// ----------------------------------------------------------------------------- tests --

#[test]
fn downloads_sharded_model_into_the_hf_cache_layout_then_works_offline() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let repo = sharded_repo();
    let hub = FakeHub::start(&[("org/tiny", repo.clone())]);

    let dir = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    let repo_dir = cache.path().join("models--org--tiny");
    assert_eq!(dir, snapshot_dir(cache.path(), "models--org--tiny"));
    for name in [
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "model.safetensors.index.json",
        SHARD1,
        SHARD2,
    ] {
        let got = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, repo.files[name], "{name}");
        // Python's layout: the snapshot entry links to blobs/<etag> (the sha256 for LFS files).
        let blob = repo_dir
            .join("blobs")
            .join(blob_name(name, &repo.files[name]));
        assert_eq!(
            std::fs::read(&blob).unwrap(),
            repo.files[name],
            "blob of {name}"
        );
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(dir.join(name)).unwrap(),
            Path::new("../../blobs").join(blob_name(name, &repo.files[name])),
            "{name}"
        );
    }
    assert!(!dir.join("pytorch_model.bin").exists() && !dir.join("README.md").exists());
    assert!(!dir.join("spiece.model").exists());
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    // Downloads are pinned to the commit, and hf-hub's `refs/<commit>` is not left behind.
    assert!(!repo_dir.join("refs").join(COMMIT).exists());

    let requests = hub.take_requests();
    assert!(
        requests.iter().any(|r| r.starts_with(&format!(
            "GET /org/tiny/resolve/{COMMIT}/{SHARD2} bytes=0-0"
        ))),
        "{requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("pytorch_model.bin") || r.contains("README")),
        "{requests:#?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("spiece.model")),
        "not listed, so not asked for: {requests:#?}"
    );

    // The server is gone: only the cache answers.
    drop(hub);
    let start = Instant::now();
    assert_eq!(
        fetch_model("org/tiny", &offline(cache.path())).unwrap(),
        dir
    );
    assert_eq!(
        fetch_model(&format!("org/tiny@{COMMIT}"), &offline(cache.path())).unwrap(),
        dir
    );
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_second_online_call_downloads_nothing() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(&[("org/tiny", sharded_repo())]);
    let first = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    hub.take_requests();
    let second = fetch_model("org/tiny@main", &options(&hub.endpoint(), cache.path())).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        hub.take_requests(),
        vec!["GET /api/models/org/tiny/revision/main?blobs=true".to_string()]
    );
    // A commit cannot change: a complete snapshot of it needs no request at all.
    let pinned = fetch_model(
        &format!("org/tiny@{COMMIT}"),
        &options(&hub.endpoint(), cache.path()),
    )
    .unwrap();
    assert_eq!(pinned, first);
    assert_eq!(hub.take_requests(), Vec::<String>::new());
}

#[test]
fn a_broken_server_is_an_error_not_a_panic() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let mut repo = sharded_repo().without_listing();
    repo.broken_redirects = true;
    let hub = FakeHub::start(&[("org/broken", repo)]);
    let err = expect_err(fetch_model(
        "org/broken",
        &options(&hub.endpoint(), cache.path()),
    ));
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(
        msg.contains("org/broken") && msg.contains("config.json") && msg.contains(&hub.endpoint()),
        "{msg}"
    );
}

#[test]
fn a_new_commit_downloads_only_the_files_that_changed() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(&[("org/tiny", sharded_repo())]);
    let old = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    drop(hub);

    let mut repo = sharded_repo();
    repo.commit = COMMIT2;
    let new_config = br#"{"model_type":"t5","d_model":16}"#.to_vec();
    repo.files.insert("config.json".into(), new_config.clone());
    let hub = FakeHub::start(&[("org/tiny", repo.clone())]);
    let new = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    assert_eq!(
        new,
        cache
            .path()
            .join("models--org--tiny/snapshots")
            .join(COMMIT2)
    );
    let resolved: Vec<String> = hub
        .take_requests()
        .into_iter()
        .filter(|r| r.contains("/resolve/"))
        .collect();
    assert_eq!(
        resolved,
        [
            format!("GET /org/tiny/resolve/{COMMIT2}/config.json bytes=0-0"),
            format!("GET /org/tiny/resolve/{COMMIT2}/config.json bytes=0-"),
        ]
    );
    for name in [
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "model.safetensors.index.json",
        SHARD1,
        SHARD2,
    ] {
        assert_eq!(
            std::fs::read(new.join(name)).unwrap(),
            repo.files[name],
            "{name}"
        );
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(new.join(name)).unwrap(),
            std::fs::read_link(old.join(name))
                .unwrap()
                .parent()
                .unwrap()
                .join(blob_name(name, &repo.files[name]))
        );
    }
    assert_eq!(
        std::fs::read(old.join("config.json")).unwrap(),
        config_json(),
        "the old snapshot is kept"
    );
    let repo_dir = cache.path().join("models--org--tiny");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT2
    );
    assert!(!repo_dir.join("refs").join(COMMIT2).exists());
}

#[test]
fn an_unreachable_hub_falls_back_to_a_complete_cache() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(&[("org/tiny", sharded_repo())]);
    let dir = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    drop(hub);
    assert_eq!(
        fetch_model("org/tiny", &options(&closed_endpoint(), cache.path())).unwrap(),
        dir
    );
}

#[test]
fn offline_with_an_empty_cache_names_the_missing_files() {
    let cache = tempfile::tempdir().unwrap();
    let err = expect_err(fetch_model("google/flan-t5-base", &offline(cache.path())));
    let Error::MissingFiles(msg) = &err else {
        panic!("expected MissingFiles, got {err:?}")
    };
    for needle in [
        "google/flan-t5-base",
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        &cache.path().display().to_string(),
        "models--google--flan-t5-base",
        "huggingface-cli download google/flan-t5-base",
        "HF_HUB_OFFLINE",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn offline_with_a_partial_cache_names_exactly_the_missing_shard() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(&[("org/tiny", sharded_repo())]);
    let dir = fetch_model("org/tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    drop(hub);
    std::fs::remove_file(dir.join(SHARD2)).unwrap();
    let err = expect_err(fetch_model("org/tiny", &offline(cache.path())));
    let Error::MissingFiles(msg) = &err else {
        panic!("expected MissingFiles, got {err:?}")
    };
    assert!(
        msg.contains(SHARD2) && msg.contains(&dir.display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("huggingface-cli download org/tiny {SHARD2}")),
        "{msg}"
    );
    assert!(
        !msg.contains("config.json") && !msg.contains(SHARD1),
        "{msg}"
    );
}

#[test]
fn a_closed_port_is_a_quick_hub_error_naming_the_endpoint() {
    let cache = tempfile::tempdir().unwrap();
    let endpoint = closed_endpoint();
    let start = Instant::now();
    let err = expect_err(fetch_model("org/tiny", &options(&endpoint, cache.path())));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(msg.contains(&endpoint) && msg.contains("org/tiny"), "{msg}");
    assert!(
        msg.contains("HF_ENDPOINT") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused") || proxied(), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}

/// PyTorch weights in shards.
fn bin_sharded_repo() -> FakeRepo {
    let index = serde_json::json!({
        "metadata": { "total_size": 300 },
        "weight_map": {
            "shared.weight": "pytorch_model-00001-of-00002.bin",
            "decoder.block.0.layer.0.SelfAttention.q.weight": "pytorch_model-00002-of-00002.bin",
        }
    });
    FakeRepo::new(&[
        ("config.json", config_json()),
        ("tokenizer.json", b"{}".to_vec()),
        (
            "pytorch_model.bin.index.json",
            index.to_string().into_bytes(),
        ),
        ("pytorch_model-00001-of-00002.bin", bytes(5, 200)),
        ("pytorch_model-00002-of-00002.bin", bytes(6, 100)),
    ])
}

/// Without safetensors, `pytorch_model.bin` or its index and shards are downloaded (with the
/// listing and by probing), and the snapshot then serves offline.
#[test]
fn a_repo_with_only_pytorch_weights_falls_back_to_them() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let repos = [
        ("org/bin", bin_only_repo()),
        ("org/bin-mirror", bin_only_repo().without_listing()),
        ("org/shards", bin_sharded_repo()),
        ("org/shards-mirror", bin_sharded_repo().without_listing()),
    ];
    let hub = FakeHub::start(&repos);
    for (id, repo) in &repos {
        let dir = fetch_model(id, &options(&hub.endpoint(), cache.path()))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let folder = format!("models--{}", id.replace('/', "--"));
        assert_eq!(dir, snapshot_dir(cache.path(), &folder), "{id}");
        for (file, bytes) in &repo.files {
            assert_eq!(&std::fs::read(dir.join(file)).unwrap(), bytes, "{file}");
        }
        let requests = hub.take_requests();
        if id.ends_with("mirror") {
            // Safetensors first: both probed (404) before the PyTorch weights.
            for file in ["model.safetensors", "model.safetensors.index.json"] {
                assert!(asked_for(&requests, file), "{id}: {file}: {requests:#?}");
            }
        }
        let offline_dir = fetch_model(id, &offline(cache.path())).unwrap();
        assert_eq!(offline_dir, dir, "{id}: offline");
    }
}

/// A repository with no weights t5-core reads says which it has; without the listing, after
/// asking for each of them.
#[test]
fn a_repo_without_readable_weights_says_so() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(&[
        ("config.json", config_json()),
        ("tokenizer.json", b"{}".to_vec()),
        ("tf_model.h5", bytes(4, 100)),
    ]);
    let hub = FakeHub::start(&[
        ("org/tf", repo.clone()),
        ("org/tf-m", repo.without_listing()),
    ]);
    for (id, detail) in [("org/tf", "only tf_model.h5"), ("org/tf-m", "HTTP 404")] {
        let err = expect_err(fetch_model(id, &options(&hub.endpoint(), cache.path())));
        let Error::Hub(msg) = &err else {
            panic!("expected Hub, got {err:?}")
        };
        assert!(msg.contains(&format!("{id} has no weights")), "{msg}");
        assert!(msg.contains(detail), "{msg}");
    }
    let requests = hub.take_requests();
    for file in [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ] {
        assert!(asked_for(&requests, file), "{file}: {requests:#?}");
    }
}

/// Whether `file` of the fake hub's commit was downloaded or probed.
fn asked_for(requests: &[String], file: &str) -> bool {
    requests
        .iter()
        .any(|r| r.contains(&format!("/resolve/{COMMIT}/{file} ")))
}

#[test]
fn a_mirror_without_the_listing_api_is_probed_file_by_file() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(&[
        ("config.json", config_json()),
        ("tokenizer.json", b"{\"tok\":1}".to_vec()),
        ("model.safetensors", bytes(9, 2048)),
        ("spiece.model", bytes(8, 64)),
    ])
    .without_listing();
    let hub = FakeHub::start(&[("t5-tiny", repo.clone())]);
    let dir = fetch_model("t5-tiny", &options(&hub.endpoint(), cache.path())).unwrap();
    assert_eq!(dir, snapshot_dir(cache.path(), "models--t5-tiny"));
    for name in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "spiece.model",
    ] {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            repo.files[name],
            "{name}"
        );
    }
    // generation_config.json is optional: its 404 is not an error.
    assert!(!dir.join("generation_config.json").exists());
    assert_eq!(
        std::fs::read_to_string(cache.path().join("models--t5-tiny/refs/main")).unwrap(),
        COMMIT
    );
    assert!(!cache
        .path()
        .join("models--t5-tiny/refs")
        .join(COMMIT)
        .exists());
}

#[test]
fn missing_required_files_and_unknown_repos_are_hub_errors() {
    if proxied() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let no_tokenizer = FakeRepo::new(&[
        ("config.json", config_json()),
        ("spiece.model", bytes(1, 10)),
        ("model.safetensors", bytes(2, 10)),
    ]);
    let hub = FakeHub::start(&[
        ("org/no-tok", no_tokenizer.clone()),
        ("org/no-tok-mirror", no_tokenizer.without_listing()),
    ]);

    let err = expect_err(fetch_model(
        "org/nope",
        &options(&hub.endpoint(), cache.path()),
    ));
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(
        msg.contains("org/nope") && msg.contains("not found") && msg.contains(&hub.endpoint()),
        "{msg}"
    );

    let err = expect_err(fetch_model(
        "org/no-tok",
        &options(&hub.endpoint(), cache.path()),
    ));
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(
        msg.contains("org/no-tok")
            && msg.contains("tokenizer.json")
            && msg.contains(&hub.endpoint()),
        "{msg}"
    );

    let err = expect_err(fetch_model(
        "org/no-tok-mirror",
        &options(&hub.endpoint(), cache.path()),
    ));
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(
        msg.contains("org/no-tok-mirror: tokenizer.json not found") && msg.contains("404"),
        "{msg}"
    );

    let err = expect_err(fetch_model(
        "org/no-tok@v9",
        &options(&hub.endpoint(), cache.path()),
    ));
    let Error::Hub(msg) = &err else {
        panic!("expected Hub, got {err:?}")
    };
    assert!(msg.contains("revision `v9` not found"), "{msg}");
}

#[test]
fn invalid_repo_ids_are_rejected_before_any_request() {
    let cache = tempfile::tempdir().unwrap();
    for id in [
        "a/b/c",
        "org/na me",
        "org/--x",
        "../x",
        "org/name@",
        "org/name@a b",
        "org/name@../x",
        "",
    ] {
        let err = expect_err(fetch_model(id, &options(&closed_endpoint(), cache.path())));
        assert!(matches!(err, Error::Invalid(_)), "{id:?}: {err:?}");
    }
}

#[test]
fn options_from_hf_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let o = HubOptions::from_vars(vars(&[
        ("HF_ENDPOINT", "https://mirror.example/"),
        ("HF_HOME", "/data/hf"),
        ("HF_HUB_OFFLINE", "1"),
    ]));
    assert_eq!(o.endpoint.as_deref(), Some("https://mirror.example"));
    assert_eq!(o.cache_dir, Some(PathBuf::from("/data/hf/hub")));
    assert!(o.offline);

    let o = HubOptions::from_vars(vars(&[
        ("HF_HOME", "/data/hf"),
        ("HF_HUB_CACHE", "/fast/cache"),
        ("HF_HUB_OFFLINE", "0"),
    ]));
    assert_eq!(o.cache_dir, Some(PathBuf::from("/fast/cache")));
    assert!(!o.offline && o.endpoint.is_none());

    for on in ["true", "YES", "On"] {
        assert!(
            HubOptions::from_vars(|n| (n == "HF_HUB_OFFLINE").then(|| on.to_string())).offline,
            "{on}"
        );
    }
    let o = HubOptions::from_vars(vars(&[
        ("HOME", "/home/me"),
        ("HF_HOME", "~/hf"),
        ("HF_ENDPOINT", " "),
    ]));
    assert_eq!(o.cache_dir, Some(PathBuf::from("/home/me/hf/hub")));
    assert!(o.endpoint.is_none(), "blank is unset");
    let o = HubOptions::from_vars(vars(&[("XDG_CACHE_HOME", "/xdg")]));
    assert_eq!(o.cache_dir, Some(PathBuf::from("/xdg/huggingface/hub")));

    let o = HubOptions::from_vars(|_| None);
    assert!(o.endpoint.is_none() && o.cache_dir.is_none() && !o.offline);
}

// ------------------------------------------------------------------------- datasets --

fn glue_repo() -> FakeRepo {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/data/hub/glue");
    let file = |rel: &str| std::fs::read(data.join(rel)).unwrap();
    FakeRepo::new(&[
        ("README.md", b"# GLUE".to_vec()),
        (
            "rte/train-00000-of-00001.parquet",
            file("rte/train-00000-of-00001.parquet"),
        ),
        (
            "rte/validation-00000-of-00001.parquet",
            file("rte/validation-00000-of-00001.parquet"),
        ),
        (
            "stsb/validation-00000-of-00001.parquet",
            file("stsb/validation-00000-of-00001.parquet"),
        ),
    ])
}

#[test]
fn downloads_a_dataset_split_into_the_hf_cache_then_works_offline() {
    let hub = FakeHub::start(&[("datasets/nyu-mll/glue", glue_repo())]);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&hub.endpoint(), cache.path());
    let files = fetch_dataset_split("nyu-mll/glue", Some("rte"), "train", &opts).unwrap();
    let expected = snapshot_dir(cache.path(), "datasets--nyu-mll--glue")
        .join("rte/train-00000-of-00001.parquet");
    assert_eq!(files, vec![expected.clone()]);
    assert_eq!(
        std::fs::read(&expected).unwrap(),
        glue_repo().files["rte/train-00000-of-00001.parquet"]
    );
    // Only the listing and that one file were requested.
    let requests = hub.take_requests();
    assert_eq!(
        requests[0],
        "GET /api/datasets/nyu-mll/glue/revision/main?blobs=true"
    );
    assert!(requests[1..]
        .iter()
        .all(|r| r.contains("/datasets/nyu-mll/glue/resolve/") && r.contains("rte/train-")));

    // A task reads it through its column mapping.
    let task = t5_core::tasks::registry::get("rte").unwrap();
    let records =
        t5_core::tasks::source::load_from_hub(&task, t5_core::tasks::Role::Train, &opts).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(
        task.format(&records[0], true).unwrap().input,
        "rte sentence1: A cat sat on the mat. sentence2: A cat sat."
    );

    // Offline, the cache serves it; a split never downloaded is named with the command to get it.
    let off = offline(cache.path());
    assert_eq!(
        fetch_dataset_split("nyu-mll/glue", Some("rte"), "train", &off).unwrap(),
        vec![expected]
    );
    let err = fetch_dataset_split("nyu-mll/glue", Some("rte"), "validation", &off)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("offline")
            && err.contains("split `validation` of configuration `rte`")
            && err.contains("huggingface-cli download --repo-type dataset nyu-mll/glue --include \"rte/validation*\""),
        "{err}"
    );
    // When the hub cannot be reached the cached split is used.
    assert_eq!(
        fetch_dataset_split(
            "nyu-mll/glue",
            Some("rte"),
            "train",
            &options(&closed_endpoint(), cache.path())
        )
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn a_split_the_dataset_lacks_lists_what_it_offers() {
    let hub = FakeHub::start(&[("datasets/nyu-mll/glue", glue_repo())]);
    let cache = tempfile::tempdir().unwrap();
    let opts = options(&hub.endpoint(), cache.path());
    let err = fetch_dataset_split("nyu-mll/glue", Some("cola"), "train", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no parquet files of the split `train` of configuration `cola`")
            && err.contains("rte/train, rte/validation, stsb/validation"),
        "{err}"
    );
    let err = fetch_dataset_split("nyu-mll/no-such", None, "train", &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("repository not found"), "{err}");
}
