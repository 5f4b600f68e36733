//! `kiln finetune sft|dpo|merge|eval`: fine-tune a pretrained model through a LoRA adapter,
//! fold an adapter into the base's weights, evaluate on a task (cmd/task_eval.rs).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use kiln_train::merge::merge_adapter;
use kiln_train::{finetune_dpo, finetune_sft, FinetuneConfig};

use crate::common::{device, print_json, RunArgs};
use crate::train_bar::TrainBar;

/// Fine-tune a pretrained model (GGUF, Hugging Face directory or kiln run directory) with
/// LoRA; on a quantized GGUF base the base stays quantized and only the adapter trains
/// (QLoRA).
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Subcommand, Debug)]
pub enum Sub {
    Sft(SftArgs),
    Dpo(DpoArgs),
    Merge(MergeArgs),
    Eval(crate::cmd::task_eval::EvalArgs),
}

/// Merge an adapter into its base model: W' = W + (alpha/r)·B·A for every adapted weight.
///
/// OUT becomes a Hugging Face Llama directory (model.safetensors in f32, config.json,
/// tokenizer.json, tokenizer_config.json with the chat template) that `kiln generate`,
/// `kiln serve` and transformers load without the adapter. A quantized GGUF base is
/// dequantized first, so the merged model is the adapted model without the quantization
/// of the base (its outputs differ from the adapted GGUF's by that quantization error).
#[derive(ClapArgs, Debug)]
pub struct MergeArgs {
    /// The base model the adapter was trained on (GGUF, HF directory or kiln run directory).
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// The adapter directory (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output directory.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Direct Preference Optimization on preference pairs.
///
/// Each line of the data files is {"prompt": "..." or [messages], "chosen": "...",
/// "rejected": "..."}; each answer is scored as the assistant's reply to the prompt under
/// the model's chat template, its end-of-turn included unless the line says "partial": true
/// (both answers are a solution's first steps, as in Step-DPO). The config is
/// `kiln finetune sft`'s plus an optional [dpo] section: beta (0.1), loss = sigmoid|ipo,
/// label_smoothing (0), rpo_alpha (0; above 0 adds that times the chosen answers' NLL per
/// token, as TRL's RPO). To continue an SFT run,
/// set [lora] init = "runs/sft" (the same r, alpha and target_modules): the reference is the
/// model at the start of the run (the SFT model), its log-probabilities computed once and
/// cached in OUT/reference_logps.json. metrics.jsonl logs rewards_chosen,
/// rewards_rejected, margins and accuracy per step (eval_* on the eval pairs).
#[derive(ClapArgs, Debug)]
pub struct DpoArgs {
    #[command(flatten)]
    pub run: SftArgs,
}

/// Supervised fine-tuning on JSONL examples.
///
/// Each line of the data files is {"messages": [{"role", "content"}, ...]} (rendered with
/// the model's chat template; by default only the assistant's tokens are trained),
/// {"prompt", "completion"} (the completion is trained) or {"text"} (all of it). Examples
/// longer than [data] max_len are cut and counted (data_report.json), never dropped
/// silently.
///
/// The config: [model] path; [data] train, eval (optional), max_len (512), train_on
/// (assistant|all), bucket_window; [lora] r, alpha, dropout, target_modules (q_proj k_proj
/// v_proj o_proj gate_proj up_proj down_proj), use_rslora; [train] the same keys as
/// `kiln train`'s: steps, batch_size, grad_accum, lr, min_lr (lr/10), warmup, decay_steps,
/// weight_decay (0), beta1, beta2 (0.999), grad_clip, eval_every (50), checkpoint_every
/// (50), keep, seed. Unknown keys are errors (old names say the new one).
///
/// --steps N trains for N steps with the config's whole schedule fitted to them;
/// --stop-after N stops at step N with a checkpoint that --resume continues.
///
/// OUT receives adapter_config.json + adapter_model.safetensors in PEFT's layout (loadable
/// with `kiln generate|chat --adapter OUT` and by PEFT), metrics.jsonl, loss.png,
/// data_report.json and checkpoints/; --resume continues from the newest checkpoint exactly,
/// and refuses a changed config, naming what changed. Ctrl-C writes a checkpoint and exits.
#[derive(ClapArgs, Debug)]
pub struct SftArgs {
    /// The run's TOML config.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Sub::Sft(a) => finetune(a, Method::Sft),
        Sub::Dpo(a) => finetune(a.run, Method::Dpo),
        Sub::Merge(a) => merge(a),
        Sub::Eval(a) => crate::cmd::task_eval::run(a),
    }
}

fn merge(a: MergeArgs) -> Result<()> {
    let report = merge_adapter(&a.model, &a.adapter, &a.out)?;
    if a.json {
        return print_json(&report);
    }
    println!(
        "merged {} adapted weights into {} tensors ({} parameters, f32); model in {}",
        report.merged,
        report.tensors,
        report.parameters,
        report.out.display()
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Sft,
    Dpo,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Sft => "sft",
            Method::Dpo => "dpo",
        }
    }
}

fn finetune(a: SftArgs, method: Method) -> Result<()> {
    let (config, run) = (&a.config, &a.run);
    let mut cfg = FinetuneConfig::load(config)?;
    run.fit(&mut cfg.train)?;
    let out = run.out_for(config, "");
    let bar = TrainBar::with_flops(run.last_step(cfg.train.steps), run.json, None)?;
    let opts = run.options(&out)?;
    let report = match method {
        Method::Sft => finetune_sft(&cfg, &opts, &device(), |m| bar.step(m)),
        Method::Dpo => finetune_dpo(&cfg, &opts, &device(), |m| bar.step(m)),
    };
    bar.finish();
    let report = report?;
    if run.json {
        return print_json(&report);
    }
    let d = &report.train_data;
    let unit = if method == Method::Dpo {
        "pairs"
    } else {
        "examples"
    };
    println!(
        "data: {} {unit} ({} truncated to {} tokens, {} dropped with nothing to train), \
         {} tokens, {} trained",
        d.examples,
        d.truncated,
        cfg.data.max_len,
        d.dropped_no_trainable_tokens,
        d.total_tokens,
        d.trained_tokens
    );
    if report.interrupted {
        println!(
            "interrupted at step {}; checkpoint written, continue with --resume \
             (kiln finetune {} --config {} --out {}{} --resume)",
            report.steps,
            method.name(),
            config.display(),
            out.display(),
            run.steps.map_or(String::new(), |n| format!(" --steps {n}"))
        );
    } else {
        let figures: Vec<String> = report
            .eval_extra
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!(
            "{} steps, loss {:.4}, eval {}{}, {:.0} tokens/s; adapter in {}",
            report.steps,
            report.final_loss,
            report.eval_loss.map_or("-".into(), |v| format!("{v:.4}")),
            if figures.is_empty() {
                String::new()
            } else {
                format!(" ({})", figures.join(", "))
            },
            report.tokens_per_s,
            out.display()
        );
    }
    Ok(())
}
