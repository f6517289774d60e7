"""Generation-based evaluation as a Ray Data batch job: test split -> predictions -> metrics -> report.

The engine runs in an actor pool (one actor per GPU, or CPU actors); each actor loads the detector
once and turns batches of communications into parsed, grounded predictions. Predictions are written
as Parquet first, so the metrics and the report can always be recomputed from what was predicted.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import config_to_dict

from pipeline.evaluate.config import EvaluateConfig

from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.evaluate.metrics import NOT_GENERATED

log = logging.getLogger(__name__)

GOLD = {"final_verdict": "gold_verdict", "compliance_topic": "gold_topic", "severity": "gold_severity",
        "rule_violated": "gold_rule"}
INPUT_COLUMNS = ["id", "scenario", "format", "source", *GOLD]


class PredictBatch:
    """Ray Data actor: communications -> parsed, grounded predictions (and the verdict probability)."""

    def __init__(self, model: dict, engine: dict, generate: bool, probability: bool, grounding_threshold: float,
                 cpus: float = 1.0, threshold: float = 0.5):
        from pipeline.inference.engine import Detector
        from pipeline.runtime import cpu_threads

        cpu_threads(cpus)
        self.detector = Detector(DetectorModelConfig.model_validate(model), EngineConfig.model_validate(engine))
        self.generate, self.probability = generate, probability
        self.grounding_threshold, self.threshold = grounding_threshold, threshold

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from pipeline.inference.verdicts import read_verdict

        texts = batch["scenario"].tolist()
        prompts = self.detector.encode_prompts(texts)  # once: scoring and generation reuse the ids
        out = batch.rename(columns=GOLD).copy()
        t0 = time.time()
        if self.probability:
            scores = self.detector.score(prompts)
            out["p_violation"], out["p_violation_raw"] = scores.probability, scores.raw_probability
        else:
            out["p_violation"] = out["p_violation_raw"] = np.nan
        out["score_seconds"] = (time.time() - t0) / max(len(texts), 1)
        if self.generate:
            rows = [read_verdict(g, text, self.grounding_threshold).columns()
                    for g, text in zip(self.detector.generate(prompts), texts)]
            out = pd.concat([out.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
        else:  # triage only: the verdict is the probability at the threshold; nothing else is predicted
            out["pred_verdict"] = np.where(out["p_violation"] >= self.threshold, "NON_COMPLIANT", "COMPLIANT")
            for col in ("pred_topic", "pred_severity", "pred_rule"):
                out[col] = None
            out["parse_status"], out["grounded_rate"], out["n_quotes"] = NOT_GENERATED, np.nan, 0
        out["model_version"] = self.detector.info["version"]
        return out


def read_inputs(cfg: EvaluateConfig):
    """The examples to evaluate as a Ray Dataset with INPUT_COLUMNS (prepared split or raw JSONL)."""
    import ray.data

    from pipeline.outputs import absolute, is_uri

    if cfg.data.paths:
        from pipeline.prepare.records import file_labels, parse_lines
        from pipeline.reader import JsonLinesSource

        source = JsonLinesSource([absolute(p) for p in cfg.data.paths], max_line_bytes=2_000_000)
        ds = (ray.data.read_datasource(source)
              .map_batches(parse_lines, fn_kwargs={"labels": file_labels(source._paths())}, batch_format="pyarrow")
              .filter(expr="status == 'accepted'"))
    else:
        split_dir = f"{absolute(cfg.data.prepared_dir or '').rstrip('/')}/split={cfg.data.split}"
        if not is_uri(split_dir) and not Path(split_dir).is_dir():
            raise FileNotFoundError(f"data.prepared_dir: no {split_dir} (run jobs.prepare first, or set data.paths)")
        ds = ray.data.read_parquet(split_dir)
    ds = ds.select_columns(INPUT_COLUMNS)
    if cfg.data.sample:
        ds = ds.random_sample(cfg.data.sample, seed=cfg.data.seed)
    if cfg.data.limit:
        ds = ds.limit(cfg.data.limit)
    return ds


def run_evaluation(cfg: EvaluateConfig) -> dict:
    """Predict every example, write predictions/metrics/report into a staging folder that replaces
    `output_dir` when the run succeeds (a failed run leaves the previous one as it was); return the metrics.

    Raises FileNotFoundError when the input split is missing.
    """
    from pipeline.outputs import staged_output
    from pipeline.runtime import check_actor_resources

    t0 = time.time()
    check_actor_resources(cfg.actors, cfg.cpus_per_actor, keep_free=0)
    with staged_output(cfg.output_dir, cfg.output_access) as stage:
        return _evaluate_into(cfg, Path(stage), t0)


def _evaluate_into(cfg: EvaluateConfig, out: Path, t0: float) -> dict:
    import ray.data

    from pipeline.evaluate.audit_report import evaluation_audits, fit_run_calibration, split_manipulated
    from pipeline.artifacts import provenance, write_json
    from pipeline.evaluate.metrics import compute_metrics
    from pipeline.evaluate.report import write_report

    # An evaluation set is small: read it whole first, so engine actors may take every CPU.
    ds = read_inputs(cfg).materialize()
    if cfg.manipulation_examples:  # violations again, with manipulation injected (pipeline/evaluate/audits.py)
        from pipeline.evaluate.audits import injected_examples

        inputs = ds.to_pandas()
        ds = ray.data.from_pandas(pd.concat(
            [inputs, injected_examples(inputs, cfg.data.seed, cfg.manipulation_examples)], ignore_index=True))
    predictions = ds.map_batches(
        PredictBatch, fn_constructor_kwargs=dict(model=cfg.model.model_dump(), engine=cfg.engine.model_dump(),
                                                 generate=cfg.generate,
                                                 probability=cfg.probability,
                                                 grounding_threshold=cfg.grounding_threshold,
                                                 cpus=cfg.cpus_per_actor, threshold=cfg.threshold),
        batch_format="pandas", batch_size=max(cfg.engine.batch_size, 8),
        compute=ray.data.ActorPoolStrategy(size=cfg.actors), num_gpus=cfg.gpus_per_actor or None,
        num_cpus=cfg.cpus_per_actor,
    )
    pred, manipulated = split_manipulated(predictions.to_pandas())
    pred.to_parquet(out / "predictions.parquet", index=False)
    if len(manipulated):
        manipulated.to_parquet(out / "manipulated.parquet", index=False)
    metrics = compute_metrics(pred, threshold=cfg.threshold)
    prepared = None if cfg.data.paths else cfg.data.prepared_dir
    metrics["audits"] = evaluation_audits(pred, cfg.model.adapter or cfg.model.name_or_path, prepared,
                                          prepared and cfg.data.split, cfg.threshold, manipulated)
    if prepared and cfg.data.split == "validation" and cfg.probability:
        fitted = fit_run_calibration(pred, out, f"{prepared}/split=validation")
        metrics["audits"]["calibration_fitted"] = str(fitted) if fitted else None
    metrics["run"] = {
        "model_version": pred["model_version"].iloc[0] if len(pred) else None, "examples": int(len(pred)),
        "seconds": round(time.time() - t0, 1), "config": config_to_dict(cfg), **provenance(),
        "data_manifest_hash": _manifest_hash(cfg),
    }
    if cfg.generate and len(pred):
        gen_seconds = float(pred["latency_s"].sum())
        metrics["run"]["output_tokens_per_s"] = round(float(pred["new_tokens"].sum()) / max(gen_seconds, 1e-9), 1)
    write_json(str(out / "metrics.json"), metrics)
    write_report(pred, metrics, out, run_title(cfg, metrics), dict(zip(pred["id"], pred["scenario"])))
    if cfg.compare_to:
        from pipeline.evaluate.report import write_comparison

        write_comparison(comparison_runs(cfg, metrics), out / "comparison")
    return metrics


def run_title(cfg: EvaluateConfig, metrics: dict) -> str:
    return cfg.title or f"Evaluation of {metrics['run']['model_version']}"


def comparison_runs(cfg: EvaluateConfig, metrics: dict) -> list[tuple[str, dict]]:
    """(name, metrics) of the `compare_to` runs, then this one: each delta reads "this run minus the reference"."""
    return [(Path(p).name, json.loads((Path(p) / "metrics.json").read_text())) for p in cfg.compare_to] + [
        (run_title(cfg, metrics), metrics)]


def _manifest_hash(cfg: EvaluateConfig) -> str | None:
    from pipeline.artifacts import MANIFEST_NAME

    path = Path(cfg.data.prepared_dir or "") / MANIFEST_NAME
    if cfg.data.paths or not path.is_file():
        return None
    return json.loads(path.read_text()).get("content_hash")
