//! Parquet files as the Hugging Face hub serves them (`<config>/<split>-00000-of-00001.parquet`):
//! one record per row, struct columns flattened to dotted names.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use bytes::Bytes;
use parquet::column::page::Page;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use super::Record;
use crate::error::{Error, Result};

/// Reads every row of a parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<Record>> {
    if !path.is_file() {
        return Err(Error::MissingFiles(format!(
            "{}: data file not found",
            path.display()
        )));
    }
    // From memory: a malformed file can send the reader over page headers again and again,
    // a read call each from a `File` (minutes), quick from memory (found by fuzzing).
    let bytes = Bytes::from(std::fs::read(path).map_err(|e| Error::io(path, e))?);
    // The parquet crate panics on some malformed files (a negative column offset, a short
    // bit-packed run; found by fuzzing): that is this file's error, not the program's end.
    let rows = catch_unwind(AssertUnwindSafe(|| read_rows(bytes))).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("not a readable parquet file ({reason})"))
    });
    rows.map_err(|msg| Error::Config {
        path: path.to_path_buf(),
        msg,
    })
}

fn read_rows(bytes: Bytes) -> std::result::Result<Vec<Record>, String> {
    let reader = SerializedFileReader::new(bytes)
        .map_err(|e| format!("not a readable parquet file: {e}"))?;
    check_dictionaries(&reader)?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| format!("cannot read rows: {e}"))?;
    let mut records = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 1))?;
        let mut record = Record::new();
        flatten(&mut record, "", &row).map_err(|e| format!("row {}: {e}", i + 1))?;
        records.push(record);
    }
    Ok(records)
}

/// The parquet crate sizes a dictionary by the value count its page header claims, before
/// decoding it: a file of 1.6 KB can claim 2^31 values and make it allocate 16 GB (found by
/// fuzzing). A value takes at least a bit of its page, so a dictionary page that claims more
/// values than it has bits is refused before any row is read.
fn check_dictionaries(reader: &SerializedFileReader<Bytes>) -> std::result::Result<(), String> {
    let bad = |e: parquet::errors::ParquetError| format!("not a readable parquet file: {e}");
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(bad)?;
        for c in 0..group.num_columns() {
            for page in group.get_column_page_reader(c).map_err(bad)? {
                if let Page::DictionaryPage {
                    buf, num_values, ..
                } = page.map_err(bad)?
                {
                    if num_values as usize > 8 * buf.len() {
                        return Err(format!(
                            "not a readable parquet file: row group {g}, column {c}: a \
                             dictionary page claims {num_values} values in {} bytes",
                            buf.len()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn flatten(record: &mut Record, prefix: &str, row: &Row) -> std::result::Result<(), String> {
    for (name, field) in row.get_column_iter() {
        let name = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let text = match field {
            Field::Group(inner) => {
                flatten(record, &name, inner)?;
                continue;
            }
            Field::Null => String::new(),
            Field::Bool(v) => v.to_string(),
            Field::Byte(v) => v.to_string(),
            Field::Short(v) => v.to_string(),
            Field::Int(v) => v.to_string(),
            Field::Long(v) => v.to_string(),
            Field::UByte(v) => v.to_string(),
            Field::UShort(v) => v.to_string(),
            Field::UInt(v) => v.to_string(),
            Field::ULong(v) => v.to_string(),
            Field::Float16(v) => v.to_string(),
            // f32's shortest text: STS-B's float32 3.8 stays "3.8", not 3.799999952316284.
            Field::Float(v) => v.to_string(),
            Field::Double(v) => v.to_string(),
            Field::Str(v) => v.clone(),
            Field::Bytes(v) => match v.as_utf8() {
                Ok(s) => s.to_string(),
                Err(_) => return Err(format!("column `{name}` holds bytes that are not UTF-8")),
            },
            other => return Err(format!("column `{name}`: unsupported value {other}")),
        };
        record.insert(name, text);
    }
    Ok(())
}
