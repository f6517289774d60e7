"""The reviewers' alert queue: flagged communications ranked by risk, as one self-contained HTML page and a CSV.

Each alert carries the model and data versions, the verdict, topic, rule and severity, the archive's
timestamp, channel and participants, and the message with its evidence quotes highlighted at their
offsets (a message scored in windows names its riskiest window and is shown around it when long).
The page has no external resource (inline CSS and JS, and a
Content-Security-Policy that forbids loading any), sorts on a header click, filters by text and
severity, and expands a row to its message. The texts are hostile input: every one is HTML-escaped
into the document (the script reads only `data-` attributes and textContent, never builds markup),
and CSV cells that a spreadsheet would run as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re

from pipeline.score.ledger import Ledger

# A long message is shown on the page around its first highlight; alerts.csv holds it whole.
SHOWN_CHARS = 20_000
COLUMNS = [("rank", "#", "num"), ("risk", "risk", "num"), ("id", "id", "text"), ("verdict", "verdict", "text"),
           ("topic", "topic", "text"), ("rule", "rule", "text"), ("severity", "severity", "text"),
           ("model", "model", "text"), ("data", "data", "text"), ("evidence", "evidence", "text")]
CSV_COLUMNS = ["rank", "id", "p_violation", "pred_verdict", "pred_topic", "pred_rule", "pred_severity", "evidence_quotes",
               "model_version", "data_version", "timestamp", "channel", "participants", "windows", "risk_start",
               "risk_end", "file", "line", "duplicate_of", "text"]


def write_alerts(ledger: Ledger, page_limit: int, data_version: str) -> dict:
    """Write alerts.html (the `page_limit` riskiest) and alerts.csv (every flagged communication), highest
    risk first (ties by id). Returns {"flagged": n, "on_page": m}."""
    alerts = _flagged(ledger)
    on_page = alerts[:page_limit]
    ledger.write_bytes("alerts.html", render_page(on_page, len(alerts), data_version).encode("utf-8"))
    ledger.write_bytes("alerts.csv", _csv(alerts).encode("utf-8"))
    return {"flagged": len(alerts), "on_page": len(on_page)}


def _flagged(ledger: Ledger) -> list[dict]:
    import pyarrow.dataset as pads

    if not ledger.listing("flagged"):
        return []
    table = pads.dataset(ledger.path("flagged"), format="parquet", filesystem=ledger.fs).to_table()
    rows = table.to_pylist()
    rows.sort(key=lambda r: (-(r["p_violation"] or 0.0), r["id"] or ""))
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows


def evidence_spans(text: str, evidence: list[dict]) -> list[tuple[int, int]]:
    """Character spans of the evidence quotes in `text`: the quote's own offsets when it carries valid ones
    (`start`, `end`), else its first occurrence with any whitespace between its words. Merged, sorted."""
    spans = []
    for ev in evidence:
        start, end = ev.get("start"), ev.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            spans.append((start, end))
            continue
        words = str(ev.get("quote") or "")[:2000].split()
        if words:
            m = re.search(r"\s+".join(map(re.escape, words)), text)
            if m:
                spans.append(m.span())
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def highlighted(text: str, spans: list[tuple[int, int]], focus: int = 0) -> str:
    """`text` HTML-escaped with each span wrapped in <mark>; a long text cut to SHOWN_CHARS around the first span
    (around character `focus` when there is none)."""
    lo, hi = 0, len(text)
    if hi > SHOWN_CHARS:
        centre = spans[0][0] if spans else focus
        lo = max(0, min(centre - SHOWN_CHARS // 2, len(text) - SHOWN_CHARS))
        hi = lo + SHOWN_CHARS
    out, pos = [], lo
    for a, b in spans:
        a, b = max(a, lo), min(b, hi)
        if a >= b:
            continue
        out += [html.escape(text[pos:a]), "<mark>", html.escape(text[a:b]), "</mark>"]
        pos = b
    out.append(html.escape(text[pos:hi]))
    note = (f'<p class="cut">characters {lo:,}-{hi:,} of {len(text):,} shown; alerts.csv holds the whole message</p>'
            if (lo, hi) != (0, len(text)) else "")
    return note + '<pre class="msg">' + "".join(out) + "</pre>"


def _evidence(row: dict) -> list[dict]:
    try:
        ev = json.loads(row.get("evidence") or "[]")
    except ValueError:
        return []
    return [e for e in ev if isinstance(e, dict)] if isinstance(ev, list) else []


def _alert(row: dict) -> str:
    e = lambda v: html.escape("" if v is None else str(v), quote=True)  # noqa: E731
    ev = _evidence(row)
    text = row.get("text") or ""
    first_quote = str(ev[0].get("quote", "")) if ev else ""
    cells = {"rank": row["rank"], "risk": f"{row['p_violation']:.3f}", "id": row["id"], "verdict": row["pred_verdict"],
             "topic": row["pred_topic"], "rule": row["pred_rule"], "severity": row["pred_severity"],
             "model": row["model_version"], "data": row["data_version"],
             "evidence": first_quote[:160] + ("…" if len(first_quote) > 160 else "")}
    attrs = {"rank": row["rank"], "risk": row["p_violation"], **{k: cells[k] for k in cells if k not in ("rank", "risk")}}
    data = " ".join(f'data-{k}="{e(v)}"' for k, v in attrs.items())
    main = "".join(f"<td>{e(cells[k])}</td>" for k, _, _ in COLUMNS)
    quotes = "".join(f'<li class="{"grounded" if q.get("grounded") else "ungrounded"}">{e(q.get("quote"))}'
                     f'{"" if q.get("grounded") else " <em>(not found in the message)</em>"}</li>' for q in ev)
    where = f"{e(row.get('file'))}:{e(row.get('line'))}"
    dup = f" · same text as <code>{e(row['duplicate_of'])}</code>" if row.get("duplicate_of") else ""
    sent = "".join(f" · {e(v)}" for v in (row.get("timestamp"), row.get("channel"),
                                           "; ".join(row.get("participants") or []) or None) if v)
    windows = (f" · riskiest of {row['windows']} windows: characters {row['risk_start']:,}-{row['risk_end']:,}"
               if (row.get("windows") or 0) > 1 and row.get("risk_start") is not None else "")
    detail = (f'<div class="where">{where}{dup}{sent} · p={e(row["p_violation"])}{windows}</div>'
              f"{highlighted(text, evidence_spans(text, ev), row.get('risk_start') or 0)}"
              f'<ul class="quotes">{quotes or "<li>no evidence quoted</li>"}</ul>')
    return (f'<tbody class="alert" {data}><tr class="row" tabindex="0">{main}</tr>'
            f'<tr class="detail" hidden><td colspan="{len(COLUMNS)}">{detail}</td></tr></tbody>')


STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em;margin:0 0 .3em}
.meta{color:#555;margin:.2em 0 1em}.controls{margin-bottom:.8em}input,select{font:inherit;padding:.2em .4em}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;
vertical-align:top}th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}tr.row{cursor:pointer}tr.row:hover{background:#fafae8}
td:nth-child(10){max-width:28em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
pre.msg{white-space:pre-wrap;word-break:break-word;background:#fbfbfb;border:1px solid #eee;padding:.6em;
max-height:30em;overflow:auto}mark{background:#ffe066}li.ungrounded{color:#a33}.where,.cut{color:#666;font-size:.9em}"""

