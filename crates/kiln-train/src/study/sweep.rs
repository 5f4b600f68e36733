//! `kiln train sweep`: one run config trained at several model sizes on the same data and
//! steps; each run's training compute `C = FLOPs/token × tokens` and final val loss become a
//! point, `L(C) = a·C^(-b) + c` is fitted through them, and `scaling.png`, `scaling.json` and
//! `scaling.md` are written next to the runs.
//!
//! A size is `D` (d_model; layers from the config) or `L<layers>xD<d_model>[xH<heads>]`,
//! e.g. `64,96,128` or `L2xD64,L4xD128,L6xD192`. Without `H` the config's head size is
//! kept (heads = d_model / head size); grouped-query attention keeps its group size and an
//! explicit `ffn` keeps its ratio to `d_model`.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::study::plot::{plot_scaling, ScalingPoint};
use crate::study::scaling_fit::{fit_scaling_law, ScalingFit};
use crate::study::{self, Progress, StudyOptions};
use crate::training::flops::{flops_per_token, matmul_params, run_model_config, tokens_per_step};
use crate::training::pretrain::config::TrainConfig;

/// One `--sizes` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeSpec {
    pub n_layer: Option<usize>,
    pub d_model: usize,
    pub n_head: Option<usize>,
}

impl std::str::FromStr for SizeSpec {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            TrainError::InvalidArgument(format!(
                "size `{s}`: expected D (d_model, e.g. 128) or L<layers>xD<d_model>[xH<heads>] \
                 (e.g. L4xD128 or L4xD128xH4)"
            ))
        };
        let s = s.trim();
        if let Ok(d) = s.parse::<usize>() {
            return Ok(Self {
                n_layer: None,
                d_model: d,
                n_head: None,
            });
        }
        let (mut l, mut d, mut h) = (None, None, None);
        for part in s.split(['x', 'X']) {
            let mut chars = part.chars();
            let slot = match chars.next().map(|c| c.to_ascii_uppercase()) {
                Some('L') => &mut l,
                Some('D') => &mut d,
                Some('H') => &mut h,
                _ => return Err(bad()),
            };
            let n: usize = chars.as_str().parse().map_err(|_| bad())?;
            if slot.replace(n).is_some() {
                return Err(bad());
            }
        }
        Ok(Self {
            n_layer: l,
            d_model: d.ok_or_else(bad)?,
            n_head: h,
        })
    }
}

/// `64,96,128` → three sizes; at least three are needed for the three-parameter fit.
pub fn parse_sizes(s: &str) -> Result<Vec<SizeSpec>> {
    let sizes: Vec<SizeSpec> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_>>()?;
    if sizes.len() < 3 {
        return Err(TrainError::InvalidArgument(format!(
            "--sizes {s}: a sweep needs at least 3 sizes to fit L(C) = a·C^(-b) + c \
             (3 parameters), got {}",
            sizes.len()
        )));
    }
    Ok(sizes)
}

/// `base` at `size`, validated like a config file.
pub fn resize(base: &TrainConfig, size: &SizeSpec) -> Result<TrainConfig> {
    let m = &base.model;
    let what = format!("size {}", spec_name(size, m.n_layer, None));
    let bad = |msg: String| TrainError::InvalidArgument(format!("{what}: {msg}"));
    let d = size.d_model;
    let head = m.d_model / m.n_head;
    let n_head = match size.n_head {
        Some(h) => h,
        None if d.is_multiple_of(head) && d >= head => d / head,
        None => {
            return Err(bad(format!(
                "d_model {d} is not a multiple of the config's head size {head}; \
                 give the heads too, e.g. L{}xD{d}xH{}",
                size.n_layer.unwrap_or(m.n_layer),
                (d / head).max(1)
            )))
        }
    };
    let mut c = base.clone();
    c.model.n_layer = size.n_layer.unwrap_or(m.n_layer);
    c.model.d_model = d;
    c.model.n_head = n_head;
    if let Some(kv) = m.n_kv_head {
        let group = m.n_head / kv.max(1);
        if n_head % group != 0 {
            return Err(bad(format!(
                "{n_head} heads do not split into the config's key/value groups of {group}"
            )));
        }
        c.model.n_kv_head = Some(n_head / group);
    }
    c.model.ffn = m.ffn.map(|f| (f * d).div_ceil(m.d_model));
    study::revalidate(&c, &what)
}

