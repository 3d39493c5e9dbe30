//! A checkpoint's proof that it is whole: `manifest.json`, written last, lists every other file
//! of the checkpoint with its size and CRC-32. A checkpoint without one was never finished (or
//! was written before manifests existed); a file whose size or checksum differs was damaged
//! after it was written (truncated, emptied, overwritten, deleted).
//!
//! CRC-32 catches accidental damage (it is not meant to resist a forger) and hashes at memory
//! speed, so verifying even a full fine-tuning checkpoint costs a read of its files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_json, write_atomic};

/// The manifest's file name inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest's layout version.
const VERSION: u32 = 1;

/// `manifest.json`: every file of the checkpoint (path relative to it, `/`-separated).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    files: BTreeMap<String, FileEntry>,
}

/// One file's size and checksum.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    bytes: u64,
    /// CRC-32 (IEEE), as 8 lowercase hex digits.
    crc32: String,
}

/// Hashes every file under `dir`, flushes each to disk, and writes `manifest.json` last.
pub fn write(dir: &Path) -> Result<()> {
    let mut files = BTreeMap::new();
    for rel in files_under(dir, Path::new(""))? {
        let path = dir.join(&rel);
        let entry = hash(&path, true)?;
        files.insert(key(&rel), entry);
    }
    let manifest = Manifest {
        version: VERSION,
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("serializable");
    write_atomic(&dir.join(MANIFEST_FILE), text.as_bytes())
}

/// Checks that every file the manifest lists is there, with its size and checksum; the error
/// names the first file that is not (or the manifest itself).
pub fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    if !path.is_file() {
        return Err(Error::checkpoint(
            path,
            "missing: the checkpoint was never completed (or predates manifests)",
        ));
    }
    let manifest: Manifest = read_json(&path)?;
    if manifest.version != VERSION {
        return Err(Error::checkpoint(
            path,
            format!(
                "manifest version {} is not {VERSION}, the one this build reads",
                manifest.version
            ),
        ));
    }
    for (name, want) in &manifest.files {
        let file = inside(dir, name, &path)?;
        sized(&file, want)?;
        let got = hash(&file, false)?;
        if got.crc32 != want.crc32 {
            return Err(Error::checkpoint(
                file,
                "damaged: its contents do not match the checksum in manifest.json",
            ));
        }
    }
    Ok(())
}

/// Whether `dir` has a manifest and every file in it has the listed size: [`verify`] without
/// reading the files, for deciding what to prune.
pub fn looks_complete(dir: &Path) -> bool {
    let path = dir.join(MANIFEST_FILE);
    let Ok(manifest) = read_json::<Manifest>(&path) else {
        return false;
    };
    manifest.files.iter().all(|(name, want)| {
        inside(dir, name, &path)
            .and_then(|f| sized(&f, want))
            .is_ok_and(|size| size == want.bytes)
    })
}

/// The file's size; an error naming it when it is missing or shorter or longer than `want`.
fn sized(file: &Path, want: &FileEntry) -> Result<u64> {
    let size = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(Error::checkpoint(file, "not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::checkpoint(file, "missing (manifest.json lists it)"))
        }
        Err(e) => return Err(Error::io(file, e)),
    };
    match size {
        0 if want.bytes > 0 => Err(Error::checkpoint(
            file,
            format!("empty (manifest.json says {} bytes)", want.bytes),
        )),
        s if s < want.bytes => Err(Error::checkpoint(
            file,
            format!("truncated: {s} of {} bytes", want.bytes),
        )),
        s if s > want.bytes => Err(Error::checkpoint(
            file,
            format!("{s} bytes, but manifest.json says {}", want.bytes),
        )),
        s => Ok(s),
    }
}

/// `dir/name` for a manifest entry, refusing names that would lead outside `dir`.
fn inside(dir: &Path, name: &str, manifest: &Path) -> Result<PathBuf> {
    let rel = Path::new(name);
    if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::checkpoint(
            manifest,
            format!("entry `{name}` is not a path inside the checkpoint"),
        ));
    }
    Ok(dir.join(rel))
}

/// The size and CRC-32 of `path`; with `sync`, the file is also flushed to disk.
fn hash(path: &Path, sync: bool) -> Result<FileEntry> {
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    if sync {
        file.sync_all().map_err(io)?;
    }
    Ok(FileEntry {
        bytes,
        crc32: format!("{:08x}", hasher.finalize()),
    })
}

/// The files under `dir/rel` (relative to `dir`), sorted, without the manifest.
fn files_under(dir: &Path, rel: &Path) -> Result<Vec<PathBuf>> {
    let here = dir.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .map_err(|e| Error::io(&here, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(&here, e))?;
    entries.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for entry in entries {
        let name = rel.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            out.extend(files_under(dir, &name)?);
        } else if name != Path::new(MANIFEST_FILE) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A relative path as a manifest key: components joined by `/` on every platform.
fn key(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("model.mpk"), vec![7u8; 3000]).unwrap();
        std::fs::create_dir_all(tmp.path().join("adapter/rte")).unwrap();
        std::fs::write(tmp.path().join("adapter/rte/adapter.safetensors"), b"abc").unwrap();
        std::fs::write(tmp.path().join("trainer_state.json"), b"{}").unwrap();
        write(tmp.path()).unwrap();
        tmp
    }

    fn err(dir: &Path) -> String {
        verify(dir).unwrap_err().to_string()
    }

    #[test]
    fn a_whole_checkpoint_verifies_and_lists_nested_files() {
        let tmp = checkpoint();
        verify(tmp.path()).unwrap();
        assert!(looks_complete(tmp.path()));
        let m: Manifest = read_json(&tmp.path().join(MANIFEST_FILE)).unwrap();
        let names: Vec<&str> = m.files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "adapter/rte/adapter.safetensors",
                "model.mpk",
                "trainer_state.json"
            ]
        );
    }

    #[test]
    fn each_kind_of_damage_names_the_file() {
        let tmp = checkpoint();
        let model = tmp.path().join("model.mpk");
        std::fs::write(&model, vec![7u8; 1000]).unwrap();
        let e = err(tmp.path());
        assert!(
            e.contains("model.mpk: truncated: 1000 of 3000 bytes"),
            "{e}"
        );
        assert!(!looks_complete(tmp.path()));

        std::fs::write(&model, b"").unwrap();
        let e = err(tmp.path());
        assert!(e.contains("model.mpk: empty"), "{e}");

        let mut flipped = vec![7u8; 3000];
        flipped[1234] = 8;
        std::fs::write(&model, flipped).unwrap();
        let e = err(tmp.path());
        assert!(e.contains("model.mpk: damaged"), "{e}");
        assert!(looks_complete(tmp.path()), "sizes alone do not see it");

        std::fs::remove_file(&model).unwrap();
        let e = err(tmp.path());
        assert!(e.contains("model.mpk: missing"), "{e}");

        std::fs::remove_file(tmp.path().join(MANIFEST_FILE)).unwrap();
        let e = err(tmp.path());
        assert!(e.contains("manifest.json: missing"), "{e}");
    }

    #[test]
    fn entries_outside_the_checkpoint_are_refused() {
        let tmp = checkpoint();
        let text = r#"{"version": 1, "files": {"../x": {"bytes": 1, "crc32": "00000000"}}}"#;
        std::fs::write(tmp.path().join(MANIFEST_FILE), text).unwrap();
        let e = err(tmp.path());
        assert!(e.contains("`../x` is not a path inside"), "{e}");
    }
}
