//! Downloading checkpoints (and, in [`dataset`], datasets' parquet files) from the Hugging Face
//! hub into the standard cache.
//!
//! Files land exactly where Python's `huggingface_hub` puts them:
//! `<cache>/models--org--name/blobs/<etag>`, with `snapshots/<commit>/<file>` symlinks to the
//! blobs and `refs/<revision>` holding the commit, so one cache serves both ecosystems.
//!
//! Online, the repository listing (`/api/models/<id>/revision/<rev>?blobs=true`) gives the
//! commit, the file names and their blob ids; files already in that commit's snapshot, or whose
//! blob is already cached (unchanged since another commit), are not downloaded again; the others
//! are downloaded with hf-hub, pinned to that commit. Mirrors without the listing API are handled by probing the
//! files directly. When the hub cannot be reached, a complete cached snapshot is used instead
//! (with a warning). Offline, only the cache is read.
//!
//! The parts: `repo_id` checks ids; `fetch` talks to the hub (listing, errors) and `model_files`
//! decides which files a model needs; `pinned` downloads them into one commit's snapshot; `cache`
//! reads the cache when offline; `failure` classifies what went wrong; [`dataset`] does the same
//! for datasets' parquet files.

use std::io::IsTerminal;
use std::path::PathBuf;

use hf_hub::RepoType;

mod cache;
mod dataset;
mod failure;
mod fetch;
mod model_files;
mod pinned;
mod repo_id;

use crate::error::{Error, Result};
use cache::Cached;
pub use dataset::fetch_dataset_split;
use failure::Fail;
use fetch::Fetch;
use pinned::Pinned;
use repo_id::{is_commit_hash, is_safe_commit};

/// The hub used when no endpoint is given.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to fetch.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// The hub cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// `HF_HUB_OFFLINE`: use only the cache.
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
}

impl HubOptions {
    /// Reads the variables Python's `huggingface_hub` reads: `HF_ENDPOINT`; `HF_HUB_CACHE`
    /// (else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`); `HF_HUB_OFFLINE`
    /// (`1`/`true`/`yes`/`on`). Progress bars are shown when stderr is a terminal and
    /// `HF_HUB_DISABLE_PROGRESS_BARS` is not set.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`HubOptions::from_env`], reading the variables through `var` (for tests and
    /// embedders that keep their settings elsewhere).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = get("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string());
        // Python expands `~` in these.
        let path = |value: String| match (value.strip_prefix("~/"), get("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ if value == "~" => get("HOME").map_or_else(|| PathBuf::from(&value), PathBuf::from),
            _ => PathBuf::from(value),
        };
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(path)
            .or_else(|| get("HF_HOME").map(|home| path(home).join("hub")))
            .or_else(|| get("XDG_CACHE_HOME").map(|xdg| path(xdg).join("huggingface").join("hub")));
        let offline = get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        let progress = std::io::stderr().is_terminal()
            && !get("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| truthy(&v));
        Self {
            endpoint,
            cache_dir,
            offline,
            progress,
        }
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `~/.cache/huggingface/hub`.
fn default_cache_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var_os("USERPROFILE").filter(|h| !h.is_empty()))?;
    Some(
        PathBuf::from(home)
            .join(".cache")
            .join("huggingface")
            .join("hub"),
    )
}

/// Fetches `config.json`, `tokenizer.json` and the safetensors weights of `repo_id` and returns
/// the cache directory that holds them (`<cache>/models--org--name/snapshots/<commit>/`).
///
/// `repo_id` is `name` or `org/name`, optionally followed by `@revision` (a branch, tag or
/// commit; default `main`). `generation_config.json` and `spiece.model` are fetched too when
/// the repository has them. `options.endpoint: None` means [`DEFAULT_ENDPOINT`] and
/// `options.cache_dir: None` means `~/.cache/huggingface/hub` (use [`HubOptions::from_env`] to
/// honour `HF_ENDPOINT`, `HF_HOME` and friends). A token is taken from `HF_TOKEN`, else from the
/// `token` file next to the cache (`huggingface-cli login`).
pub fn fetch_model(repo_id: &str, options: &HubOptions) -> Result<PathBuf> {
    let fetch = Fetch::new(repo_id, options, RepoType::Model)?;
    if options.offline {
        return match fetch.check_cache()? {
            Cached::Complete(dir) => Ok(dir),
            missing => Err(fetch.offline_error(missing)),
        };
    }
    if is_commit_hash(&fetch.revision) {
        // A commit never changes: when its snapshot is complete there is nothing to ask the hub.
        if let Ok(Cached::Complete(dir)) = fetch.check_cache() {
            return Ok(dir);
        }
    }
    match fetch.online() {
        Ok(dir) => Ok(dir),
        Err(Fail::Fatal(e)) => Err(e),
        Err(Fail::Network(msg)) => match fetch.check_cache() {
            Ok(Cached::Complete(dir)) => {
                tracing::warn!("{msg}; using the cached snapshot {}", dir.display());
                Ok(dir)
            }
            _ => Err(Error::Hub(msg)),
        },
    }
}
