//! Small file helpers shared by checkpoints, adapters and outputs: atomic writes, JSON reading
//! that names the key at fault, and the check that keeps every file a directory names inside it.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a half-written
/// one: the data goes to a temporary file in the same directory, is synced, then renamed over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Reads a JSON file into `T`, naming the file in errors (and the key, see [`parse_json`]).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_json(&text, path)
}

/// `T` from the JSON `text` of the file `path`. A value of the wrong type names its key and
/// place once: `` path: `num_layers`: invalid type: string "two", expected usize at line 22
/// column 21 ``; malformed JSON is an [`Error::Json`].
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let key = err.path().to_string();
        let source = err.into_inner();
        if source.is_data() && key != "." {
            Error::config(path, format!("`{key}`: {source}"))
        } else {
            Error::Json {
                path: path.into(),
                source,
            }
        }
    })?;
    de.end().map_err(|source| Error::Json {
        path: path.into(),
        source,
    })?;
    Ok(value)
}

/// ` at line L` of the first key `key` in the JSON `text`, or nothing when there is none: the
/// place of a value checked after parsing, for a message that names its key.
pub fn key_place(text: &str, key: &str) -> String {
    let quoted = format!("\"{key}\"");
    let found = text
        .match_indices(&quoted)
        .find(|(at, _)| text[at + quoted.len()..].trim_start().starts_with(':'));
    match found {
        Some((at, _)) => format!(" at line {}", text[..at].matches('\n').count() + 1),
        None => String::new(),
    }
}

/// Where the files of `dir`, and the files they name, must lie: `dir` itself with its links
/// resolved; for a snapshot of the Hugging Face cache (`<cache>/models--org--name/snapshots/
/// <commit>/`), the repository folder, where the snapshot's links point (`../../blobs/<etag>`).
pub fn containment_root(dir: &Path) -> Result<PathBuf> {
    let resolved = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    Ok(hub_repository_of(&resolved).unwrap_or(resolved))
}

/// The repository folder of a hub cache snapshot `<repo>/snapshots/<commit>`.
fn hub_repository_of(snapshot: &Path) -> Option<PathBuf> {
    let snapshots = snapshot.parent()?;
    let repo = snapshots.parent()?;
    let name = repo.file_name()?.to_str()?;
    let is_repo = ["models--", "datasets--", "spaces--"]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    (snapshots.file_name()? == "snapshots" && is_repo).then(|| repo.to_path_buf())
}

/// `dir/name`, once it is sure to stay inside `dir`: `name` is a relative path without `..`,
/// and with every link followed it still lies under [`containment_root`]`(dir)`. `listed_in`
/// is the file that gave `name` (an index naming its shards); `None` for a name of our own
/// (`config.json`, `adapter.safetensors`). A path that does not exist (or a dangling link) is
/// returned as is, for the caller to report as missing.
pub fn file_inside(dir: &Path, name: &str, listed_in: Option<&Path>) -> Result<PathBuf> {
    let refuse = |why: String| match listed_in {
        Some(file) => Error::Outside {
            path: file.to_path_buf(),
            msg: format!("entry `{name}` {why}; refused: a file must lie inside its directory"),
        },
        None => Error::Outside {
            path: dir.join(name),
            msg: format!("{why}; refused: a file must lie inside its directory"),
        },
    };
    let entry = Path::new(name);
    if name.is_empty() {
        return Err(refuse("is empty".into()));
    }
    if entry.has_root() || entry.is_absolute() {
        return Err(refuse(format!(
            "is an absolute path, outside {}",
            dir.display()
        )));
    }
    let normal = |c: Component| matches!(c, Component::Normal(_) | Component::CurDir);
    if !entry.components().all(normal) {
        return Err(refuse(format!("leads out of {} (`..`)", dir.display())));
    }
    let path = dir.join(entry);
    if path.symlink_metadata().is_err() {
        return Ok(path);
    }
    let Ok(resolved) = path.canonicalize() else {
        return Ok(path);
    };
    let root = containment_root(dir)?;
    if !resolved.starts_with(&root) {
        let what = if listed_in.is_some() {
            "resolves"
        } else {
            "is a link"
        };
        return Err(refuse(format!(
            "{what} to {}, outside {}",
            resolved.display(),
            root.display()
        )));
    }
    Ok(path)
}
