//! Arguments and helpers shared by subcommands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use kiln_model::{LoadedModel, SamplingParams};

pub fn init(threads: Option<usize>, log: &str) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        // candle's kernel pool and rayon both size themselves from this on first use.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let filter = tracing_subscriber::EnvFilter::try_new(log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[derive(ClapArgs, Debug, Clone)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// A LoRA adapter directory in PEFT's layout (adapter_config.json,
    /// adapter_model.safetensors), e.g. a `kiln finetune sft` run, applied to the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

/// The device models load on and train on: the CPU (a CUDA build will choose here).
pub fn device() -> candle_core::Device {
    candle_core::Device::Cpu
}

/// `runs/<config stem><suffix>`: where a run writes when no --out is given.
pub fn default_out(config: &Path, suffix: &str) -> PathBuf {
    let stem = config.file_stem().unwrap_or_default().to_string_lossy();
    PathBuf::from("runs").join(format!("{stem}{suffix}"))
}

/// A training run's arguments, the same for `kiln train` and `kiln finetune sft|dpo`.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// Run directory (default: runs/<config file name>).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Continue from the newest checkpoint in the run directory.
    #[arg(long)]
    pub resume: bool,
    /// Train for N steps: the config's whole schedule (warmup, cosine decay, evaluations)
    /// fitted to N, as everywhere in kiln.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Stop after step N of the run, with a checkpoint (continue it with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
    /// Print one JSON object with the final figures instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// --out, or `runs/<config stem><suffix>`.
    pub fn out_for(&self, config: &Path, suffix: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| default_out(config, suffix))
    }

    /// `settings` fitted to --steps when given.
    pub fn fit(&self, settings: &mut kiln_train::training::TrainSettings) -> Result<()> {
        if let Some(n) = self.steps {
            *settings = settings.fit_to(n).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Steps this invocation will run to (for the progress bar).
    pub fn last_step(&self, steps: u64) -> u64 {
        self.stop_after.unwrap_or(steps).min(steps)
    }

    /// The loop's options, with Ctrl-C wired to checkpoint and stop.
    pub fn options(&self, out: &Path) -> Result<kiln_train::training::LoopOptions> {
        Ok(kiln_train::training::LoopOptions {
            out: out.to_path_buf(),
            resume: self.resume,
            stop_at: self.stop_after,
            stop: Some(crate::cmd::train::stop_flag()?),
        })
    }
}

impl ModelArgs {
    pub fn load(&self) -> Result<LoadedModel> {
        let dev = device();
        match &self.adapter {
            Some(a) => {
                kiln_model::loader::load_with_adapter(&self.model, &dev, a).with_context(|| {
                    format!(
                        "loading {} with the adapter {}",
                        self.model.display(),
                        a.display()
                    )
                })
            }
            None => kiln_model::load(&self.model, &dev)
                .with_context(|| format!("loading {}", self.model.display())),
        }
    }
}

#[derive(ClapArgs, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens with probability >= P (1 = off).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely token (0 = off).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Penalise tokens seen in the last --penalty-last-n tokens (1 = off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// Subtract from the logit of every recently seen token (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract per occurrence of a recently seen token (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Window of recent tokens the penalties look at.
    #[arg(long, default_value_t = 64)]
    pub penalty_last_n: usize,
    /// RNG seed; the same seed and settings reproduce the same text.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop when this string appears (repeatable); it is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.penalty_last_n,
            seed: self.seed,
        }
    }
}

/// Reads a UTF-8 text file, naming the file and the byte offset of bad UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not valid UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}
