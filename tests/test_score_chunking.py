"""Long communications are scored in windows: a 30,000-character call transcript through the real score job
with a tiny random Mistral whose context is too small for it, the windows' boundaries and budgets, the message's
risk as its riskiest window's, and evidence offsets that point at the quoted text in the original."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from conftest import write_jsonl
from jobs.common import job_main
from pipeline.score.config import ScoreConfig

POSITIONS = 1024
MAX_NEW = 16
PROMISE = "Advisor: I guarantee you will never lose a cent on the Harbor fund, it is risk free."


def transcript() -> str:
    """About 30,000 characters of a call, turn by turn, with one promise in the middle."""
    turns, i = [], 0
    while sum(map(len, turns)) < 30_000:
        who = "Client" if i % 2 else "Advisor"
        turns.append(f"{who}: Point {i} about the portfolio review. We looked at fees, allocation and the "
                     f"timeline for item {i}. Nothing is decided yet.\n")
        if i == 120:
            turns.append(PROMISE + "\n")
        i += 1
    return "".join(turns)


@pytest.fixture(scope="module")
def short_context_model(tiny_mistral, tmp_path_factory):
    """The tiny random Mistral with a 1,024-position context: a 30,000-character transcript needs windows."""
    folder = tmp_path_factory.mktemp("models") / "tiny-mistral-1k"
    shutil.copytree(tiny_mistral, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = POSITIONS
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def detector(short_context_model):
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector

    return Detector(DetectorModelConfig(name_or_path=str(short_context_model)),
                    EngineConfig(device="cpu", max_new_tokens=MAX_NEW, batch_size=8))


def budget(detector) -> int:
    from pipeline.score.chunking import prompt_budget

    return prompt_budget(POSITIONS, len(detector.formatter.verdict_tokens()[0]), MAX_NEW, True)


def test_windows_fit_overlap_and_cut_at_turns(detector):
    from pipeline.score.chunking import split_windows, token_counter

    text = transcript()
    limit = budget(detector)
    windows = split_windows(text, detector.encode_prompts, token_counter(detector.tokenizer), limit, 64)
    assert len(windows) >= 8 and len(text) >= 30_000
    assert windows[0].start == 0 and windows[-1].end == len(text)
    for prev, nxt in zip(windows, windows[1:]):
        assert prev.start < nxt.start < prev.end  # overlapping, always moving on: no character left unscored
    for w in windows:
        assert len(w.prompt) <= limit and w.prompt == detector.encode_prompts([text[w.start:w.end]])[0]
        assert w.end == len(text) or text[w.end - 1] == "\n"  # cut after a turn, never inside one
    assert any(PROMISE in text[w.start:w.end] for w in windows)  # the promise is read whole somewhere
    # A turn longer than a window is cut at sentence ends instead.
    speech = "Advisor: " + " ".join(f"Sentence number {i} of a very long monologue." for i in range(400))
    long_turn = split_windows(speech, detector.encode_prompts, token_counter(detector.tokenizer), limit, 32)
    assert len(long_turn) > 1 and all(speech[w.end - 2:w.end] == ". " for w in long_turn[:-1])
    # What fits stays one window, encoded once.
    [short] = split_windows(PROMISE, detector.encode_prompts, token_counter(detector.tokenizer), limit, 64)
    assert (short.start, short.end) == (0, len(PROMISE))


def test_evidence_offsets_point_at_the_quote_in_the_original(detector):
    """A verdict read from one window (the generation is the model's answer text, written here, since a random
    model quotes nothing): each quote's offsets index the original transcript at that quote."""
    from pipeline.inference.engine import Generation
    from pipeline.inference.verdicts import read_verdict
    from pipeline.score.chunking import evidence_with_offsets, split_windows, token_counter

    text = transcript()
    windows = split_windows(text, detector.encode_prompts, token_counter(detector.tokenizer), budget(detector), 64)
    index, window = next((i, w) for i, w in enumerate(windows) if PROMISE in text[w.start:w.end] and w.start > 0)
    reflowed = "I guarantee you will never lose\n a cent on the  Harbor fund"  # whitespace differs from the source
    answer = json.dumps({"final_verdict": "NON_COMPLIANT", "executive_summary": "A guarantee.",
                         "rule_violated": "FINRA Rule 2150(b)", "compliance_topic": "Guarantees Against Loss",
                         "severity": "HIGH", "evidence_list": [PROMISE, reflowed, "words nobody said at all"],
                         "reasoning_trace": "The advisor guarantees against loss."})
    record = read_verdict(Generation(answer, len(window.prompt), 90, True, 0.1), text[window.start:window.end])
    exact, fuzzy, invented = evidence_with_offsets(record, window, text, index, 90.0)
    assert text[exact["start"]:exact["end"]] == PROMISE and exact["start"] > window.start
    assert text[fuzzy["start"]:fuzzy["end"]] == "I guarantee you will never lose a cent on the Harbor fund"
    assert exact["grounded"] and fuzzy["grounded"] and exact["window"] == index
    assert invented["start"] is None and not invented["grounded"]


def test_a_30000_character_transcript_is_scored_through_windows(detector, short_context_model, ray_session,
                                                                tmp_path):
    from jobs.score import run
    from pipeline.score.chunking import split_windows, token_counter

    text = transcript()
    short = [{"id": f"s{i}", "text": f"Advisor: fund {i} has no guaranteed return."} for i in range(3)]
    archive = write_jsonl(tmp_path / "archive" / "calls.jsonl", [{"id": "call", "text": text}, *short])
    out = tmp_path / "out"
    argv = [f"paths=[{archive.parent}]", f"output_dir={out}", f"model.name_or_path={short_context_model}",
            f"engine.max_new_tokens={MAX_NEW}", "engine.batch_size=8", "threshold=0.01", "cpus_per_actor=1",
            "chunking.overlap_tokens=64", "chunking.explain_windows=2"]
    assert job_main(ScoreConfig, run, None, argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["rejected"], summary["chunked"]) == (4, 4, 0, 1)
    scores = pd.read_parquet(out / "scores").set_index("id")
    call = scores.loc["call"]
    windows = split_windows(text, detector.encode_prompts, token_counter(detector.tokenizer), budget(detector), 64)
    assert call["windows"] == len(windows) >= 8 and (scores.drop("call")["windows"] == 1).all()
    # The message's risk is its riskiest window's (the same windows scored here, one by one).
    probs = [float(detector.score([w.prompt]).probability[0]) for w in windows]
    best = max(range(len(windows)), key=probs.__getitem__)
    assert call["p_violation"] == pytest.approx(probs[best], abs=1e-3)
    assert (call["risk_start"], call["risk_end"]) == (windows[best].start, windows[best].end)
    assert call["flagged"] and call["parse_status"] is not None  # explained from its riskiest window
    for quote in json.loads(call["evidence"]):  # whatever the random model quoted: located or honestly absent
        assert quote["window"] in range(len(windows))
        if quote["start"] is not None:
            assert quote["grounded"] and 0 <= quote["start"] < quote["end"] <= len(text)
