//! Text the tokenizer encodes (inputs to `native generate`, data fields), ids it decodes, and
//! the `tokenizer.json` it is loaded from.

use std::sync::OnceLock;

use t5_core::T5Tokenizer;

use crate::input::message;
use crate::Outcome;

/// The fixture tokenizer: a T5 SentencePiece (Unigram) model with its precompiled normalizer
/// and the 100 `<extra_id_*>` tokens, as in T5's own.
fn fixture() -> &'static T5Tokenizer {
    static TOKENIZER: OnceLock<T5Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        T5Tokenizer::from_bytes(include_bytes!(
            "../../../tests/fixtures/tokenizer/tokenizer.json"
        ))
        .expect("the fixture tokenizer loads")
    })
}

/// The input as text (invalid UTF-8 replaced, as a lossy reader would) encoded and decoded back;
/// then the input as ids (u16 each, past the vocabulary too: a model's vocabulary can be larger
/// than its tokenizer's) decoded.
pub fn tokenizer(data: &[u8]) -> Outcome {
    let tokenizer = fixture();
    let text = String::from_utf8_lossy(data);
    let ids = tokenizer.encode(&text).map_err(message)?;
    tokenizer.decode(&ids).map_err(message)?;
    let ids: Vec<u32> = data
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    tokenizer.decode(&ids).map(drop).map_err(message)
}

/// A `tokenizer.json` (a downloaded model directory's, or the file the browser page is handed);
/// once it loads, a sentence encoded with it and decoded back.
pub fn tokenizer_json(data: &[u8]) -> Outcome {
    let tokenizer = T5Tokenizer::from_bytes(data).map_err(message)?;
    let ids = tokenizer
        .encode("sst2 sentence: Caf\u{e9} <extra_id_0> na\u{ef}ve \u{1f600}!")
        .map_err(message)?;
    tokenizer.decode(&ids).map_err(message)?;
    tokenizer.vocab_size();
    Ok(())
}
