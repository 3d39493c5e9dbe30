//! One error type for the library. Every variant says *what* went wrong and *where*
//! (a file, a tensor name, a config key) so that the CLI can print it as one line.

use std::path::PathBuf;

/// Errors raised by `t5-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON or does not have the expected fields.
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A config (model or run) is well-formed JSON but describes something we cannot build.
    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },
    /// A checkpoint file is corrupt, truncated or does not match the model it should fill.
    #[error("{}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
    /// A directory's file, or a file name one of its files gives (a shard of an index), leads
    /// outside the directory (`..`, an absolute path, a link pointing elsewhere): refused, so
    /// that a directory from anywhere never makes us read outside it.
    #[error("{}: {msg}", path.display())]
    Outside { path: PathBuf, msg: String },
    /// A model directory or hub repository lacks files we need.
    #[error("{0}")]
    MissingFiles(String),
    /// Downloading from the Hugging Face hub failed.
    #[error("{0}")]
    Hub(String),
    /// The tokenizer could not be loaded or could not encode/decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A caller passed arguments that do not fit together (shapes, options).
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
