//! Downloads pinned to one commit, into the cache's `snapshots/<commit>/`, laid out as Python's
//! `huggingface_hub` lays them out (blobs shared between commits, relative symlinks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiRepo};
use hf_hub::Cache;

use super::failure::{classify, guarded, Fail, Failure};
use super::fetch::Fetch;
use crate::error::Error;

/// Downloads pinned to one commit, into `snapshots/<commit>/`.
pub(super) struct Pinned<'a> {
    fetch: &'a Fetch,
    repo: ApiRepo,
    commit: String,
    snapshot: PathBuf,
    /// Whether `refs/<commit>` existed before: hf-hub writes it for pinned downloads, Python
    /// never does, so a new one is removed at the end.
    pub(super) commit_ref_existed: bool,
    /// File name → blob name, from the listing: a blob already in the cache (the same file in
    /// another commit) is linked instead of downloaded again.
    pub(super) etags: BTreeMap<String, String>,
}

impl<'a> Pinned<'a> {
    pub(super) fn new(fetch: &'a Fetch, api: &Api, commit: &str) -> Self {
        Self {
            fetch,
            repo: api.repo(fetch.repo(commit)),
            commit: commit.to_string(),
            snapshot: fetch.repo_dir().join("snapshots").join(commit),
            commit_ref_existed: fetch.refs_path(commit).exists(),
            etags: BTreeMap::new(),
        }
    }

    /// Links `snapshots/<commit>/<file>` to an existing `blobs/<etag>`, as Python does.
    pub(super) fn link_blob(&self, file: &str, target: &Path) -> Option<PathBuf> {
        let blob = self
            .fetch
            .repo_dir()
            .join("blobs")
            .join(self.etags.get(file)?);
        if !blob.is_file() {
            return None;
        }
        let parent = target.parent()?;
        std::fs::create_dir_all(parent).ok()?;
        // From snapshots/<commit>/<file> back to the repository folder.
        let mut relative = PathBuf::from("..");
        for _ in file.split('/') {
            relative.push("..");
        }
        relative.push("blobs");
        relative.push(blob.file_name()?);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&relative, target).is_ok();
        #[cfg(windows)]
        let linked = std::os::windows::fs::symlink_file(&relative, target).is_ok()
            || std::fs::copy(&blob, target).is_ok();
        #[cfg(not(any(unix, windows)))]
        let linked = std::fs::copy(&blob, target).is_ok();
        (linked && target.is_file()).then(|| {
            tracing::debug!("{file}: reusing cached blob {}", blob.display());
            target.to_path_buf()
        })
    }

    pub(super) fn cached(&self, file: &str) -> Option<PathBuf> {
        let path = self.snapshot.join(file);
        path.is_file().then_some(path)
    }

    /// The file from the snapshot, downloading it when it is not there.
    pub(super) fn try_get(&self, file: &str) -> std::result::Result<PathBuf, Failure> {
        if let Some(path) = self.cached(file) {
            return Ok(path);
        }
        let target = self.snapshot.join(file);
        // A dangling link (its blob was deleted) would make hf-hub's symlink fail.
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target)
                .map_err(|e| Failure::Other(format!("{}: {e}", target.display())))?;
        }
        if let Some(path) = self.link_blob(file, &target) {
            return Ok(path);
        }
        tracing::info!(
            "downloading {file} of {} from {}",
            self.fetch.display_id(),
            self.fetch.endpoint
        );
        let path = guarded(|| self.repo.download(file).map_err(classify))?;
        if path != target {
            return Err(Failure::Other(format!(
                "it was stored at {} instead of {} (the hub answered for another commit than {})",
                path.display(),
                target.display(),
                self.commit
            )));
        }
        Ok(path)
    }

    pub(super) fn get(&self, file: &str) -> std::result::Result<PathBuf, Fail> {
        self.try_get(file)
            .map_err(|f| self.fetch.http_error(f, file))
    }

    pub(super) fn get_optional(&self, file: &str) {
        match self.try_get(file) {
            Ok(_) => {}
            Err(f) if f.is_not_found() => {}
            Err(f) => {
                let msg = match self.fetch.http_error(f, file) {
                    Fail::Network(m) => m,
                    Fail::Fatal(e) => e.to_string(),
                };
                tracing::warn!("{msg} (optional file, skipped)");
            }
        }
    }

    /// Points `refs/<revision>` at the commit, as Python does, and returns the snapshot.
    pub(super) fn finish(&self) -> std::result::Result<PathBuf, Fail> {
        let fetch = self.fetch;
        if fetch.revision != self.commit {
            Cache::new(fetch.cache_root.clone())
                .repo(fetch.repo(&fetch.revision))
                .create_ref(&self.commit)
                .map_err(|e| Fail::Fatal(Error::io(fetch.refs_path(&fetch.revision), e)))?;
        }
        if !self.commit_ref_existed {
            // Only the stray file hf-hub wrote; a missing one is fine.
            let _ = std::fs::remove_file(fetch.refs_path(&self.commit));
        }
        Ok(self.snapshot.clone())
    }
}
