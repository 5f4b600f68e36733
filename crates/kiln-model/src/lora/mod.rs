//! LoRA adapters (Hu et al. 2021): which layers they target, their config, their files in
//! PEFT's layout, and the low-rank updates the model's linear layers add.

pub mod adapter_file;
pub mod config;
pub mod delta;
pub mod set;
pub mod target;

#[cfg(test)]
mod adapter_file_tests;

pub use adapter_file::{
    load_adapter, save_adapter, LoraAdapter, LoraWeights, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
};
pub use config::LoraConfig;
pub use delta::LoraDelta;
pub use set::LoraSet;
pub use target::{LoraFactor, LoraModule, LoraTarget};
