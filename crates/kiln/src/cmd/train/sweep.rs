//! `kiln train sweep`: one config at several model sizes, and the fitted scaling law.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use kiln_train::study::sweep::{parse_sizes, run_sweep};
use kiln_train::TrainConfig;

use super::{study_options, study_progress};
use crate::common::print_json;

/// Train one config at 3 or more model sizes and fit L(C) = a·C^(-b) + c.
///
/// Each size trains on the same data, seed and steps into OUT/<size>/. A size is D (d_model,
/// with n_layer from the config) or L<layers>xD<d_model>[xH<heads>], e.g. --sizes 64,96,128
/// or --sizes L2xD64,L4xD128,L6xD192. Without H the config's head size (d_model / n_head) is
/// kept; grouped-query attention keeps its group size and an explicit ffn its ratio.
///
/// Training compute per run is C = FLOPs/token × tokens trained, with FLOPs/token =
/// 6·N + 6·n_layer·context·d_model (Kaplan et al. 2020; N = parameters in matrix multiplies:
/// all but the embedding tables, plus the LM head even when tied). The fit is least squares
/// on the losses. Written to OUT: scaling.png (log-log compute vs final val loss, points and
/// fitted curve), scaling.json (points and fit) and scaling.md (the table).
///
/// --steps N trains every size for N steps with the schedule compressed to N.
///
/// Example:
///   kiln train sweep -c presets/shakespeare-char.toml --sizes 32,64,128 --steps 300
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The base run's TOML config.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Comma-separated sizes, at least 3: D or L<layers>xD<d_model>[xH<heads>].
    #[arg(long, value_name = "S1,S2,S3")]
    pub sizes: String,
    /// Steps per size, with the LR schedule compressed to fit (default: the config's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Directory for the runs, scaling.png and scaling.json (default: runs/<config name>-sweep).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Print the report as JSON instead of progress bars and the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    // Sizes first: a bad list should fail before any config or data is read.
    let sizes = parse_sizes(&a.sizes)?;
    let cfg = TrainConfig::load(&a.config)?;
    let opts = study_options(&a.config, a.out, "-sweep", a.steps)?;
    let out = opts.out.clone();
    let mut progress = study_progress(a.json);
    let report = run_sweep(&cfg, &sizes, &opts, &mut |p| progress(p))?;
    if a.json {
        return print_json(&report);
    }
    print!("{}", kiln_train::study::sweep::markdown(&report));
    println!(
        "\nwrote {}, {} and {}",
        out.join("scaling.png").display(),
        out.join("scaling.json").display(),
        out.join("scaling.md").display()
    );
    Ok(())
}
