"""write_report / write_comparison render files a person can open: Markdown, self-contained HTML, PNGs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.metrics import compute_metrics
from pipeline.evaluate.report import comparison_text, write_comparison, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("verdict_confusion.png", "topic_confusion.png", "roc.png", "pr.png", "calibration.png")
TOPICS = ("Guarantees Against Loss", "Churning and Excessive Trading", "Know Your Customer")


def _run(seed: int = 0, n: int = 40) -> tuple[pd.DataFrame, dict[str, str]]:
    """A predictions table with a known miss (m-fn, p=0.02) and a known false alarm (m-fp, p=0.97)."""
    rng = np.random.default_rng(seed)
    rows, communications = [], {}
    for i in range(n):
        violation = i % 2 == 0
        topic = TOPICS[i % 3] if violation else "None"
        p = float(np.clip(0.75 * violation + rng.uniform(0, 0.25), 0, 1))
        line = "I promise you cannot lose money here. " if violation else "Returns vary. "
        text = f"Advisor: message {i}. " + line * 30
        rows.append(dict(id=f"c{i}", gold_verdict="NON_COMPLIANT" if violation else "COMPLIANT",
                         gold_topic=topic,
                         gold_severity="HIGH" if violation else "NONE",
                         gold_rule="FINRA Rule 2150(b)" if violation else "None",
                         format=("email", "chat")[i % 2], source="FINRA", p_violation=p, parse_status="ok",
                         pred_evidence=["I promise you cannot lose money here."] if violation else []))
        communications[f"c{i}"] = text
    rows[0].update(id="m-fn", p_violation=0.02)
    rows[1].update(id="m-fp", p_violation=0.97,
                   pred_evidence=["You will double your money by Friday, guaranteed."])
    rows[2].update(id="m-unparseable", p_violation=np.nan, parse_status="parse_error")
    communications["m-fn"], communications["m-fp"] = communications.pop("c0"), communications.pop("c1")
    communications["m-unparseable"] = communications.pop("c2")
    df = pd.DataFrame(rows)
    verdict = np.where(df.p_violation >= 0.5, "NON_COMPLIANT", "COMPLIANT").astype(object)
    verdict[df.parse_status == "parse_error"] = None
    df["pred_verdict"] = verdict
    df["pred_topic"] = np.where(verdict == "NON_COMPLIANT", df.gold_topic.replace("None", TOPICS[0]), "None")
    df.loc[df.parse_status == "parse_error", "pred_topic"] = None
    df["pred_severity"] = np.where(verdict == "NON_COMPLIANT", "HIGH", "NONE")
    df["pred_rule"] = np.where(verdict == "NON_COMPLIANT", "FINRA 2150", "None")
    df["grounded_rate"] = np.where(df.pred_evidence.map(len) > 0, 1.0, np.nan)
    df["n_quotes"] = df.pred_evidence.map(len)
    return df, communications


def test_report_renders_every_part(tmp_path):
    pred, communications = _run()
    metrics = compute_metrics(pred)
    path = write_report(pred, metrics, tmp_path / "eval", "Base model on the test split", communications)
    assert path == tmp_path / "eval" / "report.md"
    for name in FIGURES:
        data = (tmp_path / "eval" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    md = path.read_text(encoding="utf-8")
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert md.startswith("# Base model on the test split")
    assert "| Guarantees Against Loss | 7 | 7 |" in md  # per-topic table: gold topic, n, violations
    for name in FIGURES:
        assert f"]({name})" in md
    # One self-contained file: every figure inlined, nothing fetched from elsewhere.
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', page)) == len(FIGURES)
    assert "http://" not in page and "https://" not in page
    assert page.count("<table>") >= 5 and "<td>Know Your Customer</td>" in page
    # Worst mistakes: the confident miss before the unparseable one, both before the false alarm.
    order = [page.index(f"<h3>{i} (") for i in ("m-fn", "m-unparseable", "m-fp")]
    assert order == sorted(order)
    assert "[NOT GROUNDED" in page and "[grounded 100] I promise you cannot lose money here." in page
    assert "Advisor: message 0." in page  # the start of the communication
    assert "<td>verdict</td><td>NON_COMPLIANT</td><td>(unreadable)</td>" in page  # m-unparseable


def test_report_without_probabilities_or_communications(tmp_path):
    pred, _ = _run()
    pred = pred.assign(p_violation=np.nan)
    metrics = compute_metrics(pred)
    md = write_report(pred, metrics, tmp_path, "No logprobs").read_text(encoding="utf-8")
    assert "Curves and calibration skipped: no p_violation values" in md
    assert not (tmp_path / "roc.png").exists() and (tmp_path / "verdict_confusion.png").exists()
    assert "[not checked] You will double your money by Friday, guaranteed." in md


def test_report_reads_stored_evidence_flags(tmp_path):
    pred, _ = _run()
    pred["evidence"] = [json.dumps([{"quote": q, "grounded": i != 1, "score": 100.0 if i != 1 else 41.5}
                                    for q in quotes]) for i, quotes in enumerate(pred.pred_evidence)]
    write_report(pred.drop(columns=["pred_evidence"]), compute_metrics(pred), tmp_path, "Stored flags")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "- [NOT GROUNDED 42] You will double your money by Friday, guaranteed." in md


def test_comparison(tmp_path):
    base_pred, _ = _run(seed=0)
    tuned_pred, _ = _run(seed=1)
    tuned_pred["parse_status"] = "ok"  # the tuned model always answers JSON
    tuned_pred.loc[tuned_pred.pred_verdict.isna(), "pred_verdict"] = "NON_COMPLIANT"
    runs = [("base", compute_metrics(base_pred)), ("lora", compute_metrics(tuned_pred))]
    path = write_comparison(runs, tmp_path)
    md = path.read_text(encoding="utf-8")
    assert "| metric | base | lora | Δ lora |" in md
    assert "| JSON validity | 0.975 | 1.000 | +0.025 |" in md
    assert (tmp_path / "comparison.png").read_bytes().startswith(PNG_MAGIC)
    page = (tmp_path / "comparison.html").read_text(encoding="utf-8")
    assert "<th>Δ lora</th>" in page and "data:image/png;base64," in page
    text = comparison_text(runs)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "base", "lora", "Δ", "lora"]
    assert len({len(line) for line in lines}) == 1  # fixed width
    assert re.search(r"JSON validity\s+0\.975\s+1\.000\s+\+0\.025$", text, re.MULTILINE)
    with pytest.raises(ValueError, match="at least two runs"):
        write_comparison(runs[:1], tmp_path)
