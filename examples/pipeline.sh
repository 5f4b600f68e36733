# Shared by the fine-tuning examples' run.sh (sourced, not run): where the model is, the
# config copies, and the stages every example runs the same way. A run.sh sets OUT, and
# EVAL (its `kiln finetune eval` arguments) before calling the stages.
KILN="${KILN:-kiln}"
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
MODEL="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"

# Exits naming the first file that scripts/fetch-assets.sh should have fetched.
need_assets() {
  for f in "$@"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/fetch-assets.sh" >&2; exit 1; }
  done
}

# copy_configs DIR NAME...: DIR/NAME.toml into $OUT with "MODEL" replaced by the GGUF's path.
copy_configs() {
  local dir="$1"
  shift
  for c in "$@"; do
    sed "s#\"MODEL\"#\"$MODEL\"#" "$dir/$c.toml" > "$OUT/$c.toml"
  done
}

run() { echo "+ $*" >&2; "$@"; }

# The base evaluated, LoRA-SFT, the SFT model evaluated against the base.
base_then_sft() {
  run "$KILN" --threads 2 "${EVAL[@]}" --out "$OUT/base.json"
  run "$KILN" --threads 2 finetune sft --config "$OUT/sft.toml" --out "$OUT/sft"
  run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/sft" --out "$OUT/sft.json" --compare "$OUT/base.json"
}

# sample_pairs ARGS...: `kiln data prefs` from the SFT model on dpo_prompts.jsonl, 4 samples
# at temperature 1 with no other truncation, into prefs.jsonl; ARGS name the scorer and length.
sample_pairs() {
  run "$KILN" --threads 2 data prefs -m "$MODEL" --adapter "$OUT/sft" --prompts "$OUT/dpo_prompts.jsonl" \
    --samples 4 --temperature 1.0 --top-k 0 --top-p 1 --min-p 0 "$@" --out "$OUT/prefs.jsonl"
}

# DPO from the SFT adapter (dpo.toml), evaluated against the SFT model.
dpo_then_eval() {
  run "$KILN" --threads 2 finetune dpo --config "$OUT/dpo.toml" --out "$OUT/dpo"
  run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/dpo" --out "$OUT/dpo.json" --compare "$OUT/sft.json"
}
