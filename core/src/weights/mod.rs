//! Named tensors in safetensors files and PyTorch `.bin` files: reading them out of one or more
//! buffers (a single file, HF shards, or bytes handed over by the browser), converting
//! f16/bf16/f32 to the f32 compute type, and writing f32 tensors. The model, the adapters and the
//! model export all go through here; it knows nothing about any of them. A `.bin` file is a
//! pickle, read by a restricted reader that runs no code ([`pickle`], [`torch`]).

mod pickle;
mod torch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::files::{
    TORCH_WEIGHTS_FILE, TORCH_WEIGHTS_INDEX_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};
use crate::io::file_inside;

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte range in the file's buffer.
    start: usize,
    end: usize,
    /// A non-contiguous view's strides, in elements (`.bin` files only).
    strides: Option<Vec<usize>>,
}

struct File {
    /// Shown in errors: a path on disk or a name given by the caller.
    path: PathBuf,
    bytes: Arc<[u8]>,
}

/// Named tensors from safetensors buffers. Tracks which names were taken so that
/// unexpected leftovers can be reported.
pub struct Weights {
    files: Vec<File>,
    entries: HashMap<String, Entry>,
    taken: BTreeSet<String>,
}

impl Weights {
    fn empty() -> Self {
        Weights {
            files: Vec::new(),
            entries: HashMap::new(),
            taken: BTreeSet::new(),
        }
    }

