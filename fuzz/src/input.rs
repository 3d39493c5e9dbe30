//! What the targets share: cutting one input into several files, handing a path-only parser its
//! bytes through a temporary file, and the small backbone that adapters and hypernetworks are
//! checked against.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use t5_core::T5Config;

/// Cuts `data` into `n` files: the first runs to the first NUL byte (a JSON file, which cannot
/// hold one), each further one but the last is prefixed by its length (u32, little-endian,
/// clamped to what is left), and the last is the rest. Files past the end of `data` are empty.
/// [`join`] is the inverse.
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let (first, mut rest) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    };
    out.push(first);
    for _ in 2..n {
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .unwrap_or(0);
        rest = rest.get(4..).unwrap_or_default();
        let (part, tail) = rest.split_at(len.min(rest.len()));
        out.push(part);
        rest = tail;
    }
    if n > 1 {
        out.push(rest);
    }
    out
}

/// The input [`parts`] cuts into `files` (the first must hold no NUL byte).
pub fn join(files: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        match i {
            0 => {
                assert!(!file.contains(&0), "the first file must hold no NUL byte");
                out.extend_from_slice(file);
                if files.len() > 1 {
                    out.push(0);
                }
            }
            i if i + 1 < files.len() => {
                out.extend_from_slice(&(file.len() as u32).to_le_bytes());
                out.extend_from_slice(file);
            }
            _ => out.extend_from_slice(file),
        }
    }
    out
}

/// Runs `parse` on a temporary file named `*{suffix}` that holds `data`, for parsers that take
/// a path; the file is removed afterwards.
pub fn with_file<R>(suffix: &str, data: &[u8], parse: impl FnOnce(&Path) -> R) -> R {
    let mut file = tempfile::Builder::new()
        .prefix("t5-fuzz-")
        .suffix(suffix)
        .tempfile()
        .expect("a temporary file");
    file.write_all(data).expect("writing a temporary file");
    file.flush().expect("writing a temporary file");
    parse(file.path())
}

/// The backbone adapters and hypernetworks are checked against: T5 v1.0 at its smallest that
/// still has an encoder and a decoder block, so the seed files stay a few KB.
pub const TINY_MODEL: &str = r#"{
  "model_type": "t5", "vocab_size": 32, "d_model": 8, "d_kv": 4, "d_ff": 16,
  "num_heads": 2, "num_layers": 1, "num_decoder_layers": 1, "feed_forward_proj": "relu"
}"#;

/// [`TINY_MODEL`], parsed once.
pub fn tiny_model() -> &'static T5Config {
    static MODEL: OnceLock<T5Config> = OnceLock::new();
    MODEL.get_or_init(|| serde_json::from_str(TINY_MODEL).expect("TINY_MODEL is a T5 config"))
}

/// For libFuzzer, whose panic hook aborts at any panic, even one that is caught: lets a panic
/// raised in a source file whose path contains one of `markers` unwind, silently, to the parser
/// that catches it (`read_parquet` catches the parquet crate's, `T5Tokenizer` the tokenizers
/// crate's and its dependencies'); any other panic still aborts at once, and one that is not
/// caught aborts when it leaves the target.
pub fn unwind_panics_of(markers: &'static [&'static str]) {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map_or("", |l| l.file());
        if !markers.iter().any(|m| file.contains(m)) {
            abort(info);
        }
    }));
}

/// The message of any error, so that its `Display` runs too.
pub fn message(error: impl std::fmt::Display) -> String {
    error.to_string()
}
