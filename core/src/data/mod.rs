//! Reading task data: JSONL (one object per line) and TSV (GLUE's files as distributed) into
//! records of named string fields. A malformed line is reported with its file and line number.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// One example: field name -> value (numbers and booleans as their JSON text).
pub type Record = BTreeMap<String, String>;

fn data_error(path: &Path, line: usize, msg: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        msg: format!("line {line}: {}", msg.into()),
    }
}

fn read(path: &Path) -> Result<String> {
    if !path.is_file() {
        return Err(Error::MissingFiles(format!(
            "{}: data file not found",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

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
        let record = object
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        records.push(record);
    }
    Ok(records)
}

/// Reads a TSV file whose first line names the columns (GLUE's format). Quotes are not special,
/// as in GLUE's files.
pub fn read_tsv(path: &Path) -> Result<Vec<Record>> {
    let text = read(path)?;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = match lines.next() {
        Some((_, h)) => h.split('\t').map(|s| s.trim().to_string()).collect(),
        None => return Err(data_error(path, 1, "empty file (expected a header line)")),
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

/// Reads by extension: `.jsonl`/`.json` or `.tsv`.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") | Some("json") => read_jsonl(path),
        Some("tsv") => read_tsv(path),
        _ => Err(Error::Invalid(format!(
            "{}: unknown data format (use .jsonl or .tsv)",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