fn spec_name(s: &SizeSpec, default_layers: usize, heads: Option<usize>) -> String {
    let mut name = format!("L{}xD{}", s.n_layer.unwrap_or(default_layers), s.d_model);
    if let Some(h) = heads.or(s.n_head) {
        name.push_str(&format!("xH{h}"));
    }
    name
}

/// One trained size.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub size: String,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_head: usize,
    /// All parameters (a tied head counted once).
    pub params: u64,
    /// Parameters in matrix multiplies (the `N` of `6·N`; see `flops`).
    pub matmul_params: u64,
    pub flops_per_token: f64,
    pub tokens: u64,
    /// Training compute: `flops_per_token × tokens`.
    pub flops: f64,
    pub val_loss: f64,
    pub tokens_per_s: f64,
    pub run_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub steps: u64,
    pub seed: u64,
    pub data_dir: PathBuf,
    /// How `flops` is counted.
    pub flops_convention: &'static str,
    pub points: Vec<SweepPoint>,
    /// `L(C) = a·C^(-b) + c` with `C` in FLOPs; absent when fewer than 3 sizes finished or
    /// the fit failed (`fit_error` says why).
    pub fit: Option<ScalingFit>,
    pub fit_error: Option<String>,
    pub interrupted: Option<String>,
}

