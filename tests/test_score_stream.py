"""Streaming archive scoring (issue 16): duplicates scored once and fanned out, counts that reconcile,
a run killed midway that resumes with one row per communication, a refused config change, and the
reviewers' alert page in risk order with hostile text kept inert. Real local Ray, tiny random Mistral."""

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser

import pandas as pd

from conftest import ROOT, write_jsonl
from jobs.common import job_main
from pipeline.score.config import ScoreConfig


def _argv(archive, out, model, *extra):
    return [f"paths=[{archive}]", f"output_dir={out}", f"model.name_or_path={model}", "engine.max_new_tokens=16",
            "engine.batch_size=8", "cpus_per_actor=1", *extra]


def test_duplicates_are_scored_once_fanned_out_and_counts_reconcile(tiny_mistral, ray_session, tmp_path):
    from jobs.score import run

    base = [f"Advisor: the Harbor {i} fund returns {i}% a year, guaranteed." for i in range(12)]
    jsonl = [{"id": f"a{i}", "text": t} for i, t in enumerate(base)]
    # Same texts again under other ids, whitespace changed (one email sent to many clients), in other units.
    jsonl += [{"id": f"dup{i}", "text": "  " + base[i % 4].replace(" ", "  \n ") + "\n"} for i in range(10)]
    jsonl += ["{not json", {"id": "blank", "text": " \n "}, {"id": "long", "text": "y" * 400}]
    write_jsonl(tmp_path / "archive" / "chats.jsonl", jsonl)
    pd.DataFrame({"id": ["p0", "p1", "p2"], "text": [base[0], base[5], None]}).to_parquet(
        tmp_path / "archive" / "more.parquet")
    out = tmp_path / "out"
    # Read two units at a time (ray.data_memory_gb of 2 KiB): duplicates meet across those windows too.
    argv = _argv(tmp_path / "archive", out, tiny_mistral, "explain=false", "max_bytes=300", "unit_bytes=1024",
                 f"ray.data_memory_gb={2048 / 2**30}")
    assert job_main(ScoreConfig, run, None, argv) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["read"] == 25 + 3
    assert summary["read"] == summary["scored"] + summary["duplicates"] + summary["rejected"]
    assert (summary["scored"], summary["duplicates"], summary["rejected"]) == (12, 12, 4)
    assert summary["rejects_by_reason"] == {"invalid_json": 1, "missing_text": 2, "too_long": 1}
    assert summary["units"]["total"] > 2  # the archive was cut into several units of work, read in windows
    assert len((out / "rejects.jsonl").read_text().splitlines()) == 4

    scores = pd.read_parquet(out / "scores")
    assert len(scores) == summary["scored"] + summary["duplicates"] and scores["id"].is_unique
    scores = scores.set_index("id")
    groups = {i: [f"a{i}"] + [f"dup{j}" for j in range(10) if j % 4 == i] for i in range(4)}
    groups[0].append("p0")
    groups[5] = ["a5", "p1"]
    for members in groups.values():
        rows = scores.loc[members]
        assert rows["p_violation"].nunique() == 1  # one result, written for every id
        originals = rows[rows["duplicate_of"].isna()]
        assert len(originals) == 1  # scored once ...
        assert set(rows["duplicate_of"].dropna()) == {originals.index[0]}  # ... the others point at it
    assert scores["duplicate_of"].notna().sum() == summary["duplicates"]
    markers = [json.loads(p.read_text()) for p in (out / "_done").glob("unit-*.json")]
    assert len(markers) == summary["units"]["total"] and sum(m["read"] for m in markers) == summary["read"]


