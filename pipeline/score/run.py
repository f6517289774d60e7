"""Archive scoring as a streaming Ray job: triage every communication, explain the flagged ones.

Each communication gets P(NON_COMPLIANT) from one forward pass (cheap); only those at or above
the threshold are run through generation for the full verdict with evidence. Lines that cannot be
read (bad JSON, missing text, too long) are written to rejects, and identical texts are scored once,
so read = scored + duplicates + rejected. The flow (`run_scoring`): Ray Data reads the archive's units
(pipeline/score/units.py), the driver folds duplicates and feeds engine actors (`EngineActor` around
`ScoreBatch`; pipeline/score/stream.py), and every unit is committed with a marker
(pipeline/score/ledger.py), so a killed run resumes; pipeline/score/report.py writes the alert queue.
A message whose prompt would not fit the model's context is cut to fit (the prompt's template kept
whole) and scored with `truncated=True`: never fed whole, which fails the batch.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
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

    def __init__(self, model: dict, engine: dict, threshold: float, explain: bool, cpus: float = 1.0,
                 cascade: bool = True):
        from pipeline.inference.engine import Detector
        from pipeline.runtime import cpu_threads

        cpu_threads(cpus)
        self.detector = Detector(DetectorModelConfig.model_validate(model), EngineConfig.model_validate(engine))
        self.threshold, self.explain = threshold, explain
        from pipeline.cascade import load_cascade

        source = self.detector.source
        self.cascade = load_cascade(source.adapter or source.base) if cascade else None
        if self.cascade is not None:
            log.info("cascade first stage: messages below %.4f (validation recall %.3f) skip the LLM",
                     self.cascade[1].threshold, self.cascade[1].validation_recall)
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
        out["first_stage"], out["spared"], out["truncated"], out["p_violation"] = np.nan, False, False, np.nan
        if self.cascade is not None:  # the bag of words first: what it clears never reaches the LLM
            from pipeline.cascade import first_stage_scores

            model, cascade = self.cascade
            out["first_stage"] = first_stage_scores(model, batch["text"].tolist())
            out["spared"] = out["first_stage"] < cascade.threshold
        passed = np.flatnonzero(~out["spared"].to_numpy(dtype=bool))
        texts, prompts, truncated = fit_to_context(self.detector.encode_prompts,
                                                   [batch["text"].iloc[i] for i in passed], self.budget)
        if any(truncated):
            log.warning("%d message(s) cut to fit the model's context (%d prompt tokens)", sum(truncated),
                        self.budget)
        if len(passed):
            out.iloc[passed, out.columns.get_loc("truncated")] = truncated
            out.iloc[passed, out.columns.get_loc("p_violation")] = self.detector.score(prompts).probability
        out["flagged"] = out["p_violation"].fillna(-1.0) >= self.threshold
        flagged = [j for j, i in enumerate(passed) if out["flagged"].iloc[i]]  # positions in `passed`
        rows = [{} for _ in range(len(out))]
        if self.explain and flagged:
            for j, gen in zip(flagged, self.detector.generate([prompts[j] for j in flagged])):
                rows[passed[j]] = read_verdict(gen, texts[j]).columns()
        explained = pd.DataFrame(rows, index=out.index)
        keep = [c for c in ("pred_json", "pred_verdict", "pred_topic", "pred_severity", "pred_rule", "evidence",
                            "parse_status", "grounded_rate", "new_tokens") if c in explained]
        out = pd.concat([out, explained[keep]], axis=1) if keep else out
        out["model_version"] = self.detector.info["version"]
        return out


class EngineActor:
    """Ray actor around one `ScoreBatch` (one engine; on its own GPU when gpus_per_actor > 0)."""

    def __init__(self, **kwargs):
        self.score_batch = ScoreBatch(**kwargs)

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        """ScoreBatch's columns for a batch of distinct texts (`key`, `text`); `key` is passed through."""
        return self.score_batch(batch)


