//! Task data files: JSONL, TSV and parquet, each read from a file as `read_records` reads it.

use t5_core::data::{read_jsonl, read_parquet, read_tsv, read_tsv_with_header};

use crate::input::{message, with_file};
use crate::Outcome;

/// A JSONL data file.
pub fn jsonl(data: &[u8]) -> Outcome {
    with_file(".jsonl", data, read_jsonl)
        .map(drop)
        .map_err(message)
}

/// A TSV data file read with its header line (GLUE's files), and also with the columns given
/// (CoLA's file has none), whose verdict is not the target's.
pub fn tsv(data: &[u8]) -> Outcome {
    let cola = [
        "source".to_string(),
        "label".into(),
        "mark".into(),
        "sentence".into(),
    ];
    with_file(".tsv", data, |path| {
        let _ = read_tsv_with_header(path, Some(&cola));
        read_tsv(path)
    })
    .map(drop)
    .map_err(message)
}

/// A parquet data file (the hub's format for datasets).
pub fn parquet(data: &[u8]) -> Outcome {
    with_file(".parquet", data, read_parquet)
        .map(drop)
        .map_err(message)
}