def test_killed_run_resumes_with_one_row_per_id(tiny_mistral, ray_session, tmp_path):
    """A real `python -m jobs.score` killed (SIGKILL) after its first units are committed, then run again:
    committed units are kept as they were, the rest is scored, and every id ends with exactly one row."""
    from jobs.score import run

    ids = [f"m{i}" for i in range(360)]
    lines = [{"id": rid, "text": f"Advisor: account {i} will gain {i % 90}% this year, no risk."}
             for i, rid in enumerate(ids)]
    lines += [{"id": "copy", "text": lines[7]["text"]}, "{bad line"]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl", lines)
    out = tmp_path / "out"
    argv = _argv(archive, out, tiny_mistral, "threshold=0.01", "unit_bytes=1024")  # explained: slow enough
    env = {**os.environ, "RAY_ADDRESS": ray_session[0], "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "jobs.score", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while len(list((out / "_done").glob("unit-*.json"))) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no unit committed within 300 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    units = json.loads((out / "_run.json").read_text())["units"]
    committed = {p.name: p.read_bytes() for p in (out / "_done").glob("unit-*.json")}
    assert 3 <= len(committed) < len(units), "killed midway: some units committed, not all"
    assert not (out / "summary.json").exists()

    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == {"total": len(units), "skipped_as_committed": len(committed),
                                "scored_this_run": len(units) - len(committed)}
    assert {n: (out / "_done" / n).read_bytes() for n in committed} == committed  # not redone
    scores = pd.read_parquet(out / "scores")
    assert scores["id"].is_unique and sorted(scores["id"]) == sorted(ids + ["copy"])  # one row each, none lost
    assert (summary["read"], summary["rejected"]) == (362, 1)
    assert summary["scored"] + summary["duplicates"] == 361 and summary["duplicates"] >= 1
    assert len(list((out / "scores").iterdir())) == len(units)  # no stray partial file left


def test_config_change_is_refused_and_restart_ranks_the_alert_queue(tiny_mistral, ray_session, tmp_path, capsys):
    from jobs.score import run

    hostile = '=HYPERLINK("http://x")<script>document.title="pwned"</script><img src=x onerror=alert(1)> I promise'
    texts = [f"Advisor: I promise the Harbor {i} fund cannot lose, {i}% guaranteed." for i in range(10)] + [hostile]
    archive = write_jsonl(tmp_path / "archive" / "chats.jsonl",
                          [{"id": f"m{i}", "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out"
    assert job_main(ScoreConfig, run, None, _argv(archive, out, tiny_mistral, "threshold=0.01")) == 0
    page = _AlertPage()  # everything flagged at 0.01: the hostile message is on the page and in the CSV
    page.feed((out / "alerts.html").read_text())
    assert len(page.alerts) == len(texts) and hostile in page.text
    assert page.tags["script"] == 1 and page.tags.get("img", 0) == 0  # the hostile text stays text
    assert page.external == []  # self-contained: nothing loaded from elsewhere
    csv = pd.read_csv(out / "alerts.csv", keep_default_na=False).set_index("id")
    assert csv.loc["m10", "text"] == "'" + hostile  # a spreadsheet shows it, never runs it
    p = pd.read_parquet(out / "scores")["p_violation"]
    cut = float(p.sort_values().iloc[len(p) // 2])  # a threshold that flags about half
    before = {f.name: f.read_bytes() for f in (out / "scores").iterdir()}

    changed = _argv(archive, out, tiny_mistral, f"threshold={cut}")
    assert job_main(ScoreConfig, run, None, changed) == 1
    err = capsys.readouterr().err
    assert "threshold: 0.01 ->" in err and "restart=true" in err
    assert {f.name: f.read_bytes() for f in (out / "scores").iterdir()} == before  # nothing mixed in

    assert job_main(ScoreConfig, run, None, [*changed, "restart=true"]) == 0
    scores = pd.read_parquet(out / "scores").set_index("id")
    flagged = scores[scores["flagged"]].reset_index().sort_values(["p_violation", "id"], ascending=[False, True])
    assert 0 < len(flagged) < len(scores)

    page = _AlertPage()
    page.feed((out / "alerts.html").read_text())
    assert [a["data-id"] for a in page.alerts] == list(flagged["id"])  # every flagged one, riskiest first
    risks = [float(a["data-risk"]) for a in page.alerts]
    assert risks == sorted(risks, reverse=True) and min(risks) >= cut
    csv = pd.read_csv(out / "alerts.csv", keep_default_na=False)
    assert list(csv["id"]) == list(flagged["id"]) and list(csv["rank"]) == list(range(1, len(flagged) + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alerts"] == {"flagged": len(flagged), "on_page": len(flagged)}
    assert summary["units"]["skipped_as_committed"] == 0


def test_evidence_is_highlighted_in_context_and_escaped():
    from pipeline.score.alerts import evidence_spans, highlighted

    text = "Client: is it safe?\nAdvisor: I  guarantee\nyou <b>will not</b> lose."
    spans = evidence_spans(text, [{"quote": "I guarantee you <b>will not</b> lose"}, {"quote": "not in it"}])
    assert [text[a:b] for a, b in spans] == ["I  guarantee\nyou <b>will not</b> lose"]
    shown = highlighted(text, spans)
    assert "<mark>I  guarantee\nyou &lt;b&gt;will not&lt;/b&gt; lose</mark>" in shown and "<b>" not in shown
    # Offsets carried by the evidence (long messages scored in windows) are used as given.
    assert evidence_spans(text, [{"quote": "x", "start": 0, "end": 6}]) == [(0, 6)]


class _AlertPage(HTMLParser):
    """The alert page's alerts (their data- attributes, in document order), tag counts, text, external refs."""

    def __init__(self):
        super().__init__()
        self.alerts, self.tags, self.external, self._text = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "tbody" and attrs.get("class") == "alert":
            self.alerts.append(attrs)
        self.external += [v for k, v in attrs.items() if k in ("src", "href") and v]

    def handle_data(self, data):
        self._text.append(data)

    @property
    def text(self):
        return "".join(self._text)


def test_fingerprint_holds_every_result_changing_key():
    """A rerun into the same folder is refused when a key that changes results differs (the reading, the byte caps,
    the windows, the cascade), never for keys that only say where or how fast it runs."""
    from pipeline.config import load_config
    from pipeline.score.ledger import diff
    from pipeline.score.run import fingerprint

    def print_of(*overrides):
        return fingerprint(load_config(ScoreConfig, None, ["paths=[x]", *overrides]), "v1", 3)

    base = print_of()
    for override in ("format=csv", "fields.text=body", "fields.timestamp=sent", "max_bytes=1000",
                     "max_email_bytes=2048", "chunking.window_tokens=512", "chunking.overlap_tokens=8",
                     "chunking.explain_windows=2", "cascade=false", "threshold=0.3", "unit_bytes=4096"):
        key = override.split("=")[0]
        assert [c for c in diff(base, print_of(override)) if c.startswith(key + ":")], override
    for override in ("actors=2", "cpus_per_actor=2", "alerts_page_limit=10", "restart=true", "engine.batch_size=3",
                     "output_dir=elsewhere"):
        assert diff(base, print_of(override)) == [], override


def test_a_duplicate_gets_the_offsets_of_its_own_text():
    """Duplicates are equal after whitespace normalisation, not byte for byte: the riskiest window and the evidence
    offsets computed on the first text are moved onto the duplicate's, pointing at the same words."""
    from pipeline.score.dedup import relocate

    first = "Client: is it safe?\nAdvisor: I guarantee you will not lose.\nClient: ok."
    dup = "  Client:  is it safe?\n\n Advisor:   I guarantee\nyou will not lose.  \nClient: ok. "
    quote = "I guarantee you will not lose."
    at = first.index(quote)
    window = (first.index("Advisor"), len(first))
    evidence = json.dumps([{"quote": quote, "grounded": True, "start": at, "end": at + len(quote), "window": 1},
                           {"quote": "not said", "grounded": False, "start": None, "end": None, "window": 1}])
    result = {"windows": 2, "risk_start": window[0], "risk_end": window[1], "evidence": evidence, "p_violation": 0.9}
    moved = relocate(result, first, dup)
    quotes = json.loads(moved["evidence"])
    assert " ".join(dup[quotes[0]["start"]:quotes[0]["end"]].split()) == quote
    assert (quotes[1]["start"], quotes[1]["end"]) == (None, None)
    assert dup[moved["risk_start"]:moved["risk_end"]].startswith("Advisor:") and moved["risk_end"] == len(dup.rstrip())
    assert moved["p_violation"] == 0.9 and relocate(result, first, first) is result
    # One window is the whole text, whatever its whitespace; a spared text (no windows) has no offsets.
    single = relocate({"windows": 1, "risk_start": 0, "risk_end": len(first), "evidence": None}, None, dup)
    assert (single["risk_start"], single["risk_end"]) == (0, len(dup))
    assert relocate({"windows": None, "risk_start": None}, None, dup) == {"windows": None, "risk_start": None}


def test_units_are_read_in_windows_of_the_read_ahead_budget():
    from pipeline.score.run import read_windows

    units = [{"index": i} for i in range(7)]
    cfg = ScoreConfig(paths=["a"], unit_bytes=16 << 20, ray={"data_memory_gb": 0.0625})  # 64 MiB: 4 units
    assert [[u["index"] for u in w] for w in read_windows(units, cfg)] == [[0, 1, 2, 3], [4, 5, 6]]
    small = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"data_memory_gb": 0.001})})
    assert [len(w) for w in read_windows(units, small)] == [1] * 7  # never less than one unit
    whole = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"data_memory_gb": None})})
    assert read_windows(units, whole) == [units]
