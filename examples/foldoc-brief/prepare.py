#!/usr/bin/env python3
"""Builds the FOLDOC brief task, instruction following with checkable constraints (as in
IFEval): given a computing-dictionary entry, say what the term is in at most N words, and
for some prompts also in lowercase only and/or without commas. Each prompt's "answer" is a
regular expression that holds exactly when every constraint it states does and the answer
has at least three words (a sentence, not a bare article), for `kiln
finetune eval --scorer regex` and `kiln data prefs --scorer regex` (no --regex: each line
carries its own). The training answers are the entry's first sentence made to fit: cut to
N words at a word that can end a phrase, lower-cased, commas dropped; the prompt files carry
that answer as "reference" too (breakdown.py compares answers with it).

Writes train.jsonl (chat examples for `kiln finetune sft`), eval.jsonl (a small held-out
chat set for the loss curve), test.jsonl and dpo_prompts.jsonl ({"prompt", "answer"}).

Usage: prepare.py FOLDOC_DICT_DZ OUT_DIR   (the .dict.dz of Debian's dict-foldoc)
"""
import importlib.util
import json
import os
import random
import re
import sys

TRAIN, DPO, EVAL, TEST = 1000, 500, 64, 300
# Scored answers must also have at least this many words: "one short sentence" is not a
# bare "a.", which is what DPO learned when only the stated limits were checked.
LEAST_WORDS = 3
# Words a cut phrase must not end on ("a language for the.").
DANGLING = {"a", "an", "the", "of", "for", "to", "and", "or", "in", "on", "with", "by",
            "that", "which", "as", "is", "are", "from", "at", "its", "their", "be", "it"}

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "foldoc_category", os.path.join(HERE, "..", "foldoc-category", "prepare.py"))
foldoc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(foldoc)


def first_sentence(definition):
    # A sentence ends at ". " before a capital, not at "e.g. " or "(...)".
    text = re.sub(r"\([^)]*\)", "", definition)
    text = re.sub(r"\s+", " ", text).strip()
    m = re.match(r"(.+?[.!?])\s+(?=[A-Z])", text)
    s = (m.group(1) if m else text).strip()
    return s.rstrip(".!?… ").strip()


def fit(sentence, n, lower, no_commas):
    """The sentence cut to at most n words, ending on a word that can close a phrase."""
    if no_commas:
        sentence = sentence.replace(",", "")
    if lower:
        sentence = sentence.lower()
    words = sentence.split()[:n]
    while len(words) > 1 and words[-1].lower().strip(",;:") in DANGLING:
        words.pop()
    return " ".join(words).rstrip(",;:") + "."


def constraint(rng):
    return rng.randint(5, 14), rng.random() < 0.5, rng.random() < 0.5


def instruction(term, definition, n, lower, no_commas):
    rules = [f"Use at most {n} words."]
    if lower:
        rules.append("Write only lowercase letters.")
    if no_commas:
        rules.append("Do not use any commas.")
    return (f"Say in one short sentence what \"{term}\" is. " + " ".join(rules) +
            f"\n\nDictionary entry: {definition}")


def pattern(n, lower, no_commas, least=1):
    """A word is a run of non-space characters; the banned ones are left out of it."""
    word = r"[^\s" + ("A-Z" if lower else "") + ("," if no_commas else "") + "]+"
    return rf"^\s*{word}(\s+{word}){{{least - 1},{n - 1}}}\s*$"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    items = []
    for term, body in foldoc.entries(src):
        m = re.match(r"^(\([^)]*\)\s*)?<([^>]+)>\s*(.*)$", body)
        if not m:
            continue
        definition = re.sub(r"[{}]", "", m.group(3))
        definition = re.sub(r"\(\d{4}-\d{2}-\d{2}\)\s*$", "", definition).strip()
        sentence = first_sentence(definition)
        if len(definition) < 40 or len(sentence.split()) < 4:
            continue
        if len(definition) > 400:
            definition = definition[:400].rsplit(" ", 1)[0] + " ..."
        items.append((term, definition, sentence))
    rng = random.Random(0)
    rng.shuffle(items)
    need = TRAIN + DPO + EVAL + TEST
    if len(items) < need:
        sys.exit(f"only {len(items)} usable entries, need {need}")
    rows = [(t, d, s, constraint(rng)) for t, d, s in items[:need]]
    train, dpo = rows[:TRAIN], rows[TRAIN:TRAIN + DPO]
    ev, test = rows[TRAIN + DPO:TRAIN + DPO + EVAL], rows[-TEST:]

    def chat(part, path):
        with open(path, "w") as f:
            for term, d, s, c in part:
                answer = fit(s, *c)
                assert re.match(pattern(*c), answer), (answer, c)
                f.write(json.dumps({"messages": [
                    {"role": "user", "content": instruction(term, d, *c)},
                    {"role": "assistant", "content": answer}]}) + "\n")

    def prompts(part, path):
        with open(path, "w") as f:
            for term, d, s, c in part:
                f.write(json.dumps({"prompt": instruction(term, d, *c),
                                    "answer": pattern(*c, least=LEAST_WORDS),
                                    "reference": fit(s, *c)}) + "\n")

    chat(train, f"{out}/train.jsonl")
    chat(ev, f"{out}/eval.jsonl")
    prompts(dpo, f"{out}/dpo_prompts.jsonl")
    prompts(test, f"{out}/test.jsonl")
    print(f"{len(items)} usable entries: train {len(train)}, dpo prompts {len(dpo)}, "
          f"eval {len(ev)}, test {len(test)}")


if __name__ == "__main__":
    main()
