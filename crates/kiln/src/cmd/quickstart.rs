//! `kiln quickstart`: the embedded-default main job. Everything it needs (the Shakespeare
//! corpus and the `shakespeare-char` preset) is compiled into the binary, so it runs from any
//! directory with no download: character tokenizer, shards, a 2000-step training run with a
//! progress bar, then samples from the trained model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use kiln_model::{GenerateOptions, SamplingParams};
use kiln_train::data::manifest::sha256_hex;
use kiln_train::{
    Manifest, PrepareOptions, TokenDataset, TokenizerSpec, TrainConfig, TrainOptions,
};

use crate::train_bar::TrainBar;

/// The bundled corpus (see data/shakespeare/README.md for its edition and provenance).
const CORPUS: &str = include_str!("../../../../data/shakespeare/input.txt");
/// The preset, as in the repository; its `[data] dir` is replaced by OUT/data.
const PRESET: &str = include_str!("../../../../presets/shakespeare-char.toml");
/// Prompts of the printed samples, one sample each.
const PROMPTS: [&str; 3] = ["ROMEO:", "JULIET:", "\n"];
/// Characters per sample.
const SAMPLE_CHARS: usize = 300;
/// nanoGPT's `sample.py` temperature.
const TEMPERATURE: f32 = 0.8;

/// Train a character-level GPT on Shakespeare from scratch and print samples (no download).
///
/// kiln's first job, nanoGPT's shakespeare-char run: the ~1.1 MB Shakespeare corpus and the
/// shakespeare-char preset (4 layers, 4 heads, 128 dims, context 64, 0.8M parameters,
/// 2000 steps of batch 12) are built into the binary, so this works from any directory.
/// It writes the corpus to OUT/input.txt, trains the character tokenizer (77 characters) and
/// tokenizes the corpus into OUT/data (skipped when OUT/data already holds shards made with
/// the same tokenizer), trains the model into OUT/run with a progress bar (loss, tokens/s,
/// GFLOP/s, ETA; train/val loss every 250 steps), then prints three 300-character samples
/// (temperature 0.8, fixed seeds) and where the model and its loss curve (OUT/run/loss.png)
/// are.
///
/// It takes about two minutes on an idle 2-core machine (99-122 s measured, ~13,400-16,500 tokens/s):
/// nearly all of it is training, 2000 steps of 12 x 64 tokens (1.5M tokens). It reached a
/// validation loss of 1.91, as nanoGPT's PyTorch run of this configuration does.
/// --steps 200 runs the whole learning-rate schedule in a tenth of the time, for a rough model.
/// OUT/run is a model directory for `kiln generate`, `kiln perplexity` and `kiln chat`.
#[derive(ClapArgs, Debug)]
#[command(after_help = "Example:\n  \
    kiln quickstart\n  \
    kiln generate --model runs/quickstart/run --prompt \"ROMEO:\" --max-tokens 500 --sliding-window")]
pub struct Args {
    /// Output directory: OUT/input.txt, OUT/data (tokenizer and shards), OUT/run (the model).
    #[arg(long, short = 'o', default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Train for N steps instead of 2000, the whole schedule (warmup, cosine decay,
    /// evaluations) fitted to them, as --steps means everywhere (quicker, and a worse model).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
}

