//! T5's SentencePiece tokenizer through the `tokenizers` crate (`tokenizer.json`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::error::{Error, Result};

mod check;

/// Encodes text to ids (with the trailing `</s>` T5 expects) and decodes ids to text.
#[derive(Clone)]
pub struct T5Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl T5Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self> {
        let in_file = |e: String| Error::Tokenizer(format!("{}: {e}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| in_file(e.to_string()))?;
        let inner = parse(&bytes).map_err(in_file)?;
        Ok(Self { inner })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let inner = parse(bytes).map_err(Error::Tokenizer)?;
        Ok(Self { inner })
    }

    /// Ids of `text` with special tokens (T5 appends `</s>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = unpanic(|| self.inner.encode(text, true)).map_err(Error::Tokenizer)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, skipping special tokens (pad, `</s>`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        unpanic(|| self.inner.decode(ids, true)).map_err(Error::Tokenizer)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// A `tokenizer.json`, its syntax checked first (`tokenizers` panics on a syntax error inside
/// `decoder`, a file cut short there), then the fields on which it panics later (`check`).
fn parse(bytes: &[u8]) -> std::result::Result<tokenizers::Tokenizer, String> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    check::check(&json)?;
    unpanic(|| tokenizers::Tokenizer::from_bytes(bytes))
}

/// A call into `tokenizers`, whose panics become errors. `tokenizers` 0.23 panics on some
/// malformed files instead of returning its error: loading a `Precompiled` normalizer whose
/// charsmap is not one; encoding with a `single` template that names the second sequence, or
/// through a charsmap whose trie points outside it (`spm_precompiled`; these two found by
/// fuzzing). `check` refuses those files before loading, so that they stay errors where panics
/// abort (wasm); this catches what it does not know of.
fn unpanic<T>(call: impl FnOnce() -> tokenizers::Result<T>) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the tokenizer file is malformed ({reason})"))
        }
    }
}
