//! What the cache holds for a model revision, and the offline error that names the missing
//! files and the command that fetches them.

use std::path::PathBuf;

use super::fetch::Fetch;
use super::model_files::{index_shards, WEIGHTS};
use super::repo_id::{is_commit_hash, is_safe_commit};
use crate::error::{Error, Result};
use crate::files::{
    CONFIG_FILE, TOKENIZER_FILE, TORCH_WEIGHTS_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};

/// What the cache holds for the requested revision.
pub(super) enum Cached {
    Complete(PathBuf),
    /// `refs/<revision>` is missing: nothing is known about this revision.
    NoSnapshot {
        refs: PathBuf,
    },
    /// The snapshot exists but lacks `files` (and the weights when `weights_unknown`).
    Incomplete {
        snapshot: PathBuf,
        files: Vec<String>,
        weights_unknown: bool,
    },
}

impl Fetch {
    pub(super) fn check_cache(&self) -> Result<Cached> {
        let commit = if is_commit_hash(&self.revision) {
            Some(self.revision.clone())
        } else {
            std::fs::read_to_string(self.refs_path(&self.revision))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| is_safe_commit(s))
        };
        let Some(commit) = commit else {
            return Ok(Cached::NoSnapshot {
                refs: self.refs_path(&self.revision),
            });
        };
        let snapshot = self.repo_dir().join("snapshots").join(&commit);
        let mut files: Vec<String> = [CONFIG_FILE, TOKENIZER_FILE]
            .into_iter()
            .filter(|f| !snapshot.join(f).is_file())
            .map(String::from)
            .collect();
        let mut weights_unknown = false;
        match WEIGHTS.iter().find(|(f, _)| snapshot.join(f).is_file()) {
            Some((index, true)) => {
                let shards = index_shards(&snapshot.join(index))?;
                files.extend(shards.into_iter().filter(|s| !snapshot.join(s).is_file()));
            }
            Some((_, false)) => {}
            None => weights_unknown = true,
        }
        if files.is_empty() && !weights_unknown {
            Ok(Cached::Complete(snapshot))
        } else {
            Ok(Cached::Incomplete {
                snapshot,
                files,
                weights_unknown,
            })
        }
    }

    pub(super) fn offline_error(&self, cached: Cached) -> Error {
        let (mut missing, weights_unknown, place) = match cached {
            Cached::Complete(_) => (vec![], false, String::new()),
            Cached::NoSnapshot { refs } => (
                vec![CONFIG_FILE.to_string(), TOKENIZER_FILE.to_string()],
                true,
                format!(
                    "no snapshot of revision `{}` is cached ({} does not exist)",
                    self.revision,
                    refs.display()
                ),
            ),
            Cached::Incomplete {
                snapshot,
                files,
                weights_unknown,
            } => (
                files,
                weights_unknown,
                format!("looked in {}", snapshot.display()),
            ),
        };
        let revision_flag = if self.revision == "main" {
            String::new()
        } else {
            format!(" --revision {}", self.revision)
        };
        let command = if weights_unknown {
            format!(
                "huggingface-cli download {}{revision_flag} --include \"*.json\" \"*.safetensors\"",
                self.id
            )
        } else {
            format!(
                "huggingface-cli download {}{revision_flag} {}",
                self.id,
                missing.join(" ")
            )
        };
        if weights_unknown {
            missing.push(format!(
                "{WEIGHTS_FILE} (or {WEIGHTS_INDEX_FILE} and its shards, or {TORCH_WEIGHTS_FILE} \
                 or its shards)"
            ));
        }
        Error::MissingFiles(format!(
            "{}: offline mode, and the Hugging Face cache {} lacks {}: {place}; run `{command}` on a \
             machine with internet (then copy {} here), or go online (unset HF_HUB_OFFLINE)",
            self.display_id(),
            self.cache_root.display(),
            missing.join(", "),
            self.repo_dir().display(),
        ))
    }
}
