//! `kiln finetune dpo`: Direct Preference Optimization through a LoRA adapter. The
//! reference log-probabilities are those of the model at the start of the run, with
//! dropout off: for a fresh adapter (B = 0) exactly the base with the adapter switched
//! off; with `[lora] init` (continuing an SFT adapter) the SFT model, DPO's usual
//! reference. They are computed once, before the first step, and cached in the run
//! directory (`reference_logps.json`), so a resume does not recompute them.

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use kiln_model::CausalLM;
use serde::{Deserialize, Serialize};

use super::adapted::load_adapted;
use super::config::FinetuneConfig;
use super::dpo_loss::{preference_loss, DpoSettings};
use super::loss::{logps_loss_and_grads, sequence_logps};
use super::sft::pad_id;
use super::{run_finetune, write_data_report, FinetuneOptions, FinetuneReport};
use crate::data::pair_sampler::{PairPosition, PairSampler};
use crate::data::prefs::{prepare_pairs, read_pairs, TokenizedPair};
use crate::data::sft::{DataReport, SftBatch, SftTokenizer, TokenizedExample};
use crate::error::{Result, TrainError};
use crate::training::metrics::StepMetrics;
use crate::training::objective::{Evaluation, MicroBatch, MicroStep, Objective, Position};

/// (chosen, rejected) log-probabilities of one pair.
type LogpPair = (f32, f32);

/// Chosen answers in the first rows, rejected ones after, each padded to the longest.
fn pair_batch(pairs: &[&TokenizedPair], pad: u32) -> SftBatch {
    let rows: Vec<&TokenizedExample> = pairs
        .iter()
        .map(|p| &p.chosen)
        .chain(pairs.iter().map(|p| &p.rejected))
        .collect();
    SftBatch::padded(&rows, pad)
}

/// Trained tokens of the chosen answers in all (RPO's NLL is per token).
fn chosen_tokens<'a>(pairs: impl IntoIterator<Item = &'a TokenizedPair>) -> usize {
    pairs.into_iter().map(|p| p.chosen.trained_tokens()).sum()
}

/// (chosen, rejected) log-probabilities of every pair, in order, with no graph kept. In
/// f32, as computed: they round-trip exactly through the JSON cache, so a resumed run's
/// evaluation equals the uninterrupted run's to the bit.
fn logps_of(
    model: &dyn CausalLM,
    pairs: &[TokenizedPair],
    batch_size: usize,
    pad: u32,
    dev: &Device,
) -> Result<Vec<LogpPair>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let refs: Vec<&TokenizedPair> = chunk.iter().collect();
        let lp = sequence_logps(model, &pair_batch(&refs, pad), dev)?;
        let n = chunk.len();
        out.extend((0..n).map(|i| (lp[i] as f32, lp[n + i] as f32)));
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedReferences {
    lines: Vec<usize>,
    logps: Vec<LogpPair>,
}

/// The reference log-probabilities of `pairs`, from `cache` when it holds them (the same
/// pairs, by line), else computed now and written there.
fn references(
    model: &dyn CausalLM,
    pairs: &[TokenizedPair],
    cache: &Path,
    (batch_size, pad, dev): (usize, u32, &Device),
) -> Result<Vec<LogpPair>> {
    let lines: Vec<usize> = pairs.iter().map(|p| p.line).collect();
    if let Ok(text) = std::fs::read_to_string(cache) {
        if let Ok(c) = serde_json::from_str::<CachedReferences>(&text) {
            if c.lines == lines {
                return Ok(c.logps);
            }
        }
    }
    let logps = logps_of(model, pairs, batch_size, pad, dev)?;
    let text = serde_json::to_string(&CachedReferences {
        lines,
        logps: logps.clone(),
    })
    .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    kiln_model::atomic::write_bytes_atomic(cache, text.as_bytes())?;
    Ok(logps)
}

type HeldOut = (Vec<TokenizedPair>, Vec<LogpPair>);

struct Dpo {
    pairs: Vec<TokenizedPair>,
    refs: Vec<LogpPair>,
    /// The held-out pairs and their reference log-probabilities.
    eval: Option<HeldOut>,
    sampler: PairSampler,
    settings: DpoSettings,
    batch_size: usize,
    pad: u32,
    report: DataReport,
    seed: u64,
    dev: Device,
}

/// (chosen, rejected) reference tensors of the given pairs.
fn ref_tensors(refs: &[LogpPair], idx: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
    let c: Vec<f32> = idx.iter().map(|&i| refs[i].0).collect();
    let r: Vec<f32> = idx.iter().map(|&i| refs[i].1).collect();
    let n = idx.len();
    Ok((Tensor::from_vec(c, n, dev)?, Tensor::from_vec(r, n, dev)?))
}

