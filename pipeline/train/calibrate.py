"""What is fitted at the end of training beside the weights and stored in the artifact: the verdict-probability
scale (``calibration.json``, applied by the engine) and the bag-of-words first stage (``cascade.json``,
pipeline/cascade.py, used by archive scoring).

Fine-tuning with a weighted verdict loss makes P(NON_COMPLIANT) over-confident. Right after training,
rank 0 scores the validation split with the trained model still in memory (one forward pass per example,
the engine's own scoring path), fits a temperature (or Platt) scale by minimum NLL and writes
``calibration.json`` next to the adapter; the engine applies it to every probability it returns
(`EngineConfig.calibrate`). ZeRO-3 shards the weights over the workers, so there the scale is left to an
evaluation of the validation split (`jobs.evaluate ... data.split=validation` writes one).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.train.config import TrainConfig

log = logging.getLogger(__name__)

ATTENTION = ("sdpa_gqa", "sdpa", "eager", "flash_attention_2")


def read_split(prepared_dir: str, split: str) -> tuple[list[str], list[str]]:
    """(communication texts, verdicts) of one prepared split (a folder or URI)."""
    import pyarrow.dataset as pads

    table = pads.dataset(f"{prepared_dir.rstrip('/')}/split={split}", format="parquet").to_table(
        columns=["scenario", "final_verdict"])
    return table["scenario"].to_pylist(), table["final_verdict"].to_pylist()


def validation_examples(prepared_dir: str) -> tuple[list[str], list[bool]]:
    """(communication texts, is-violation labels) of a prepared validation split (a folder or URI)."""
    texts, verdicts = read_split(prepared_dir, "validation")
    return texts, [v == "NON_COMPLIANT" for v in verdicts]


def fit_artifact_cascade(cfg: TrainConfig, stage: Path) -> Path | None:
    """Fit the bag-of-words first stage (pipeline.cascade) on the prepared data and write it into `stage`;
    None (logged) when `train.cascade_recall` is null or a split lacks a verdict."""
    from pipeline.cascade import fit_cascade, save_cascade

    if cfg.train.cascade_recall is None:
        return None
    try:
        model, cascade = fit_cascade(cfg.data.prepared_dir, cfg.train.cascade_recall, seed=cfg.train.seed)
    except ValueError as e:
        log.warning("no cascade first stage fitted: %s", e)
        return None
    log.info("cascade first stage: threshold %.4f keeps %.3f of validation violations (target %.2f) and spares "
             "the LLM %.1f%% of validation messages", cascade.threshold, cascade.validation_recall,
             cascade.target_recall, 100 * cascade.validation_spared)
    return save_cascade(model, cascade, stage)


def fit_artifact_calibration(model, tokenizer, cfg: TrainConfig, stage: Path, batch_size: int = 8) -> Path | None:
    """Score the validation split with the trained `model` and write ``calibration.json`` into `stage` (the
    staged artifact, its ``training_config.json`` already written).

    Returns the file, or None (logged, nothing written) when `train.calibration` is none, under ZeRO-3,
    or when the validation split lacks one of the verdicts.
    """
    from pipeline.evaluate.calibration import fit_calibration
    from pipeline.inference.config import DetectorModelConfig, EngineConfig
    from pipeline.inference.engine import Detector
    from pipeline.train.config import deepspeed_zero_stage

    method = cfg.train.calibration
    if method == "none":
        return None
    if cfg.train.deepspeed and deepspeed_zero_stage(cfg.train.deepspeed) == 3:
        log.warning("no calibration fitted at the end of training: ZeRO-3 shards the weights; evaluate the "
                    "validation split (jobs.evaluate data.split=validation) and copy its calibration.json")
        return None
    texts, labels = validation_examples(cfg.data.prepared_dir)
    if len(set(labels)) < 2:
        log.warning("no calibration fitted: the validation split holds %d example(s) of one verdict", len(labels))
        return None
    t0 = time.time()
    attention = getattr(model.config, "_attn_implementation", "sdpa")
    device = next(model.parameters()).device.type
    engine = EngineConfig(device="cuda" if device == "cuda" else "cpu", decoder="generate", calibrate=False,
                          batch_size=batch_size, attn_implementation=attention if attention in ATTENTION else "sdpa")
    # The staged artifact names the base and the prompt format (training_config.json); the weights are `model`'s.
    detector = Detector(DetectorModelConfig(name_or_path=str(stage), revision=cfg.model.revision,
                                            trust_remote_code=cfg.model.trust_remote_code),
                        engine, model=model, tokenizer=tokenizer)
    scores = detector.score(detector.encode_prompts(texts))
    scale = fit_calibration(scores.raw_probability, labels, method=method,
                            fitted_on=f"{cfg.data.prepared_dir.rstrip('/')}/split=validation")
    path = scale.save(stage)
    log.info("calibration (%s) fitted on %d validation examples in %.1fs: T=%.3f b=%.3f, ECE %.3f -> %.3f, "
             "NLL %.3f -> %.3f", method, scale.n_fit, time.time() - t0, scale.temperature, scale.bias,
             scale.ece_before, scale.ece_after, scale.nll_before, scale.nll_after)
    return path
