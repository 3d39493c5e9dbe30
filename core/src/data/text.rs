//! JSONL (one object per line) and TSV (GLUE's files as distributed).

use std::path::Path;

use super::{data_error, read, Record};
use crate::error::Result;

/// Reads a JSONL file; every non-empty line must be a JSON object.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let text = read(path)?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| data_error(path, i + 1, format!("not valid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| data_error(path, i + 1, "expected a JSON object"))?;
        let mut record = Record::new();
        flatten(&mut record, "", object);
        records.push(record);
    }
    Ok(records)
}

/// Reads a TSV file whose first line names the columns (GLUE's format). Quotes are not special,
/// as in GLUE's files.
pub fn read_tsv(path: &Path) -> Result<Vec<Record>> {
    read_tsv_with_header(path, None)
}

/// Reads a TSV file; `header` names the columns of a file without a header line (CoLA's).
pub fn read_tsv_with_header(path: &Path, header: Option<&[String]>) -> Result<Vec<Record>> {
    let text = read(path)?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = match header {
        Some(names) => names.to_vec(),
        None => match lines.next() {
            Some((_, h)) => h
                .trim_start_matches('\u{feff}')
                .split('\t')
                .map(|s| s.trim().to_string())
                .collect(),
            None => return Err(data_error(path, 1, "empty file (expected a header line)")),
        },
    };
    let mut records = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() != header.len() {
            return Err(data_error(
                path,
                i + 1,
                format!(
                    "{} columns, but the header has {} ({})",
                    cells.len(),
                    header.len(),
                    header.join(", ")
                ),
            ));
        }
        records.push(
            header
                .iter()
                .cloned()
                .zip(cells.into_iter().map(str::to_string))
                .collect(),
        );
    }
    Ok(records)
}

/// Nested objects become dotted fields (`{"translation": {"en": …}}` → `translation.en`), as
/// the hub's struct columns do; numbers and booleans keep their JSON text.
fn flatten(record: &mut Record, prefix: &str, object: &serde_json::Map<String, serde_json::Value>) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            serde_json::Value::Object(inner) => {
                flatten(record, &name, inner);
                continue;
            }
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        record.insert(name, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read_records;

    #[test]
    fn malformed_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.jsonl");
        std::fs::write(
            &p,
            "{\"sentence\": \"good\", \"label\": 1}\n\n{\"sentence\": oops}\n",
        )
        .unwrap();
        let err = read_jsonl(&p).unwrap_err().to_string();
        assert!(
            err.contains("train.jsonl") && err.contains("line 3"),
            "{err}"
        );
        std::fs::write(&p, "{\"sentence\": \"good\", \"label\": 1}\n").unwrap();
        let r = read_jsonl(&p).unwrap();
        assert_eq!(r[0]["label"], "1");
        let t = dir.path().join("dev.tsv");
        std::fs::write(&t, "index\tsentence\tlabel\n0\tgood\t1\n1\tbad\n").unwrap();
        let err = read_tsv(&t).unwrap_err().to_string();
        assert!(
            err.contains("dev.tsv") && err.contains("line 3") && err.contains("2 columns"),
            "{err}"
        );
        let missing = read_records(&dir.path().join("nope.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope.jsonl") && missing.contains("not found"),
            "{missing}"
        );
    }
}
