"""The shortcut audit, run by prepare (on the data) and by evaluate (beside a model): can the labels be read
off word choice alone?

A bag of words (TF-IDF over 1-2 grams + logistic regression) is trained on the train split and scored on
each evaluation set. When it is near-perfect, a model trained on the data will learn the words, not the
judgement. The fitted baseline can be saved as plain JSON (vocabulary, idf, coefficients), no pickle, so it
can serve later as a cheap first stage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.schema import normalize_verdict

log = logging.getLogger(__name__)

POSITIVE = "NON_COMPLIANT"
SHORTCUT_WARNING = ("your labels are predictable from word choice alone: test scores will overstate "
                    "performance on real communications")
NEAR_PERFECT_ACCURACY = 0.95
NEAR_PERFECT_AUC = 0.98
_VECTORIZER = dict(ngram_range=(1, 2), lowercase=True, sublinear_tf=True, min_df=2, max_features=50_000)


# -- bag of words --------------------------------------------------------------------------------
def violation_labels(labels: Sequence) -> np.ndarray:
    """Verdict strings ('NON_COMPLIANT', 'compliant', ...) or 0/1/bools -> bool array (True = violation).

    Raises ValueError naming the first values that are neither.
    """
    values = list(labels)
    if values and all(isinstance(v, str) for v in values):
        verdicts = [normalize_verdict(v) for v in values]
        bad = sorted({v for v, n in zip(values, verdicts) if n is None})
        if bad:
            raise ValueError(f"labels must be COMPLIANT / NON_COMPLIANT; got {bad[:5]}")
        return np.array([v == POSITIVE for v in verdicts], dtype=bool)
    try:
        return np.asarray(values, dtype=float).astype(bool)
    except (TypeError, ValueError) as e:
        raise ValueError(f"labels must be verdict strings or 0/1; got {values[:5]}") from e


def fit_bag_of_words(texts: Sequence[str], labels: Sequence, seed: int = 0):
    """A fitted scikit-learn Pipeline (TF-IDF 1-2 grams -> logistic regression); True = NON_COMPLIANT.

    Raises ValueError when the labels hold one class only (nothing to separate).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    y = violation_labels(labels)
    if len(np.unique(y)) < 2:
        raise ValueError("the bag-of-words baseline needs both verdicts in its training texts")
    # min_df=2 drops one-off words (ids, names) that only memorise examples; a tiny set keeps them all.
    params = {**_VECTORIZER, "min_df": 2 if len(texts) >= 50 else 1}
    model = make_pipeline(TfidfVectorizer(**params), LogisticRegression(C=10.0, max_iter=2000, random_state=seed))
    return model.fit(list(texts), y)


