"""Long communications scored in windows: never cut, never rejected below the byte cap.

A communication whose prompt fits the model is one window. A longer one is split into windows whose
prompts fit the token budget, each repeating about `overlap_tokens` of the one before, cut where the text
allows: at line ends (a turn of a chat or transcript, a line of an e-mail), else at sentence ends, else
between words, else between characters. Every window is scored; the message's risk is its riskiest
window's; the flagged message is explained from its riskiest window(s), and every evidence quote carries
its character offsets into the original message (located as grounding matches it,
`pipeline.inference.grounding.quote_span`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pipeline.score.config import ChunkingConfig

log = logging.getLogger(__name__)

Encode = Callable[[list[str]], list[list[int]]]  # communications -> their prompt ids
Count = Callable[[list[str]], list[int]]  # bare texts -> their token counts

# Cut points from the coarsest to the finest: after a line break, after a sentence's end, after a space.
_CUTS = [re.compile(r"\n"), re.compile(r"(?<=[.!?;:\u2026])[\"')\]]*\s+"), re.compile(r"\s+")]
EXPLANATION_COLUMNS = ("pred_json", "pred_verdict", "pred_topic", "pred_severity", "pred_rule", "evidence",
                       "parse_status", "grounded_rate", "new_tokens")


@dataclass(frozen=True)
class Window:
    """Characters [start, end) of a communication, and the ids of the prompt that holds them."""

    start: int
    end: int
    prompt: list[int]


def prompt_budget(positions: int | None, verdict_prefix_tokens: int, max_new_tokens: int,
                  explain: bool) -> int | None:
    """Most prompt tokens that leave room in `positions` for the verdict prefix (scoring) and, when flagged
    messages are explained, the answer budget; None when the model states no context size."""
    if not positions:
        return None
    return positions - max(verdict_prefix_tokens, max_new_tokens if explain else 0)


def _pieces(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """[start, end) split after every cut point of `level` (pieces cover the span, in order)."""
    if level >= len(_CUTS):
        return [(start, end)]
    spans, at = [], start
    for m in _CUTS[level].finditer(text, start, end):
        if m.end() > at and m.end() < end:
            spans.append((at, m.end()))
            at = m.end()
    spans.append((at, end))
    return spans


def _segments(text: str, count: Count, room: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Spans covering `text`, each at most `room` tokens by `count`, cut at the coarsest boundary that allows."""
    out, tokens = [], []
    todo = [(0, len(text), 0)]
    while todo:
        batch, todo = todo, []
        spans = [(s, e, lvl) for s, e, lvl in batch]
        counts = count([text[s:e] for s, e, _ in spans])
        for (s, e, lvl), n in zip(spans, counts):
            if n <= room or e - s <= 1:
                out.append((s, e))
                tokens.append(n)
            elif lvl < len(_CUTS):
                todo.extend((ps, pe, lvl + 1) for ps, pe in _pieces(text, s, e, lvl))
            else:  # no boundary left: equal character slices (a character is at most a few tokens)
                step = max(1, (e - s) * room // (2 * n))
                todo.extend((i, min(i + step, e), lvl) for i in range(s, e, step))
    order = sorted(range(len(out)), key=lambda i: out[i][0])
    return [out[i] for i in order], [tokens[i] for i in order]


def _pack(spans: list[tuple[int, int]], tokens: list[int], room: int, overlap: int) -> list[tuple[int, int]]:
    """Consecutive spans packed greedily into windows of at most `room` tokens; each next window starts with the
    last spans of the previous one that fit in `overlap` tokens (always moving forward)."""
    windows, i, n = [], 0, len(spans)
    while i < n:
        j, used = i, 0
        while j < n and (used + tokens[j] <= room or j == i):
            used += tokens[j]
            j += 1
        windows.append((spans[i][0], spans[j - 1][1]))
        if j == n:
            break
        k, back = j, 0
        while k - 1 > i and back + tokens[k - 1] <= overlap:
            back += tokens[k - 1]
            k -= 1
        i = k
    return windows


def split_windows(text: str, encode: Encode, count: Count, budget: int | None, overlap_tokens: int) -> list[Window]:
    """Windows of `text` whose prompts (by `encode`) have at most `budget` tokens; one window when the whole text
    fits or `budget` is None. `count` gives bare token counts of pieces (the prompt's own tokens are measured
    once with an empty communication). Raises ValueError when the prompt without any text exceeds `budget`."""
    [whole] = encode([text])
    if budget is None or len(whole) <= budget:
        return [Window(0, len(text), whole)]
    overhead = len(encode([""])[0])
    room = budget - overhead
    if room < 8:
        raise ValueError(f"the prompt's own {overhead} tokens leave {room} of a {budget}-token window for text")
    overlap = min(overlap_tokens, room // 2)
    # Token counts of pieces do not add up exactly to the count of their concatenation; a window over the budget
    # is planned again with the room narrowed by its excess.
    for _ in range(6):
        spans, tokens = _segments(text, count, room)
        planned = _pack(spans, tokens, room, overlap)
        prompts = encode([text[s:e] for s, e in planned])
        excess = max(len(p) for p in prompts) - budget
        if excess <= 0:
            return [Window(s, e, p) for (s, e), p in zip(planned, prompts)]
        room -= excess + 4
        if room < 8:
            break
    raise ValueError(f"could not split a {len(text)}-character communication into {budget}-token windows")


def token_counter(tokenizer) -> Count:
    """A `Count` from a Hugging Face tokenizer (no special tokens added)."""
    return lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def evidence_with_offsets(record, window: Window, text: str, index: int, threshold: float) -> list[dict]:
    """The grounded quotes of one window's verdict record with [start, end) offsets into the whole `text` (None
    when the quote is not found in the window) and the window's index."""
    from pipeline.inference.grounding import quote_span

    piece = text[window.start:window.end]
    out = []
    for g in record.evidence:
        span = quote_span(g.quote, piece, threshold)
        out.append({"quote": g.quote, "grounded": g.grounded, "score": round(g.score, 1),
                    "start": window.start + span[0] if span else None,
                    "end": window.start + span[1] if span else None, "window": index})
    return out


def score_communications(detector, texts: list[str], budget: int | None, chunking: ChunkingConfig,
                         threshold: float, explain: bool) -> pd.DataFrame:
    """Score `texts` through their windows with `detector` (pipeline.inference.engine.Detector), one row each:
    windows, p_violation (the riskiest window's), flagged, risk_start/risk_end (that window's characters) and,
    for flagged messages when `explain`, the verdict columns of the riskiest window with evidence quotes located
    in the original text (evidence from the `chunking.explain_windows` riskiest flagged windows)."""
    from pipeline.inference.grounding import DEFAULT_THRESHOLD
    from pipeline.inference.verdicts import read_verdict

    count = token_counter(detector.tokenizer)
    windows = [split_windows(t, detector.encode_prompts, count, budget, chunking.overlap_tokens) for t in texts]
    flat = [(m, w) for m, ws in enumerate(windows) for w in range(len(ws))]
    if any(len(ws) > 1 for ws in windows):
        log.info("%d message(s) scored in %d windows", sum(len(ws) > 1 for ws in windows),
                 sum(len(ws) for ws in windows if len(ws) > 1))
    probs = detector.score([windows[m][w].prompt for m, w in flat]).probability
    by_message: list[list[float]] = [[] for _ in texts]
    for (m, _), p in zip(flat, probs):
        by_message[m].append(float(p))
    riskiest = [max(range(len(ps)), key=ps.__getitem__) for ps in by_message]
    rows = [{"windows": len(ws), "p_violation": by_message[m][riskiest[m]],
             "risk_start": ws[riskiest[m]].start, "risk_end": ws[riskiest[m]].end} for m, ws in enumerate(windows)]
    for row in rows:
        row["flagged"] = row["p_violation"] >= threshold
    if explain:
        chosen = [(m, w) for m, ps in enumerate(by_message) if rows[m]["flagged"]
                  for w in sorted(range(len(ps)), key=lambda i: -ps[i])[:chunking.explain_windows]
                  if ps[w] >= threshold]
        generations = detector.generate([windows[m][w].prompt for m, w in chosen]) if chosen else []
        evidence: dict[int, list[dict]] = {}
        for (m, w), gen in zip(chosen, generations):
            window = windows[m][w]
            record = read_verdict(gen, texts[m][window.start:window.end])
            evidence.setdefault(m, []).extend(evidence_with_offsets(record, window, texts[m], w, DEFAULT_THRESHOLD))
            if w == riskiest[m]:
                columns = record.columns()
                rows[m].update({c: columns[c] for c in EXPLANATION_COLUMNS if c in columns})
        for m, quotes in evidence.items():
            rows[m]["evidence"] = json.dumps(quotes, ensure_ascii=False)
    return pd.DataFrame(rows)
