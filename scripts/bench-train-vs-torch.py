#!/usr/bin/env python3
"""kiln vs PyTorch training speed on the `shakespeare-char` config, in the same run (issue 3,
acceptance 6): 200 steps of presets/shakespeare-char.toml in `kiln train` and in the
equivalent PyTorch model (scripts/train_torch_reference.py), 2 threads each. Rounds
alternate PyTorch, kiln, PyTorch, kiln, ... so machine noise falls on both; prints a
markdown table of tokens/s (median over rounds) and the kiln/PyTorch ratio.

    scripts/bench-train-vs-torch.py [--steps 200] [--threads 2] [--rounds 1] [--no-build]

tokens/s = steps * batch_size * context / wall time of the training steps (batch draw,
forward, backward, clipping, optimiser step), evaluation, checkpoints and start-up excluded,
as each engine reports it. Also reported: the median step's tokens/s, which bursts of load
from other tenants of a shared machine move much less than the mean.

Environment: KILN_VENV (the reference venv with torch; default ~/.cache/kiln/venv, see
scripts/setup-reference.sh; torch from `pip install torch`), CARGO_TARGET_DIR (default
~/.cache/kiln/target). Run from anywhere; paths are relative to the repository.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.path.expanduser("~")
VENV = os.environ.get("KILN_VENV", os.path.join(HOME, ".cache", "kiln", "venv"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HOME, ".cache", "kiln", "target"))
KILN = os.path.join(TARGET, "release", "kiln")
PRESET = os.path.join(REPO, "presets", "shakespeare-char.toml")
CORPUS = os.path.join(REPO, "data", "shakespeare", "input.txt")
# Where the preset's [data] dir points (../runs/data/shakespeare-char from presets/).
DATA_DIR = os.path.join(REPO, "runs", "data", "shakespeare-char")
TOKENIZER = os.path.join(REPO, "runs", "data", "shakespeare-char.tokenizer.json")


def log(msg):
    print(f"bench-train-vs-torch: {msg}", file=sys.stderr, flush=True)


def last_json(stdout):
    """The last line of stdout that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object on stdout")


def thread_env(threads):
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[v] = str(threads)
    return env


# --------------------------------------------------------------------------------------
# PyTorch side
# --------------------------------------------------------------------------------------
def run_torch(steps, threads):
    py = os.path.join(VENV, "bin", "python")
    cmd = [py, os.path.join(REPO, "scripts", "train_torch_reference.py"), "--steps", str(steps),
           "--threads", str(threads), "--eval-interval", str(steps), "--no-full-val", "--json",
           "--data", CORPUS]
    p = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads))
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise RuntimeError(f"PyTorch reference failed (exit {p.returncode}); is torch installed in {VENV}?")
    j = last_json(p.stdout)
    return {"tokens_per_s": j["tokens_per_s"], "median_step": j["median_step_tokens_per_s"],
            "loss": j["last_step_loss"], "val_loss": j.get("val_loss"),
            "detail": f"torch {j['torch']}, {j['threads']} threads"}


# --------------------------------------------------------------------------------------
# kiln side  (`kiln train`; until that command exists this reports "not available")
# --------------------------------------------------------------------------------------
def kiln_prepare_data(threads):
    """The preset's data directory: a char tokenizer and shards of the bundled corpus, made
    once with the commands in presets/shakespeare-char.toml's header (not timed)."""
    if os.path.exists(os.path.join(DATA_DIR, "manifest.json")):
        return
    env = thread_env(threads)
    os.makedirs(os.path.dirname(TOKENIZER), exist_ok=True)
    for cmd in (
        [KILN, "tokenizer", "train", "--kind", "char", "--input", CORPUS, "--out", TOKENIZER],
        [KILN, "data", "prepare", "-t", TOKENIZER, "-i", CORPUS, "-o", DATA_DIR],
    ):
        log("preparing data: " + " ".join(os.path.relpath(c, REPO) if c.startswith(REPO) else c for c in cmd))
        subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def run_kiln(steps, threads, out_dir):
    """`kiln --threads N train --config presets/shakespeare-char.toml --steps S --json`;
    expects one JSON object on stdout with a `tokens_per_s` field (and `final_loss`,
    `val_loss`)."""
    if not os.path.exists(KILN):
        raise RuntimeError(f"no kiln binary at {KILN}")
    kiln_prepare_data(threads)
    cmd = [KILN, "--threads", str(threads), "train", "--config", PRESET, "--steps", str(steps),
           "--json", "--out", out_dir]
    p = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads), cwd=REPO)
    if p.returncode != 0:
        raise RuntimeError(f"`kiln train` failed (exit {p.returncode}): {p.stderr.strip()[-800:]}")
    j = last_json(p.stdout)
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["tokens_per_s"] for line in f if line.strip()]
    return {"tokens_per_s": j["tokens_per_s"], "median_step": statistics.median(steps),
            "loss": j.get("final_loss"), "val_loss": j.get("val_loss"),
            "detail": f"kiln, {threads} threads"}