pub fn run(a: Args) -> Result<()> {
    let t0 = Instant::now();
    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    println!("kiln quickstart: a character-level GPT trained on Shakespeare from scratch (nanoGPT's shakespeare-char)");

    let input = out.join("input.txt");
    write_if_changed(&input, CORPUS.as_bytes())?;
    println!(
        "[1/4] corpus: {} ({:.1} MB of Shakespeare, bundled with kiln)",
        input.display(),
        CORPUS.len() as f64 / 1e6
    );

    let data = out.join("data");
    let vocab = prepare_data(out, &input, &data)?;

    let mut cfg = TrainConfig::parse(PRESET)
        .map_err(|msg| anyhow::anyhow!("the built-in shakespeare-char preset: {msg}"))?;
    cfg.data.dir = data.clone();
    if let Some(n) = a.steps {
        cfg.train = cfg.train.fit_to(n).map_err(anyhow::Error::msg)?;
    }
    let run = out.join("run");
    let params = kiln_model::params::parameter_count(&cfg.model_config(vocab));
    println!(
        "[3/4] training {:.2}M parameters for {} steps into {} (Ctrl-C stops early and keeps the model so far)",
        params as f64 / 1e6,
        cfg.train.steps,
        run.display()
    );
    let bar = TrainBar::new(&cfg, cfg.train.steps, false)?;
    let opts = TrainOptions {
        out: run.clone(),
        // Ctrl-C: the step finishes, the run is checkpointed and exported, and we stop.
        stop: Some(crate::cmd::train::stop_flag()?),
        ..Default::default()
    };
    let t_train = Instant::now();
    let report = kiln_train::train(&cfg, &opts, &crate::common::device(), |m| bar.step(m));
    bar.finish();
    let report = report?;
    if report.interrupted {
        println!(
            "interrupted at step {}: the model so far is in {} (kiln generate --model {} ...)",
            report.steps,
            run.display(),
            run.display()
        );
        return Ok(());
    }
    println!(
        "      {} steps in {:.0} s: loss {:.4}, val loss {}, {:.0} tokens/s",
        report.steps,
        t_train.elapsed().as_secs_f64(),
        report.final_loss,
        report.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
        report.tokens_per_s
    );

    println!("[4/4] samples ({SAMPLE_CHARS} characters each, temperature {TEMPERATURE}):");
    print_samples(&run)?;

    let loss_png = run.join("loss.png");
    let curve = if loss_png.exists() {
        format!(
            "{} (numbers in {})",
            loss_png.display(),
            run.join("metrics.jsonl").display()
        )
    } else {
        format!(
            "{} (one line per step)",
            run.join("metrics.jsonl").display()
        )
    };
    let r = run.display();
    println!(
        "\ndone in {:.0} s.\n  model:      {r} (config.json, model.safetensors, tokenizer.json)\n  loss curve: {curve}\n\nnext:\n  kiln generate --model {r} --prompt \"JULIET:\" --max-tokens 500 --sliding-window\n  kiln perplexity --model {r} --file {} --ctx 64 --chunks 200\n  kiln chat --model {r} --prompt \"Good morrow\"\n  kiln train --config presets/shakespeare-char.toml    (the same run from the repository's preset)",
        t0.elapsed().as_secs_f64(),
        input.display()
    );
    Ok(())
}

/// Writes `bytes` to `path` unless it already holds exactly them (keeps its timestamp).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|b| b == bytes) {
        return Ok(());
    }
    Ok(kiln_model::atomic::write_bytes_atomic(path, bytes)?)
}

/// Trains the character tokenizer and writes the shards into `data`, unless `data` already
/// holds complete shards of this corpus made with the same tokenizer. Returns the vocabulary
/// size.
fn prepare_data(out: &Path, input: &Path, data: &Path) -> Result<usize> {
    let tok = kiln_train::train_on_texts(&TokenizerSpec::char(), &[CORPUS])?;
    let vocab = kiln_train::vocab_size(&tok);
    let json = tok
        .to_string(true)
        .map_err(|e| anyhow::anyhow!("serializing the tokenizer: {e}"))?;
    let sha = sha256_hex(json.as_bytes());
    let current = Manifest::load(data).is_ok_and(|m| {
        m.tokenizer.sha256 == sha
            && m.sources.len() == 1
            && m.sources[0].bytes == CORPUS.len() as u64
    }) && TokenDataset::open(data).is_ok();
    if current {
        println!(
            "[2/4] tokenizer: {vocab} characters; shards: {} already prepared with this tokenizer, kept",
            data.display()
        );
        return Ok(vocab);
    }
    let tok_path = out.join("tokenizer.json");
    write_if_changed(&tok_path, json.as_bytes())?;
    let m = kiln_train::prepare(
        &tok_path,
        &[input.to_path_buf()],
        data,
        &PrepareOptions::default(),
        &mut |_| {},
    )?;
    println!(
        "[2/4] tokenizer: {vocab} characters ({}); shards: {} ({} train + {} val tokens)",
        tok_path.display(),
        data.display(),
        m.train.tokens,
        m.val.tokens
    );
    Ok(vocab)
}

/// Samples from the trained run through kiln's generation path (the run directory loaded as
/// `kiln generate` loads it). The model sees 64 characters, so samples longer than that slide
/// the window along, as nanoGPT's `sample.py` does.
fn print_samples(run: &Path) -> Result<()> {
    let m = kiln_model::load(run, &crate::common::device())
        .with_context(|| format!("loading {}", run.display()))?;
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let opts = GenerateOptions {
            max_tokens: SAMPLE_CHARS,
            sampling: SamplingParams {
                temperature: TEMPERATURE,
                // Plain temperature sampling, as nanoGPT (its top_k of 200 exceeds the 65
                // characters).
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed: 1337 + i as u64,
                ..Default::default()
            },
            stop: vec![],
            stop_at_eos: true,
            // The model sees 64 characters; the samples are longer.
            sliding_window: true,
        };
        let ids = m.tokenizer.encode(prompt, true, false)?;
        let g = kiln_model::generate(&m.model, &m.tokenizer, &ids, &opts, &m.device, |_| {})?;
        println!("--- sample {} (prompt {prompt:?}) ---", i + 1);
        println!("{}{}", prompt.trim_start_matches('\n'), g.text.trim_end());
    }
    println!("---");
    Ok(())
}
