//! A self-contained HTML report of one or more runs: a table and, per task and metric, a
//! horizontal bar for each run with its 95% interval as a whisker (inline SVG, no scripts
//! or external files), so runs of different models or checkpoints compare at a glance.

use std::fmt::Write;

use serde_json::Value;

use crate::report::results::{is_fraction, METRIC_NAMES};

/// One run: its label (a directory name or model) and its results.json.
pub struct LabelledRun {
    pub label: String,
    pub results: Value,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bar colours, one per run (cycled).
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];
const BAR_H: f64 = 16.0;
const WIDTH: f64 = 420.0;
const LEFT: f64 = 160.0;

/// The (task, metric) pairs any run reports, in task then metric order; `fractions` keeps
/// only the metrics in [0, 1] (the chart's scale).
fn rows(runs: &[LabelledRun], fractions: bool) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = vec![];
    for r in runs {
        let Some(tasks) = r.results["tasks"].as_object() else {
            continue;
        };
        for (task, t) in tasks {
            for m in METRIC_NAMES {
                let wanted = !fractions || is_fraction(m);
                if wanted && t[m].is_number() && !out.iter().any(|(a, b)| a == task && *b == m) {
                    out.push((task.clone(), m));
                }
            }
        }
    }
    out
}

/// The report page.
pub fn html_report(runs: &[LabelledRun]) -> String {
    let rows = rows(runs, false);
    let bars = self::rows(runs, true);
    let mut h = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kiln eval</title>\n\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style></head><body>\n\
         <h1>kiln eval</h1>\n",
    );
    // Legend.
    h.push_str("<p>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            h,
            "<span style=\"color:{}\">&#9632;</span> {} &nbsp; ",
            COLOURS[i % COLOURS.len()],
            escape(&r.label)
        );
    }
    h.push_str("</p>\n");
    // Chart: one group per (task, metric), one bar per run.
    let group_h = BAR_H * runs.len() as f64 + 14.0;
    let height = group_h * bars.len() as f64 + 24.0;
    let _ = writeln!(
        h,
        "<svg width=\"{}\" height=\"{height}\" font-size=\"11\" role=\"img\">",
        LEFT + WIDTH + 60.0
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = LEFT + tick * WIDTH;
        let _ = writeln!(
            h,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            height - 14.0,
            height - 2.0,
            100.0 * tick
        );
    }
    for (g, (task, m)) in bars.iter().enumerate() {
        let y0 = g as f64 * group_h;
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {m}</text>",
            LEFT - 6.0,
            y0 + group_h / 2.0,
            escape(task)
        );
        for (i, r) in runs.iter().enumerate() {
            let t = &r.results["tasks"][task.as_str()];
            let Some(v) = t[*m].as_f64() else { continue };
            let y = y0 + i as f64 * BAR_H;
            let colour = COLOURS[i % COLOURS.len()];
            let _ = writeln!(
                h,
                "<rect class=\"bar\" x=\"{LEFT}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"><title>{}: {} {m} {:.1}</title></rect>",
                v.clamp(0.0, 1.0) * WIDTH,
                BAR_H - 3.0,
                escape(&r.label),
                escape(task),
                100.0 * v
            );
            if let Some([lo, hi]) = t[format!("{m}_ci")]
                .as_array()
                .and_then(|a| Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?]))
            {
                let mid = y + (BAR_H - 3.0) / 2.0;
                let _ = writeln!(
                    h,
                    "<line x1=\"{:.1}\" y1=\"{mid}\" x2=\"{:.1}\" y2=\"{mid}\" stroke=\"#333\"/>",
                    LEFT + lo.clamp(0.0, 1.0) * WIDTH,
                    LEFT + hi.clamp(0.0, 1.0) * WIDTH
                );
            }
            let _ = writeln!(
                h,
                "<text x=\"{:.1}\" y=\"{}\">{:.1}</text>",
                LEFT + v.clamp(0.0, 1.0) * WIDTH + 4.0,
                y + BAR_H - 5.0,
                100.0 * v
            );
        }
    }
    h.push_str("</svg>\n");
    // Table.
    h.push_str("<table><tr><th>task</th><th>metric</th>");
    for r in runs {
        let _ = write!(h, "<th>{}</th>", escape(&r.label));
    }
    h.push_str("</tr>\n");
    for (task, m) in &rows {
        let _ = write!(h, "<tr><td>{}</td><td>{m}</td>", escape(task));
        for r in runs {
            let t = &r.results["tasks"][task.as_str()];
            match t[*m].as_f64() {
                Some(v) if is_fraction(m) => {
                    let _ = write!(h, "<td>{:.1} (n={})</td>", 100.0 * v, t["n"]);
                }
                Some(v) => {
                    let _ = write!(h, "<td>{v:.3} (n={})</td>", t["n"]);
                }
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</table>\n<p>Fractions in percent, perplexities and bits per byte as they are; whiskers and intervals are 95% percentile bootstraps over \
         questions.</p>\n</body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_bar_per_run_task_and_metric_with_escaped_labels() {
        let a = json!({"tasks": {
            "arc_easy": {"acc": 0.5, "acc_ci": [0.4, 0.6], "acc_norm": 0.44, "n": 570},
            "gsm8k": {"exact_match": 0.02, "n": 1319},
        }});
        let b = json!({"tasks": {"arc_easy": {"acc": 0.55, "acc_ci": [0.45, 0.65], "n": 570}}});
        let html = html_report(&[
            LabelledRun {
                label: "base <v1>".into(),
                results: a,
            },
            LabelledRun {
                label: "sft".into(),
                results: b,
            },
        ]);
        // arc_easy acc: 2 bars; arc_easy acc_norm: 1; gsm8k exact_match: 1.
        assert_eq!(html.matches("class=\"bar\"").count(), 4);
        assert!(html.contains("base &lt;v1&gt;") && !html.contains("<v1>"));
        assert!(
            html.contains("width=\"210.0\""),
            "acc 0.5 is half of {WIDTH}"
        );
        assert!(html.contains("<td>55.0 (n=570)</td>"));
        assert!(html.contains("<td>-</td>"), "sft has no gsm8k");
    }
}
