//! The command-line tool's library: argument definitions, backend choice and the commands.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod adapters;
pub mod backend;
pub mod cli;
pub mod commands;
pub mod logging;
pub mod memory;
pub mod model;

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
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// `err` and its causes on one line, `: `-separated, each said once: core's errors print their
/// source after the file they name (`config.json: ... at line 3 column 5`), so a cause that the
/// text before it already ends with is left out.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once() {
        let source = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let err = anyhow::Error::new(t5_core::Error::Json {
            path: "m/config.json".into(),
            source,
        })
        .context("loading model `m`");
        assert_eq!(
            one_line(&err),
            "loading model `m`: m/config.json: invalid type: string \"x\", expected u32 at line 1 \
             column 3"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = anyhow::Error::new(io).context("reading x");
        assert_eq!(one_line(&err), "reading x: gone");
    }
}
