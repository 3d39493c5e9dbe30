//! (IA)³ (Liu et al. 2022) on T5's linear layers, as HF PEFT computes and stores it (and the
//! `adapters` library's `IA3Config`): a learned vector rescales a layer's output, or, for the
//! feed-forward modules, its input.

pub mod adapterhub;
pub mod config;
pub mod peft;
pub mod vector;

pub use config::{Ia3Config, Ia3Site};
pub use peft::{ia3_tensors, new_peft_ia3_config, parse_peft_ia3, take_ia3};
pub use vector::{factors_per_row, Ia3Vector};
