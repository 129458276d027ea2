#!/usr/bin/env python3
"""BENCHMARK HELPER, NOT PART OF THE PRODUCT: the top functions of a py-spy profile.

Reads py-spy's ``--format raw`` output (collapsed stacks: ``frame;frame;... count``)
and prints each function's share of all samples, by self time (the leaf
frame) and inclusive time (anywhere on the stack)::

    py-spy record --format raw -o /tmp/csms.txt --pid PID --duration 10
    python scripts/bench/pyspy_top.py /tmp/csms.txt --top 25
"""

from __future__ import annotations

import argparse
import collections
import re

# py-spy frames look like "function (path/to/file.py:123)"; the line varies by sample.
_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """The frame without its line number, the path shortened to the package."""
    name = _LINE.sub(")", frame.strip())
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in name:
            head, _, tail = name.partition("(")
            name = f"{head}({tail.split(marker, 1)[-1]}"
    return name


def summarise(path: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [frame_name(f) for f in stack.split(";") if f]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    return total, own, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("raw", help="py-spy --format raw output")
    parser.add_argument("--top", type=int, default=20)
    options = parser.parse_args()
    total, own, inclusive = summarise(options.raw)
    if not total:
        raise SystemExit(f"no samples in {options.raw}")
    print(f"{total} samples")
    print("\nself time (the function itself, at the top of the stack):")
    for name, count in own.most_common(options.top):
        print(f"  {100 * count / total:5.1f} %  {name}")
    print("\ninclusive time (the function and what it calls):")
    for name, count in inclusive.most_common(options.top):
        print(f"  {100 * count / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
