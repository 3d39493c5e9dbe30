//! Where a built-in task's split is read from: local copies in a data directory (JSONL,
//! parquet, or GLUE's TSVs as distributed) or the dataset's parquet files on the hub.

use std::path::{Path, PathBuf};

use super::task::{Role, Task};
use crate::data::{self, read_tsv_with_header, select_columns, Record};
use crate::error::{Error, Result};

/// The file names a split may have in a data directory, most specific first:
/// `<dir>/<task>/<role>.<ext>`, then the source split's name (`validation_matched.parquet`),
/// then GLUE's own (`<dir>/MNLI/dev_matched.tsv`).
pub fn local_candidates(task: &Task, role: Role, data_dir: &Path) -> Vec<PathBuf> {
    let split = task.source_split(role);
    let mut stems = vec![role.name().to_string(), split.to_string()];
    let mut dirs = vec![data_dir.join(task.name())];
    if let Some(layout) = task.tsv_layout() {
        dirs.push(data_dir.join(&layout.dir));
        stems.push(split.replacen("validation", "dev", 1));
    }
    stems.dedup();
    let mut out = Vec::new();
    for dir in &dirs {
        for stem in &stems {
            for ext in ["jsonl", "parquet", "tsv"] {
                let path = dir.join(format!("{stem}.{ext}"));
                if !out.contains(&path) {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Reads the split from `data_dir`; `Ok(None)` when no candidate file exists.
pub fn load_local(task: &Task, role: Role, data_dir: &Path) -> Result<Option<Vec<Record>>> {
    let Some(path) = local_candidates(task, role, data_dir)
        .into_iter()
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    read_file(task, &path).map(Some)
}

/// The error for a split that is in none of the places [`local_candidates`] names.
pub fn not_found(task: &Task, role: Role, data_dir: &Path) -> Error {
    let tried: Vec<String> = local_candidates(task, role, data_dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Error::MissingFiles(format!(
        "task `{}`: no {} data in {} (looked for {}); remove `data_dir` to download it from the hub",
        task.name(),
        role.name(),
        data_dir.display(),
        tried.join(", ")
    ))
}

/// Reads one file of the task and names its columns as the task's record fields.
pub fn read_file(task: &Task, path: &Path) -> Result<Vec<Record>> {
    let is_tsv = path.extension().is_some_and(|e| e == "tsv");
    match (task.tsv_layout(), is_tsv) {
        (Some(layout), true) => {
            let wanted: Vec<&str> = layout.columns.iter().map(|(_, c)| c.as_str()).collect();
            // CoLA's train/dev files have no header line; its test file has one.
            let header_line: Vec<String> = first_line(path)?
                .trim_start_matches('\u{feff}')
                .split('\t')
                .map(|c| c.trim().to_string())
                .collect();
            let has_header = wanted.iter().all(|c| header_line.iter().any(|h| h == c))
                || fields_present(task, &header_line);
            let header = if has_header {
                None
            } else {
                layout.header.as_deref()
            };
            let records = read_tsv_with_header(path, header)?;
            rename(task, records, &layout.columns, path)
        }
        _ => {
            let records = data::read_records(path)?;
            match task.hub() {
                Some(hub) => rename(task, records, &hub.columns, path),
                None => Ok(records),
            }
        }
    }
}

/// The first line of a text file, without reading the rest (GLUE's TSVs reach tens of MB).
fn first_line(path: &Path) -> Result<String> {
    use std::io::BufRead;
    if !path.is_file() {
        return Err(Error::MissingFiles(format!(
            "{}: data file not found",
            path.display()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut line = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut line)
        .map_err(|e| Error::io(path, e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Every field the task reads.
fn fields(task: &Task) -> impl Iterator<Item = &str> {
    task.template().fields().chain([task.target_field()])
}

fn fields_present(task: &Task, names: &[String]) -> bool {
    fields(task).all(|f| names.iter().any(|n| n == f))
}

/// Applies `columns` unless the records already use the task's field names.
fn rename(
    task: &Task,
    records: Vec<Record>,
    columns: &[(String, String)],
    path: &Path,
) -> Result<Vec<Record>> {
    let named = records
        .first()
        .is_some_and(|r| fields(task).all(|f| r.contains_key(f)));
    if named {
        Ok(records)
    } else {
        select_columns(records, columns, path)
    }
}

/// Downloads (or reads from the hub cache) the split's parquet files.
#[cfg(all(feature = "hub", feature = "parquet"))]
pub fn load_from_hub(
    task: &Task,
    role: Role,
    options: &crate::hub::HubOptions,
) -> Result<Vec<Record>> {
    let source = task.hub().ok_or_else(|| {
        Error::Invalid(format!(
            "task `{}` names no hub dataset; give its files in the config",
            task.name()
        ))
    })?;
    let files = crate::hub::fetch_dataset_split(
        &source.repo,
        source.config.as_deref(),
        task.source_split(role),
        options,
    )?;
    let mut records = Vec::new();
    for file in files {
        records.extend(read_file(task, &file)?);
    }
    Ok(records)
}
