//! The bounds that keep a generation (or a training step) from asking for more memory than the
//! machine has: source lengths cut as HF's tokenizer cuts them, generation options in range, and
//! a lower bound of the memory a batch needs checked before anything is allocated. An
//! allocation that fails aborts the process with no message; these turn it into an error.

use crate::config::T5Config;
use crate::error::{Error, Result};

/// T5's `model_max_length` in transformers (`T5TokenizerFast`): the source length T5 was
/// trained with, and the default `--max-source-length` of `native generate` and of the browser.
pub const DEFAULT_MAX_SOURCE_LENGTH: usize = 512;

/// The largest source length or number of new tokens accepted anywhere; within it, the memory
/// check decides.
pub const MAX_TOKENS: usize = 1 << 16;

/// The widest beam search accepted.
pub const MAX_NUM_BEAMS: usize = 128;

/// Cuts `ids` to `max_len` tokens keeping the final `</s>` (`eos`), as HF's `truncation=True`
/// does; returns the length before cutting when it cut.
pub fn truncate_source(ids: &mut Vec<u32>, max_len: usize, eos: u32) -> Option<usize> {
    if ids.len() <= max_len || max_len == 0 {
        return None;
    }
    let before = ids.len();
    ids.truncate(max_len - 1);
    ids.push(eos);
    Some(before)
}

/// Bytes of memory the system can still give this process (Linux: `MemAvailable`, or the
/// process's control group limit when that is lower, as in a container), or `None` where that
/// is not known (other systems, the browser).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let system = kib.saturating_mul(1024);
    Some(cgroup_limit().map_or(system, |limit| limit.min(system)))
}

/// The control group's memory limit (cgroup v2, else v1), when it sets one. Its usage is not
/// subtracted: it counts page cache the kernel would reclaim, and the check must not refuse a
/// batch that fits.
fn cgroup_limit() -> Option<u64> {
    let read =
        |file: &str| -> Option<u64> { std::fs::read_to_string(file).ok()?.trim().parse().ok() };
    let limit = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
    // v1 writes "no limit" as a huge number (v2 as `max`, which does not parse).
    (limit < 1 << 60).then_some(limit)
}

/// [`available_memory`] when the backend `B` keeps its tensors in this memory (the CPU
/// backend), else `None`: a GPU's memory is its own and an allocation there that fails is an
/// error, not an abort.
pub fn memory_for<B: burn::tensor::backend::Backend>(device: &B::Device) -> Option<u64> {
    B::name(device)
        .contains("flex")
        .then(available_memory)
        .flatten()
}

/// A lower bound of the bytes a batch of `rows` sequences (batch × beams) of `src_len` source
/// tokens and `new_tokens` target tokens needs: the encoder's position buckets (`src_len²`
/// indices) and position bias (`heads × src_len²`), one layer's attention scores
/// (`heads × src_len²` per row), and the decoder's self- and cross-attention keys and values of
/// every layer. The real peak is higher.
pub fn memory_lower_bound(
    config: &T5Config,
    rows: usize,
    src_len: usize,
    new_tokens: usize,
) -> u128 {
    let (f32_bytes, index_bytes) = (4u128, std::mem::size_of::<usize>() as u128);
    let (rows, src, tgt) = (rows as u128, src_len as u128, new_tokens as u128);
    let heads = config.num_heads as u128;
    let inner = heads * config.d_kv as u128;
    let layers = config.num_decoder_layers() as u128;
    let buckets = src * src * index_bytes + heads * src * src * f32_bytes;
    let scores = heads * src * src;
    let caches = layers * 2 * inner * (src + tgt);
    buckets + rows * (scores + caches) * f32_bytes
}

/// Refuses a batch whose [`memory_lower_bound`] exceeds `available` bytes (`None`: unknown,
/// nothing is refused). `what` names the batch in the message (its length and size options).
pub fn check_memory(
    config: &T5Config,
    rows: usize,
    src_len: usize,
    new_tokens: usize,
    available: Option<u64>,
    what: &str,
) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let need = memory_lower_bound(config, rows, src_len, new_tokens);
    if need <= available as u128 {
        return Ok(());
    }
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    Err(Error::Invalid(format!(
        "{what}: needs at least {:.1} GiB of memory ({rows} sequences of {src_len} source and \
         {new_tokens} target tokens), more than the {:.1} GiB available; use shorter sources, \
         fewer new tokens or smaller batches",
        gib(need),
        gib(available as u128)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_eos_as_hf() {
        let mut ids = vec![5, 6, 7, 8, 1];
        assert_eq!(truncate_source(&mut ids, 3, 1), Some(5));
        assert_eq!(ids, [5, 6, 1]);
        let mut short = vec![5, 1];
        assert_eq!(truncate_source(&mut short, 3, 1), None);
        assert_eq!(short, [5, 1]);
    }

    #[test]
    fn a_batch_larger_than_memory_is_refused_before_allocating() {
        let c = T5Config::t5_small();
        // The 100,000-character input of issue 14: 40,001 tokens, whose position buckets alone
        // were the 12,800,640,008 bytes that could not be allocated.
        let need = memory_lower_bound(&c, 1, 40_001, 64);
        assert!(need >= 3 * 12_800_640_008, "{need}");
        let err = check_memory(&c, 1, 40_001, 64, Some(8 << 30), "inputs")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("inputs: needs at least") && err.contains("8.0 GiB available"),
            "{err}"
        );
        check_memory(&c, 8, 512, 64, Some(8 << 30), "inputs").unwrap();
        check_memory(&c, 1, 40_001, 64, None, "inputs").unwrap();
    }
}
