"""Deterministic synthetic financial-advisor communications in the project's input schema (generator v2).

Each item is a cue-free minimal pair: one conversation rendered twice, differing only in its key
move, whose violating and compliant texts use the same words in different relations (swapped roles,
moved negation, which product is which), so word choice alone does not give the label away.
Shared material (small talk, distractors with trigger words, reviewer-manipulation sentences) is
identical in both versions. Item ``i`` depends only on ``(seed, i)``: generation can be sharded by
index range and re-run bit for bit.

Layout: `catalogue` reads the data files in ``catalogue/`` (taxonomy, scenarios, fillers, formats,
pools); `context` fills placeholders; `script` builds the turns; `render` writes the seven formats;
`generator` assembles labels; `shortcut` measures how well a bag of words separates the versions.
Importing has no side effects (the data files are read on first use).
"""

from __future__ import annotations

import gzip as gzip_module
import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.synth.catalogue import Topic, taxonomy, topics
from pipeline.synth.generator import SOURCES, make_item
from pipeline.synth.render import FORMATS

# Output file stem per source, mimicking the several real input files.
SOURCE_FILES = {"SEC": "sec_synthetic", "FINRA": "finra_synthetic", "internal": "internal_mutated"}


def generate_items(n_pairs: int, seed: int = 0, start: int = 0) -> Iterator[dict]:
    """Yield ``n_pairs`` items (indices ``start .. start+n_pairs-1``) in the input schema.

    Deterministic for (seed, index): item i is the same whatever n_pairs/start. Raises ValueError
    on negative arguments.
    """
    if n_pairs < 0 or start < 0:
        raise ValueError(f"n_pairs and start must be >= 0, got n_pairs={n_pairs}, start={start}")
    for index in range(start, start + n_pairs):
        yield make_item(index, seed)


def open_output(path: str | Path, gzip: bool | None = None):
    """A text writer for ``path``: gzip when the name ends with .gz or ``gzip`` is true."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gzip or path.name.endswith(".gz"):
        return gzip_module.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def to_line(item: dict) -> str:
    """One item as a JSON Lines line (with the newline)."""
    return json.dumps(item, ensure_ascii=False) + "\n"


def write_jsonl(path: str | Path, n_pairs: int, seed: int = 0, start: int = 0, gzip: bool | None = None) -> int:
    """Write items as JSON Lines (gzip when path ends with .gz or gzip=True); returns the count."""
    count = 0
    with open_output(path, gzip) as fh:
        for item in generate_items(n_pairs, seed, start):
            fh.write(to_line(item))
            count += 1
    return count


__all__ = ["FORMATS", "SOURCES", "SOURCE_FILES", "Topic", "generate_items", "make_item", "open_output",
           "taxonomy", "to_line", "topics", "write_jsonl"]
