"""Render an evaluation for people: report.md, a self-contained report.html, PNG figures; and run comparisons.

Figures are drawn on `matplotlib.figure.Figure` objects (Agg canvas), never through pyplot, so
importing or calling this module changes no global backend state. A page is built once as a list
of blocks (heading, paragraph, table, image, preformatted text) and written both as Markdown and
as HTML with the PNGs inlined, so a compliance officer can open one file.
"""

from __future__ import annotations

import base64
import html
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from pipeline.evaluate.audit_report import audit_blocks
from pipeline.inference.grounding import ground_evidence
from pipeline.evaluate.metrics import POSITIVE, headline
from pipeline.schema import normalize_verdict

EXCERPT_CHARS = 400
BREAKDOWN_HEADERS = ["n", "violations", "verdict acc", "recall", "topic acc"]
# ("h1".."h3", text) | ("p", text) | ("ul", items) | ("table", headers, rows) | ("img", file, alt)
# | ("pre", text)
Block = tuple


def write_report(pred: pd.DataFrame, metrics: dict, out_dir: Path, title: str,
                 communications: dict[str, str] | None = None, max_mistakes: int = 10) -> Path:
    """Write report.md, report.html and the PNGs for one run into `out_dir`; return report.md's path.

    `pred` is the table `compute_metrics` read. The worst mistakes show the predicted evidence from
    an optional ``evidence`` column (JSON text: a list of {"quote", "grounded", "score"}, as the
    evaluation stores it) or else a ``pred_evidence`` column of quote lists, grounded here against
    `communications` (id -> text), which also supply each mistake's opening.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v, p = metrics["verdict"], metrics["probability"]
    blocks: list[Block] = [
        ("h1", title),
        ("p", f"{metrics['n']} communications, {metrics['n_violations']} violations; "
              f"decision threshold on p_violation {metrics['threshold']}; "
              f"{v['n_unparseable']} predictions without a readable verdict (scored as wrong)."),
        ("table", ["metric", "value"], [[k, _fmt(x)] for k, x in headline(metrics).items()]),
        ("h2", "Verdict"),
        ("img", _plot_confusion(v["confusion"], out_dir / "verdict_confusion.png", "Verdict", False),
         "verdict confusion"),
        ("table", ["prevalence", "precision (verdict)", "precision (p >= threshold)"],
         [[f"{float(k) * 100:g}%", _fmt(v["precision_at_prevalence"][k]),
           _fmt(p["precision_at_prevalence"].get(k))] for k in v["precision_at_prevalence"]]),
    ]
    blocks.append(("h2", "Probability of violation"))
    if p["roc_auc"] is not None:
        roc_png, pr_png = _plot_curves(pred, out_dir)
        blocks += [("img", roc_png, "ROC curve"), ("img", pr_png, "precision-recall curve"),
                   ("img", _plot_calibration(p, out_dir / "calibration.png"), "reliability diagram"),
                   ("p", f"Brier {_fmt(p['brier'])}, ECE {_fmt(p['ece'])} over {p['n_scored']} scored rows; "
                         f"at p >= {metrics['threshold']}: precision {_fmt(p['precision'])}, "
                         f"TPR {_fmt(p['tpr'])}, FPR {_fmt(p['fpr'])}.")]
    else:
        blocks.append(("p", "Curves and calibration skipped: " + "; ".join(metrics["notes"])))
    blocks += [
        ("h2", "Compliance topic"),
        ("img", _plot_confusion(metrics["topic"]["confusion"], out_dir / "topic_confusion.png",
                                "Topic (rows normalised)", True), "topic confusion"),
        ("table", ["gold topic", *BREAKDOWN_HEADERS], _rows(metrics["by_topic"])),
        ("h2", "By format"),
        ("table", ["format", *BREAKDOWN_HEADERS], _rows(metrics["by_format"])),
        ("h2", "By source"),
        ("table", ["source", *BREAKDOWN_HEADERS], _rows(metrics["by_source"])),
        *(audit_blocks(metrics["audits"]) if "audits" in metrics else []),
        ("h2", "Worst mistakes"),
        *_mistake_blocks(pred, communications or {}, max_mistakes),
    ]
    if metrics["notes"]:
        blocks += [("h2", "Notes"), ("p", "; ".join(metrics["notes"]))]
    (out_dir / "report.html").write_text(_html(blocks, out_dir, title), encoding="utf-8")
    path = out_dir / "report.md"
    path.write_text(_markdown(blocks), encoding="utf-8")
    return path


def comparison_rows(runs: list[tuple[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows: one row per headline metric, each run's value, then Δ vs the first run."""
    names = [name for name, _ in runs]
    values = [headline(m) for _, m in runs]
    headers = ["metric", *names, *[f"Δ {name}" for name in names[1:]]]
    rows = []
    for key in values[0]:
        base = values[0][key]
        deltas = [None if base is None or vals[key] is None else vals[key] - base for vals in values[1:]]
        rows.append([key, *[_fmt(vals[key]) for vals in values], *[_fmt(d, signed=True) for d in deltas]])
    return headers, rows


