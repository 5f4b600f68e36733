//! A Prometheus histogram: fixed bucket bounds, cumulative counts on output.

use std::fmt::Write;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Seconds, from a millisecond to ten minutes: TTFT and end-to-end latency.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// Seconds between tokens of a stream.
pub const INTER_TOKEN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            state: Mutex::new(State {
                counts: vec![0; bounds.len()],
                ..State::default()
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            s.counts[i] += 1;
        }
        s.sum += v;
        s.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.count)
    }

    /// `name_bucket{labels,le=..}`, `name_sum{labels}`, `name_count{labels}` lines;
    /// `labels` is `key="value"` pairs without braces.
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let Ok(s) = self.state.lock() else {
            return;
        };
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&s.counts) {
            cum += c;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.7, 9.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.write(&mut s, "x", "m=\"a\"");
        assert!(s.contains("x_bucket{m=\"a\",le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{m=\"a\",le=\"2\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{m=\"a\",le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_count{m=\"a\"} 4\n"), "{s}");
    }
}