    /// Parses safetensors buffers; `name` labels each one in errors.
    pub fn from_buffers(buffers: Vec<(PathBuf, Arc<[u8]>)>) -> Result<Self> {
        let mut weights = Self::empty();
        for (path, bytes) in buffers {
            let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| {
                Error::checkpoint(
                    &path,
                    format!("not a valid safetensors file ({e}); it may be truncated or corrupt"),
                )
            })?;
            let data_start = 8 + header_len;
            let mut tensors = Vec::new();
            for (name, info) in metadata.tensors() {
                let (start, end) = info.data_offsets;
                if data_start + end > bytes.len() {
                    return Err(Error::checkpoint(
                        &path,
                        format!("tensor `{name}` lies past the end of the file; it is truncated"),
                    ));
                }
                tensors.push(torch::Located {
                    name,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + start,
                    end: data_start + end,
                    strides: None,
                });
            }
            weights.add_file(path, bytes, tensors)?;
        }
        Ok(weights)
    }

    /// Parses PyTorch `torch.save` buffers of state dicts (`pytorch_model.bin`, zip or legacy),
    /// running none of their pickled code: anything but tensors and the containers of a state
    /// dict is refused with an error naming the file.
    pub fn from_torch_buffers(buffers: Vec<(PathBuf, Arc<[u8]>)>) -> Result<Self> {
        let mut weights = Self::empty();
        for (path, bytes) in buffers {
            let tensors = torch::locate(&bytes).map_err(|msg| Error::checkpoint(&path, msg))?;
            weights.add_file(path, bytes, tensors)?;
        }
        Ok(weights)
    }

    /// Adds one file's tensors; a name already read from another file is an error.
    fn add_file(
        &mut self,
        path: PathBuf,
        bytes: Arc<[u8]>,
        tensors: Vec<torch::Located>,
    ) -> Result<()> {
        let file = self.files.len();
        for t in tensors {
            if let Some(previous) = self.entries.get(&t.name) {
                let other = if previous.file == file {
                    "this file".to_string()
                } else {
                    self.files[previous.file].path.display().to_string()
                };
                return Err(Error::checkpoint(
                    &path,
                    format!("tensor `{}` is also in {other}", t.name),
                ));
            }
            let entry = Entry {
                file,
                dtype: t.dtype,
                shape: t.shape,
                start: t.start,
                end: t.end,
                strides: t.strides,
            };
            self.entries.insert(t.name, entry);
        }
        self.files.push(File { path, bytes });
        Ok(())
    }

    /// Reads `model.safetensors`, or the shards listed in `model.safetensors.index.json`, or,
    /// without either, PyTorch's `pytorch_model.bin` or the shards listed in
    /// `pytorch_model.bin.index.json` (Hugging Face's order of preference). Every file must lie
    /// inside `dir` ([`crate::io::file_inside`]): a shard named `../x` or `/x`, or a link
    /// pointing out, is refused.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let found = |name: &str| -> Result<Option<PathBuf>> {
            let path = file_inside(dir, name, None)?;
            Ok(path.is_file().then_some(path))
        };
        let (files, torch) = if let Some(single) = found(WEIGHTS_FILE)? {
            (vec![single], false)
        } else if let Some(index) = found(WEIGHTS_INDEX_FILE)? {
            (shard_files(&index)?, false)
        } else if let Some(single) = found(TORCH_WEIGHTS_FILE)? {
            (vec![single], true)
        } else if let Some(index) = found(TORCH_WEIGHTS_INDEX_FILE)? {
            (shard_files(&index)?, true)
        } else {
            return Err(Error::MissingFiles(format!(
                "{}: no weights (model.safetensors, pytorch_model.bin, or the index of either's \
                 shards)",
                dir.display()
            )));
        };
        let mut buffers = Vec::with_capacity(files.len());
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            buffers.push((file, Arc::from(bytes)));
        }
        if torch {
            Self::from_torch_buffers(buffers)
        } else {
            Self::from_buffers(buffers)
        }
    }

    /// Reads one safetensors file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_buffers(vec![(path.to_path_buf(), Arc::from(bytes))])
    }

    /// The shape of tensor `name` as stored, without reading it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Names present in the files that no `take` asked for, sorted.
    pub fn untaken(&self) -> Vec<&str> {
        self.names()
            .into_iter()
            .filter(|n| !self.taken.contains(*n))
            .collect()
    }

    /// Where errors about this set of weights point (the first file).
    pub fn origin(&self) -> PathBuf {
        self.files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_default()
    }

    /// Reads tensor `name` as f32 values, checking its shape.
    pub fn take_values(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| Error::checkpoint(self.origin(), format!("missing tensor `{name}`")))?;
        let file = &self.files[entry.file];
        if entry.shape != shape {
            return Err(Error::checkpoint(
                &file.path,
                format!(
                    "tensor `{name}` has shape {:?} but the config implies {:?}",
                    entry.shape, shape
                ),
            ));
        }
        let mut bytes = std::borrow::Cow::Borrowed(&file.bytes[entry.start..entry.end]);
        if let Some(strides) = &entry.strides {
            let size = entry.dtype.bitsize() / 8;
            let gathered = gather(&bytes, &entry.shape, strides, size).ok_or_else(|| {
                Error::checkpoint(
                    &file.path,
                    format!("tensor `{name}`: its strides reach past its storage"),
                )
            })?;
            bytes = std::borrow::Cow::Owned(gathered);
        }
        let values = to_f32(&bytes, entry.dtype)
            .map_err(|msg| Error::checkpoint(&file.path, format!("tensor `{name}`: {msg}")))?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(Error::checkpoint(
                &file.path,
                format!("tensor `{name}`: byte length does not match its shape {shape:?}"),
            ));
        }
        // One pass over values just converted: a NaN or infinity would spread through every
        // output silently.
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            let count = values.iter().filter(|v| !v.is_finite()).count();
            return Err(Error::checkpoint(
                &file.path,
                format!(
                    "tensor `{name}` holds {count} non-finite values (the first, {v}, at index \
                     {i}); weights must be finite numbers (a diverged training run?)"
                ),
            ));
        }
        self.taken.insert(name.to_string());
        Ok(values)
    }

    /// Reads tensor `name` with exactly `shape` onto `device`.
    pub fn take<B: Backend, const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let values = self.take_values(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Reads a PyTorch `Linear` weight stored `[out, in]` as burn's `[in, out]`.
    pub fn take_linear<B: Backend>(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> Result<Tensor<B, 2>> {
        let values = self.take_values(name, &[d_out, d_in])?;
        // Transposing here, once, keeps the forward pass a plain `x @ W`.
        let mut transposed = vec![0f32; values.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                transposed[i * d_out + o] = values[o * d_in + i];
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(transposed, [d_in, d_out]),
            device,
        ))
    }
}

/// The shard files named by an index (`model.safetensors.index.json` or
/// `pytorch_model.bin.index.json`), deduplicated and sorted.
pub fn index_shards(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let parsed: Index = crate::io::read_json(index)?;
    let names: BTreeSet<String> = parsed.weight_map.into_values().collect();
    if names.is_empty() {
        return Err(Error::checkpoint(index, "`weight_map` lists no files"));
    }
    Ok(names.into_iter().collect())
}

