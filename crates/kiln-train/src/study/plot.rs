//! PNG plots: a run's loss curve (`loss.png`, from `metrics.jsonl`) and the scaling sweep's
//! log-log compute-vs-loss chart (`scaling.png`).
//!
//! Drawn with plotters' bitmap backend into memory, encoded with `png`, then written through
//! [`write_bytes_atomic`](kiln_model::atomic::write_bytes_atomic) so a reader never sees half an
//! image. Text goes through plotters' `ab_glyph` renderer with DejaVu Sans embedded in the
//! binary (the `dejavu` crate), so plots have labels on machines without fonts or
//! fontconfig.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::study::scaling_fit::ScalingFit;
use kiln_model::atomic::write_bytes_atomic;

const SIZE: (u32, u32) = (960, 600);
const FONT: &str = "sans-serif";
const STEP_LOSS: RGBColor = RGBColor(120, 160, 220);
const TRAIN_EVAL: RGBColor = RGBColor(230, 120, 20);
const VAL_EVAL: RGBColor = RGBColor(200, 30, 40);

/// One `metrics.jsonl` line, as much as the plot needs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
pub struct LossPoint {
    pub step: u64,
    pub loss: f64,
    #[serde(default)]
    pub train_loss: Option<f64>,
    #[serde(default)]
    pub val_loss: Option<f64>,
}

