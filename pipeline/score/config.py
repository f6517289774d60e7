"""Config of the score stage (jobs/score.py): the detector, the archive, the flagging threshold."""

from __future__ import annotations

from pydantic import Field

from pipeline.config import RayConfig, Strict
from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.outputs import ACCESS_DESCRIPTION, OutputAccess


class ScoreConfig(Strict):
    """Config of jobs/score.py: triage a large archive of communications, explain the flagged ones."""

    model: DetectorModelConfig = Field(default_factory=DetectorModelConfig, description="The detector to load.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="How the engine runs it.")
    paths: list[str] = Field(..., min_length=1, description="Archive: JSON Lines (.jsonl/.gz) or Parquet files/folders/URIs.")
    text_field: str = Field("text", description="Field holding the communication text.")
    id_field: str = Field("id", description="Field holding the communication id (line position when absent).")
    output_dir: str = Field("runs/score", description="Scores Parquet, rejects and summary go here (replaced whole "
                            "when the run succeeds).")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    threshold: float = Field(0.5, gt=0, lt=1, description="P(NON_COMPLIANT) at or above which a message is flagged.")
    explain: bool = Field(True, description="Generate the full verdict (evidence, rule, reasoning) for flagged messages.")
    max_chars: int = Field(50_000, ge=100, description="Longer communications are rejected (counted), not cut.")
    actors: int = Field(1, ge=1, description="Engine replicas (Ray actors); one per GPU on GPU clusters.")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")
