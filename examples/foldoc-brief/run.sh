#!/usr/bin/env bash
# The instruction-following example end to end on SmolLM2-135M-Instruct Q4_1 (QLoRA, 2
# threads): FOLDOC entries -> "say what TERM is in at most N words" (some prompts also
# lowercase only, some no commas), each test prompt carrying a regular expression that holds
# exactly when its answer keeps every constraint and has at least three words (prepare.py).
# The base is evaluated, LoRA-SFT on 1,000 examples, evaluated again; then the SFT model
# samples four answers per new prompt, one that keeps the constraints is paired against one
# that does not, DPO continues the SFT adapter on the pairs, and the DPO model is evaluated
# against the SFT model (paired differences with bootstrap intervals).
#
# Usage: examples/foldoc-brief/run.sh [OUT_DIR]     (default runs/foldoc-brief)
# Needs `kiln` on PATH (or KILN=path/to/kiln) and scripts/fetch-assets.sh's SmolLM2 and
# FOLDOC.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KILN="${KILN:-kiln}"
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
MODEL="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"
DICT="$ASSETS/foldoc/foldoc.dict.dz"
OUT="${1:-runs/foldoc-brief}"
for f in "$MODEL" "$DICT"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/fetch-assets.sh" >&2; exit 1; }
done

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$DICT" "$OUT"
for c in sft dpo; do
  sed "s#\"MODEL\"#\"$MODEL\"#" "$HERE/$c.toml" > "$OUT/$c.toml"
done
run() { echo "+ $*" >&2; "$@"; }
# --scorer regex without --regex: each line's "answer" is its own pattern.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer regex --max-tokens 48)

run "$KILN" --threads 2 "${EVAL[@]}" --out "$OUT/base.json"
run "$KILN" --threads 2 finetune sft --config "$OUT/sft.toml" --out "$OUT/sft"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/sft" --out "$OUT/sft.json" --compare "$OUT/base.json"
run "$KILN" --threads 2 data prefs -m "$MODEL" --adapter "$OUT/sft" --prompts "$OUT/dpo_prompts.jsonl" \
  --samples 4 --scorer regex --temperature 1.0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 48 \
  --out "$OUT/prefs.jsonl"
run "$KILN" --threads 2 finetune dpo --config "$OUT/dpo.toml" --out "$OUT/dpo"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/dpo" --out "$OUT/dpo.json" --compare "$OUT/sft.json"
# Which constraints each model keeps, answer length, and overlap with the reference answers.
python3 "$HERE/breakdown.py" "$OUT/test.jsonl" "$OUT/base.json" "$OUT/sft.json" "$OUT/dpo.json"
