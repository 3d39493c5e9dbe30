//! Model directories, Hugging Face's `save_pretrained` layout (what HF calls a checkpoint):
//! `config.json`, `model.safetensors` (or shards) and `tokenizer.json`. [`ModelDir`] opens one,
//! or resolves a hub name into the HF cache, and loads the model and tokenizer from it;
//! [`export`] writes a model back as one (the *model export* of a training run).
//!
//! Not to be confused with an adapter directory ([`crate::adapter::format`]) or a training
//! checkpoint ([`crate::train::checkpoint`]); [`crate::files`] names the files of all three.

pub mod export;

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{CONFIG_FILE, TOKENIZER_FILE};
use crate::io::file_inside;
use crate::model::T5ForConditionalGeneration;
use crate::tokenizer::T5Tokenizer;
/// The reader of a model directory's weights (it lives in [`crate::weights`]).
pub use crate::weights::Weights;
pub use export::{hf_tensors, save_pretrained};

/// A model directory found on disk: where it is and its parsed config.
#[derive(Clone, Debug)]
pub struct ModelDir {
    pub path: PathBuf,
    pub config: T5Config,
}

impl ModelDir {
    /// Opens a local directory, checking that the files a T5 checkpoint needs are there. No
    /// file of it may lead outside it ([`crate::io::file_inside`]; a hub cache snapshot may
    /// link into its repository's blobs).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::MissingFiles(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
        if !path.is_dir() {
            return Err(Error::MissingFiles(format!(
                "{}: not a directory (expected a model directory with config.json)",
                path.display()
            )));
        }
        let config_path = file_inside(path, CONFIG_FILE, None)?;
        if !config_path.is_file() {
            return Err(Error::MissingFiles(format!(
                "{}: no config.json; not a Hugging Face model directory",
                path.display()
            )));
        }
        let config = T5Config::from_file(&config_path)?;
        Ok(Self {
            path: path.to_path_buf(),
            config,
        })
    }

    /// Resolves `name_or_path`: an existing path is opened as a directory; anything else is taken
    /// as a hub repository (`t5-small`, `google/flan-t5-base`) and fetched into the HF cache.
    pub fn resolve(name_or_path: &str) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.exists() || name_or_path.starts_with('.') || name_or_path.starts_with('/') {
            return Self::open(path);
        }
        #[cfg(feature = "hub")]
        {
            let dir = crate::hub::fetch_model(name_or_path, &crate::hub::HubOptions::from_env())?;
            Self::open(dir)
        }
        #[cfg(not(feature = "hub"))]
        Err(Error::MissingFiles(format!(
            "{name_or_path}: no such directory (hub downloads are not built in)"
        )))
    }

    /// Loads the weights onto `device`.
    pub fn load_model<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<T5ForConditionalGeneration<B>> {
        let mut weights = Weights::from_dir(&self.path)?;
        T5ForConditionalGeneration::load(&self.config, &mut weights, device)
    }

    /// Loads `tokenizer.json`.
    pub fn load_tokenizer(&self) -> Result<T5Tokenizer> {
        let file = file_inside(&self.path, TOKENIZER_FILE, None)?;
        if !file.is_file() {
            return Err(Error::MissingFiles(format!(
                "{}: no tokenizer.json (convert a SentencePiece model with transformers: \
                 `T5TokenizerFast.from_pretrained(dir).save_pretrained(dir)`)",
                self.path.display()
            )));
        }
        T5Tokenizer::from_file(&file)
    }
}
