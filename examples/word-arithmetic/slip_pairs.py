#!/usr/bin/env python3
"""Turns the SFT model's own arithmetic steps into step preference pairs.

Most wrong answers of the SFT model come from one slip in a line ("43 + 16 = 69."), after
which every later line is right arithmetic on the wrong number. Pairs of whole sampled
solutions (`kiln data prefs`) mostly contrast slips that temperature-1 sampling made, which
greedy decoding would not make anyway. Here the completions are the model's greedy answers
(`kiln finetune eval --out`, the decoder the test uses). For each one with a slip, the
rejected answer is its text up to and including the first wrong result, and the chosen one
is the same text with that result computed correctly. With --slips-only that is all; by
default each slip is balanced by a right step of the same operation (chosen: the model's
own result; rejected: that result moved by the size of one of the model's slips on that
operation), since when the rejected result is always the one the model would write DPO
wins every pair by lowering whatever the model would write.

All pairs are marked "partial" so that `kiln finetune dpo` leaves their turns open: a pair
says which number comes next, not that the answer stops there. In DPO the shared text
cancels, so the whole preference falls on the digits of the result.

Usage: slip_pairs.py [--slips-only] [--max-pairs N] PROMPTS.jsonl EVAL.json
       [PROMPTS.jsonl EVAL.json ...] OUT.jsonl
   (EVAL.json: `kiln finetune eval --out` on PROMPTS.jsonl; its items name their lines)
"""
import argparse
import json
import os
import random
import re
import sys

EQUATION = re.compile(r"(\d+) ([-+x/]) (\d+) = (\d+)")


def result(a: int, op: str, b: int):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "x":
        return a * b
    return a // b if b and a % b == 0 else None  # the task only shares evenly


def steps(completion: str):
    """Each equation up to the first wrong one: (text before its result, op, result, right)."""
    for m in EQUATION.finditer(completion):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        right = result(a, op, b)
        if right is None:
            return
        yield completion[: m.start(4)], op, c, right
        if c != right:
            return


def read_prompts(path: str):
    prompts = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                prompts.append(None)
                continue
            try:
                prompts.append(json.loads(line)["prompt"])
            except (json.JSONDecodeError, KeyError) as e:
                sys.exit(f"{path}:{n}: expected {{\"prompt\": ...}}: {e}")
    return prompts


def read_steps(prompts_path: str, eval_path: str):
    """Every checked step of every greedy answer, as (prompt, head, op, written, right)."""
    prompts = read_prompts(prompts_path)
    try:
        with open(eval_path) as f:
            items = json.load(f)["items"]
    except (json.JSONDecodeError, KeyError) as e:
        sys.exit(f"{eval_path}: expected `kiln finetune eval --out` JSON with items: {e}")
    for item in items:
        line = item["line"]
        if not 1 <= line <= len(prompts) or prompts[line - 1] is None:
            sys.exit(f"{eval_path}: item for line {line} has no prompt in {prompts_path}")
        for head, op, written, right in steps(item["completion"]):
            yield prompts[line - 1], head, op, written, right


def pair(prompt, head, right, wrong):
    return {"prompt": prompt, "chosen": f"{head}{right}.", "rejected": f"{head}{wrong}.",
            "partial": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="PROMPTS.jsonl EVAL.json pairs, then OUT.jsonl")
    ap.add_argument("--slips-only", action="store_true",
                    help="every first slip, in answer order, and no right steps")
    ap.add_argument("--max-pairs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    *sources, dst = args.inputs
    if not sources or len(sources) % 2:
        sys.exit("expected PROMPTS.jsonl EVAL.json pairs, then OUT.jsonl")
    steps_in_order = [step for prompts_path, eval_path in zip(sources[::2], sources[1::2])
                      for step in read_steps(prompts_path, eval_path)]
    slips, right_steps = {}, {}
    for prompt, head, op, written, right in steps_in_order:
        kind = slips if written != right else right_steps
        kind.setdefault(op, []).append((prompt, head, written, right))
    rng = random.Random(args.seed)
    pairs = []
    if args.slips_only:
        ordered = [(p, h, w, r) for p, h, op, w, r in steps_in_order if w != r]
        pairs = [pair(p, h, r, w) for p, h, w, r in ordered[: args.max_pairs]]
        write(pairs, dst)
        return
    for op, wrong in slips.items():
        # As many right steps as slips, per operation, each against a slip the model makes
        # on that operation: otherwise "lower whatever digit you would write" wins every pair.
        deltas = [w - r for _, _, w, r in wrong]
        rights = right_steps.get(op, [])
        rng.shuffle(rights)
        contrasts = []
        for prompt, head, _, right in rights[: len(wrong)]:
            wrong_result = right + rng.choice(deltas)
            if wrong_result >= 0:
                contrasts.append(pair(prompt, head, right, wrong_result))
        kept = wrong[: len(contrasts)]
        pairs += [pair(p, h, r, w) for p, h, w, r in kept] + contrasts
        print(f"{op}: {len(wrong)} slips in greedy answers, {len(kept)} kept, "
              f"{len(contrasts)} right steps against a typical slip")
    rng.shuffle(pairs)
    write(pairs[: args.max_pairs], dst)


def write(pairs, dst: str) -> None:
    with open(dst + ".tmp", "w") as out:
        for p in pairs:
            out.write(json.dumps(p) + "\n")
    os.replace(dst + ".tmp", dst)
    print(f"{len(pairs)} pairs; wrote {dst}")


if __name__ == "__main__":
    main()
