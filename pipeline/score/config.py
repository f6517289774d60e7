"""Config of the score stage (jobs/score.py): the detector, the archive and how it is read, long-message
windows, the flagging threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config import RayConfig, Strict
from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.outputs import ACCESS_DESCRIPTION, OutputAccess

ArchiveFormat = Literal["auto", "jsonl", "parquet", "csv", "eml", "mbox"]


class FieldMap(Strict):
    """Which key (JSON Lines) or column (CSV, Parquet) holds each part of a communication. E-mail (.eml, mbox)
    has fixed sources instead: Message-ID, the body, Date, From/To/Cc/Bcc, channel 'email'."""

    id: str = Field("id", description="Communication id; absent or empty: '<file name>:<line or row>'.")
    text: str = Field("text", description="The communication's text; absent or blank: a missing_text reject.")
    timestamp: str = Field("timestamp", description="When it was sent, kept as the text given (absent: null).")
    participants: str = Field("participants", description="Who took part: a list, or one string split at ';' "
                              "and ',' (a JSON list in a string is read as a list); absent: null.")
    channel: str = Field("channel", description="Channel (chat, email, sms, call ...); absent: null.")


class ChunkingConfig(Strict):
    """Long communications are scored in overlapping windows that fit the model, never cut or rejected."""

    window_tokens: int | None = Field(None, ge=64, description="Most prompt tokens per window (instruction "
                                      "included); null: the model's context less the answer budget. Lower it "
                                      "to bound the memory of one forward pass.")
    overlap_tokens: int = Field(128, ge=0, description="Tokens of the previous window repeated at the start of the "
                                "next, so a statement cut by a window edge is read whole in one of them.")
    explain_windows: int = Field(1, ge=1, description="Flagged windows of a message that are explained "
                                 "(generation), riskiest first; the verdict columns come from the riskiest.")


class ScoreRayConfig(RayConfig):
    data_memory_gb: float | None = Field(
        0.0625, gt=0, description="How much of the archive is read ahead of the engine actors (GiB): Ray Data reads "
        "the units data_memory_gb / unit_bytes at a time (at least one), and the object store holds that window, "
        "whatever the archive's size. Reading is far faster than scoring, so a few units keep the engines busy. "
        "null: the whole archive in one read (held in the object store as far as Ray's default share allows).",
    )


class ScoreConfig(Strict):
    """Config of jobs/score.py: triage a large archive of communications, explain the flagged ones."""

    model: DetectorModelConfig = Field(default_factory=DetectorModelConfig, description="The detector to load.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="How the engine runs it.")
    paths: list[str] = Field(..., min_length=1, description="Archive files, folders, globs or URIs: JSON Lines "
                             "(.jsonl/.json/.ndjson, .gz), Parquet, CSV/TSV, .eml files, mbox archives (.mbox).")
    format: ArchiveFormat = Field("auto", description="How every file is read; auto: by its extension (a compression "
                                  "suffix skipped; a file whose extension names no format is an unknown_format reject).")
    fields: FieldMap = Field(default_factory=FieldMap, description="Keys/columns of JSON Lines, CSV and Parquet.")
    output_dir: str = Field("runs/score", description="Scores Parquet, rejects, the alert queue and summary go here, "
                            "committed unit by unit: a rerun with the same config resumes, skipping committed units.")
    restart: bool = Field(False, description="Discard the results already in output_dir and score from the start "
                          "(needed to reuse a folder after a change of model, threshold, inputs or other result-"
                          "changing keys: without it such a rerun is refused, so results never mix).")
    unit_bytes: int = Field(16 << 20, ge=1024, description="Size of a unit of work (bytes of input): what is "
                            "committed at once and skipped on resume. Plain JSON Lines and mbox files are cut at "
                            "line / message starts into units of about this size, Parquet files into runs of row "
                            "groups, .eml files into batches of about this size; a CSV or compressed file is one unit.")
    alerts_page_limit: int = Field(2000, ge=1, description="Most alerts on the HTML page (highest risk first); "
                                   "alerts.csv lists every flagged communication.")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    threshold: float = Field(0.5, gt=0, lt=1, description="P(NON_COMPLIANT) at or above which a message is flagged.")
    cascade: bool = Field(True, description="Use the model artifact's bag-of-words first stage (cascade.json, "
                          "fitted at the end of training: pipeline/cascade.py) when it has one: messages it scores "
                          "below its threshold are not sent to the LLM (spared, never flagged; counted in summary.json).")
    explain: bool = Field(True, description="Generate the full verdict (evidence, rule, reasoning) for flagged messages.")
    max_bytes: int = Field(1 << 20, ge=100, description="Hard cap on a communication's text (UTF-8 bytes): longer "
                           "ones are rejected (too_long, counted); anything shorter is scored, in windows.")
    max_email_bytes: int = Field(25 << 20, ge=1024, description="Largest raw e-mail read (headers and attachments "
                                 "included); larger: a message_too_large reject.")
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig, description="Windows for long communications.")
    actors: int = Field(1, ge=0, description="Engine replicas (Ray actors); 0: one per GPU of the cluster "
                        "(its GPU count / gpus_per_actor, which must then be > 0).")
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per engine actor.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per engine actor.")
    ray: ScoreRayConfig = Field(default_factory=ScoreRayConfig, description="Ray cluster to run on.")

    @model_validator(mode="after")
    def _actors_per_gpu_need_gpus(self):
        if self.actors == 0 and not self.gpus_per_actor:
            raise ValueError("actors=0 (one engine actor per GPU) needs gpus_per_actor > 0, e.g. gpus_per_actor=1")
        return self