/// The shards of an index next to it, each of which must exist and lie inside its directory.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let dir = index.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = index_shards(index)?
        .iter()
        .map(|name| file_inside(dir, name, Some(index)))
        .collect::<Result<_>>()?;
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !f.is_file())
        .map(|f| f.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingFiles(format!(
            "{}: shards listed but missing: {}",
            index.display(),
            missing.join(", ")
        )));
    }
    Ok(files)
}

/// The elements of a strided view in row-major order; `bytes` starts at its first element and
/// each element is `size` bytes. `None` if a stride reaches past `bytes`.
fn gather(bytes: &[u8], shape: &[usize], strides: &[usize], size: usize) -> Option<Vec<u8>> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel.checked_mul(size)?);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let element: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        let at = element.checked_mul(size)?;
        out.extend_from_slice(bytes.get(at..at.checked_add(size)?)?);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(out)
}

fn to_f32(bytes: &[u8], dtype: Dtype) -> std::result::Result<Vec<f32>, String> {
    let chunks = |n: usize| {
        if !bytes.len().is_multiple_of(n) {
            Err(format!(
                "{} bytes is not a whole number of {dtype:?} values",
                bytes.len()
            ))
        } else {
            Ok(bytes.chunks_exact(n))
        }
    };
    Ok(match dtype {
        Dtype::F32 => chunks(4)?
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => chunks(2)?
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => chunks(8)?
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::BF16 => chunks(2)?
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (f32, f16, bf16, f64 are)"
            ))
        }
    })
}

/// Writes named f32 tensors to `path` atomically (temp file + rename).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let bytes: &[u8] = bytemuck_f32(values);
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::checkpoint(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    crate::io::write_atomic(path, &bytes)
}

fn bytemuck_f32(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; safetensors is little-endian
    // and so is every target we build for (x86_64, aarch64, wasm32).
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_half_types() {
        let v = [1.5f32, -2.25, 0.0];
        let f16: Vec<u8> = v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect();
        assert_eq!(to_f32(&f16, Dtype::F16).unwrap(), v);
        assert_eq!(to_f32(&bf16, Dtype::BF16).unwrap(), v);
        assert!(to_f32(&[0u8; 8], Dtype::I64).unwrap_err().contains("I64"));
    }

    #[test]
    fn truncated_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let t = vec![("a".to_string(), vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0])];
        write_safetensors(&path, &t, None).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        let err = Weights::from_file(&path).err().unwrap().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn non_finite_weights_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapter.safetensors");
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let t = vec![
                ("fine".to_string(), vec![2], vec![1.0f32, 2.0]),
                ("up.weight".to_string(), vec![3], vec![1.0f32, bad, bad]),
            ];
            write_safetensors(&path, &t, None).unwrap();
            let mut w = Weights::from_file(&path).unwrap();
            w.take_values("fine", &[2]).unwrap();
            let err = w.take_values("up.weight", &[3]).unwrap_err().to_string();
            assert!(
                err.contains("adapter.safetensors")
                    && err.contains("tensor `up.weight` holds 2 non-finite values")
                    && err.contains(&format!("the first, {bad}, at index 1")),
                "{err}"
            );
        }
    }

    #[test]
    fn linear_weights_are_transposed_and_shapes_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        // PyTorch Linear(3 -> 2): weight [out=2, in=3].
        let t = vec![(
            "l.weight".to_string(),
            vec![2, 3],
            vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0],
        )];
        write_safetensors(&path, &t, None).unwrap();
        let mut w = Weights::from_file(&path).unwrap();
        let err = w.take_values("l.weight", &[3, 2]).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains("[3, 2]"), "{err}");
        let dev = Default::default();
        let lin = w
            .take_linear::<burn::backend::Flex>("l.weight", 3, 2, &dev)
            .unwrap();
        let got: Vec<f32> = lin.into_data().to_vec().unwrap();
        assert_eq!(got, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert!(w.untaken().is_empty());
        assert!(w
            .take_values("nope", &[1])
            .unwrap_err()
            .to_string()
            .contains("missing tensor `nope`"));
    }
}
