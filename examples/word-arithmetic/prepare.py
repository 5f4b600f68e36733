#!/usr/bin/env python3
"""Builds a GSM8K-style task that needs no download: short word problems of two to four
arithmetic steps (add, take away, buy boxes of several, share equally), each with a worked
solution, one line per step, ending "The answer is N." Writes train.jsonl (chat examples for
`kiln finetune sft`), eval.jsonl (a small held-out chat set for the loss curve), test.jsonl
and dpo_prompts.jsonl ({"prompt", "answer"} for `kiln finetune eval --scorer number` and
`kiln data prefs --scorer number`). The sets are drawn from one seeded generator and no
problem text appears in two of them.

With --column-share P (0 by default), a share P of the training solutions, drawn apart
from the problems so the problems stay the same, work every addition and subtraction digit
by digit, units first, as in column arithmetic ("52 - 27: 12 - 7 = 5, 4 - 2 = 2, so 25.")
instead of writing the result at once: a training set written in two styles, one of which
is more often right.

Usage: prepare.py OUT_DIR [--column-share P]
"""
import argparse
import json
import os
import random
import sys

TRAIN, EVAL, TEST, DPO = 1000, 64, 300, 500

NAMES = [("Sara", "she", "her"), ("Tom", "he", "his"), ("Mia", "she", "her"),
         ("Ali", "he", "his"), ("Lena", "she", "her"), ("Omar", "he", "his"),
         ("Grace", "she", "her"), ("Ben", "he", "his"), ("Priya", "she", "her"),
         ("Jack", "he", "his")]
ITEMS = [("apples", "bag"), ("marbles", "jar"), ("stickers", "pack"), ("pencils", "box"),
         ("cookies", "tray"), ("cards", "deck"), ("books", "crate"), ("eggs", "carton"),
         ("shells", "bucket"), ("stamps", "sheet")]
FRIENDS = ["a friend", "a cousin", "a neighbour", "the teacher", "a classmate"]


def digits(n):
    return [int(d) for d in reversed(str(n))]


def column_add(a, b):
    """a + b worked units first, each carry written out."""
    da, db, parts, carry = digits(a), digits(b), [], 0
    for i in range(max(len(da), len(db))):
        x, y = (da + [0] * 9)[i], (db + [0] * 9)[i]
        s = x + y + carry
        parts.append(f"{x} + {y}" + (" + 1" if carry else "") + f" = {s}")
        carry = s // 10
    return f"{a} + {b}: " + ", ".join(parts) + f", so {a + b}"


def column_sub(a, b):
    """a - b (a > b) worked units first, each borrow folded into the digit it lowers."""
    da, db, parts, borrow = digits(a), digits(b), [], 0
    for i in range(len(da)):
        x, y = da[i] - borrow, (db + [0] * 9)[i]
        borrow = 1 if x < y else 0
        parts.append(f"{x + 10 * borrow} - {y} = {x + 10 * borrow - y}")
    return f"{a} - {b}: " + ", ".join(parts) + f", so {a - b}"


def problem(rng, column=False):
    """One problem: its text, its worked solution and its answer."""
    add = column_add if column else (lambda a, b: f"{a} + {b} = {a + b}")
    sub = column_sub if column else (lambda a, b: f"{a} - {b} = {a - b}")
    name, he, his = rng.choice(NAMES)
    item, unit = rng.choice(ITEMS)
    x = rng.randint(5, 40)
    text = [f"{name} has {x} {item}."]
    steps = []
    n_steps = rng.choice([2, 3, 3, 4])
    for i in range(n_steps):
        last = i == n_steps - 1
        kinds = ["add", "sub", "boxes"]
        # Sharing comes last, and only when it divides evenly.
        shares = [k for k in range(2, 7) if x % k == 0 and x // k >= 2]
        if last and shares:
            kinds.append("share")
        kind = rng.choice(kinds)
        if kind == "sub" and x < 4:
            kind = "add"
        if kind == "add":
            b = rng.randint(2, 30)
            text.append(f"{he.capitalize()} finds {b} more {item}.")
            steps.append(f"{add(x, b)}.")
            x += b
        elif kind == "sub":
            b = rng.randint(2, x - 1)
            friend = rng.choice(FRIENDS)
            text.append(f"{he.capitalize()} gives {b} {item} to {friend}.")
            steps.append(f"{sub(x, b)}.")
            x -= b
        elif kind == "boxes":
            k, m = rng.randint(2, 5), rng.randint(2, 12)
            text.append(f"{he.capitalize()} buys {k} {unit}s with {m} {item} in each {unit}.")
            steps.append(f"{k} {unit}s of {m}: {k} x {m} = {k * m}. {add(x, k * m)}.")
            x += k * m
        else:
            k = rng.choice(shares)
            text.append(f"{he.capitalize()} shares all {his} {item} equally among {k} people.")
            steps.append(f"{x} / {k} = {x // k}.")
            x //= k
            question = f"How many {item} does each person get?"
            break
    else:
        question = f"How many {item} does {name} have now?"
    text.append(question)
    solution = "\n".join(steps) + f"\nThe answer is {x}."
    return " ".join(text), solution, x


def prompt(text):
    return "Solve this problem step by step. End with \"The answer is N.\"\n\n" + text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--column-share", type=float, default=0.0)
    args = ap.parse_args()
    if not 0.0 <= args.column_share <= 1.0:
        sys.exit(f"--column-share {args.column_share}: expected a share from 0 to 1")
    out = args.out
    os.makedirs(out, exist_ok=True)
    # The style has its own generator: the problems (and so test.jsonl and
    # dpo_prompts.jsonl) do not depend on the share.
    rng, style = random.Random(0), random.Random(1)
    seen, rows = set(), []
    while len(rows) < TRAIN + EVAL + TEST + DPO:
        state = rng.getstate()
        text, _, answer = problem(rng)
        column = style.random() < args.column_share
        rng.setstate(state)
        text, solution, answer = problem(rng, column)
        if text not in seen:
            seen.add(text)
            rows.append((text, solution, answer))
    train, ev = rows[:TRAIN], rows[TRAIN:TRAIN + EVAL]
    test = rows[TRAIN + EVAL:TRAIN + EVAL + TEST]
    dpo = rows[TRAIN + EVAL + TEST:]

    def chat(items, path):
        with open(path, "w") as f:
            for text, solution, _ in items:
                f.write(json.dumps({"messages": [
                    {"role": "user", "content": prompt(text)},
                    {"role": "assistant", "content": solution}]}) + "\n")

    def prompts(items, path):
        with open(path, "w") as f:
            for text, _, answer in items:
                f.write(json.dumps({"prompt": prompt(text), "answer": str(answer)}) + "\n")

    chat(train, f"{out}/train.jsonl")
    chat(ev, f"{out}/eval.jsonl")
    prompts(test, f"{out}/test.jsonl")
    prompts(dpo, f"{out}/dpo_prompts.jsonl")
    print(f"train {len(train)}, eval {len(ev)}, test {len(test)}, dpo prompts {len(dpo)}")


if __name__ == "__main__":
    main()
