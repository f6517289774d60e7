"""Config of the evaluate stage (jobs/evaluate.py): the detector, the examples, the audits and the report."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config import RayConfig, Strict
from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.grounding import DEFAULT_THRESHOLD
from pipeline.outputs import ACCESS_DESCRIPTION, OutputAccess


class EvalDataConfig(Strict):
    prepared_dir: str | None = Field(
        "runs/prepared", description="Output folder of jobs.prepare; its `split` is evaluated (gold labels included)."
    )
    split: Literal["train", "validation", "test"] = Field("test", description="Which prepared split to evaluate.")
    paths: list[str] | None = Field(
        None, description="Raw JSON Lines instead of a prepared split (validated like jobs.prepare; rejects skipped)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many examples (after sampling).")
    sample: float | None = Field(None, gt=0, le=1, description="Evaluate a random fraction of the examples.")
    seed: int = Field(0, description="Seed of `sample` and `limit` selection.")


class EvaluateConfig(Strict):
    """Config of jobs/evaluate.py: generation-based evaluation as a Ray Data batch job."""

    model: DetectorModelConfig = Field(default_factory=DetectorModelConfig, description="The detector to load.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="How the engine runs it.")
    data: EvalDataConfig = Field(default_factory=EvalDataConfig, description="What is evaluated.")
    output_dir: str = Field("runs/eval", description="Predictions Parquet, metrics.json and the report go here "
                            "(replaced whole when the run succeeds).")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    title: str | None = Field(None, description="Report title (default: the model's version).")
    generate: bool = Field(True, description="Generate full verdicts (false: probability-only triage metrics).")
    probability: bool = Field(True, description="Compute P(NON_COMPLIANT) by one forward pass per example.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability threshold for the operating-point metrics.")
    grounding_threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=100, description="Fuzzy score (0-100) a quote needs to count as grounded.")
    manipulation_examples: int = Field(
        50, ge=0, description="Violations evaluated again with reviewer-manipulation text injected (0: no such audit)."
    )
    compare_to: list[str] = Field(
        default_factory=list, description="Other evaluation output folders to put side by side with this one."
    )
    actors: int = Field(1, ge=1, description="Engine replicas (Ray actors); one per GPU on GPU clusters.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor (1 on GPU clusters, 0 on CPU).")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")

    @model_validator(mode="after")
    def _something_to_measure(self):
        if not self.generate and not self.probability:
            raise ValueError("generate=false and probability=false leave nothing to evaluate; enable one")
        return self


