//! A dataset split's parquet files from the hub, into the same cache Python's `datasets` and
//! `huggingface_hub` use (`<cache>/datasets--org--name/snapshots/<commit>/<config>/...`).
//!
//! The hub serves a split as one or more parquet files, in one of these layouts:
//! `<config>/<split>-00000-of-00001.parquet` (GLUE, SuperGLUE, most data sets),
//! `data/<split>-….parquet` or `<split>.parquet` (single-configuration repositories) and, on the
//! `refs/convert/parquet` branch of script-based repositories, `<config>/<split>/0000.parquet`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hf_hub::RepoType;

use super::{is_commit_hash, is_safe_commit, Fail, Fetch, HubOptions, Pinned};
use crate::error::{Error, Result};

/// Folders that hold the files of a repository's only configuration.
const DEFAULT_CONFIG_DIRS: [&str; 3] = ["data/", "default/", "plain_text/"];

/// Downloads (or finds in the cache) the parquet files of `split` of configuration `config`
/// of the dataset repository `repo_id` (`org/name[@revision]`), and returns their paths in
/// order. Offline (`options.offline`), or when the hub cannot be reached, the cached snapshot is
/// used.
pub fn fetch_dataset_split(
    repo_id: &str,
    config: Option<&str>,
    split: &str,
    options: &HubOptions,
) -> Result<Vec<PathBuf>> {
    let fetch = Fetch::new(repo_id, options, RepoType::Dataset)?;
    let what = describe(config, split);
    if options.offline {
        return cached(&fetch, config, split)?.ok_or_else(|| offline_error(&fetch, config, split));
    }
    if is_commit_hash(&fetch.revision) {
        if let Some(files) = cached(&fetch, config, split)? {
            return Ok(files);
        }
    }
    match online(&fetch, config, split, &what) {
        Ok(files) => Ok(files),
        Err(Fail::Fatal(e)) => Err(e),
        Err(Fail::Network(msg)) => match cached(&fetch, config, split)? {
            Some(files) => {
                tracing::warn!("{msg}; using the cached {what}");
                Ok(files)
            }
            None => Err(Error::Hub(msg)),
        },
    }
}

fn describe(config: Option<&str>, split: &str) -> String {
    match config {
        Some(c) => format!("split `{split}` of configuration `{c}`"),
        None => format!("split `{split}`"),
    }
}

/// Whether `file` (a path in the repository) is part of `split` of `config`.
fn belongs_to(file: &str, config: Option<&str>, split: &str) -> bool {
    let Some(stem) = file.strip_suffix(".parquet") else {
        return false;
    };
    let rest = match config {
        Some(c) => match stem.strip_prefix(c).and_then(|r| r.strip_prefix('/')) {
            Some(rest) => rest,
            None => return false,
        },
        None => DEFAULT_CONFIG_DIRS
            .iter()
            .find_map(|d| stem.strip_prefix(d))
            .unwrap_or(stem),
    };
    let Some(after) = rest.strip_prefix(split) else {
        return false;
    };
    // `train`, `train-00000-of-00002[-hash]`, `train/0000`; not `train_extra-…`.
    after.is_empty()
        || (after.starts_with('-') && !after.contains('/'))
        || after
            .strip_prefix('/')
            .is_some_and(|f| !f.is_empty() && !f.contains('/'))
}

/// The split's files in a repository listing, sorted (shard order).
fn select<'a>(
    files: impl IntoIterator<Item = &'a str>,
    config: Option<&str>,
    split: &str,
) -> Vec<String> {
    let mut chosen: Vec<String> = files
        .into_iter()
        .filter(|f| belongs_to(f, config, split))
        .map(str::to_string)
        .collect();
    chosen.sort();
    chosen
}

