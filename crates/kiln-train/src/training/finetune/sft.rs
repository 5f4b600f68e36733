//! `kiln finetune sft`: supervised fine-tuning of a frozen base through a LoRA adapter.
//! On a GGUF base the base stays quantized and only the adapter's factors train (QLoRA).
//! The run directory holds the adapter in PEFT's layout (`adapter_config.json`,
//! `adapter_model.safetensors`), `metrics.jsonl`, `loss.png`, `data_report.json` and
//! `checkpoints/`.

use std::path::Path;

use candle_core::{Device, Var};
use kiln_model::{loader, CausalLM};

use super::adapted::load_adapted;
use super::config::FinetuneConfig;
use super::loss::{sft_loss, sft_loss_and_grads};
use super::{run_finetune, write_data_report, FinetuneOptions, FinetuneReport};
use crate::data::sft::{
    eval_batches, prepare_examples, read_sft_jsonl, Batching, DataPosition, DataReport,
    SamplerConfig, SftBatch, SftSampler, SftTokenizer, TokenizedExample,
};
use crate::error::{Result, TrainError};
use crate::training::metrics::StepMetrics;
use crate::training::objective::{Evaluation, MicroBatch, MicroStep, Objective, Position};

/// A JSONL file tokenized for `model`, with the account of what `max_len` cut.
pub fn examples(
    path: &Path,
    cfg: &FinetuneConfig,
    model: &loader::LoadedModel,
) -> Result<(Vec<TokenizedExample>, DataReport)> {
    let records = read_sft_jsonl(path)?;
    let chat = model.chat_prompt()?;
    let tok = SftTokenizer::new(&model.tokenizer, &chat, cfg.data.train_on);
    let (examples, report) = prepare_examples(&records, &tok, cfg.data.max_len, path)?;
    if examples.is_empty() {
        return Err(TrainError::InvalidArgument(format!(
            "{}: no example has a token to train on ({} dropped)",
            path.display(),
            report.dropped_no_trainable_tokens
        )));
    }
    Ok((examples, report))
}

/// The id padding fills rows with (never trained, never attended to by real tokens).
pub fn pad_id(model: &loader::LoadedModel) -> u32 {
    model
        .tokenizer
        .eos_token_ids()
        .first()
        .copied()
        .unwrap_or(0)
}

struct Sft {
    sampler: SftSampler,
    eval: Option<Vec<SftBatch>>,
    report: DataReport,
    seed: u64,
    dev: Device,
}

impl Objective for Sft {
    fn on_start(&mut self, run: &Path) -> Result<()> {
        write_data_report(run, &self.report)
    }

    fn micro_step(
        &mut self,
        model: &dyn CausalLM,
        vars: &[Var],
        at: MicroBatch,
    ) -> Result<MicroStep> {
        let scale = at.scale();
        let batch = self.sampler.next_batch();
        let (loss, grads) = sft_loss_and_grads(model, &batch, &self.dev, vars, scale)?;
        Ok(MicroStep {
            loss,
            grads,
            tokens: batch.real_tokens(),
            extra: Default::default(),
        })
    }

    fn evaluate(&self, model: &dyn CausalLM) -> Result<Option<Evaluation>> {
        let Some(batches) = &self.eval else {
            return Ok(None);
        };
        // Token-weighted: every trained token of the set counts once.
        let (mut sum, mut n) = (0.0, 0usize);
        for b in batches {
            let (loss, count) = sft_loss(model, b, &self.dev)?;
            sum += loss * count as f64;
            n += count;
        }
        Ok(Some(Evaluation {
            loss: sum / n.max(1) as f64,
            ..Default::default()
        }))
    }

    fn position(&self) -> Position {
        Position::of_sampler(self.seed, &self.sampler.position())
    }

    fn restore(&mut self, position: &Position) -> Result<()> {
        self.sampler
            .restore(&position.sampler_place::<DataPosition>()?)
    }
}

/// Fine-tunes as `cfg` says into `opts.out`, calling `on_step` after every step.
pub fn finetune_sft(
    cfg: &FinetuneConfig,
    opts: &FinetuneOptions,
    dev: &Device,
    on_step: impl FnMut(&StepMetrics),
) -> Result<FinetuneReport> {
    let t = &cfg.train;
    let adapted = load_adapted(cfg, dev)?;
    let (train, train_report) = examples(&cfg.data.train, cfg, &adapted.loaded)?;
    let eval = match &cfg.data.eval {
        Some(p) => Some(examples(p, cfg, &adapted.loaded)?),
        None => None,
    };
    let pad = pad_id(&adapted.loaded);
    let sampler = SftSampler::new(
        train,
        SamplerConfig {
            batch_size: t.batch_size,
            max_len: cfg.data.max_len,
            pad_id: pad,
            batching: Batching::Bucketed {
                window: cfg.data.bucket_window,
            },
            seed: t.seed,
        },
    )?;
    let mut objective = Sft {
        sampler,
        eval: eval
            .as_ref()
            .map(|(ex, _)| eval_batches(ex, t.batch_size, pad)),
        report: train_report.clone(),
        seed: t.seed,
        dev: dev.clone(),
    };
    let reports = (train_report, eval.map(|(_, r)| r));
    run_finetune(cfg, opts, &adapted, &mut objective, reports, on_step)
}
