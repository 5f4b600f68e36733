#!/usr/bin/env python3
"""Cuts each preference pair down to its first differing step (Step-DPO, Lai et al. 2024).

`kiln data prefs` pairs a whole solution ending in the right number with a whole one that
does not. After a solution's first slip every later line is usually right arithmetic on the
wrong number ("11 - 7 = 5. 5 + 4 = 9."), so DPO on whole solutions also pushes those correct
steps down. Here chosen and rejected keep their shared lines and the first line where they
differ, nothing after it, and are marked "partial" so that `kiln finetune dpo` leaves their
turns open (no end-of-turn scored): the pair says which next step is right, not that the
answer stops there.

Usage: step_pairs.py prefs.jsonl step_prefs.jsonl
"""
import json
import os
import sys


def first_step_pair(chosen: str, rejected: str):
    c, r = chosen.split("\n"), rejected.split("\n")
    for i, (a, b) in enumerate(zip(c, r)):
        if a != b:
            return "\n".join(c[: i + 1]), "\n".join(r[: i + 1])
    return None  # one is a prefix of the other: no step tells them apart


def main(src: str, dst: str) -> None:
    kept = skipped = 0
    with open(src) as f, open(dst + ".tmp", "w") as out:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
                cut = first_step_pair(pair["chosen"], pair["rejected"])
            except (json.JSONDecodeError, KeyError) as e:
                sys.exit(f"{src}:{n}: expected a pair with chosen and rejected: {e}")
            if cut is None:
                skipped += 1
                continue
            pair["chosen"], pair["rejected"] = cut
            pair["partial"] = True
            out.write(json.dumps(pair) + "\n")
            kept += 1
    os.replace(dst + ".tmp", dst)
    print(f"{kept} step pairs ({skipped} pairs without a differing line); wrote {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
