"""Archive scoring as a streaming Ray job: triage every communication, explain the flagged ones.

Each communication gets P(NON_COMPLIANT) from one forward pass (cheap); only those at or above
the threshold are run through generation for the full verdict with evidence. Lines that cannot be
read (bad JSON, missing text, too long) are written to rejects, and identical texts are scored once,
so read = scored + duplicates + rejected. The flow (`run_scoring`): Ray Data reads the archive's units
(pipeline/score/units.py), the driver folds duplicates and feeds engine actors (`EngineActor` around
`ScoreBatch`; pipeline/score/stream.py), and every unit is committed with a marker
(pipeline/score/ledger.py), so a killed run resumes; pipeline/score/report.py writes the alert queue.
The archive is read in every format pipeline/score/sources.py knows (JSON Lines, Parquet,
CSV/TSV, .eml, mbox) through the units. In each engine batch the model artifact's cascade
(pipeline/cascade.py) reads every whole text first: what it clears is spared the LLM; the rest is
scored in windows that fit the model's context (pipeline/score/chunking.py): a message's risk is its
riskiest window's, nothing is cut, and only max_bytes rejects.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import config_to_dict

from pipeline.inference.config import DetectorModelConfig, EngineConfig

from pipeline.score.config import ChunkingConfig, ScoreConfig

log = logging.getLogger(__name__)

class ScoreBatch:
    """One engine's scoring of a batch of distinct texts: the cascade's first stage on every whole text, then,
    for those it does not spare, P(NON_COMPLIANT) through windows and a generated verdict for the flagged ones."""

    def __init__(self, model: dict, engine: dict, threshold: float, explain: bool, chunking: dict | None = None,
                 cpus: float = 1.0, cascade: bool = True):
        from pipeline.cascade import load_cascade
        from pipeline.inference.engine import Detector
        from pipeline.runtime import cpu_threads
        from pipeline.score.chunking import prompt_budget

        cpu_threads(cpus)
        self.detector = Detector(DetectorModelConfig.model_validate(model), EngineConfig.model_validate(engine))
        self.threshold, self.explain = threshold, explain
        source = self.detector.source
        self.cascade = load_cascade(source.adapter or source.base) if cascade else None
        if self.cascade is not None:
            log.info("cascade first stage: messages below %.4f (validation recall %.3f) skip the LLM",
                     self.cascade[1].threshold, self.cascade[1].validation_recall)
        config = self.detector.model.config
        self.budget = prompt_budget(getattr(config, "max_position_embeddings", None),
                                    len(self.detector.formatter.verdict_tokens()[0]),
                                    self.detector.cfg.max_new_tokens, explain)
        self.chunking = ChunkingConfig.model_validate(chunking or {})
        if self.chunking.window_tokens:  # a smaller window bounds one forward pass's memory
            self.budget = min(self.budget or self.chunking.window_tokens, self.chunking.window_tokens)
        if self.budget is not None and len(self.detector.encode_prompts([""])[0]) >= self.budget:
            raise ValueError(f"the model's {config.max_position_embeddings} positions leave no room for a "
                             f"communication after the prompt and engine.max_new_tokens="
                             f"{self.detector.cfg.max_new_tokens}; lower engine.max_new_tokens")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """`batch` (a `text` column and any others, passed through) -> one row per text: first_stage, spared,
        windows, p_violation, risk_start, risk_end, flagged, the verdict columns of flagged ones, model_version.
        Spared texts have no windows, no probability, and are not flagged."""
        from pipeline.score.chunking import score_communications

        texts = batch["text"].tolist()
        out = batch.drop(columns=["text"]).reset_index(drop=True)
        out["first_stage"], out["spared"] = np.nan, False
        if self.cascade is not None:  # the bag of words first, on the whole text: what it clears never reaches the LLM
            from pipeline.cascade import first_stage_scores

            model, cascade = self.cascade
            out["first_stage"] = first_stage_scores(model, texts)
            out["spared"] = out["first_stage"] < cascade.threshold
        passed = np.flatnonzero(~out["spared"].to_numpy(dtype=bool))
        if len(passed):  # long communications: scored in windows that fit the model (pipeline/score/chunking.py)
            scored = score_communications(self.detector, [texts[i] for i in passed], self.budget, self.chunking,
                                          self.threshold, self.explain)
            out = out.join(scored.set_axis(passed))
        for column in ("windows", "p_violation", "risk_start", "risk_end"):
            if column not in out:
                out[column] = np.nan
        out["flagged"] = out["flagged"].fillna(False).astype(bool) if "flagged" in out else False
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
                                     lambda: plan_units(files, cfg.unit_bytes, cfg.format))
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

    from pipeline.runtime import check_actor_resources
    from pipeline.score.dedup import ResultStore
    from pipeline.score.ledger import remove_local
    from pipeline.score.sources import Reading
    from pipeline.score.stream import ScoreStream
    from pipeline.score.units import read_units

    n_actors = cfg.actors or _actors_per_gpu(cfg.gpus_per_actor)
    check_actor_resources(n_actors, cfg.cpus_per_actor, keep_free=1)  # a read task takes a whole CPU
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's tqdm bar below counts what matters: messages written
    # Units arrive in plan order, so they are committed in order and only the one or two being scored are open
    # (an open unit's written rows wait in the driver until its commit).
    ctx.execution_options.preserve_order = True
    # No task events for the engine calls: the GCS would keep a record of every batch (tens of thousands on a
    # large archive), and its memory would grow with the archive.
    engine = ray.remote(EngineActor).options(num_cpus=cfg.cpus_per_actor, num_gpus=cfg.gpus_per_actor or None,
                                             max_restarts=2, max_task_retries=2, enable_task_events=False)
    actors = [engine.remote(model=cfg.model.model_dump(), engine=cfg.engine.model_dump(), threshold=cfg.threshold,
                            explain=cfg.explain, chunking=cfg.chunking.model_dump(), cpus=cfg.cpus_per_actor,
                            cascade=cfg.cascade) for _ in range(n_actors)]
    reading = Reading.from_config(cfg)
    state = ledger.state_dir()
    store = ResultStore(state)
    log.info("scoring %d of %d unit(s) (%d committed before) with %d engine actor(s)", len(todo), total, before,
             n_actors)
    interactive = sys.stderr.isatty()
    with tqdm(desc="scoring", unit="msg", mininterval=0.5 if interactive else 30, dynamic_ncols=interactive) as bar:
        stream = ScoreStream(ledger, store, actors, max(cfg.engine.batch_size, 8), data_version, bar)
        try:
            for window in read_windows(todo, cfg):
                rows = ray.data.from_items(window, override_num_blocks=min(len(window), 1000)).map_batches(
                    read_units, batch_size=1, batch_format="pyarrow", fn_kwargs=dict(reading=reading))
                for block in rows.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
                    stream.feed(block)
            return stream.finish()
        finally:
            store.close()
            for actor in actors:
                ray.kill(actor)
            if not ledger.local:
                remove_local(state)


def read_windows(todo: list[dict], cfg: ScoreConfig) -> list[list[dict]]:
    """The units to score in windows that Ray Data reads one at a time: ray.data_memory_gb of units each
    (data_memory_gb / unit_bytes, at least one; null: all of them at once).

    A window is read whole, then scored, so what the archive holds in the object store is one window, whatever
    the archive's size. Reading is far faster than scoring (a unit in seconds, scored in minutes), so waiting for
    the next window costs the engines little. One streaming read of the whole archive with a small object-store
    budget bounds memory too, but Ray Data's scheduler then spins a whole CPU core while the read is held back,
    the core a CPU engine needs."""
    if not cfg.ray.data_memory_gb:
        return [todo]
    per_window = max(1, int(cfg.ray.data_memory_gb * (1 << 30)) // cfg.unit_bytes)
    return [todo[i:i + per_window] for i in range(0, len(todo), per_window)]


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