/// The configurations and splits a listing offers, for error messages: `rte/train, rte/test…`.
fn offered<'a>(files: impl IntoIterator<Item = &'a str>) -> String {
    let parts: BTreeSet<String> = files
        .into_iter()
        .filter_map(|f| f.strip_suffix(".parquet"))
        .map(|f| match f.rsplit_once('/') {
            Some((dir, name)) => {
                let split = name.split('-').next().unwrap_or(name);
                if split.chars().all(|c| c.is_ascii_digit()) {
                    dir.to_string() // `<config>/<split>/0000`
                } else {
                    format!("{dir}/{split}")
                }
            }
            None => f.split('-').next().unwrap_or(f).to_string(),
        })
        .collect();
    if parts.is_empty() {
        "no parquet files".into()
    } else {
        parts.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// The split's files from the cached snapshot of the revision, if there are any. A file that
/// links outside the repository's folder in the cache is refused.
fn cached(fetch: &Fetch, config: Option<&str>, split: &str) -> Result<Option<Vec<PathBuf>>> {
    let commit = if is_commit_hash(&fetch.revision) {
        fetch.revision.clone()
    } else {
        let Ok(text) = std::fs::read_to_string(fetch.refs_path(&fetch.revision)) else {
            return Ok(None);
        };
        let commit = text.trim().to_string();
        if !is_safe_commit(&commit) {
            return Ok(None);
        }
        commit
    };
    let snapshot = fetch.repo_dir().join("snapshots").join(commit);
    let mut names = Vec::new();
    collect_files(&snapshot, &snapshot, &mut names);
    let chosen = select(names.iter().map(String::as_str), config, split);
    if chosen.is_empty() {
        return Ok(None);
    }
    chosen
        .iter()
        .map(|f| crate::io::file_inside(&snapshot, f, None))
        .collect::<Result<_>>()
        .map(Some)
}

/// Every file under `dir`, as `/`-separated paths relative to `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if path.is_file() {
            if let Ok(rel) = path.strip_prefix(root) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
}

fn offline_error(fetch: &Fetch, config: Option<&str>, split: &str) -> Error {
    let revision = if fetch.revision == "main" {
        String::new()
    } else {
        format!(" --revision {}", fetch.revision)
    };
    let pattern = match config {
        Some(c) => format!("{c}/{split}*"),
        None => format!("*{split}*"),
    };
    Error::MissingFiles(format!(
        "{}: offline mode, and the Hugging Face cache {} has no parquet file of the {} (looked in \
         {}); run `huggingface-cli download --repo-type dataset {}{revision} --include \"{pattern}\"` \
         on a machine with internet (then copy that folder here), go online (unset \
         HF_HUB_OFFLINE), or set `data_dir` to local copies",
        fetch.display_id(),
        fetch.cache_root.display(),
        describe(config, split),
        fetch.repo_dir().display(),
        fetch.id,
    ))
}

fn online(
    fetch: &Fetch,
    config: Option<&str>,
    split: &str,
    what: &str,
) -> std::result::Result<Vec<PathBuf>, Fail> {
    let api = fetch.build_api()?;
    let listing = fetch
        .list(&api)
        .map_err(|f| fetch.http_error(f, "the file list"))?;
    if !is_safe_commit(&listing.commit) {
        return Err(Fail::Fatal(Error::Hub(format!(
            "{}: the listing names an invalid commit `{}`",
            fetch.display_id(),
            listing.commit
        ))));
    }
    let names = || listing.files.keys().map(String::as_str);
    let files = select(names(), config, split);
    if files.is_empty() {
        let script = names().any(|f| f.ends_with(".py"));
        let hint = if script && fetch.revision == "main" {
            format!(
                "; it is built by a loading script, so try its parquet conversion, `{}@refs/convert/parquet`",
                fetch.id
            )
        } else {
            String::new()
        };
        return Err(Fail::Fatal(Error::Hub(format!(
            "{}: no parquet files of the {what} on {} at commit {} (it offers: {}){hint}",
            fetch.display_id(),
            fetch.endpoint,
            listing.commit,
            offered(names()),
        ))));
    }
    let mut pinned = Pinned::new(fetch, &api, &listing.commit);
    pinned.etags = listing
        .files
        .iter()
        .filter_map(|(name, etag)| Some((name.clone(), etag.clone()?)))
        .collect();
    let paths = files
        .iter()
        .map(|f| pinned.get(f))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    pinned.finish()?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_files_in_every_hub_layout() {
        let files = [
            "README.md",
            "rte/train-00000-of-00001.parquet",
            "rte/validation-00000-of-00001.parquet",
            "rte/test-00000-of-00001.parquet",
            "mnli/validation_matched-00000-of-00001.parquet",
            "mnli/validation_mismatched-00000-of-00001.parquet",
            "mnli/train-00000-of-00002.parquet",
            "mnli/train-00001-of-00002.parquet",
            "mnli_matched/validation-00000-of-00001.parquet",
        ];
        let f = files.iter().copied();
        assert_eq!(
            select(f.clone(), Some("rte"), "train"),
            ["rte/train-00000-of-00001.parquet"]
        );
        assert_eq!(
            select(f.clone(), Some("mnli"), "validation_matched"),
            ["mnli/validation_matched-00000-of-00001.parquet"]
        );
        assert_eq!(
            select(f.clone(), Some("mnli"), "train"),
            [
                "mnli/train-00000-of-00002.parquet",
                "mnli/train-00001-of-00002.parquet"
            ]
        );
        // `validation` is not a prefix match of `validation_matched`, nor `mnli` of `mnli_matched`.
        assert!(select(f.clone(), Some("mnli"), "validation").is_empty());
        assert!(select(f.clone(), Some("cola"), "train").is_empty());

        let single = [
            "plain_text/train-00000-of-00001.parquet",
            "data/test-00000-of-00001-5a1c3f.parquet",
            "default/validation/0000.parquet",
            "default/validation/0001.parquet",
            "default/partial-train/0000.parquet",
            "unsupervised.parquet",
        ];
        let s = single.iter().copied();
        assert_eq!(
            select(s.clone(), None, "train"),
            ["plain_text/train-00000-of-00001.parquet"]
        );
        assert_eq!(
            select(s.clone(), None, "test"),
            ["data/test-00000-of-00001-5a1c3f.parquet"]
        );
        assert_eq!(
            select(s.clone(), None, "validation"),
            [
                "default/validation/0000.parquet",
                "default/validation/0001.parquet"
            ]
        );
        assert_eq!(
            select(s.clone(), None, "unsupervised"),
            ["unsupervised.parquet"]
        );
        assert_eq!(
            offered(files.iter().copied()),
            "mnli/train, mnli/validation_matched, mnli/validation_mismatched, \
             mnli_matched/validation, rte/test, rte/train, rte/validation"
        );
    }
}
