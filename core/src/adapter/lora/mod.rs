//! LoRA (Hu et al. 2021) on T5's linear layers, as HF PEFT computes and stores it.

pub mod adapterhub;
pub mod config;
pub mod linear;
pub mod peft;
pub mod rows;
pub mod site;

pub use config::{LoraConfig, LoraSite, Modules};
pub use linear::LoraLinear;
pub use peft::{
    is_peft, lora_tensors, new_peft_config, parse_peft_config, take_lora, PEFT_WEIGHTS,
};
pub use site::{num_sites, site, site_dims, site_name, Target};