SCRIPT = """(function(){
var table=document.getElementById('alerts'),q=document.getElementById('q'),sev=document.getElementById('sev');
function bodies(){return Array.prototype.slice.call(table.tBodies);}
function toggle(tr){var d=tr.nextElementSibling;d.hidden=!d.hidden;}
table.addEventListener('click',function(ev){var tr=ev.target.closest('tr.row');if(tr)toggle(tr);});
table.addEventListener('keydown',function(ev){var tr=ev.target.closest('tr.row');
 if(tr&&(ev.key==='Enter'||ev.key===' ')){ev.preventDefault();toggle(tr);}});
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){th.addEventListener('click',function(){
 var key=th.getAttribute('data-key'),num=th.getAttribute('data-type')==='num';
 var asc=!th.classList.contains('asc');
 Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.classList.remove('asc','desc');});
 th.classList.add(asc?'asc':'desc');
 var rows=bodies();rows.sort(function(a,b){var x=a.getAttribute('data-'+key),y=b.getAttribute('data-'+key);
  var c=num?(parseFloat(x)-parseFloat(y)):x.localeCompare(y);return asc?c:-c;});
 rows.forEach(function(b){table.appendChild(b);});});});
function filter(){var s=q.value.toLowerCase(),v=sev.value,shown=0;bodies().forEach(function(b){
 var ok=(!v||b.getAttribute('data-severity')===v)&&(!s||b.textContent.toLowerCase().indexOf(s)>=0);
 b.hidden=!ok;shown+=ok?1:0;});document.getElementById('count').textContent=shown;}
q.addEventListener('input',filter);sev.addEventListener('change',filter);
})();"""


def render_page(alerts: list[dict], total: int, data_version: str) -> str:
    """The alert queue page for `alerts` (already ranked), of `total` flagged communications."""
    e = lambda v: html.escape("" if v is None else str(v), quote=True)  # noqa: E731
    severities = sorted({str(a["pred_severity"]) for a in alerts if a.get("pred_severity")})
    models = sorted({str(a["model_version"]) for a in alerts if a.get("model_version")})
    head = "".join(f'<th data-key="{k}" data-type="{t}">{e(label)}</th>' for k, label, t in COLUMNS)
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in severities)
    cut = f" (the {len(alerts):,} riskiest on this page; alerts.csv lists all)" if len(alerts) < total else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'script-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Alert queue: {total:,} flagged</title><style>{STYLE}</style></head><body>"
        f"<h1>Alert queue</h1><p class=\"meta\">{total:,} flagged communication(s){cut}, highest risk first · "
        f"model {e(', '.join(models) or 'n/a')} · data {e(data_version)} · click a row for the message, a header "
        "to sort</p>"
        '<div class="controls"><input id="q" type="search" placeholder="filter (any text)" aria-label="filter"> '
        f'<select id="sev" aria-label="severity"><option value="">all severities</option>{options}</select> '
        f'<span id="count">{len(alerts)}</span> shown</div>'
        f'<table id="alerts"><thead><tr>{head}</tr></thead>{"".join(_alert(a) for a in alerts)}</table>'
        f"<script>{SCRIPT}</script></body></html>")


def _cell(value) -> str:
    """A CSV cell; text a spreadsheet would evaluate as a formula is prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(alerts: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for a in alerts:
        quotes = " | ".join(str(q.get("quote", "")) for q in _evidence(a))
        row = {**a, "evidence_quotes": quotes, "participants": "; ".join(a.get("participants") or []) or None}
        writer.writerow([row["rank"], _cell(row["id"]), f"{row['p_violation']:.6f}",
                         *[_cell(row.get(c)) for c in CSV_COLUMNS[3:]]])
    return buf.getvalue()
