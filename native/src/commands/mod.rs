//! One module per subcommand.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod import;
pub mod merge;
pub mod merge_adapters;
pub mod parallel;
pub mod train;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run_eval(args),
        Command::Predict(args) => eval::run_predict(args),
        Command::Generate(args) => generate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Import(args) => import::run(args),
        Command::Merge(args) => merge::run(args),
        Command::MergeAdapters(args) => merge_adapters::run(args),
    }
}
