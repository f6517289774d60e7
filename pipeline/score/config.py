"""Config of the score stage (jobs/score.py): the detector, the archive, the flagging threshold."""

from __future__ import annotations

from pydantic import Field, model_validator

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
    output_dir: str = Field("runs/score", description="Scores Parquet, rejects, the alert queue and summary go here, "
                            "committed unit by unit: a rerun with the same config resumes, skipping committed units.")
    restart: bool = Field(False, description="Discard the results already in output_dir and score from the start "
                          "(needed to reuse a folder after a change of model, threshold, inputs or other result-"
                          "changing keys: without it such a rerun is refused, so results never mix).")
    unit_bytes: int = Field(16 << 20, ge=1024, description="Size of a unit of work (bytes of input): what is "
                            "committed at once and skipped on resume. Plain JSON Lines files are cut at line starts "
                            "into units of about this size, Parquet files into runs of row groups; a compressed "
                            "file is one unit.")
    alerts_page_limit: int = Field(2000, ge=1, description="Most alerts on the HTML page (highest risk first); "
                                   "alerts.csv lists every flagged communication.")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    threshold: float = Field(0.5, gt=0, lt=1, description="P(NON_COMPLIANT) at or above which a message is flagged.")
    cascade: bool = Field(True, description="Use the model artifact's bag-of-words first stage (cascade.json, "
                          "fitted at the end of training: pipeline/cascade.py) when it has one: messages it scores "
                          "below its threshold are not sent to the LLM (spared, never flagged; counted in summary.json).")
    explain: bool = Field(True, description="Generate the full verdict (evidence, rule, reasoning) for flagged messages.")
    max_chars: int = Field(50_000, ge=100, description="Longer communications are rejected (counted), not cut.")
    actors: int = Field(1, ge=0, description="Engine replicas (Ray actors); 0: one per GPU of the cluster "
                        "(its GPU count / gpus_per_actor, which must then be > 0).")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")

    @model_validator(mode="after")
    def _actors_per_gpu_need_gpus(self):
        if self.actors == 0 and not self.gpus_per_actor:
            raise ValueError("actors=0 (one engine actor per GPU) needs gpus_per_actor > 0, e.g. gpus_per_actor=1")
        return self
