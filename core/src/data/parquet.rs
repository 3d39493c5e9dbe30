//! Parquet files as the Hugging Face hub serves them (`<config>/<split>-00000-of-00001.parquet`):
//! one record per row, struct columns flattened to dotted names.

use std::fs::File;
use std::path::Path;

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
    let bad = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad(format!("not a readable parquet file: {e}")))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| bad(format!("cannot read rows: {e}")))?;
    let mut records = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
        let mut record = Record::new();
        flatten(&mut record, "", &row).map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
        records.push(record);
    }
    Ok(records)
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
