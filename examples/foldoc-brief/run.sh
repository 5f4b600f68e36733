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
source "$HERE/../pipeline.sh"
DICT="$ASSETS/foldoc/foldoc.dict.dz"
OUT="${1:-runs/foldoc-brief}"
need_assets "$MODEL" "$DICT"

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$DICT" "$OUT"
copy_configs "$HERE" sft dpo
# --scorer regex without --regex: each line's "answer" is its own pattern.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer regex --max-tokens 48)

base_then_sft
sample_pairs --scorer regex --max-tokens 48
dpo_then_eval
# Which constraints each model keeps, answer length, and overlap with the reference answers.
python3 "$HERE/breakdown.py" "$OUT/test.jsonl" "$OUT/base.json" "$OUT/sft.json" "$OUT/dpo.json"
