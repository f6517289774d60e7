"""Archive scoring as a Ray Data batch job: triage every communication, explain the flagged ones.

Each communication gets P(NON_COMPLIANT) from one forward pass (cheap); only those at or above
the threshold are run through generation for the full verdict with evidence. The archive is read by
pipeline/score/sources.py (JSON Lines, Parquet, CSV, .eml, mbox); rows that cannot be scored (bad JSON,
missing text, over max_bytes, attachments only ...) are written to rejects, so read = scored + rejected.
A message whose prompt would not fit the model's context is scored in overlapping windows
(pipeline/score/chunking.py): its risk is the riskiest window's, never a cut text's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from pipeline.config import config_to_dict

from pipeline.inference.config import DetectorModelConfig, EngineConfig

from pipeline.score.config import ChunkingConfig, ScoreConfig

log = logging.getLogger(__name__)

class ScoreBatch:
    """Ray Data actor: probability for every message, a generated verdict for the flagged ones."""

    def __init__(self, model: dict, engine: dict, threshold: float, explain: bool, chunking: dict,
                 cpus: float = 1.0):
        from pipeline.inference.engine import Detector
        from pipeline.runtime import cpu_threads
        from pipeline.score.chunking import prompt_budget

        cpu_threads(cpus)
        self.detector = Detector(DetectorModelConfig.model_validate(model), EngineConfig.model_validate(engine))
        self.threshold, self.explain = threshold, explain
        config = self.detector.model.config
        self.budget = prompt_budget(getattr(config, "max_position_embeddings", None),
                                    len(self.detector.formatter.verdict_tokens()[0]),
                                    self.detector.cfg.max_new_tokens, explain)
        self.chunking = ChunkingConfig.model_validate(chunking)
        if self.chunking.window_tokens:  # a smaller window bounds one forward pass's memory
            self.budget = min(self.budget or self.chunking.window_tokens, self.chunking.window_tokens)
        if self.budget is not None and len(self.detector.encode_prompts([""])[0]) >= self.budget:
            raise ValueError(f"the model's {config.max_position_embeddings} positions leave no room for a "
                             f"communication after the prompt and engine.max_new_tokens="
                             f"{self.detector.cfg.max_new_tokens}; lower engine.max_new_tokens")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from pipeline.score.chunking import score_communications

        # Long communications: scored in windows that fit the model (pipeline/score/chunking.py).
        scored = score_communications(self.detector, batch["text"].tolist(), self.budget, self.chunking,
                                      self.threshold, self.explain)
        out = pd.concat([batch.drop(columns=["text"]).reset_index(drop=True), scored], axis=1)
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
    from pipeline.reader import check_inputs
    from pipeline.runtime import check_actor_resources
    from pipeline.score.sources import ARCHIVE_SCHEMA, read_archive

    t0 = time.time()
    check_inputs(cfg.paths)
    check_actor_resources(cfg.actors, cfg.cpus_per_actor, keep_free=1)  # archives stream
    ds = read_archive(cfg)  # every format, one schema, rejects with reasons (pipeline/score/sources.py)
    rows = ds.materialize()
    # An empty selection comes back without columns: give it the archive's, so "no rejects" summarises.
    rejects = rows.filter(expr="reason != ''").to_pandas().reindex(columns=ARCHIVE_SCHEMA.names)
    scored = rows.filter(expr="reason == ''").drop_columns(["reason", "detail"]).map_batches(
        ScoreBatch, fn_constructor_kwargs=dict(model=cfg.model.model_dump(), engine=cfg.engine.model_dump(),
                                               threshold=cfg.threshold,
                                               explain=cfg.explain, chunking=cfg.chunking.model_dump(),
                                               cpus=cfg.cpus_per_actor),
        batch_format="pandas", batch_size=max(cfg.engine.batch_size, 8),
        compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_gpus=cfg.gpus_per_actor or None,
        num_cpus=cfg.cpus_per_actor)
    scored.write_parquet(str(out / "scores"))
    stats = ray.data.read_parquet(str(out / "scores")).select_columns(["flagged", "windows"]).to_pandas()
    out.mkdir(parents=True, exist_ok=True)
    lines = rejects[["file", "line", "id", "reason", "detail"]].to_json(orient="records", lines=True) if len(rejects) else ""
    (out / "rejects.jsonl").write_text(lines)  # no rejects: an empty file (pandas would write one blank line)
    summary = {"read": int(len(stats) + len(rejects)), "scored": int(len(stats)), "rejected": int(len(rejects)),
               "flagged": int(stats["flagged"].sum()), "chunked": int((stats["windows"] > 1).sum()),
               "threshold": cfg.threshold,
               "rejects_by_reason": {k: int(v) for k, v in rejects["reason"].value_counts().items()},
               "seconds": round(time.time() - t0, 1), "config": config_to_dict(cfg), **provenance()}
    write_json(str(out / "summary.json"), summary)
    return summary
