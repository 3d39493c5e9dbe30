//! Checks of a `tokenizer.json` for the malformations on which `tokenizers` 0.23 panics instead of
//! returning an error. Native code also catches those panics, but where panics abort (wasm, the
//! browser demo's worker) only a check before loading keeps a bad file an error value.

use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

/// The longest key the `Precompiled` normalizer looks up: a grapheme of under 6 bytes.
const MAX_KEY_BYTES: u8 = 5;

/// Refuses a file that would make `tokenizers` panic: a `Precompiled` charsmap that cannot be
/// parsed (`.expect("Precompiled")` at load) or whose trie points outside itself (index out of
/// bounds in `spm_precompiled` when encoding), and a `single` template that names the second
/// sequence (index out of bounds in `TemplateProcessing` when encoding).
pub(super) fn check(json: &Value) -> Result<(), String> {
    let mut normalizers = Vec::new();
    collect(
        &json["normalizer"],
        "precompiled_charsmap",
        &mut normalizers,
    );
    for normalizer in normalizers {
        let text = normalizer["precompiled_charsmap"]
            .as_str()
            .ok_or("`precompiled_charsmap` is not a string")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("`precompiled_charsmap` is not base64: {e}"))?;
        check_charsmap(&bytes).map_err(|e| format!("`precompiled_charsmap`: {e}"))?;
    }
    let mut templates = Vec::new();
    collect(&json["post_processor"], "single", &mut templates);
    for template in templates {
        check_single_template(template)?;
    }
    Ok(())
}

/// The objects under `value` that have `key` (normalizers and post-processors nest in
/// `Sequence`s).
fn collect<'a>(value: &'a Value, key: &str, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) if map.contains_key(key) => found.push(value),
        Value::Object(map) => map.values().for_each(|v| collect(v, key, found)),
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, found)),
        _ => {}
    }
}

/// `tokenizers` checks a template built in code, not one read from a file (unless its `type` is
/// right): a `single` template must name only sequence A, and only special tokens it defines.
fn check_single_template(processor: &Value) -> Result<(), String> {
    let Value::Array(pieces) = &processor["single"] else {
        return Ok(()); // the string form is parsed (and checked) by `tokenizers` itself
    };
    for piece in pieces {
        let sequence = &piece["Sequence"]["id"];
        if !sequence.is_null() && sequence != "A" {
            return Err(format!(
                "the post-processor's `single` template names sequence {sequence}; a single input has only A"
            ));
        }
        let special = &piece["SpecialToken"]["id"];
        let Some(special) = special.as_str() else {
            continue;
        };
        let token = &processor["special_tokens"][special];
        let (ids, tokens) = (&token["ids"], &token["tokens"]);
        if token.is_null() {
            return Err(format!(
                "the post-processor's `single` template names special token {special:?}, which its `special_tokens` lacks"
            ));
        }
        if ids.as_array().map(Vec::len) != tokens.as_array().map(Vec::len) {
            return Err(format!(
                "the post-processor's special token {special:?} has not as many `ids` as `tokens`"
            ));
        }
    }
    Ok(())
}

/// The charsmap as `spm_precompiled` 0.1.4 reads it: a u32 trie size in bytes, the trie's u32
/// units, then the replacement strings (UTF-8, each ended by NUL).
fn check_charsmap(bytes: &[u8]) -> Result<(), String> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let trie_bytes = word(0).ok_or("shorter than its 4-byte header")? as usize / 4 * 4;
    let end = 4usize.saturating_add(trie_bytes);
    if end > bytes.len() {
        return Err(format!(
            "its trie claims {trie_bytes} bytes, {} are there",
            bytes.len() - 4
        ));
    }
    let units: Vec<usize> = (4..end)
        .step_by(4)
        .filter_map(|at| word(at).map(|u| u as usize))
        .collect();
    let normalized = std::str::from_utf8(&bytes[end..])
        .map_err(|e| format!("its replacement strings are not UTF-8 ({e})"))?;
    check_trie(&units, normalized)
}