def build_kiln():
    log("building kiln (release)")
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "kiln"], check=True, cwd=REPO, env=env)


# --------------------------------------------------------------------------------------
def fmt(vals):
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    if len(vals) == 1:
        return f"{m:,.0f}"
    return f"{m:,.0f} ({min(vals):,.0f}–{max(vals):,.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-build", action="store_true", help="use the existing release binary")
    ap.add_argument("--torch-only", action="store_true", help="skip kiln")
    args = ap.parse_args()

    kiln_error = None
    if not args.torch_only and not args.no_build:
        try:
            build_kiln()
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            kiln_error = f"build failed: {e}"

    per = {"PyTorch": [], "kiln": []}
    step = {"PyTorch": [], "kiln": []}
    losses = {"PyTorch": [], "kiln": []}
    with tempfile.TemporaryDirectory(prefix="kiln-bench-train-") as tmp:
        for r in range(1, args.rounds + 1):
            log(f"round {r}/{args.rounds}: PyTorch, {args.steps} steps")
            t = run_torch(args.steps, args.threads)
            per["PyTorch"].append(t["tokens_per_s"])
            step["PyTorch"].append(t["median_step"])
            losses["PyTorch"].append(t["loss"])
            log(f"round {r}: PyTorch {t['tokens_per_s']:,.0f} tokens/s, loss {t['loss']:.4f} ({t['detail']})")
            if args.torch_only or kiln_error:
                continue
            log(f"round {r}/{args.rounds}: kiln, {args.steps} steps")
            try:
                k = run_kiln(args.steps, args.threads, os.path.join(tmp, f"run{r}"))
            except (RuntimeError, ValueError, KeyError, subprocess.CalledProcessError) as e:
                kiln_error = str(e)
                log(f"kiln train is not available yet: {kiln_error}")
                continue
            per["kiln"].append(k["tokens_per_s"])
            step["kiln"].append(k["median_step"])
            losses["kiln"].append(k["loss"])
            log(f"round {r}: kiln {k['tokens_per_s']:,.0f} tokens/s, loss {k['loss']}")

    print(f"`shakespeare-char` (4 layers, 4 heads, 128 dims, context 64, batch 12), {args.steps} steps, "
          f"{args.threads} threads, {args.rounds} round(s) alternating PyTorch and kiln; "
          f"tokens/s of the training steps (all steps; the median step), median (range over rounds)")
    print()
    print("| engine | tokens/s | ratio | median step tokens/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(f"| PyTorch {_torch_version()} | {fmt(per['PyTorch'])} | 1.00x | {fmt(step['PyTorch'])} | 1.00x |")
    if per["kiln"]:
        ratio = statistics.median(per["kiln"]) / statistics.median(per["PyTorch"])
        sratio = statistics.median(step["kiln"]) / statistics.median(step["PyTorch"])
        print(f"| kiln | {fmt(per['kiln'])} | {ratio:.2f}x | {fmt(step['kiln'])} | {sratio:.2f}x |")
    else:
        print("| kiln | n/a | n/a | n/a | n/a |")
        if not args.torch_only:
            print()
            print(f"kiln train is not available yet ({kiln_error}); PyTorch figure only.")


def _torch_version():
    try:
        out = subprocess.run([os.path.join(VENV, "bin", "python"), "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, env=thread_env(1)).stdout.strip()
        return out.split("+")[0] if out else ""
    except OSError:
        return ""


if __name__ == "__main__":
    main()