/// Trains every size into `opts.out/<size>/`, fits the law and writes `scaling.json`,
/// `scaling.md` and `scaling.png` into `opts.out`.
pub fn run_sweep(
    base: &TrainConfig,
    sizes: &[SizeSpec],
    opts: &StudyOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SweepReport> {
    if sizes.len() < 3 {
        return Err(TrainError::InvalidArgument(format!(
            "a sweep needs at least 3 sizes to fit L(C) = a·C^(-b) + c, got {}",
            sizes.len()
        )));
    }
    let base = study::with_steps(base, opts.steps)?;
    let mut runs = vec![];
    for s in sizes {
        let cfg = resize(&base, s)?;
        let name = study::dir_name(&spec_name(s, base.model.n_layer, Some(cfg.model.n_head)));
        if runs.iter().any(|(n, _)| *n == name) {
            return Err(TrainError::InvalidArgument(format!(
                "size {name} is listed twice"
            )));
        }
        runs.push((name, cfg));
    }
    let (done, interrupted) = study::run_variants(&runs, opts, progress)?;
    let mut points = vec![];
    for ((name, cfg), run) in runs.iter().zip(done) {
        let mc = run_model_config(cfg)?;
        let tokens = tokens_per_step(cfg) * run.report.steps;
        let fpt = flops_per_token(&mc);
        points.push(SweepPoint {
            size: name.clone(),
            n_layer: cfg.model.n_layer,
            d_model: cfg.model.d_model,
            n_head: cfg.model.n_head,
            params: kiln_model::params::parameter_count(&mc) as u64,
            matmul_params: matmul_params(&mc),
            flops_per_token: fpt,
            tokens,
            flops: fpt * tokens as f64,
            val_loss: run.report.val_loss.unwrap_or(f64::NAN),
            tokens_per_s: run.report.tokens_per_s,
            run_dir: run.report.run_dir.clone(),
        });
    }
    let pairs: Vec<(f64, f64)> = points.iter().map(|p| (p.flops, p.val_loss)).collect();
    let (fit, fit_error) = match fit_scaling_law(&pairs) {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = SweepReport {
        steps: base.train.steps,
        seed: base.train.seed,
        data_dir: base.data.dir.clone(),
        flops_convention: "6*N + 6*n_layer*context*d_model per token (Kaplan et al. 2020), \
                           N = parameters in matmuls incl. the LM head, excl. embedding tables",
        points,
        fit,
        fit_error,
        interrupted,
    };
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| TrainError::InvalidArgument(e.to_string()))?;
    study::write_output(&opts.out, "scaling.json", &(json + "\n"))?;
    study::write_output(&opts.out, "scaling.md", &markdown(&report))?;
    if !report.points.is_empty() {
        let pts: Vec<ScalingPoint> = report
            .points
            .iter()
            .map(|p| ScalingPoint {
                label: p.size.clone(),
                flops: p.flops,
                loss: p.val_loss,
            })
            .collect();
        plot_scaling(&pts, report.fit.as_ref(), &opts.out.join("scaling.png"))?;
    }
    Ok(report)
}

/// The points as a markdown table, then the fit.
pub fn markdown(r: &SweepReport) -> String {
    let mut s = format!(
        "# Scaling sweep\n\nSame seed ({}) and data ({}), {} steps per size. FLOPs: {}.\n\n\
         | size | params | N (matmul) | FLOPs/token | tokens | C (FLOPs) | val loss | tokens/s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        r.seed,
        r.data_dir.display(),
        r.steps,
        r.flops_convention
    );
    for p in &r.points {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3e} | {} | {:.3e} | {:.4} | {:.0} |\n",
            p.size,
            p.params,
            p.matmul_params,
            p.flops_per_token,
            p.tokens,
            p.flops,
            p.val_loss,
            p.tokens_per_s
        ));
    }
    match (&r.fit, &r.fit_error) {
        (Some(f), _) => s.push_str(&format!(
            "\nFit: L(C) = {:.4e} · C^(-{:.4}) + {:.4} (rmse {:.4})\n",
            f.a, f.b, f.c, f.rmse
        )),
        (None, Some(e)) => s.push_str(&format!("\nNo fit: {e}\n")),
        (None, None) => {}
    }
    if let Some(name) = &r.interrupted {
        s.push_str(&format!(
            "\nInterrupted (Ctrl-C) during `{name}`; the sizes from there on are missing.\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[model]\nn_layer = 4\nn_head = 4\nd_model = 128\ncontext = 8\n\
                        [data]\ndir = \"d\"\n[train]\nsteps = 10\nbatch_size = 2\nlr = 1e-3\nmin_lr = 1e-4\n";

    #[test]
    fn parses_size_specs() {
        let s: SizeSpec = "96".parse().unwrap();
        assert_eq!((s.n_layer, s.d_model, s.n_head), (None, 96, None));
        let s: SizeSpec = "L2xD64xH2".parse().unwrap();
        assert_eq!((s.n_layer, s.d_model, s.n_head), (Some(2), 64, Some(2)));
        let s: SizeSpec = "l6xd192".parse().unwrap();
        assert_eq!((s.n_layer, s.d_model), (Some(6), 192));
        for bad in ["", "L4", "D64xD32", "Q4xD64", "L4xDx", "-3"] {
            let e = bad.parse::<SizeSpec>().unwrap_err().to_string();
            assert!(e.contains("L<layers>xD<d_model>"), "{bad}: {e}");
        }
        let e = parse_sizes("64,128").unwrap_err().to_string();
        assert!(e.contains("at least 3"), "{e}");
        assert_eq!(parse_sizes("64,96,128").unwrap().len(), 3);
    }

    #[test]
    fn resizes_keeping_the_head_size() {
        let base = TrainConfig::parse(BASE).unwrap();
        let c = resize(&base, &"64".parse().unwrap()).unwrap();
        assert_eq!(
            (c.model.n_layer, c.model.d_model, c.model.n_head),
            (4, 64, 2)
        );
        let c = resize(&base, &"L2xD96xH3".parse().unwrap()).unwrap();
        assert_eq!(
            (c.model.n_layer, c.model.d_model, c.model.n_head),
            (2, 96, 3)
        );
        let e = resize(&base, &"48".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("head size 32") && e.contains("xH"), "{e}");
        let e = resize(&base, &"L2xD64xH3".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("d_model"), "{e}");
    }
}