/// Walks every path `DoubleArray::common_prefix_search` can take for a key of up to
/// `MAX_KEY_BYTES` bytes and checks that each unit it reads lies in the trie and each value it
/// returns starts a string in `normalized`. Each node is walked once per depth it is reached at
/// with more room, so the work is bounded by 256 × nodes × `MAX_KEY_BYTES`.
fn check_trie(units: &[usize], normalized: &str) -> Result<(), String> {
    let outside = |pos: usize| {
        format!(
            "its trie points outside itself (unit {pos} of {})",
            units.len()
        )
    };
    let root = *units.first().ok_or("its trie is empty")?;
    let mut walked: HashMap<usize, u8> = HashMap::new();
    let mut stack = vec![(offset(root), MAX_KEY_BYTES)];
    while let Some((pos, left)) = stack.pop() {
        if left == 0 || walked.get(&pos).is_some_and(|&done| done >= left) {
            continue;
        }
        walked.insert(pos, left);
        // The next byte c reads unit pos ^ c: all of them lie in pos's block of 256.
        if (pos | 0xFF) >= units.len() {
            return Err(outside(pos | 0xFF));
        }
        for c in 1..=0xFFusize {
            let child = pos ^ c;
            let unit = units[child];
            if unit & ((1 << 31) | 0xFF) != c {
                continue;
            }
            let next = child ^ offset(unit);
            if (unit >> 8) & 1 == 1 {
                let value = *units.get(next).ok_or_else(|| outside(next))?;
                let start = value & ((1 << 31) - 1);
                if !normalized.is_char_boundary(start) {
                    return Err(format!(
                        "its trie points at byte {start} of its {}-byte strings, not at a string",
                        normalized.len()
                    ));
                }
            }
            stack.push((next, left - 1));
        }
    }
    Ok(())
}

fn offset(unit: usize) -> usize {
    (unit >> 10) << ((unit & (1 << 9)) >> 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tokenizer/tokenizer.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn charsmap(json: &Value) -> Vec<u8> {
        let mut found = Vec::new();
        collect(&json["normalizer"], "precompiled_charsmap", &mut found);
        let text = found[0]["precompiled_charsmap"].as_str().unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    #[test]
    fn the_fixture_tokenizer_passes() {
        check(&fixture()).unwrap();
    }

    #[test]
    fn a_charsmap_cut_short_or_pointing_outside_is_refused() {
        let bytes = charsmap(&fixture());
        let trie = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let cut = check_charsmap(&bytes[..4 + trie / 2]).unwrap_err();
        assert!(cut.contains("its trie claims"), "{cut}");
        assert!(check_charsmap(&bytes[..2]).unwrap_err().contains("header"));
        // The root's offset sent past the end of the trie.
        let mut far = bytes.clone();
        far[4..8].copy_from_slice(&(!0x3FFu32).to_le_bytes());
        assert!(check_charsmap(&far).unwrap_err().contains("outside"));
        // A string that is not UTF-8.
        let mut bad = bytes.clone();
        let last = bad.len() - 2;
        bad[last] = 0xFF;
        assert!(check_charsmap(&bad).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn a_single_template_naming_the_second_sequence_is_refused() {
        let mut json = fixture();
        json["post_processor"]["single"][0]["Sequence"]["id"] = "B".into();
        let e = check(&json).unwrap_err();
        assert!(e.contains("sequence \"B\""), "{e}");
        let mut json = fixture();
        json["post_processor"]["single"][1]["SpecialToken"]["id"] = "<s>".into();
        let e = check(&json).unwrap_err();
        assert!(
            e.contains("special token \"<s>\", which its `special_tokens` lacks"),
            "{e}"
        );
        let mut json = fixture();
        json["post_processor"]["special_tokens"]["</s>"]["ids"] = serde_json::json!([1, 2]);
        assert!(check(&json).unwrap_err().contains("not as many"));
    }
}

#[cfg(test)]
mod regressions {
    /// The inputs on which the fuzzers found `tokenizers` panicking (`fuzz/regressions/`) are
    /// refused here, before `tokenizers` sees them (the wasm build cannot catch its panics).
    #[test]
    fn the_fuzzers_crashing_tokenizers_are_refused_before_loading() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/tokenizer_json"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let refused = match serde_json::from_slice(&bytes) {
                Ok(json) => super::check(&json).map_err(|e| eprintln!("{e}")).is_err(),
                Err(_) => true,
            };
            assert!(refused);
            seen += 1;
        }
        assert_eq!(seen, 3);
    }
}
