//! `kiln train ablate`: variants of one config, same seed and data, compared in a table.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use kiln_train::study::ablate::{run_ablation, Vary};
use kiln_train::TrainConfig;

use super::{study_options, study_progress};
use crate::common::print_json;

/// Train variants of one config (same seed, same data) and compare their val loss.
///
/// Every combination of the --vary values is trained (the cartesian product: two keys of
/// two values give four runs) into OUT/<variant>/, e.g. OUT/norm-layernorm.position-rope/,
/// each a complete run directory with metrics.jsonl and loss.png. The table of final val
/// loss, final train loss (both on fixed evaluation batches), tokens/s and parameters is
/// printed and saved as OUT/ablation.md and OUT/ablation.json.
///
/// Keys: norm (layernorm, rmsnorm), position (learned, rope), mlp (gelu, swiglu); model
/// shape n_layer, n_head, n_kv_head, d_model, ffn, context, tied_embeddings, rope_theta;
/// training lr, min_lr, warmup, weight_decay, batch_size, grad_accum, grad_clip, beta1,
/// beta2, seed. Each variant is validated like a config file.
///
/// --steps N trains every variant for N steps with the schedule compressed to N (warmup and
/// cosine decay scale in proportion). Ctrl-C stops after checkpointing the running variant;
/// the table then holds the variants finished so far.
///
/// Example:
///   kiln train ablate -c presets/shakespeare-char.toml --vary norm=layernorm,rmsnorm
///     --vary position=learned,rope --steps 300
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The base run's TOML config.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// KEY=V1,V2,... to vary (repeat for more keys), e.g. --vary norm=layernorm,rmsnorm.
    #[arg(long, value_name = "KEY=V1,V2", required = true)]
    pub vary: Vec<String>,
    /// Steps per variant, with the LR schedule compressed to fit (default: the config's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Directory for the variants' runs and the table (default: runs/<config name>-ablate).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Print the report as JSON instead of progress bars and the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    // --vary first: a typo should fail before any config or data is read.
    let vary = a
        .vary
        .iter()
        .map(|v| v.parse::<Vary>())
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = TrainConfig::load(&a.config)?;
    let opts = study_options(&a.config, a.out, "-ablate", a.steps)?;
    let out = opts.out.clone();
    let mut progress = study_progress(a.json);
    let report = run_ablation(&cfg, &vary, &opts, &mut |p| progress(p))?;
    if a.json {
        return print_json(&report);
    }
    print!("{}", kiln_train::study::ablate::markdown(&report));
    println!(
        "\nwrote {} and {}",
        out.join("ablation.md").display(),
        out.join("ablation.json").display()
    );
    Ok(())
}
