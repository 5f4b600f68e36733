//! What a run leaves: `results.json`, the Markdown and HTML reports, and comparisons of runs
//! with paired differences.

pub mod compare;
pub mod html_report;
pub mod results;

pub use results::{results_json, samples_path, write_results, RESULTS_FILE};
