//! `kiln rag eval`: each retrieval variant over a golden set, with per-query metrics
//! (see `ir_metrics`) summarised as means with seeded 95% bootstrap intervals, the paired
//! difference in nDCG@10 against a baseline variant, and search latency (p50, p95: the
//! whole pipeline, a language model's rewriting and reranking included).

use std::collections::HashSet;
use std::time::Instant;

use kiln_stats::{paired_difference, summarize, Summary};
use serde::Serialize;

use crate::error::Result;
use crate::golden::GoldenQuery;
use crate::ir_metrics::{query_metrics, QueryMetrics};
use crate::pipeline::{Pipeline, PipelineSpec};

const SEED: u64 = 1234;

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub spec: PipelineSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub n: usize,
    pub k: usize,
    pub recall: Summary,
    pub precision: Summary,
    pub mrr10: Summary,
    pub ndcg10: Summary,
    /// nDCG@10 minus the baseline's, paired over the same queries.
    pub ndcg10_vs_baseline: Option<Summary>,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub per_query: Vec<QueryResult>,
}

/// One query's metrics and the first ten distinct documents it retrieved.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub id: String,
    #[serde(flatten)]
    pub metrics: QueryMetrics,
    pub top: Vec<String>,
}

/// Runs every variant over `queries`; `baseline` names the variant others are compared to.
pub fn evaluate(
    pipeline: &Pipeline,
    queries: &[GoldenQuery],
    variants: &[Variant],
    k: usize,
    baseline: Option<&str>,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<Vec<VariantResult>> {
    let mut results = vec![];
    for v in variants {
        let mut per_query = Vec::with_capacity(queries.len());
        let mut latency = Vec::with_capacity(queries.len());
        for (i, q) in queries.iter().enumerate() {
            let start = Instant::now();
            // Deeper than k in chunks, so k distinct documents remain after merging chunks.
            let hits = pipeline.search(&q.query, v.spec, 3 * k.max(10), &[])?.hits;
            latency.push(start.elapsed().as_secs_f64() * 1e3);
            let ranked: Vec<String> = hits
                .iter()
                .map(|h| pipeline.retriever.index.doc_of(h.row).id.clone())
                .collect();
            let relevant: HashSet<String> = q.relevant.iter().cloned().collect();
            let mut top: Vec<String> = vec![];
            for d in &ranked {
                if top.len() < 10 && !top.contains(d) {
                    top.push(d.clone());
                }
            }
            per_query.push(QueryResult {
                id: q.id.clone(),
                metrics: query_metrics(&ranked, &relevant, k),
                top,
            });
            progress(&v.name, i + 1, queries.len());
        }
        latency.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            latency[((p * (latency.len() - 1) as f64).round() as usize).min(latency.len() - 1)]
        };
        let col = |f: fn(&QueryMetrics) -> f64| {
            summarize(
                &per_query.iter().map(|q| f(&q.metrics)).collect::<Vec<_>>(),
                SEED,
            )
        };
        results.push(VariantResult {
            name: v.name.clone(),
            n: queries.len(),
            k,
            recall: col(|m| m.recall),
            precision: col(|m| m.precision),
            mrr10: col(|m| m.mrr10),
            ndcg10: col(|m| m.ndcg10),
            ndcg10_vs_baseline: None,
            latency_ms_p50: if latency.is_empty() {
                f64::NAN
            } else {
                pct(0.5)
            },
            latency_ms_p95: if latency.is_empty() {
                f64::NAN
            } else {
                pct(0.95)
            },
            per_query,
        });
    }
    if let Some(base) = baseline.and_then(|b| results.iter().position(|r| r.name == b)) {
        let b: Vec<f64> = results[base]
            .per_query
            .iter()
            .map(|q| q.metrics.ndcg10)
            .collect();
        let base_name = results[base].name.clone();
        for r in results.iter_mut() {
            if r.name != base_name {
                let x: Vec<f64> = r.per_query.iter().map(|q| q.metrics.ndcg10).collect();
                r.ndcg10_vs_baseline = Some(paired_difference(&b, &x, SEED));
            }
        }
    }
    Ok(results)
}

/// The results as a markdown table (percentages, 95% intervals in brackets).
pub fn markdown_table(results: &[VariantResult], baseline: Option<&str>) -> String {
    let pc = |s: &Summary| {
        format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * s.mean,
            100.0 * s.ci[0],
            100.0 * s.ci[1]
        )
    };
    let k = results.first().map_or(10, |r| r.k);
    let mut out = format!(
        "| variant | n | recall@{k} | precision@{k} | MRR@10 | nDCG@10 | Δ nDCG@10 vs {} | p50 ms | p95 ms |\n|---|---:|---|---|---|---|---|---:|---:|\n",
        baseline.unwrap_or("-")
    );
    for r in results {
        let delta = r.ndcg10_vs_baseline.as_ref().map_or("-".into(), |d| {
            let sig = if d.ci[0] > 0.0 || d.ci[1] < 0.0 {
                " *"
            } else {
                ""
            };
            format!(
                "{:+.1} [{:+.1}, {:+.1}]{sig}",
                100.0 * d.mean,
                100.0 * d.ci[0],
                100.0 * d.ci[1]
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {delta} | {:.1} | {:.1} |\n",
            r.name,
            r.n,
            pc(&r.recall),
            pc(&r.precision),
            pc(&r.mrr10),
            pc(&r.ndcg10),
            r.latency_ms_p50,
            r.latency_ms_p95
        ));
    }
    out
}
