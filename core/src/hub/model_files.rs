//! Which files make a model and how they are found: from the repository listing when the hub
//! offers one, else by asking for each file in turn (mirrors without the listing API).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::Api;

use super::failure::{classify, guarded, Fail, Failure};
use super::fetch::{Fetch, Listing};
use super::pinned::Pinned;
use super::repo_id::{is_safe_commit, is_safe_file_name};
use crate::error::{Error, Result};
use crate::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};

/// Fetched when the repository has them; their absence is not an error.
const OPTIONAL_FILES: [&str; 2] = ["generation_config.json", "spiece.model"];

/// The shard files listed by `model.safetensors.index.json`, deduplicated and sorted; each must
/// stay inside the snapshot.
pub(super) fn index_shards(index: &Path) -> Result<Vec<String>> {
    let shards = crate::weights::index_shards(index)?;
    if let Some(bad) = shards.iter().find(|s| !is_safe_file_name(s)) {
        return Err(Error::checkpoint(
            index,
            format!("`weight_map` names an invalid file `{bad}`"),
        ));
    }
    Ok(shards)
}

impl Fetch {
    /// The repository listing gave the commit, the file names and their blobs.
    pub(super) fn fetch_listed(
        &self,
        api: &Api,
        listing: &Listing,
    ) -> std::result::Result<PathBuf, Fail> {
        let commit = listing.commit.as_str();
        let files: BTreeSet<&str> = listing.files.keys().map(String::as_str).collect();
        if !is_safe_commit(commit) {
            return Err(self.http_error(
                Failure::Other(format!("the listing names an invalid commit `{commit}`")),
                "the file list",
            ));
        }
        let id = self.display_id();
        for required in [CONFIG_FILE, TOKENIZER_FILE] {
            if !files.contains(required) {
                let hint = if required == TOKENIZER_FILE && files.contains("spiece.model") {
                    " (it has only spiece.model: convert it with transformers, \
                     `AutoTokenizer.from_pretrained(repo).save_pretrained(dir)`, and load that directory)"
                } else {
                    ""
                };
                let hint = hint.replace("(repo)", &format!("(\"{}\")", self.id));
                return Err(Fail::Fatal(Error::Hub(format!(
                    "{id}: the repository on {} has no {required} at commit {commit}{hint}",
                    self.endpoint
                ))));
            }
        }
        let mut pinned = Pinned::new(self, api, commit);
        pinned.etags = listing
            .files
            .iter()
            .filter_map(|(name, etag)| Some((name.clone(), etag.clone()?)))
            .collect();
        pinned.get(CONFIG_FILE)?;
        pinned.get(TOKENIZER_FILE)?;
        if files.contains(WEIGHTS_FILE) {
            pinned.get(WEIGHTS_FILE)?;
        } else if files.contains(WEIGHTS_INDEX_FILE) {
            let index = pinned.get(WEIGHTS_INDEX_FILE)?;
            let shards = index_shards(&index).map_err(Fail::Fatal)?;
            if let Some(absent) = shards.iter().find(|s| !files.contains(s.as_str())) {
                return Err(Fail::Fatal(Error::Hub(format!(
                    "{id}: {WEIGHTS_INDEX_FILE} lists {absent}, which the repository on {} does not have",
                    self.endpoint
                ))));
            }
            for shard in &shards {
                pinned.get(shard)?;
            }
        } else {
            let others: Vec<&str> = files
                .iter()
                .copied()
                .filter(|f| {
                    [
                        ".bin", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".gguf", ".onnx",
                    ]
                    .iter()
                    .any(|ext| f.ends_with(ext))
                })
                .collect();
            let detail = if others.is_empty() {
                format!("no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} at commit {commit}")
            } else {
                format!("only {}", others.join(", "))
            };
            return Err(self.no_safetensors(&detail));
        }
        for optional in OPTIONAL_FILES {
            if files.contains(optional) {
                pinned.get_optional(optional);
            }
        }
        pinned.finish()
    }

    /// No listing (a mirror without the API): learn the commit from `config.json`, then probe.
    pub(super) fn fetch_probing(&self, api: &Api) -> std::result::Result<PathBuf, Fail> {
        let revision_ref_existed = self.refs_path(&self.revision).exists();
        let repo = api.repo(self.repo(&self.revision));
        let config = guarded(|| repo.download(CONFIG_FILE).map_err(classify))
            .map_err(|f| self.http_error(f, CONFIG_FILE))?;
        let commit = config
            .parent()
            .and_then(Path::file_name)
            .and_then(|c| c.to_str())
            .map(str::to_string)
            .filter(|c| is_safe_commit(c))
            .ok_or_else(|| {
                Fail::Fatal(Error::Hub(format!(
                    "{}: unexpected cache path {} for {CONFIG_FILE}",
                    self.display_id(),
                    config.display()
                )))
            })?;
        let mut pinned = Pinned::new(self, api, &commit);
        if commit == self.revision {
            // The unpinned download of config.json already wrote `refs/<commit>`.
            pinned.commit_ref_existed = revision_ref_existed;
        }
        pinned.get(TOKENIZER_FILE)?;
        if pinned.cached(WEIGHTS_FILE).is_some() {
        } else if let Some(index) = pinned.cached(WEIGHTS_INDEX_FILE) {
            for shard in &index_shards(&index).map_err(Fail::Fatal)? {
                pinned.get(shard)?;
            }
        } else {
            match pinned.try_get(WEIGHTS_FILE) {
                Ok(_) => {}
                Err(f) if f.is_not_found() => match pinned.try_get(WEIGHTS_INDEX_FILE) {
                    Ok(index) => {
                        for shard in &index_shards(&index).map_err(Fail::Fatal)? {
                            pinned.get(shard)?;
                        }
                    }
                    Err(f) if f.is_not_found() => {
                        return Err(self.no_safetensors(&format!(
                            "{WEIGHTS_FILE} and {WEIGHTS_INDEX_FILE}: HTTP 404 on {}",
                            self.endpoint
                        )))
                    }
                    Err(f) => return Err(self.http_error(f, WEIGHTS_INDEX_FILE)),
                },
                Err(f) => return Err(self.http_error(f, WEIGHTS_FILE)),
            }
        }
        for optional in OPTIONAL_FILES {
            pinned.get_optional(optional);
        }
        pinned.finish()
    }
}