impl Objective for Dpo {
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
        let idx = self.sampler.next_batch();
        let pairs: Vec<&TokenizedPair> = idx.iter().map(|&i| &self.pairs[i]).collect();
        let batch = pair_batch(&pairs, self.pad);
        let (rc, rr) = ref_tensors(&self.refs, &idx, &self.dev)?;
        let n = idx.len();
        let settings = self.settings;
        let chosen_tokens = chosen_tokens(pairs.iter().copied());
        let (loss, grads, extra) = logps_loss_and_grads(model, &batch, &self.dev, vars, |lp| {
            let (pc, pr) = (lp.narrow(0, 0, n)?, lp.narrow(0, n, n)?);
            let (loss, figures) =
                preference_loss((&pc, &pr), (&rc, &rr), chosen_tokens, &settings)?;
            Ok(((loss * scale)?, figures))
        })?;
        Ok(MicroStep {
            loss,
            grads,
            tokens: batch.real_tokens(),
            extra,
        })
    }

    fn evaluate(&self, model: &dyn CausalLM) -> Result<Option<Evaluation>> {
        let Some((pairs, refs)) = &self.eval else {
            return Ok(None);
        };
        let logps = logps_of(model, pairs, self.batch_size, self.pad, &self.dev)?;
        let side = |v: &[LogpPair], chosen: bool| {
            let v: Vec<f64> = v
                .iter()
                .map(|p| if chosen { p.0 } else { p.1 } as f64)
                .collect();
            Tensor::from_vec(v, pairs.len(), &self.dev)
        };
        let (loss, extra) = preference_loss(
            (&side(&logps, true)?, &side(&logps, false)?),
            (&side(refs, true)?, &side(refs, false)?),
            chosen_tokens(pairs),
            &self.settings,
        )?;
        Ok(Some(Evaluation {
            loss: loss.to_scalar::<f64>()?,
            train_loss: None,
            extra,
        }))
    }

    fn position(&self) -> Position {
        Position::of_sampler(self.seed, &self.sampler.position())
    }

    fn restore(&mut self, position: &Position) -> Result<()> {
        self.sampler
            .restore(&position.sampler_place::<PairPosition>()?)
    }
}

fn pairs_of(
    path: &Path,
    cfg: &FinetuneConfig,
    model: &kiln_model::loader::LoadedModel,
) -> Result<(Vec<TokenizedPair>, DataReport)> {
    let records = read_pairs(path)?;
    let chat = model.chat_prompt()?;
    let tok = SftTokenizer::new(&model.tokenizer, &chat, cfg.data.train_on);
    prepare_pairs(&records, &tok, cfg.data.max_len, path)
}

/// DPO as `cfg` says (its `[dpo]` section: beta, loss = sigmoid|ipo, label_smoothing,
/// rpo_alpha)
/// into `opts.out`, calling `on_step` after every step.
pub fn finetune_dpo(
    cfg: &FinetuneConfig,
    opts: &FinetuneOptions,
    dev: &Device,
    on_step: impl FnMut(&StepMetrics),
) -> Result<FinetuneReport> {
    let t = &cfg.train;
    let adapted = load_adapted(cfg, dev)?;
    let model = &adapted.loaded.model;
    let pad = pad_id(&adapted.loaded);
    let (pairs, train_report) = pairs_of(&cfg.data.train, cfg, &adapted.loaded)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, "create", e))?;
    let at = (t.batch_size, pad, dev);
    let refs = references(model, &pairs, &opts.out.join("reference_logps.json"), at)?;
    let eval = match &cfg.data.eval {
        Some(p) => {
            let (ep, report) = pairs_of(p, cfg, &adapted.loaded)?;
            let cache = opts.out.join("reference_logps.eval.json");
            let er = references(model, &ep, &cache, at)?;
            Some((ep, er, report))
        }
        None => None,
    };
    let sampler = PairSampler::new(pairs.len(), t.batch_size, t.seed)?;
    let (eval, eval_report) = match eval {
        Some((p, r, rep)) => (Some((p, r)), Some(rep)),
        None => (None, None),
    };
    let mut objective = Dpo {
        pairs,
        refs,
        eval,
        sampler,
        settings: cfg.dpo,
        batch_size: t.batch_size,
        pad,
        report: train_report.clone(),
        seed: t.seed,
        dev: dev.clone(),
    };
    run_finetune(
        cfg,
        opts,
        &adapted,
        &mut objective,
        (train_report, eval_report),
        on_step,
    )
}
