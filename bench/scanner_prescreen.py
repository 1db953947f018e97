"""Cost of the registry's keyword pre-screens: the flat alternation they were vs the trie they are compiled to.

    .venv/bin/python bench/scanner_prescreen.py [--lines 3000] [--seed 7]

Every recognizer with `prescreen_words` (recognizers.yaml) is timed both ways on lines of the Faker corpus (the
shape of a gateway prompt or a short dataset field): `(?i)\\b(?:w1|w2|...)`, the regex the YAML held before,
and `prescreens.word_prefix_regex`, the one the registry builds now. Both must agree on every line (the
bench counts disagreements); it prints microseconds per line and per 100 characters, split by whether a
keyword is found (a miss scans the whole line, the expensive case)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.faker_corpus import generate_corpus
from services.scanner.adapters.detector import DEFAULT_REGISTRY
from services.scanner.adapters.prescreens import word_prefix_regex


def flat_regex(words: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?i)\b(?:" + "|".join(re.escape(w) for w in words) + ")")


def per_line_us(pattern: re.Pattern[str], lines: list[str], repeat: int) -> float:
    search = pattern.search
    start = time.perf_counter()
    for _ in range(repeat):
        for line in lines:
            search(line)
    return (time.perf_counter() - start) / (repeat * len(lines)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lines = [line for record in generate_corpus(args.lines, seed=args.seed) for line in record.text.splitlines()]
    lines = [line for line in lines if line.strip()][: args.lines]
    mean_chars = sum(map(len, lines)) / len(lines)
    print(f"{len(lines)} corpus lines (seed {args.seed}), mean {mean_chars:.0f} characters")
    for spec in yaml.safe_load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))["recognizers"]:
        words = spec.get("prescreen_words")
        if not words:
            continue
        flat, trie = flat_regex(words), word_prefix_regex(words)
        disagree = sum((flat.search(line) is None) != (trie.search(line) is None) for line in lines)
        hits = [line for line in lines if trie.search(line)]
        misses = [line for line in lines if not trie.search(line)]
        print(f"\n{spec['name']}: {len(words)} words; {len(hits)} lines with a keyword, {len(misses)} without")
        print(f"  disagreements flat vs trie: {disagree}")
        heads = ("flat us/line", "trie us/line", "flat us/100ch", "trie us/100ch", "speed-up")
        print(f"  {'':14} " + " ".join(f"{h:>14}" for h in heads))
        for label, group in (("all lines", lines), ("no keyword", misses), ("keyword", hits)):
            if not group:
                continue
            chars = sum(map(len, group)) / len(group)
            f, t = per_line_us(flat, group, args.repeat), per_line_us(trie, group, args.repeat)
            figures = (f, t, f * 100 / chars, t * 100 / chars)
            print(f"  {label:14} " + " ".join(f"{x:14.2f}" for x in figures) + f" {f / t:13.1f}x")


if __name__ == "__main__":
    main()
