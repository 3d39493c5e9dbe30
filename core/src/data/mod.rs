//! Reading task data into records of named string fields: JSONL, TSV (GLUE's files as
//! distributed) and parquet (what the Hugging Face hub serves for datasets). A malformed line is
//! reported with its file and line number.

#[cfg(feature = "parquet")]
mod parquet;
mod text;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

#[cfg(feature = "parquet")]
pub use parquet::read_parquet;
pub use text::{read_jsonl, read_tsv, read_tsv_with_header};

/// One example as named text fields, e.g. `{"sentence1": "...", "sentence2": "...", "label": "1"}`.
/// Loaders write every value as text: integers as decimals (`1`), booleans as `true`/`false`,
/// floats as written in the source (`3.8`); struct columns and nested objects become dotted
/// names (`translation.en`).
pub type Record = BTreeMap<String, String>;

pub(crate) fn data_error(path: &Path, line: usize, msg: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        msg: format!("line {line}: {}", msg.into()),
    }
}

pub(crate) fn read(path: &Path) -> Result<String> {
    if !path.is_file() {
        return Err(Error::MissingFiles(format!(
            "{}: data file not found",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Reads by extension: `.jsonl`/`.json`, `.tsv` or `.parquet`.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") | Some("json") => read_jsonl(path),
        Some("tsv") => read_tsv(path),
        #[cfg(feature = "parquet")]
        Some("parquet") => read_parquet(path),
        _ => Err(Error::Invalid(format!(
            "{}: unknown data format (use .jsonl, .tsv{})",
            path.display(),
            if cfg!(feature = "parquet") {
                " or .parquet"
            } else {
                "; this build reads no parquet"
            }
        ))),
    }
}

/// Renames columns to record fields: `columns` is `(field, column)`; other columns are dropped.
/// A missing column is an error naming the file and the columns it has.
pub fn select_columns(
    records: Vec<Record>,
    columns: &[(String, String)],
    path: &Path,
) -> Result<Vec<Record>> {
    records
        .into_iter()
        .enumerate()
        .map(|(i, mut record)| {
            columns
                .iter()
                .map(|(field, column)| match record.remove(column) {
                    Some(value) => Ok((field.clone(), value)),
                    None => Err(Error::Config {
                        path: path.to_path_buf(),
                        msg: format!(
                            "record {}: no column `{column}` (it has: {})",
                            i + 1,
                            record.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    }),
                })
                .collect()
        })
        .collect()
}