def run_scoring(cfg: ScoreConfig) -> dict:
    """Score an archive, streaming, into output_dir committed unit by unit; return the summary.

    Read -> normalise (text key) -> fold duplicates -> triage -> explain -> write, with bounded memory
    (pipeline/score/stream.py). A rerun with the same config resumes: committed units are skipped and each
    communication ends with exactly one row (pipeline/score/ledger.py); a rerun with a result-changing
    config is refused unless `restart`. Writes scores/, flagged/, rejects/ per unit, then rejects.jsonl,
    alerts.html, alerts.csv and summary.json. Raises FileNotFoundError for inputs that match nothing and
    ValueError for a refused rerun or too few resources.
    """
    from pipeline.outputs import absolute
    from pipeline.reader import check_inputs
    from pipeline.score.ledger import Ledger
    from pipeline.score.units import archive_version, list_inputs, plan_units

    t0 = time.time()
    # Workers run elsewhere: absolute paths.
    cfg = cfg.model_copy(update={"paths": [absolute(p) for p in cfg.paths], "output_dir": absolute(cfg.output_dir)})
    check_inputs(cfg.paths)
    files = list_inputs(cfg.paths)
    if not files:
        raise FileNotFoundError(f"paths: no files under {', '.join(cfg.paths)}")
    data_version = archive_version(files)
    ledger = Ledger(cfg.output_dir, cfg.output_access)
    units, markers = ledger.open_run(fingerprint(cfg, data_version, len(files)), cfg.restart,
                                     lambda: plan_units(files, cfg.unit_bytes))
    todo = [u for u in units if u["index"] not in markers]
    before = len(markers)
    if todo:
        markers.update(_score_units(cfg, ledger, todo, data_version, before, len(units)))
    from pipeline.score.report import finish_run

    return finish_run(cfg, ledger, units, markers, data_version, _model_data_version(cfg.model.name_or_path),
                      skipped=before, seconds=time.time() - t0)


def fingerprint(cfg: ScoreConfig, data_version: str, n_files: int) -> dict:
    """What a run's results depend on: the config without the keys that only say where or how fast it runs,
    and the archive's listing. Two runs with the same fingerprint may share an output folder."""
    d = config_to_dict(cfg)
    for key in ("output_dir", "output_access", "restart", "actors", "gpus_per_actor", "cpus_per_actor", "ray",
                "alerts_page_limit"):
        d.pop(key, None)
    d["engine"].pop("batch_size", None)
    return {**d, "archive_version": data_version, "files": n_files}


def _score_units(cfg: ScoreConfig, ledger, todo: list[dict], data_version: str, before: int, total: int) -> dict:
    """Stream the units in `todo` through the engine actors; returns their completion markers."""
    import ray
    import ray.data
    from tqdm import tqdm

    from pipeline.runtime import bound_data_memory, check_actor_resources
    from pipeline.score.dedup import ResultStore
    from pipeline.score.ledger import remove_local
    from pipeline.score.stream import ScoreStream
    from pipeline.score.units import read_units

    n_actors = cfg.actors or _actors_per_gpu(cfg.gpus_per_actor)
    check_actor_resources(n_actors, cfg.cpus_per_actor, keep_free=1)  # a read task takes a whole CPU
    if cfg.ray.data_memory_gb:
        bound_data_memory(int(cfg.ray.data_memory_gb * (1 << 30)))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's tqdm bar below counts what matters: messages written
    engine = ray.remote(EngineActor).options(num_cpus=cfg.cpus_per_actor, num_gpus=cfg.gpus_per_actor or None,
                                             max_restarts=2, max_task_retries=2)
    actors = [engine.remote(model=cfg.model.model_dump(), engine=cfg.engine.model_dump(), threshold=cfg.threshold,
                            explain=cfg.explain, cpus=cfg.cpus_per_actor, cascade=cfg.cascade) for _ in range(n_actors)]
    rows = ray.data.from_items(todo, override_num_blocks=min(len(todo), 1000)).map_batches(
        read_units, batch_size=1, batch_format="pyarrow",
        fn_kwargs=dict(text_field=cfg.text_field, id_field=cfg.id_field, max_chars=cfg.max_chars,
                       max_line_bytes=max(cfg.max_chars * 4, 1 << 20)))
    state = ledger.state_dir()
    store = ResultStore(state)
    log.info("scoring %d of %d unit(s) (%d committed before) with %d engine actor(s)", len(todo), total, before,
             n_actors)
    interactive = sys.stderr.isatty()
    with tqdm(desc="scoring", unit="msg", mininterval=0.5 if interactive else 30, dynamic_ncols=interactive) as bar:
        stream = ScoreStream(ledger, store, actors, max(cfg.engine.batch_size, 8), data_version, bar)
        try:
            for block in rows.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
                stream.feed(block)
            return stream.finish()
        finally:
            store.close()
            for actor in actors:
                ray.kill(actor)
            if not ledger.local:
                remove_local(state)


def _actors_per_gpu(gpus_per_actor: float) -> int:
    """actors=0: as many engine actors as the cluster's GPUs hold. Raises ValueError on a cluster without GPUs."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus < gpus_per_actor:
        raise ValueError(f"actors=0 asks for one engine actor per GPU, but the cluster has {gpus:g} GPU(s) for "
                         f"gpus_per_actor={gpus_per_actor:g}; set actors explicitly or run on a GPU cluster")
    return int(gpus // gpus_per_actor)


def _model_data_version(model: str) -> str | None:
    """The content hash of the prepared data a trained adapter was fitted on (its training_config.json), if any."""
    path = Path(model) / "training_config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("data", {}).get("content_hash")
    except (OSError, ValueError):
        log.warning("cannot read %s: the model's data version is not recorded", path)
        return None
