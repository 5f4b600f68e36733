#!/usr/bin/env bash
# The DPO example end to end on SmolLM2-135M-Instruct Q4_1 (QLoRA, 2 threads): generated
# word problems of two to four arithmetic steps (prepare.py, no download); the base is
# evaluated, LoRA-SFT on 1,000 worked solutions, evaluated again; then the SFT model samples
# four solutions per new problem, one ending in the right number is paired against one that
# does not, each pair is cut after its first differing line (step_pairs.py: Step-DPO), DPO
# continues the SFT adapter on the step pairs, and the DPO model is evaluated against the
# SFT model (paired differences with bootstrap intervals).
#
# Usage: examples/word-arithmetic/run.sh [OUT_DIR]     (default runs/word-arithmetic)
# Needs `kiln` on PATH (or KILN=path/to/kiln) and scripts/fetch-assets.sh's SmolLM2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KILN="${KILN:-kiln}"
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
MODEL="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT="${1:-runs/word-arithmetic}"
[ -f "$MODEL" ] || { echo "missing $MODEL: run scripts/fetch-assets.sh" >&2; exit 1; }

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$OUT"
for c in sft dpo dpo_slips; do
  sed "s#\"MODEL\"#\"$MODEL\"#" "$HERE/$c.toml" > "$OUT/$c.toml"
done
run() { echo "+ $*" >&2; "$@"; }
# The last number of the answer counts, as for GSM8K.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer number --max-tokens 128)

run "$KILN" --threads 2 "${EVAL[@]}" --out "$OUT/base.json"
run "$KILN" --threads 2 finetune sft --config "$OUT/sft.toml" --out "$OUT/sft"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/sft" --out "$OUT/sft.json" --compare "$OUT/base.json"
run "$KILN" --threads 2 data prefs -m "$MODEL" --adapter "$OUT/sft" --prompts "$OUT/dpo_prompts.jsonl" \
  --samples 4 --scorer number --temperature 1.0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 128 \
  --out "$OUT/prefs.jsonl"
python3 "$HERE/step_pairs.py" "$OUT/prefs.jsonl" "$OUT/step_prefs.jsonl"
run "$KILN" --threads 2 finetune dpo --config "$OUT/dpo.toml" --out "$OUT/dpo"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/dpo" --out "$OUT/dpo.json" --compare "$OUT/sft.json"
