//! Fuzz targets for every parser that reads bytes a user gives or a download brings: run configs,
//! data files (JSONL, TSV, parquet), safetensors and PyTorch `.bin` files and shard indexes, a model's
//! `config.json`, adapter and hypernetwork directories (their `.npy` task embeddings too), the
//! text the tokenizer encodes and the `tokenizer.json` it reads.
//!
//! Each target is a plain function of the input bytes ([`TARGETS`]), so that two harnesses share
//! them: libFuzzer on nightly (`fuzz/libfuzzer`, one binary per target, for the long runs of
//! `scripts/fuzz`) and, on stable, the smoke test `fuzz/tests/smoke.rs` that `cargo test` runs
//! (each target's seeds and regressions, then seeded random mutations of them: seconds). A target
//! returns the parser's verdict as `Err(message)`; refusing an input is fine, a panic, an abort
//! or a hang is the bug.
//!
//! Inputs with several files (an adapter directory is a config and a safetensors file) are cut
//! apart by [`input::parts`].

pub mod input;
pub mod mutate;
pub mod seeds;
mod targets;

pub use targets::*;

/// What a target says of one input: accepted, or refused with the parser's message.
pub type Outcome = Result<(), String>;

/// A fuzz target: its name (a libFuzzer binary and a folder of `fuzz/corpus/`) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> Outcome,
}

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "run_config",
        run: run_config,
    },
    Target {
        name: "model_config",
        run: model_config,
    },
    Target {
        name: "jsonl",
        run: jsonl,
    },
    Target {
        name: "tsv",
        run: tsv,
    },
    Target {
        name: "parquet",
        run: parquet,
    },
    Target {
        name: "safetensors",
        run: safetensors,
    },
    Target {
        name: "torch_bin",
        run: torch_bin,
    },
    Target {
        name: "shard_index",
        run: shard_index,
    },
    Target {
        name: "adapter",
        run: adapter,
    },
    Target {
        name: "hypernetwork",
        run: hypernetwork,
    },
    Target {
        name: "npy",
        run: npy,
    },
    Target {
        name: "tokenizer",
        run: tokenizer,
    },
    Target {
        name: "tokenizer_json",
        run: tokenizer_json,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
