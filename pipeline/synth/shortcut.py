"""Bag-of-words shortcut measure of a generator: how well word choice alone separates its two versions.

`bow_cross_validation` fits the shortcut audit's own bag of words (`pipeline.shortcut_audit.fit_bag_of_words`:
TF-IDF 1-2 grams + logistic regression, one definition for the generator's bound, the prepare manifest and
the evaluation report) with K-fold cross-validation grouped by pair (both versions of an item always fall in the same fold) on the scenario texts of
generated items, and returns accuracy, ROC-AUC and the share of pairs whose violating version
scores above its compliant one. A cue-free generator keeps accuracy well below 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def bow_cross_validation(items: Iterable[dict], folds: int = 5, seed: int = 0) -> dict[str, float]:
    """Grouped K-fold CV of TF-IDF(1-2 grams)+logistic regression on items' two scenarios.

    Takes items in the input schema (``compliant_version`` / ``non_compliant_version``); returns
    ``{"pairs", "accuracy", "roc_auc", "pair_ranking"}`` computed over out-of-fold predictions.
    Raises ValueError when there are fewer pairs than folds.
    """
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold

    from pipeline.shortcut_audit import fit_bag_of_words

    texts, labels, groups = [], [], []
    for n, item in enumerate(items):
        for key, label in (("compliant_version", 0), ("non_compliant_version", 1)):
            texts.append(item[key]["scenario"])
            labels.append(label)
            groups.append(n)
    pairs = len(set(groups))
    if pairs < folds:
        raise ValueError(f"need at least {folds} pairs for {folds}-fold cross-validation, got {pairs}")
    y = np.asarray(labels)
    score = np.zeros(len(texts))
    # Pairs are shuffled into folds by a seeded permutation of their group ids.
    perm = np.random.default_rng(seed).permutation(pairs)
    shuffled = perm[np.asarray(groups)]
    for train, test in GroupKFold(n_splits=folds).split(texts, y, shuffled):
        model = fit_bag_of_words([texts[i] for i in train], y[train], seed=seed)
        score[test] = model.predict_proba([texts[i] for i in test])[:, 1]
    nc, c = score[1::2], score[0::2]
    return {"pairs": float(pairs), "accuracy": float(accuracy_score(y, score >= 0.5)),
            "roc_auc": float(roc_auc_score(y, score)), "pair_ranking": float(np.mean(nc > c))}
