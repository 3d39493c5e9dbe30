//! Which files make a model and how they are found: from the repository listing when the hub
//! offers one, else by asking for each file in turn (mirrors without the listing API). The
//! weights are the first of [`WEIGHTS`] the repository has: safetensors, else PyTorch's
//! `pytorch_model.bin` (read by the restricted unpickler of `crate::weights`), each single or
//! sharded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::Api;

use super::failure::{classify, guarded, Fail, Failure};
use super::fetch::{Fetch, Listing};
use super::pinned::Pinned;
use super::repo_id::{is_safe_commit, is_safe_file_name};
use crate::error::{Error, Result};
use crate::files::{
    CONFIG_FILE, TOKENIZER_FILE, TORCH_WEIGHTS_FILE, TORCH_WEIGHTS_INDEX_FILE, WEIGHTS_FILE,
    WEIGHTS_INDEX_FILE,
};

/// Fetched when the repository has them; their absence is not an error.
const OPTIONAL_FILES: [&str; 2] = ["generation_config.json", "spiece.model"];

/// The weights a model repository may hold, in Hugging Face's order of preference; `true` marks
/// an index, whose shards come with it.
pub(super) const WEIGHTS: [(&str, bool); 4] = [
    (WEIGHTS_FILE, false),
    (WEIGHTS_INDEX_FILE, true),
    (TORCH_WEIGHTS_FILE, false),
    (TORCH_WEIGHTS_INDEX_FILE, true),
];

/// The shard files listed by `model.safetensors.index.json` (or `pytorch_model.bin.index.json`), deduplicated and sorted; each must
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
        let Some(&(weights, indexed)) = WEIGHTS.iter().find(|(f, _)| files.contains(f)) else {
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
                format!("none of {} at commit {commit}", weight_names())
            } else {
                format!("only {}", others.join(", "))
            };
            return Err(self.no_weights(&detail));
        };
        let path = pinned.get(weights)?;
        if indexed {
            let shards = index_shards(&path).map_err(Fail::Fatal)?;
            if let Some(absent) = shards.iter().find(|s| !files.contains(s.as_str())) {
                return Err(Fail::Fatal(Error::Hub(format!(
                    "{id}: {weights} lists {absent}, which the repository on {} does not have",
                    self.endpoint
                ))));
            }
            for shard in &shards {
                pinned.get(shard)?;
            }
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
        // A cached choice stands (it was the first the repository had); else probe in order.
        let mut chosen = WEIGHTS
            .iter()
            .find_map(|&(f, indexed)| Some((pinned.cached(f)?, indexed)));
        if chosen.is_none() {
            for &(file, indexed) in &WEIGHTS {
                match pinned.try_get(file) {
                    Ok(path) => {
                        chosen = Some((path, indexed));
                        break;
                    }
                    Err(f) if f.is_not_found() => {}
                    Err(f) => return Err(self.http_error(f, file)),
                }
            }
        }
        let Some((path, indexed)) = chosen else {
            return Err(self.no_weights(&format!(
                "{}: HTTP 404 on {}",
                weight_names(),
                self.endpoint
            )));
        };
        if indexed {
            for shard in &index_shards(&path).map_err(Fail::Fatal)? {
                pinned.get(shard)?;
            }
        }
        for optional in OPTIONAL_FILES {
            pinned.get_optional(optional);
        }
        pinned.finish()
    }
}

/// "model.safetensors, model.safetensors.index.json, pytorch_model.bin, ...".
fn weight_names() -> String {
    WEIGHTS.map(|(f, _)| f).join(", ")
}
