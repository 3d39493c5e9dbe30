//! Reading task data as users have it: the hub's parquet files (typed and laid out as the hub
//! serves them) and GLUE's TSVs as distributed, through the built-in tasks' column mappings.
//! Fixtures: `tests/fixtures/data/make_data_fixtures.py`.
#![cfg(feature = "parquet")]

mod common;

use std::path::PathBuf;

use t5_core::data::read_parquet;
use t5_core::tasks::{registry, source, Role};

fn data() -> PathBuf {
    common::fixtures().join("data")
}

#[test]
fn parquet_rows_become_records_with_exact_values() {
    let rows = read_parquet(&data().join("hub/glue/rte/train-00000-of-00001.parquet")).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1]["sentence1"], "It rained all day.");
    assert_eq!(rows[1]["label"], "1");
    assert_eq!(rows[4]["idx"], "4");
    // float32 scores keep their shortest text, so STS-B's targets round as written.
    let stsb =
        read_parquet(&data().join("hub/glue/stsb/validation-00000-of-00001.parquet")).unwrap();
    let labels: Vec<&str> = stsb.iter().map(|r| r["label"].as_str()).collect();
    assert_eq!(labels, ["4.8", "0.6", "3.75"]);
    let task = registry::get("stsb").unwrap();
    let targets: Vec<String> = stsb
        .iter()
        .map(|r| task.format_target(r).unwrap())
        .collect();
    assert_eq!(targets, ["4.8", "0.6", "3.8"]);
    // A struct column is flattened to dotted names, which the translation task reads.
    let path = data().join("hub/wmt16/ro-en/validation-00000-of-00001.parquet");
    let wmt = source::read_file(&registry::get("wmt16-en-ro").unwrap(), &path).unwrap();
    assert_eq!(wmt[0]["en"], "Thank you.");
    assert_eq!(wmt[1]["ro"], "Bună dimineața.");
}

#[test]
fn a_data_dir_of_hub_parquet_files_feeds_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let rte = dir.path().join("rte");
    std::fs::create_dir_all(&rte).unwrap();
    std::fs::copy(
        data().join("hub/glue/rte/validation-00000-of-00001.parquet"),
        rte.join("validation.parquet"),
    )
    .unwrap();
    let task = registry::get("rte").unwrap();
    let records = source::load_local(&task, Role::Validation, dir.path())
        .unwrap()
        .unwrap();
    let ex = task.format(&records[1], true).unwrap();
    assert_eq!(
        ex.input,
        "rte sentence1: The door is red. sentence2: The door is blue."
    );
    assert_eq!(ex.target, "1");
    // GLUE's test split is the validation split: the same file serves it.
    assert_eq!(
        source::load_local(&task, Role::Test, dir.path())
            .unwrap()
            .unwrap(),
        records
    );
    assert!(source::load_local(&task, Role::Train, dir.path())
        .unwrap()
        .is_none());
    let err = source::not_found(&task, Role::Train, dir.path()).to_string();
    assert!(
        err.contains("rte/train.jsonl") && err.contains("RTE/train.tsv"),
        "{err}"
    );
}

#[test]
fn glue_tsvs_as_distributed() {
    let dir = data().join("glue_data");
    // CoLA: no header line.
    let cola = registry::get("cola").unwrap();
    let rows = source::load_local(&cola, Role::Train, &dir)
        .unwrap()
        .unwrap();
    let examples: Vec<_> = rows.iter().map(|r| cola.format(r, true).unwrap()).collect();
    assert_eq!(examples.len(), 12);
    assert_eq!(
        examples[0].input,
        "cola sentence: Our friends won't buy this analysis, let alone the next one we propose."
    );
    assert_eq!(
        (examples[0].target.as_str(), examples[1].target.as_str()),
        ("1", "0")
    );
    // MRPC: a byte-order mark and its own column names.
    let mrpc = registry::get("mrpc").unwrap();
    let rows = source::load_local(&mrpc, Role::Train, &dir)
        .unwrap()
        .unwrap();
    let ex = mrpc.format(&rows[0], true).unwrap();
    assert_eq!(
        ex.input,
        "mrpc sentence1: Amrozi accused his brother. sentence2: Referring to him, Amrozi accused his brother."
    );
    assert_eq!(ex.target, "1");
    // MNLI: validation is the mismatched dev set; label words become the hub's indices.
    let mnli = registry::get("mnli").unwrap();
    let rows = source::load_local(&mnli, Role::Validation, &dir)
        .unwrap()
        .unwrap();
    let targets: Vec<String> = rows
        .iter()
        .map(|r| mnli.format_target(r).unwrap())
        .collect();
    assert_eq!(targets.len(), 12);
    assert_eq!(targets[..3], ["1", "0", "2"]);
    assert_eq!(
        mnli.format_input(&rows[2], true).unwrap(),
        "mnli premise: I stayed home. hypothesis: I went out."
    );
    // The matched set is MNLI's test role.
    let rows = source::load_local(&mnli, Role::Test, &dir)
        .unwrap()
        .unwrap();
    assert_eq!(
        mnli.format_input(&rows[0], true).unwrap(),
        "mnli premise: The cat visits the museum at home. hypothesis: The cat visits something."
    );
}

#[test]
fn a_corrupt_parquet_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.parquet");
    let bytes = std::fs::read(data().join("hub/glue/rte/train-00000-of-00001.parquet")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_parquet(&path).unwrap_err().to_string();
    assert!(
        err.contains("train.parquet") && err.contains("parquet"),
        "{err}"
    );
    // A file without the task's columns says which it has.
    let task = registry::get("sst2").unwrap();
    let err = source::read_file(
        &task,
        &data().join("hub/glue/rte/train-00000-of-00001.parquet"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no column `sentence`") && err.contains("sentence1"),
        "{err}"
    );
}
