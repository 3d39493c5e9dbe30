//! T5 in burn, part for part as HF's `modeling_t5.py`.

pub mod attention;
pub mod block;
pub mod cache;
pub mod feed_forward;
pub mod freeze;
pub mod inputs;
pub mod layer_norm;
pub mod loss;
pub mod merge;
pub mod relative_bias;
pub mod stack;
pub mod t5;

pub use cache::{DecoderCache, KeyValue};
pub use freeze::FreezeOptions;
pub use loss::{cross_entropy, IGNORE_INDEX};
pub use merge::merge_adapter;
pub use t5::{Seq2SeqOutput, T5ForConditionalGeneration};
