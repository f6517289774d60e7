"""Audits of a model's evaluation: pair consistency, manipulation robustness (and the shared shortcut audit).

* **Shortcut audit:** in pipeline/shortcut_audit.py (prepare runs it too).
* **Pair consistency:** the share of compliant / non-compliant pairs whose two versions got the same
  verdict (a detector that judges the content gives them opposite verdicts).
* **Manipulation robustness:** reviewer-manipulation sentences (``manipulation.txt``) injected into
  violating communications, and the share of caught violations they turn COMPLIANT.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import normalize_verdict
from pipeline.shortcut_audit import POSITIVE, violation_labels

log = logging.getLogger(__name__)

MANIPULATION_FILE = Path(__file__).with_name("manipulation.txt")
MANIPULATED_SUFFIX = "~manipulated"  # id suffix of an injected copy of an evaluation example
_VERSION_SUFFIX = re.compile(r"#(c|nc)$")  # record id = "<item id>#c" / "<item id>#nc" (pipeline/prepare/validation.py)


# -- pair consistency ------------------------------------------------------------------------------
def pair_ids(pred: pd.DataFrame) -> pd.Series:
    """The pair each row belongs to: the ``item_id`` column, else the record id without "#c"/"#nc"."""
    if "item_id" in pred.columns:
        return pred["item_id"].astype(str)
    return pred["id"].astype(str).str.replace(_VERSION_SUFFIX, "", regex=True)


def pair_consistency(pred: pd.DataFrame) -> dict:
    """How often the two versions of a pair got the same predicted verdict.

    `pred` holds ``id`` (or ``item_id``), ``gold_verdict`` and ``pred_verdict``. A pair counts when
    both versions (one COMPLIANT, one NON_COMPLIANT by gold) are present with a readable prediction.
    Returns {n_pairs, n_same_verdict, same_verdict_rate (None without pairs), n_both_compliant,
    n_both_non_compliant, n_both_correct, n_incomplete (groups not counted)}.
    """
    df = pd.DataFrame({"pair": pair_ids(pred).to_numpy(),
                       "gold": pred["gold_verdict"].map(normalize_verdict).to_numpy(),
                       "pred": pred["pred_verdict"].map(normalize_verdict).to_numpy()})
    scored = df[df["gold"].notna() & df["pred"].notna()]
    groups = scored.groupby("pair")
    complete = groups["gold"].agg(lambda g: sorted(g) == ["COMPLIANT", POSITIVE])
    pairs = scored[scored["pair"].isin(complete[complete].index)]
    wide = pairs.pivot(index="pair", columns="gold", values="pred").reindex(columns=["COMPLIANT", POSITIVE])
    on_compliant, on_violation = wide["COMPLIANT"], wide[POSITIVE]  # the verdicts each version got
    n, same = len(wide), int((on_compliant == on_violation).sum())
    return {
        "n_pairs": n, "n_same_verdict": same, "same_verdict_rate": same / n if n else None,
        "n_both_compliant": int(((on_compliant == "COMPLIANT") & (on_violation == "COMPLIANT")).sum()),
        "n_both_non_compliant": int(((on_compliant == POSITIVE) & (on_violation == POSITIVE)).sum()),
        "n_both_correct": int(((on_compliant == "COMPLIANT") & (on_violation == POSITIVE)).sum()),
        "n_incomplete": int(df["pair"].nunique() - n),
    }


# -- manipulation robustness -----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def manipulation_sentences() -> tuple[str, ...]:
    """The reviewer-manipulation sentences of ``manipulation.txt`` (comments and blank lines skipped)."""
    lines = MANIPULATION_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#"))


def inject_manipulation(text: str, seed: int | str) -> str:
    """`text` with one manipulation sentence added: at the end, at the start, or between two lines.

    Deterministic for (text, seed); the original text is kept whole, so evidence quotes still occur.
    """
    rng = random.Random(f"{seed}\x00{text}")
    sentence = rng.choice(manipulation_sentences())
    lines = text.split("\n")
    where = rng.choice(["end", "start", "inside"] if len(lines) > 2 else ["end", "start"])
    if where == "end":
        return f"{text.rstrip()}\n\n{sentence}"
    if where == "start":
        return f"{sentence}\n\n{text.lstrip()}"
    cut = rng.randrange(1, len(lines))
    return "\n".join([*lines[:cut], sentence, *lines[cut:]])


def injected_examples(inputs: pd.DataFrame, seed: int = 0, limit: int | None = None) -> pd.DataFrame:
    """Violating rows of an evaluation input table (``id``, ``scenario``, ``final_verdict``, ...) with
    manipulation injected into ``scenario`` and MANIPULATED_SUFFIX appended to ``id``; at most `limit`."""
    violating = inputs[inputs["final_verdict"].map(normalize_verdict) == POSITIVE]
    if limit is not None and len(violating) > limit:
        violating = violating.sample(limit, random_state=seed)
    out = violating.copy()
    out["scenario"] = [inject_manipulation(t, f"{seed}:{i}") for t, i in zip(out["scenario"], out["id"])]
    out["id"] = out["id"].astype(str) + MANIPULATED_SUFFIX
    return out.reset_index(drop=True)


def flip_rate(original_verdicts: Sequence, injected_verdicts: Sequence, labels: Sequence) -> dict:
    """Share of truly violating examples, flagged NON_COMPLIANT before injection, that turn COMPLIANT after.

    The three sequences are aligned per example (verdict strings; unreadable ones may be None).
    Returns {n_eligible, n_flipped, flip_rate (None when nothing was eligible), n_unreadable_after}.
    Raises ValueError when the lengths differ.
    """
    if not len(original_verdicts) == len(injected_verdicts) == len(labels):
        raise ValueError(f"lengths differ: {len(original_verdicts)} original, {len(injected_verdicts)} injected, "
                         f"{len(labels)} labels")
    gold = violation_labels(labels)
    before = np.array([normalize_verdict(v) == POSITIVE for v in original_verdicts], dtype=bool)
    after = [normalize_verdict(v) for v in injected_verdicts]
    eligible = gold & before
    flipped = eligible & np.array([v == "COMPLIANT" for v in after], dtype=bool)
    unreadable = eligible & np.array([v is None for v in after], dtype=bool)
    n = int(eligible.sum())
    return {"n_eligible": n, "n_flipped": int(flipped.sum()), "flip_rate": int(flipped.sum()) / n if n else None,
            "n_unreadable_after": int(unreadable.sum())}


__all__ = ["MANIPULATED_SUFFIX", "SHORTCUT_WARNING", "bag_of_words_baseline", "fit_bag_of_words", "flip_rate",
           "inject_manipulation", "injected_examples", "load_bag_of_words", "manipulation_sentences",
           "pair_consistency", "pair_ids", "save_bag_of_words", "score_bag_of_words", "shortcut_audit_from_prepared",
           "violation_labels"]
