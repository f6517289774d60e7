"""Archive scoring as a Ray Data batch job: triage every communication, explain the flagged ones.

Each communication gets P(NON_COMPLIANT) from one forward pass (cheap); only those at or above
the threshold are run through generation for the full verdict with evidence. Lines that cannot be
read (bad JSON, missing text, too long) are written to rejects, so read = scored + rejected.
A message whose prompt would not fit the model's context is cut to fit (the prompt's template kept
whole) and scored with `truncated=True`: never fed whole, which fails the batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.config import config_to_dict

from pipeline.inference.config import DetectorModelConfig, EngineConfig

from pipeline.score.config import ScoreConfig

log = logging.getLogger(__name__)

ARCHIVE_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("file", pa.string()), ("line", pa.int64()),
                            ("reason", pa.string())])


def archive_rows(batch: pa.Table, text_field: str, id_field: str, max_chars: int) -> pa.Table:
    """Raw JSONL line rows (pipeline.reader) -> (id, text) rows; unreadable lines keep a reject reason."""
    out = []
    for row in batch.to_pylist():
        rid, text, reason = f"{Path(row['path']).name}:{row['line']}", "", row["error"] or ""
        if not reason:
            try:
                obj = json.loads(row["raw"].decode("utf-8"))
                text = obj.get(text_field) if isinstance(obj, dict) else None
                rid = str(obj.get(id_field, rid)) if isinstance(obj, dict) else rid
                reason = ("missing_text" if not isinstance(text, str) or not text.strip()
                          else "too_long" if len(text) > max_chars else "")
            except (UnicodeDecodeError, json.JSONDecodeError):
                reason = "invalid_json"
            if row["oversize"]:
                reason = "line_too_large"
        out.append({"id": rid, "text": text if not reason else "", "file": row["path"], "line": row["line"],
                    "reason": reason})
    return pa.Table.from_pylist(out, schema=ARCHIVE_SCHEMA)


def fit_to_context(encode: Callable[[list[str]], list[list[int]]], texts: list[str],
                   budget: int | None) -> tuple[list[str], list[list[int]], list[bool]]:
    """Each text cut (at a character) to the longest prefix whose encoded prompt has at most `budget` tokens
    (None: no limit).

    `encode` maps communications to their prompt token ids (the engine's `encode_prompts`), so the template
    is always whole and only the communication is shortened. Returns the texts, their prompt ids (what the
    engine scores and generates from: a text that fits is encoded once) and which were cut. Raises
    ValueError when even an empty communication's prompt exceeds `budget`.
    """
    prompts = encode(texts)
    out, cut = list(texts), [False] * len(texts)
    for i, n in enumerate(len(ids) for ids in prompts):
        if budget is None or n <= budget:
            continue
        text = texts[i]
        lo, hi = 0, len(text) * budget // n + 1  # token counts grow with the prefix: search the longest fit
        while len(encode([text[:hi]])[0]) <= budget:
            lo, hi = hi, min(len(text), hi * 2)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if len(encode([text[:mid]])[0]) <= budget else (lo, mid)
        fitted = encode([text[:lo]])[0]
        if len(fitted) > budget:
            raise ValueError(f"the prompt template alone exceeds {budget} tokens")
        out[i], prompts[i], cut[i] = text[:lo], fitted, True
    return out, prompts, cut


def prompt_budget(positions: int | None, verdict_prefix_tokens: int, max_new_tokens: int,
                  explain: bool) -> int | None:
    """Most prompt tokens that leave room in `positions` for the verdict prefix (scoring) and, when flagged
    messages are explained, the answer budget; None when the model states no context size."""
    if not positions:
        return None
    return positions - max(verdict_prefix_tokens, max_new_tokens if explain else 0)


class ScoreBatch:
    """Ray Data actor: probability for every message, a generated verdict for the flagged ones."""

    def __init__(self, model: dict, engine: dict, threshold: float, explain: bool, cpus: float = 1.0):
        from pipeline.inference.engine import Detector
        from pipeline.runtime import cpu_threads

        cpu_threads(cpus)
        self.detector = Detector(DetectorModelConfig.model_validate(model), EngineConfig.model_validate(engine))
        self.threshold, self.explain = threshold, explain
        config = self.detector.model.config
        self.budget = prompt_budget(getattr(config, "max_position_embeddings", None),
                                    len(self.detector.formatter.verdict_tokens()[0]),
                                    self.detector.cfg.max_new_tokens, explain)
        if self.budget is not None and len(self.detector.encode_prompts([""])[0]) >= self.budget:
            raise ValueError(f"the model's {config.max_position_embeddings} positions leave no room for a "
                             f"communication after the prompt and engine.max_new_tokens="
                             f"{self.detector.cfg.max_new_tokens}; lower engine.max_new_tokens")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from pipeline.inference.verdicts import read_verdict

        out = batch.drop(columns=["text"]).copy()
        texts, prompts, truncated = fit_to_context(self.detector.encode_prompts, batch["text"].tolist(), self.budget)
        if any(truncated):
            log.warning("%d message(s) cut to fit the model's context (%d prompt tokens)", sum(truncated),
                        self.budget)
        out["truncated"] = truncated
        out["p_violation"] = self.detector.score(prompts).probability
        out["flagged"] = out["p_violation"] >= self.threshold
        flagged = [i for i, f in enumerate(out["flagged"]) if f]
        rows = [{} for _ in texts]
        if self.explain and flagged:
            for i, gen in zip(flagged, self.detector.generate([prompts[i] for i in flagged])):
                rows[i] = read_verdict(gen, texts[i]).columns()
        explained = pd.DataFrame(rows, index=out.index)
        keep = [c for c in ("pred_json", "pred_verdict", "pred_topic", "pred_severity", "pred_rule", "evidence",
                            "parse_status", "grounded_rate", "new_tokens") if c in explained]
        out = pd.concat([out, explained[keep]], axis=1) if keep else out
        out["model_version"] = self.detector.info["version"]
        return out


def run_scoring(cfg: ScoreConfig) -> dict:
    """Score an archive; write scores/ (Parquet), rejects.jsonl and summary.json into a staging folder that
    replaces output_dir on success (a rerun never appends; a failed run leaves the old output); return the summary."""
    from pipeline.outputs import absolute, staged_output

    cfg = cfg.model_copy(update={"paths": [absolute(p) for p in cfg.paths]})  # workers run elsewhere
    with staged_output(cfg.output_dir, cfg.output_access) as stage:
        return _score_into(cfg, Path(stage))


def _score_into(cfg: ScoreConfig, out: Path) -> dict:
    import ray.data

    from pipeline.artifacts import provenance, write_json
    from pipeline.reader import JsonLinesSource, check_inputs
    from pipeline.runtime import check_actor_resources

    t0 = time.time()
    check_inputs(cfg.paths)
    check_actor_resources(cfg.actors, cfg.cpus_per_actor, keep_free=1)  # archives stream
    if all(str(p).endswith(".parquet") or Path(p).is_dir() and any(Path(p).glob("*.parquet")) for p in cfg.paths):
        ds = ray.data.read_parquet(cfg.paths).map_batches(
            lambda t: pa.table({"id": t[cfg.id_field].cast(pa.string()), "text": t[cfg.text_field],
                                "file": pa.array([""] * len(t)), "line": pa.array([0] * len(t), pa.int64()),
                                "reason": pa.array([""] * len(t))}), batch_format="pyarrow")
    else:
        ds = ray.data.read_datasource(JsonLinesSource(cfg.paths, max_line_bytes=max(cfg.max_chars * 4, 1 << 20)))
        ds = ds.map_batches(archive_rows, fn_kwargs=dict(text_field=cfg.text_field, id_field=cfg.id_field,
                                                         max_chars=cfg.max_chars), batch_format="pyarrow")
    rows = ds.materialize()
    # An empty selection comes back without columns: give it the archive's, so "no rejects" summarises.
    rejects = rows.filter(expr="reason != ''").to_pandas().reindex(columns=ARCHIVE_SCHEMA.names)
    scored = rows.filter(expr="reason == ''").drop_columns(["reason"]).map_batches(
        ScoreBatch, fn_constructor_kwargs=dict(model=cfg.model.model_dump(), engine=cfg.engine.model_dump(),
                                               threshold=cfg.threshold,
                                               explain=cfg.explain, cpus=cfg.cpus_per_actor),
        batch_format="pandas", batch_size=max(cfg.engine.batch_size, 8),
        compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_gpus=cfg.gpus_per_actor or None,
        num_cpus=cfg.cpus_per_actor)
    scored.write_parquet(str(out / "scores"))
    stats = ray.data.read_parquet(str(out / "scores")).select_columns(["flagged", "truncated"]).to_pandas()
    out.mkdir(parents=True, exist_ok=True)
    lines = rejects[["file", "line", "id", "reason"]].to_json(orient="records", lines=True) if len(rejects) else ""
    (out / "rejects.jsonl").write_text(lines)  # no rejects: an empty file (pandas would write one blank line)
    summary = {"read": int(len(stats) + len(rejects)), "scored": int(len(stats)), "rejected": int(len(rejects)),
               "flagged": int(stats["flagged"].sum()), "truncated": int(stats["truncated"].sum()),
               "threshold": cfg.threshold,
               "rejects_by_reason": {k: int(v) for k, v in rejects["reason"].value_counts().items()},
               "seconds": round(time.time() - t0, 1), "config": config_to_dict(cfg), **provenance()}
    write_json(str(out / "summary.json"), summary)
    return summary