/// The lines of `metrics.jsonl` that parse; a torn last line (a crash mid-write) is skipped
/// rather than failing the plot.
pub fn read_loss_points(metrics: &Path) -> Result<Vec<LossPoint>> {
    let text = std::fs::read_to_string(metrics).map_err(|e| TrainError::io(metrics, "read", e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Draws `out` (a PNG) from the points of `metrics.jsonl`: the loss of every step as a line,
/// and the fixed-batch train and val evaluations as marked lines. Nothing is written when
/// there are no points yet.
pub fn plot_loss(points: &[LossPoint], title: &str, out: &Path) -> Result<()> {
    let finite = |v: &f64| v.is_finite();
    let steps: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| finite(&p.loss))
        .map(|p| (p.step as f64, p.loss))
        .collect();
    let evals = |f: fn(&LossPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| f(p).filter(finite).map(|v| (p.step as f64, v)))
            .collect()
    };
    let (train, val) = (evals(|p| p.train_loss), evals(|p| p.val_loss));
    let all = || steps.iter().chain(&train).chain(&val);
    if all().next().is_none() {
        return Ok(());
    }
    let (x_max, y_lo, y_hi) = all().fold((1f64, f64::MAX, f64::MIN), |(x, lo, hi), p| {
        (x.max(p.0), lo.min(p.1), hi.max(p.1))
    });
    let pad = ((y_hi - y_lo) * 0.05).max(1e-3);
    let (y_lo, y_hi) = ((y_lo - pad).max(0.0), y_hi + pad);
    render(out, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 26))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, y_lo..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (cross-entropy, nats/token)")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                steps.iter().copied(),
                STEP_LOSS.stroke_width(1),
            ))
            .map_err(err)?
            .label("loss per step (training batch)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], STEP_LOSS.stroke_width(2)));
        for (pts, color, name) in [
            (&train, TRAIN_EVAL, "train loss (eval batches)"),
            (&val, VAL_EVAL, "val loss (eval batches)"),
        ] {
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// One sweep point for [`plot_scaling`].
#[derive(Debug, Clone)]
pub struct ScalingPoint {
    pub label: String,
    pub flops: f64,
    pub loss: f64,
}

/// Log-log chart of training compute against final val loss: the points, labelled, and
/// the fitted `L(C) = a·C^(-b) + c` over a slightly wider compute range.
pub fn plot_scaling(points: &[ScalingPoint], fit: Option<&ScalingFit>, out: &Path) -> Result<()> {
    let usable: Vec<&ScalingPoint> = points
        .iter()
        .filter(|p| p.flops > 0.0 && p.loss > 0.0 && p.flops.is_finite() && p.loss.is_finite())
        .collect();
    if usable.is_empty() {
        return Err(TrainError::Plot {
            path: out.into(),
            msg: "no point with positive, finite compute and loss".into(),
        });
    }
    let ((c_lo, c_hi), curve, (l_lo, l_hi)) = scaling_ranges(&usable, fit);
    render(out, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Scaling: final val loss vs training compute", (FONT, 26))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (c_lo..c_hi)
                    .log_scale()
                    .with_key_points(log_ticks(c_lo, c_hi)),
                (l_lo..l_hi)
                    .log_scale()
                    .with_key_points(linear_ticks(l_lo, l_hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("training compute C (FLOPs, log scale)")
            .y_desc("final val loss (nats/token, log scale)")
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 14))
            .x_label_formatter(&|v| format!("{v:.1e}"))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(err)?;
        if let Some(f) = fit {
            chart
                .draw_series(LineSeries::new(curve.iter().copied(), BLUE.stroke_width(2)))
                .map_err(err)?
                .label(format!(
                    "fit: L = {:.3e}·C^(-{:.3}) + {:.3}   (rmse {:.3})",
                    f.a, f.b, f.c, f.rmse
                ))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
        chart
            .draw_series(usable.iter().map(|p| {
                // The label sits above and right of its point so neither hides the other.
                EmptyElement::at((p.flops, p.loss))
                    + Circle::new((0, 0), 6, VAL_EVAL.filled())
                    + Text::new(
                        format!("{} ({:.3})", p.label, p.loss),
                        (8, -22),
                        (FONT, 15).into_font(),
                    )
            }))
            .map_err(err)?
            .label("runs (final val loss)")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, VAL_EVAL.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// An axis range, low to high.
type Range = (f64, f64);

/// The compute axis (the points' range, widened by 2 each way), the fitted curve over it,
/// and the loss axis that holds both.
fn scaling_ranges(
    usable: &[&ScalingPoint],
    fit: Option<&ScalingFit>,
) -> (Range, Vec<(f64, f64)>, Range) {
    let (c_lo, c_hi) = usable.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.flops), hi.max(p.flops))
    });
    let (c_lo, c_hi) = (c_lo / 2.0, c_hi * 2.0);
    let curve: Vec<(f64, f64)> = match fit {
        Some(f) => (0..=100)
            .map(|i| c_lo * (c_hi / c_lo).powf(i as f64 / 100.0))
            .map(|c| (c, f.predict(c)))
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .collect(),
        None => vec![],
    };
    let (l_lo, l_hi) = usable
        .iter()
        .map(|p| p.loss)
        .chain(curve.iter().map(|p| p.1))
        .fold((f64::MAX, f64::MIN), |(lo, hi), l| (lo.min(l), hi.max(l)));
    ((c_lo, c_hi), curve, (l_lo / 1.1, l_hi * 1.1))
}

/// Tick values for a log axis over `lo..hi`: 1, 2 and 5 times the powers of ten inside it
/// while that gives few enough, else the powers of ten alone.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32);
    let mults: &[f64] = if decades.clone().count() <= 4 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    decades
        .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// About six evenly spaced round tick values over `lo..hi` (a loss axis spans too little
/// of a decade for log-scale ticks to show any).
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A plotters error as text; the caller adds the path.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Renders `draw` on a white canvas and writes it to `out` as a PNG, atomically.
fn render<F>(out: &Path, draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
{
    let fail = |msg: String| TrainError::Plot {
        path: out.into(),
        msg,
    };
    register_font().map_err(fail)?;
    let (w, h) = SIZE;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| fail(e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| fail(e.to_string()))?;
        writer.finish().map_err(|e| fail(e.to_string()))?;
    }
    Ok(write_bytes_atomic(out, &bytes)?)
}

/// Registers the embedded DejaVu Sans with plotters once per process (plotters keeps a
/// global font table; with `ab_glyph` it holds only what we register).
fn register_font() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font did not parse".to_string())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_png(path: &Path) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000
    }

    #[test]
    fn ticks_are_round_numbers_inside_the_range() {
        assert_eq!(log_ticks(8e8, 8e10), [1e9, 2e9, 5e9, 1e10, 2e10, 5e10]);
        assert_eq!(log_ticks(1e8, 1e14).len(), 7);
        assert_eq!(linear_ticks(3.0, 4.35), [3.0, 3.25, 3.5, 3.75, 4.0, 4.25]);
        assert_eq!(linear_ticks(2.0, 2.0), [2.0]);
    }

    #[test]
    fn draws_a_loss_curve_and_a_scaling_chart() {
        let dir = tempfile::tempdir().unwrap();
        let points: Vec<LossPoint> = (1..=50)
            .map(|s| LossPoint {
                step: s,
                loss: 4.0 / (s as f64).sqrt(),
                train_loss: (s % 10 == 0).then(|| 4.1 / (s as f64).sqrt()),
                val_loss: (s % 10 == 0).then(|| 4.3 / (s as f64).sqrt()),
            })
            .collect();
        let loss = dir.path().join("loss.png");
        plot_loss(&points, "Training loss: test", &loss).unwrap();
        assert!(is_png(&loss));
        let fit = ScalingFit {
            a: 40.0,
            b: 0.1,
            c: 1.0,
            rmse: 0.01,
        };
        let pts: Vec<ScalingPoint> = [1e12, 1e13, 1e14]
            .iter()
            .map(|&c| ScalingPoint {
                label: format!("{c:e}"),
                flops: c,
                loss: fit.predict(c),
            })
            .collect();
        let scaling = dir.path().join("scaling.png");
        plot_scaling(&pts, Some(&fit), &scaling).unwrap();
        assert!(is_png(&scaling));
        // Nothing to draw: no file.
        let empty = dir.path().join("empty.png");
        plot_loss(&[], "x", &empty).unwrap();
        assert!(!empty.exists());
    }
}
