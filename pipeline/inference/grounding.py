"""Check that the detector's evidence quotes occur in the communication it judged.

A quote is grounded when it is a verbatim substring after whitespace is collapsed (line breaks
and double spaces differ between the model's copy and the source), or when it is close enough
by rapidfuzz's `partial_ratio`, the best alignment of the quote against any window of the
communication, to forgive a copying typo. A fabricated quote scores low and is flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from pipeline.schema import collapse_ws

DEFAULT_THRESHOLD = 90.0  # the one home of the grounding threshold: every config's default
# partial_ratio aligns the quote with its best window: against 3,000 characters almost any short
# phrase finds a near-match, so quotes shorter than this must occur exactly to count.
MIN_FUZZY_CHARS = 12


@dataclass(frozen=True)
class Grounding:
    """One evidence quote checked against its communication."""

    quote: str
    exact: bool  # whitespace-normalised, case-sensitive substring
    score: float  # 0-100; 100 when exact
    grounded: bool  # exact, or score >= threshold for a quote of MIN_FUZZY_CHARS or more


def ground_evidence(quotes: list[str], communication: str,
                    threshold: float = DEFAULT_THRESHOLD) -> list[Grounding]:
    """Ground each quote in `communication`; one `Grounding` per quote, in order.

    A quote that is blank or not text scores 0 and is ungrounded. Raises nothing for bad input.
    """
    haystack = collapse_ws(communication) if isinstance(communication, str) else ""
    results = []
    for quote in quotes:
        needle = collapse_ws(quote) if isinstance(quote, str) else ""
        if not needle or not haystack:
            results.append(Grounding(str(quote), False, 0.0, False))
            continue
        if needle in haystack:
            results.append(Grounding(quote, True, 100.0, True))
            continue
        score = float(fuzz.partial_ratio(needle, haystack))
        grounded = score >= threshold and len(needle) >= MIN_FUZZY_CHARS
        results.append(Grounding(quote, False, score, grounded))
    return results


def grounding_summary(groundings: list[Grounding]) -> dict:
    """Counts over quotes: {"n", "exact", "grounded", "rate"}; rate (grounded / n) is None when n == 0."""
    n = len(groundings)
    grounded = sum(g.grounded for g in groundings)
    return {
        "n": n,
        "exact": sum(g.exact for g in groundings),
        "grounded": grounded,
        "rate": grounded / n if n else None,
    }


def quote_span(quote: str, communication: str, threshold: float = DEFAULT_THRESHOLD) -> tuple[int, int] | None:
    """Where `quote` sits in `communication`: the [start, end) character offsets into the communication as
    given (not its whitespace-collapsed form), matched the way `ground_evidence` matches (verbatim after
    whitespace is collapsed, else the best fuzzy alignment scoring at least `threshold` for a quote of
    MIN_FUZZY_CHARS or more). None when the quote is not found, blank or not text."""
    if not isinstance(quote, str) or not isinstance(communication, str):
        return None
    needle = collapse_ws(quote)
    if not needle:
        return None
    # The collapsed text built word by word, with each of its characters' position in the original.
    parts, origin = [], []
    for m in _WORD.finditer(communication):
        if parts:
            parts.append(" ")
            origin.append(m.start() - 1)
        parts.append(m.group())
        origin.extend(range(m.start(), m.end()))
    haystack = "".join(parts)
    at = haystack.find(needle)
    if at >= 0:
        return origin[at], origin[at + len(needle) - 1] + 1
    if len(needle) < MIN_FUZZY_CHARS or not haystack:
        return None
    aligned = fuzz.partial_ratio_alignment(needle, haystack)
    if aligned is None or aligned.score < threshold or aligned.dest_end <= aligned.dest_start:
        return None
    return origin[aligned.dest_start], origin[aligned.dest_end - 1] + 1


_WORD = re.compile(r"\S+")

__all__ = ["DEFAULT_THRESHOLD", "MIN_FUZZY_CHARS", "Grounding", "ground_evidence", "grounding_summary", "quote_span"]
