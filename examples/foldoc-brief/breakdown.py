#!/usr/bin/env python3
"""Splits `kiln finetune eval --scorer regex` results on the FOLDOC brief task by
constraint: how often each model keeps the word limit, the lowercase rule and the
no-commas rule (each counted over the prompts that state it), and how long its answers
are. The regex scorer checks form only, so the content is measured apart: word-overlap F1
against the prompt's "reference" (the entry's first sentence cut to fit), as SQuAD scores
answers, and the first answers are printed.

Usage: breakdown.py TEST_JSONL EVAL_JSON [EVAL_JSON ...]
"""
import json
import re
import sys
from collections import Counter


LEAST_WORDS = 3  # as prepare.py scores


def constraints(prompt):
    m = re.search(r"Use at most (\d+) words\.", prompt)
    if not m:
        raise ValueError(f"no word limit in prompt: {prompt[:80]!r}")
    return int(m.group(1)), "Write only lowercase" in prompt, "Do not use any commas" in prompt


def overlap_f1(answer, reference):
    a = re.findall(r"[a-z0-9]+", answer.lower())
    r = re.findall(r"[a-z0-9]+", reference.lower())
    common = sum((Counter(a) & Counter(r)).values())
    if not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def load_jsonl(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"{path}:{n}: not JSON ({e})")
    return rows


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    test = load_jsonl(sys.argv[1])
    if any("reference" not in r for r in test):
        sys.exit(f"{sys.argv[1]}: lines without \"reference\" (written by an older prepare.py)")
    rules = [constraints(r["prompt"]) for r in test]
    print(f"{'model':<12} {'all':>6} {'words':>6} {'lower':>6} {'commas':>7} "
          f"{'mean words':>10} {'words/limit':>11} {'F1':>5}")
    for path in sys.argv[2:]:
        with open(path) as f:
            try:
                ev = json.load(f)
                items = ev["items"]
            except (json.JSONDecodeError, KeyError):
                sys.exit(f"{path}: not the JSON of `kiln finetune eval --out`")
        if len(items) != len(test):
            sys.exit(f"{path}: {len(items)} items, {sys.argv[1]} has {len(test)}")
        kept = {"all": [], "words": [], "lower": [], "commas": []}
        words, ratio, f1 = [], [], []
        for item, row, (n, lower, no_commas) in zip(items, test, rules):
            text = item["completion"].strip()
            count = len(text.split())
            kept["all"].append(item["score"])
            kept["words"].append(LEAST_WORDS <= count <= n)
            if lower:
                kept["lower"].append(not re.search("[A-Z]", text))
            if no_commas:
                kept["commas"].append("," not in text)
            words.append(count)
            ratio.append(count / n)
            f1.append(overlap_f1(text, row["reference"]))

        def pct(xs):
            return f"{100 * sum(xs) / len(xs):5.1f}%"

        name = path.rsplit("/", 1)[-1].removesuffix(".json")
        print(f"{name:<12} {pct(kept['all']):>6} {pct(kept['words']):>6} "
              f"{pct(kept['lower']):>6} {pct(kept['commas']):>7} "
              f"{sum(words) / len(words):10.1f} {sum(ratio) / len(ratio):11.2f} "
              f"{sum(f1) / len(f1):5.2f}")
    for path in sys.argv[2:]:
        with open(path) as f:
            items = json.load(f)["items"]
        print(f"\n{path}: first answers")
        for item, row in list(zip(items, test))[:4]:
            term = re.search(r'what "([^"]+)" is', row["prompt"])
            print(f"  [{term.group(1) if term else '?'}] {item['completion'].strip()!r}")


if __name__ == "__main__":
    main()