def comparison_text(runs: list[tuple[str, dict]]) -> str:
    """The comparison as a fixed-width table for a console."""
    headers, rows = comparison_rows(runs)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    # The metric name left-aligned, numbers right-aligned so decimal points line up.
    lines = ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)])
             for r in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_comparison(runs: list[tuple[str, dict]], out_dir: Path) -> Path:
    """Write comparison.md, comparison.html and comparison.png for (name, metrics) runs; return the .md path.

    Deltas are against the first run (e.g. the base model). Raises ValueError for fewer than two runs.
    """
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least two runs; got {len(runs)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    headers, rows = comparison_rows(runs)
    title = "Comparison: " + " vs ".join(name for name, _ in runs)
    blocks: list[Block] = [("h1", title), ("table", headers, rows),
                           ("img", _plot_comparison(runs, out_dir / "comparison.png"),
                            "headline metrics by run")]
    (out_dir / "comparison.html").write_text(_html(blocks, out_dir, title), encoding="utf-8")
    path = out_dir / "comparison.md"
    path.write_text(_markdown(blocks), encoding="utf-8")
    return path


def _fmt(x: object, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "—"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(x)
    return f"{round(x, 3) + 0.0:+.3f}" if signed else f"{x:.3f}"  # + 0.0 turns -0.0 into 0.0


def _rows(breakdown: list[dict]) -> list[list[str]]:
    return [[r["key"], str(r["n"]), str(r["n_violations"]), _fmt(r["verdict_accuracy"]), _fmt(r["recall"]),
             _fmt(r["topic_accuracy"])] for r in breakdown]


def _mistake_blocks(pred: pd.DataFrame, communications: dict, limit: int) -> list[Block]:
    """False negatives first (lowest p_violation: the most confident misses), then false positives."""
    df = pred.reset_index(drop=True).assign(
        _gold=pred["gold_verdict"].map(normalize_verdict).to_numpy(),
        _pred=pred["pred_verdict"].map(normalize_verdict).to_numpy(),
        _p=pd.to_numeric(pred["p_violation"], errors="coerce").to_numpy())
    misses = df[(df._gold == POSITIVE) & (df._pred != POSITIVE)]
    misses = misses.sort_values("_p", na_position="last", kind="stable")
    alarms = df[(df._gold != POSITIVE) & (df._pred == POSITIVE)]
    alarms = alarms.sort_values("_p", ascending=False, kind="stable")
    worst = pd.concat([misses.assign(_kind="missed violation"), alarms.assign(_kind="false alarm")])
    worst = worst.head(limit)
    if worst.empty:
        return [("p", "No verdict mistakes.")]
    blocks: list[Block] = [
        ("p", f"{len(misses)} missed violations, {len(alarms)} false alarms; the worst {len(worst)}:")]
    for _, row in worst.iterrows():
        text = communications.get(row["id"])
        evidence = _evidence_lines(row, text)
        blocks += [
            ("h3", f"{row['id']} ({row['_kind']})"),
            ("table", ["", "gold", "predicted"], [
                *[[name, _text(row[f"gold_{name}"]), _text(row[f"pred_{name}"])]
                  for name in ("verdict", "topic", "severity", "rule")],
                ["p_violation", "", _fmt(row["_p"])], ["parse status", "", str(row["parse_status"])]]),
            ("p", "Predicted evidence:" if evidence else "Predicted evidence: none."),
            ("ul", evidence),
        ]
        if text is not None:
            blocks.append(("pre", text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")))
    return blocks


def _evidence_lines(row: pd.Series, text: str | None) -> list[str]:
    stored = row.get("evidence")
    if isinstance(stored, str):
        try:
            items = [g for g in json.loads(stored) if isinstance(g, dict)]
        except (ValueError, TypeError):
            items = []
        return [f"[{'grounded' if g.get('grounded') else 'NOT GROUNDED'} {g.get('score') or 0:.0f}] "
                f"{g.get('quote')}" for g in items]
    quotes = row.get("pred_evidence")
    quotes = list(quotes) if isinstance(quotes, (list, tuple, np.ndarray)) else []
    if text is None:
        return [f"[not checked] {q}" for q in quotes]
    return [f"[{'grounded' if g.grounded else 'NOT GROUNDED'} {g.score:.0f}] {g.quote}"
            for g in ground_evidence(quotes, text)]


def _text(value: object) -> str:
    # A missing prediction shows as such, not as the string "None" (a real topic label).
    return value if isinstance(value, str) else "(unreadable)"


def _short(label: str, width: int = 28) -> str:
    return textwrap.shorten(label, width, placeholder="…")


def _plot_confusion(confusion: dict, path: Path, title: str, normalise: bool) -> str:
    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"], dtype=float)
    keep = matrix.sum(axis=1) > 0  # rows: gold classes only; columns: everything predicted
    rows, row_labels = matrix[keep], [lab for lab, k in zip(labels, keep, strict=True) if k]
    shown = rows / rows.sum(axis=1, keepdims=True) if normalise else rows
    size = max(4.0, 0.5 * len(labels) + 3)
    fig = Figure(figsize=(size + 1.5, size * 0.8 + 1), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0, aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.7)
    ax.set_xticks(range(len(labels)), [_short(x) for x in labels], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), [_short(x, 36) for x in row_labels], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    if len(labels) <= 20:
        for (i, j), value in np.ndenumerate(shown):
            if value == 0 and normalise:  # blank zeros keep the diagonal and real confusions readable
                continue
            text = f"{value:.0%}" if normalise else f"{value:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if len(labels) > 6 else 12,
                    color="white" if value > 0.6 * max(shown.max(), 1e-9) else "black")
    fig.savefig(path, dpi=110)
    return path.name


def _plot_curves(pred: pd.DataFrame, out_dir: Path) -> tuple[str, str]:
    """roc.png and pr.png from the rows that carry a p_violation."""
    p = pd.to_numeric(pred["p_violation"], errors="coerce").to_numpy(dtype=float)
    scored = ~np.isnan(p)
    y = (pred["gold_verdict"].map(normalize_verdict) == POSITIVE).to_numpy()[scored]
    fpr, tpr, _ = roc_curve(y, p[scored])
    precision, recall, _ = precision_recall_curve(y, p[scored])
    curves = (("roc.png", fpr, tpr, ([0, 1], [0, 1], "chance"),
               ("false positive rate", "true positive rate", "ROC")),
              ("pr.png", recall, precision, ([0, 1], [y.mean()] * 2, f"prevalence {y.mean():.2f}"),
               ("recall", "precision", "Precision-recall")))
    for name, xs, ys, (bx, by, base_label), (xlabel, ylabel, title) in curves:
        fig = Figure(figsize=(5, 4.5), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(xs, ys, label="model")
        ax.plot(bx, by, "--", color="grey", label=base_label)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower right" if name == "roc.png" else "lower left")
        fig.savefig(out_dir / name, dpi=110)
    return "roc.png", "pr.png"


def _plot_calibration(probability: dict, path: Path) -> str:
    bins = probability["calibration"]
    fig = Figure(figsize=(5.5, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = [b for b in bins if b["count"]]
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    top.plot([b["mean_predicted"] for b in filled], [b["observed_rate"] for b in filled], "o-", label="model")
    top.set(ylabel="observed violation rate", title=f"Reliability (ECE {_fmt(probability['ece'])})")
    top.legend(loc="upper left")
    bottom.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["count"] for b in bins], width=0.09)
    bottom.set(xlabel="predicted p_violation", ylabel="count")
    fig.savefig(path, dpi=110)
    return path.name


def _plot_comparison(runs: list[tuple[str, dict]], path: Path) -> str:
    values = [headline(m) for _, m in runs]
    keys = list(values[0])
    width = 0.8 / len(runs)
    fig = Figure(figsize=(max(8, len(keys) * 0.9), 4.5), layout="constrained")
    ax = fig.add_subplot()
    for k, ((name, _), vals) in enumerate(zip(runs, values, strict=True)):
        heights = [np.nan if vals[key] is None else vals[key] for key in keys]
        ax.bar(np.arange(len(keys)) + (k - (len(runs) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), title="Headline metrics")
    ax.legend()
    fig.savefig(path, dpi=110)
    return path.name


def _markdown(blocks: list[Block]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            headers, rows = rest
            cell = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            out.append("\n".join(["| " + " | ".join(cell(h) for h in headers) + " |",
                                  "|" + "---|" * len(headers),
                                  *["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]]))
        elif kind == "ul" and rest[0]:
            out.append("\n".join("- " + item.replace("\n", " ") for item in rest[0]))
        elif kind == "img":
            out.append(f"![{rest[1]}]({rest[0]})")
        elif kind == "pre":
            out.append("```text\n" + rest[0].replace("```", "'''") + "\n```")
    return "\n\n".join(out) + "\n"


def _html(blocks: list[Block], out_dir: Path, title: str) -> str:
    esc = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{esc(str(h))}</th>" for h in headers)
            cells = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
        elif kind == "ul" and rest[0]:
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in rest[0]) + "</ul>")
        elif kind == "img":
            data = base64.b64encode((out_dir / rest[0]).read_bytes()).decode("ascii")
            body.append(f'<img alt="{esc(rest[1])}" src="data:image/png;base64,{data}">')
        elif kind == "pre":
            body.append(f"<pre>{esc(rest[0])}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
             "th{background:#f2f2f2}img{max-width:100%}"
             "pre{background:#f7f7f7;padding:1em;white-space:pre-wrap}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


__all__ = ["comparison_rows", "comparison_text", "write_comparison", "write_report"]
