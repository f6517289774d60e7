"""Check that the detector's evidence quotes occur in the communication it judged.

A quote is grounded when it is a verbatim substring after whitespace is collapsed (line breaks
and double spaces differ between the model's copy and the source), or when it is close enough
by rapidfuzz's `partial_ratio`, the best alignment of the quote against any window of the
communication, to forgive a copying typo. A fabricated quote scores low and is flagged.
"""

from __future__ import annotations

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


__all__ = ["DEFAULT_THRESHOLD", "MIN_FUZZY_CHARS", "Grounding", "ground_evidence", "grounding_summary"]
