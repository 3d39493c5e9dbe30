//! PyTorch's `torch.save` files, `pytorch_model.bin` and its shards, read without running them:
//! where each tensor of the state dict lies in the file. Two containers exist:
//! - the zip archive of torch ≥ 1.6: `<name>/data.pkl` (the pickle), `<name>/data/<key>` (one
//!   entry per storage, stored uncompressed), `<name>/byteorder`;
//! - the legacy stream of torch < 1.6 (still written with `_use_new_zipfile_serialization=False`):
//!   five pickles (magic number, protocol version, system info, the state dict, the storage
//!   keys) followed by each storage as an 8-byte element count and its bytes.
//!
//! Both keep every storage contiguous in the file, so a tensor is a byte range of it, exactly as
//! in a safetensors file; a non-contiguous view (a transposed weight saved as is) is the byte
//! range it reaches plus its strides, gathered when read. The pickle is read by [`super::pickle`], which refuses anything but a
//! state dict.

use std::collections::HashMap;
use std::io::Cursor;

use safetensors::Dtype;

use super::pickle::{self, Object, TensorRef};

/// One tensor: its name, dtype, shape and byte range in the file (from its first element to one
/// past the last it reaches).
pub struct Located {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
    /// In elements; `None` when contiguous.
    pub strides: Option<Vec<usize>>,
}

type Res<T> = std::result::Result<T, String>;

/// The legacy format's magic number, 0x1950a86a20f9469cfc6c, as pickled (little-endian).
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// Where the tensors of a `torch.save` file lie in `bytes`.
pub fn locate(bytes: &[u8]) -> Res<Vec<Located>> {
    if bytes.starts_with(b"PK\x03\x04") {
        zip_tensors(bytes)
    } else if bytes.first() == Some(&0x80) {
        legacy_tensors(bytes)
    } else if bytes.len() < 4 {
        Err(format!(
            "{} bytes is too short for a PyTorch checkpoint",
            bytes.len()
        ))
    } else {
        Err(
            "not a PyTorch checkpoint (neither torch.save's zip archive nor its legacy \
             pickle stream)"
                .into(),
        )
    }
}

/// The byte range of every entry in the archive, by name; only uncompressed entries can be
/// ranges, and torch.save writes no other kind.
fn zip_entries(bytes: &[u8]) -> Res<HashMap<String, (usize, usize)>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        format!("not a readable zip archive ({e}); the file may be truncated or corrupt")
    })?;
    let mut entries = HashMap::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| format!("zip entry {i}: {e}; the file may be truncated or corrupt"))?;
        let name = entry.name().to_string();
        if entry.compression() != zip::CompressionMethod::Stored {
            return Err(format!(
                "zip entry `{name}` is compressed ({}); torch.save stores its entries \
                 uncompressed",
                entry.compression()
            ));
        }
        let range = entry.data_start().and_then(|start| {
            let end = start.checked_add(entry.compressed_size())?;
            let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
            (end <= bytes.len()).then_some((start, end))
        });
        let range = range.ok_or_else(|| {
            format!("zip entry `{name}` lies past the end of the file; it is truncated")
        })?;
        entries.insert(name, range);
    }
    Ok(entries)
}

fn zip_tensors(bytes: &[u8]) -> Res<Vec<Located>> {
    let entries = zip_entries(bytes)?;
    let mut pickles: Vec<&String> = entries
        .keys()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .collect();
    pickles.sort();
    let [pkl] = pickles[..] else {
        return Err(format!(
            "a zip archive with {} `<name>/data.pkl` entries; torch.save writes one",
            pickles.len()
        ));
    };
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(&(s, e)) = entries.get(&format!("{prefix}byteorder")) {
        if &bytes[s..e] != b"little" {
            return Err("the tensors are stored big-endian; only little-endian is read".into());
        }
    }
    let (s, e) = entries[pkl];
    let tensors = state_dict(pickle::read(&bytes[s..e], &mut 0)?, pkl)?;
    let storages = |key: &str| entries.get(&format!("{prefix}data/{key}")).copied();
    place(tensors, storages)
}

