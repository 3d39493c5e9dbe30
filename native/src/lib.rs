//! The command-line tool's library: argument definitions, backend choice and the commands.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod adapters;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod logging;
pub mod memory;

use std::process::ExitCode;

/// Runs a parsed command line; errors are printed as one line on stderr.
pub fn run(cli: cli::Cli) -> ExitCode {
    // Internal errors must not surface as a backtrace: print one line instead.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{place}: {msg}");
    }));
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