def score_bag_of_words(model, texts: Sequence[str], labels: Sequence) -> dict:
    """Accuracy, F1 (violation positive) and ROC-AUC (None with one class) of `model` on one set."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y = violation_labels(labels)
    p = model.predict_proba(list(texts))[:, 1]
    y_hat = p >= 0.5
    return {"n": int(len(y)), "n_violations": int(y.sum()), "accuracy": float(accuracy_score(y, y_hat)),
            "f1": float(f1_score(y, y_hat, zero_division=0)),
            "roc_auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None}


def bag_of_words_baseline(train_texts: Sequence[str], train_labels: Sequence,
                          eval_sets: dict[str, tuple[Sequence[str], Sequence]], seed: int = 0,
                          save_to: str | Path | None = None) -> dict:
    """Train the bag of words on the train texts, score it on every evaluation set.

    Returns {"model", "n_train", "sets": {name: {n, n_violations, accuracy, f1, roc_auc}},
    "near_perfect": [set names], "warning": SHORTCUT_WARNING naming those sets, or None}; when the train
    texts hold one verdict only, {"skipped": reason} instead. `save_to`: also write the model as JSON.
    """
    y = violation_labels(train_labels)
    if len(np.unique(y)) < 2:
        return {"skipped": f"the train split holds one verdict only ({len(y)} texts)"}
    model = fit_bag_of_words(train_texts, y, seed)
    sets = {name: score_bag_of_words(model, texts, labels) for name, (texts, labels) in eval_sets.items()
            if len(texts)}
    near = [name for name, s in sets.items()
            if s["accuracy"] >= NEAR_PERFECT_ACCURACY or (s["roc_auc"] or 0) >= NEAR_PERFECT_AUC]
    result = {"model": "TF-IDF 1-2 grams + logistic regression", "n_train": int(len(y)), "sets": sets,
              "near_perfect": near, "thresholds": {"accuracy": NEAR_PERFECT_ACCURACY, "roc_auc": NEAR_PERFECT_AUC},
              "warning": f"{SHORTCUT_WARNING} (near-perfect on: {', '.join(near)})" if near else None}
    if save_to is not None:
        save_bag_of_words(model, save_to)
        result["saved_to"] = str(save_to)
    if near:
        log.warning("shortcut audit: %s", result["warning"])
    return result


def shortcut_audit_from_prepared(prepared_dir: str | Path, extra_sets: dict[str, tuple] | None = None,
                                 splits: Sequence[str] = ("test",), max_train: int = 200_000, seed: int = 0,
                                 save_to: str | Path | None = None) -> dict:
    """`bag_of_words_baseline` on a prepared folder: trained on ``split=train``, scored on `splits`
    (those present) and on `extra_sets` (name -> (texts, labels)). Uses the ``scenario`` (the
    communication) and ``final_verdict`` columns the prepare job writes; at most `max_train` train
    records (a seeded sample) keep it fast on large data. Raises FileNotFoundError without a train split.
    """
    root = Path(prepared_dir)
    train = _read_split(root, "train")
    if train is None:
        raise FileNotFoundError(f"no {root / 'split=train'}: run jobs.prepare first")
    if len(train) > max_train:
        train = train.sample(max_train, random_state=seed)
    sets = {}
    for split in splits:
        part = _read_split(root, split)
        if part is not None:
            sets[split] = (part["scenario"].tolist(), part["final_verdict"].tolist())
    sets.update(extra_sets or {})
    return bag_of_words_baseline(train["scenario"].tolist(), train["final_verdict"].tolist(), sets, seed, save_to)


def _read_split(root: Path, split: str) -> pd.DataFrame | None:
    folder = root / f"split={split}"
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return None
    return pd.read_parquet(folder, columns=["scenario", "final_verdict"])


def save_bag_of_words(model, path: str | Path) -> Path:
    """Write a fitted `fit_bag_of_words` pipeline as JSON (vocabulary, idf, coefficients): no pickle."""
    vectorizer, classifier = model[0], model[-1]
    params = vectorizer.get_params()
    payload = {
        "kind": "tfidf_logreg", "positive": POSITIVE,
        "vectorizer": {k: params[k] for k in _VECTORIZER},
        "vocabulary": {term: int(i) for term, i in vectorizer.vocabulary_.items()},
        "idf": vectorizer.idf_.tolist(), "coef": classifier.coef_[0].tolist(),
        "intercept": float(classifier.intercept_[0]),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def load_bag_of_words(path: str | Path):
    """The pipeline `save_bag_of_words` wrote, ready for predict_proba (column 1 = P(NON_COMPLIANT))."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    payload = json.loads(Path(path).read_text())
    settings = payload["vectorizer"]
    vectorizer = TfidfVectorizer(**{**settings, "ngram_range": tuple(settings["ngram_range"])})
    vectorizer.vocabulary_ = payload["vocabulary"]
    vectorizer.idf_ = np.asarray(payload["idf"])
    classifier = LogisticRegression()
    classifier.classes_ = np.array([False, True])
    classifier.coef_ = np.asarray([payload["coef"]])
    classifier.intercept_ = np.asarray([payload["intercept"]])
    return make_pipeline(vectorizer, classifier)