fn state_dict(object: Object, what: &str) -> Res<Vec<(String, TensorRef)>> {
    match object {
        Object::StateDict(tensors) => Ok(tensors),
        _ => Err(format!(
            "{what} holds no state dict of tensors (a whole pickled model or a training \
             checkpoint is not read; save `model.state_dict()`)"
        )),
    }
}

/// Each tensor's byte range, from the byte range of each storage.
fn place(
    tensors: Vec<(String, TensorRef)>,
    storage: impl Fn(&str) -> Option<(usize, usize)>,
) -> Res<Vec<Located>> {
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let s = &t.storage;
        let (start, end) = storage(&s.key).ok_or_else(|| {
            format!(
                "tensor `{name}`: its storage `{}` is not in the file",
                s.key
            )
        })?;
        let size = s.dtype.bitsize() / 8;
        let numel = t.span;
        let bytes_at = |elements: usize| elements.checked_mul(size);
        let range = (|| {
            let first = start.checked_add(bytes_at(s.view_offset.checked_add(t.offset)?)?)?;
            let last = first.checked_add(bytes_at(numel)?)?;
            let storage_end = start.checked_add(bytes_at(s.view_offset.checked_add(s.numel)?)?)?;
            (last <= end && storage_end <= end).then_some((first, last))
        })();
        let Some((first, last)) = range else {
            return Err(format!(
                "tensor `{name}` lies past the end of its storage `{}` ({} bytes); the file \
                 is truncated or corrupt",
                s.key,
                end - start
            ));
        };
        out.push(Located {
            name,
            dtype: s.dtype,
            shape: t.shape,
            start: first,
            end: last,
            strides: t.stride,
        });
    }
    Ok(out)
}

fn legacy_tensors(bytes: &[u8]) -> Res<Vec<Located>> {
    let mut pos = 0;
    match pickle::read(bytes, &mut pos)? {
        Object::Int(magic) if magic == LEGACY_MAGIC => {}
        _ => {
            return Err(
                "a pickle, but not a PyTorch checkpoint (no torch.save magic number)".into(),
            )
        }
    }
    match pickle::read(bytes, &mut pos)? {
        Object::Int(v) if v == LEGACY_PROTOCOL.to_le_bytes() => {}
        _ => return Err("a legacy PyTorch checkpoint of an unknown protocol version".into()),
    }
    if let Object::Info(info) = pickle::read(bytes, &mut pos)? {
        if info.get("little_endian") == Some(&false) {
            return Err("the tensors are stored big-endian; only little-endian is read".into());
        }
    }
    let tensors = state_dict(pickle::read(bytes, &mut pos)?, "the checkpoint")?;
    let Object::Strings(keys) = pickle::read(bytes, &mut pos)? else {
        return Err("the legacy checkpoint's list of storages is not a list of keys".into());
    };
    let dtypes: HashMap<&str, Dtype> = tensors
        .iter()
        .map(|(_, t)| (t.storage.key.as_str(), t.storage.dtype))
        .collect();
    let mut ranges = HashMap::new();
    for key in &keys {
        let dtype = dtypes
            .get(key.as_str())
            .ok_or_else(|| format!("storage `{key}` is used by no tensor of the state dict"))?;
        let truncated =
            || format!("storage `{key}` lies past the end of the file; it is truncated");
        let count: [u8; 8] = bytes
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(truncated)?;
        let len = usize::try_from(u64::from_le_bytes(count))
            .ok()
            .and_then(|n| n.checked_mul(dtype.bitsize() / 8))
            .ok_or_else(truncated)?;
        let start = pos + 8;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(truncated)?;
        ranges.insert(key.clone(), (start, end));
        pos = end;
    }
    place(tensors, |key| ranges.get(key).copied())
}
