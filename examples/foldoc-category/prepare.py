#!/usr/bin/env python3
"""Builds the FOLDOC category task: given a computing-dictionary entry (its term and the
start of its definition, with the category tag removed), answer with its category, one of
eight. Writes train.jsonl (chat examples for `kiln finetune sft`), test.jsonl and
dpo_prompts.jsonl ({"prompt", "answer"} for evaluation and for `kiln data prefs`), and
eval.jsonl (a small held-out chat set for the fine-tuning loss curve).

Usage: prepare.py FOLDOC_DICT_DZ OUT_DIR   (the .dict.dz of Debian's dict-foldoc)
"""
import gzip
import json
import os
import random
import re
import sys

CATEGORIES = ["language", "networking", "programming", "jargon", "operating system",
              "hardware", "communications", "company"]
TRAIN, DPO, EVAL, TEST = 1000, 400, 64, 300


def entries(path):
    text = gzip.open(path, "rt", errors="ignore").read()
    head, body = None, []
    for line in text.split("\n"):
        if line and not line[0].isspace():
            if head is not None:
                yield head, " ".join(x.strip() for x in body if x.strip())
            head, body = line.strip(), []
        elif head is not None:
            body.append(line)
    if head is not None:
        yield head, " ".join(x.strip() for x in body if x.strip())


def prompt(term, definition):
    return (
        "Classify this entry from a dictionary of computing. Answer with exactly one "
        "category from this list: " + ", ".join(CATEGORIES) + ".\n\n"
        f"Term: {term}\nDefinition: {definition}"
    )


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    items = []
    for term, body in entries(src):
        m = re.match(r"^(\([^)]*\)\s*)?<([^>]+)>\s*(.*)$", body)
        if not m:
            continue
        cat = m.group(2).split(",")[0].strip()
        if cat not in CATEGORIES:
            continue
        # Cross-reference braces and the trailing date carry no meaning for the task.
        definition = re.sub(r"[{}]", "", m.group(3))
        definition = re.sub(r"\(\d{4}-\d{2}-\d{2}\)\s*$", "", definition).strip()
        if len(definition) < 40:
            continue
        if len(definition) > 400:
            definition = definition[:400].rsplit(" ", 1)[0] + " ..."
        items.append((term, definition, cat))
    random.Random(0).shuffle(items)
    need = TRAIN + DPO + EVAL + TEST
    if len(items) < need:
        sys.exit(f"only {len(items)} usable entries, need {need}")
    train, dpo = items[:TRAIN], items[TRAIN:TRAIN + DPO]
    ev, test = items[TRAIN + DPO:TRAIN + DPO + EVAL], items[-TEST:]

    def chat(rows, path):
        with open(path, "w") as f:
            for term, d, cat in rows:
                f.write(json.dumps({"messages": [
                    {"role": "user", "content": prompt(term, d)},
                    {"role": "assistant", "content": cat}]}) + "\n")

    def prompts(rows, path):
        with open(path, "w") as f:
            for term, d, cat in rows:
                f.write(json.dumps({"prompt": prompt(term, d), "answer": cat}) + "\n")

    chat(train, f"{out}/train.jsonl")
    chat(ev, f"{out}/eval.jsonl")
    prompts(dpo, f"{out}/dpo_prompts.jsonl")
    prompts(test, f"{out}/test.jsonl")
    print(f"{len(items)} usable entries: train {len(train)}, dpo prompts {len(dpo)}, "
          f"eval {len(ev)}, test {len(test)}")


if __name__ == "__main__":
    main()
