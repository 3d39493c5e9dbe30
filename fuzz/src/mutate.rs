//! The smoke test's mutator: a few random edits of a seed, the kinds libFuzzer's mutator makes
//! (bits, bytes, ranges, splices, interesting numbers, JSON tokens), drawn from a seeded
//! SplitMix64 so that every run of the smoke test feeds the same inputs. It has no coverage
//! feedback: it keeps cheap checks of every target in `cargo test`, and the long runs are
//! libFuzzer's (`scripts/fuzz`).

use t5_core::rng::SplitMix64;

/// Tokens of the formats read (JSON, TSV, `.npy` headers) and values at the edges of the types
/// parsed (lengths, counts, floats).
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\t",
    b"\n",
    b"\\",
    b"null",
    b"true",
    b"false",
    b"0",
    b"1",
    b"-1",
    b"-0",
    b"0.5",
    b"1e-300",
    b"1e308",
    b"-1e400",
    b"NaN",
    b"Infinity",
    b"255",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"9223372036854775807",
    b"18446744073709551615",
    b"18446744073709551616",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xe2\x80\x8b",
    b"../",
    b"'descr'",
    b"'shape'",
    b"'<f4'",
    b"'<f8'",
    b"()",
    b"(0,)",
    b"\"F16\"",
    b"\"BF16\"",
    b"\"I64\"",
    b"\"__metadata__\"",
    b"\"dtype\"",
    b"\"shape\"",
    b"\"data_offsets\"",
];

/// Little-endian words at the edges of lengths and offsets (a safetensors header's u64
/// length, a `.npy` header's u16/u32 length, [`crate::input::parts`]'s u32 lengths).
const WORDS: &[u64] = &[
    0,
    1,
    7,
    8,
    0xff,
    0xffff,
    0x1_0000,
    0xffff_ffff,
    1 << 32,
    u64::MAX,
];

/// At most this many bytes come out.
const MAX_LEN: usize = 1 << 16;

/// `input` changed by one to four random edits; `other` (another seed) is spliced in by some.
pub fn mutate(rng: &mut SplitMix64, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + below(rng, 4) {
        edit(rng, &mut out, other);
    }
    out.truncate(MAX_LEN);
    out
}

fn below(rng: &mut SplitMix64, n: usize) -> usize {
    rng.below(n.max(1) as u64) as usize
}

/// A position in `0..=len`.
fn at(rng: &mut SplitMix64, data: &[u8]) -> usize {
    below(rng, data.len() + 1)
}

fn edit(rng: &mut SplitMix64, data: &mut Vec<u8>, other: &[u8]) {
    match below(rng, 10) {
        0 if !data.is_empty() => {
            let i = below(rng, data.len());
            data[i] ^= 1 << below(rng, 8);
        }
        1 if !data.is_empty() => {
            let i = below(rng, data.len());
            data[i] = rng.next_u64() as u8;
        }
        2 if !data.is_empty() => {
            let start = below(rng, data.len());
            let end = (start + 1 + below(rng, 16)).min(data.len());
            data.drain(start..end);
        }
        3 if !data.is_empty() => {
            let start = below(rng, data.len());
            let end = (start + 1 + below(rng, 32)).min(data.len());
            let copy = data[start..end].to_vec();
            let to = at(rng, data);
            data.splice(to..to, copy);
        }
        4 => {
            let token = TOKENS[below(rng, TOKENS.len())];
            let to = at(rng, data);
            data.splice(to..to, token.iter().copied());
        }
        5 => replace_number(rng, data),
        6 if data.len() >= 8 => {
            let word = WORDS[below(rng, WORDS.len())].to_le_bytes();
            let width = [1, 2, 4, 8][below(rng, 4)];
            let i = below(rng, data.len() - width + 1);
            data[i..i + width].copy_from_slice(&word[..width]);
        }
        7 if !other.is_empty() => {
            let keep = at(rng, data);
            let from = below(rng, other.len());
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
        8 => data.truncate(at(rng, data)),
        _ => {
            let to = at(rng, data);
            let bytes: Vec<u8> = (0..1 + below(rng, 8))
                .map(|_| rng.next_u64() as u8)
                .collect();
            data.splice(to..to, bytes);
        }
    }
}

/// Replaces a run of digits (a JSON number, a dimension) by a token, most often a number.
fn replace_number(rng: &mut SplitMix64, data: &mut Vec<u8>) {
    let digits: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit())
        .collect();
    if digits.is_empty() {
        return;
    }
    let start = digits[below(rng, digits.len())];
    let end = (start..data.len())
        .find(|&i| !data[i].is_ascii_digit())
        .unwrap_or(data.len());
    let token = TOKENS[below(rng, TOKENS.len())];
    data.splice(start..end, token.iter().copied());
}
