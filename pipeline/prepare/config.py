"""Config of the prepare stage (jobs/prepare.py): inputs, validation, split, and the model whose template formats."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config import FormatConfig, ModelConfig, RayConfig, Strict
from pipeline.outputs import ACCESS_DESCRIPTION, OutputAccess


class DataConfig(Strict):
    paths: list[str] = Field(
        ["data/sample"],
        description="Input JSON Lines: files, directories, globs, .gz, or cloud URIs (s3://, gs://) Ray Data reads.",
        min_length=1,
    )
    output_dir: str = Field("runs/prepared", description="Where the Parquet splits, rejects and manifest go; "
                            "written beside it first and swapped in only when the run succeeds.")
    output_access: OutputAccess = Field("owner", description=ACCESS_DESCRIPTION)
    max_seq_len: int = Field(2048, ge=64, le=131072, description="Token budget of one formatted example (prompt + answer).")
    overlong: Literal["reject", "truncate"] = Field(
        "reject", description="Examples over max_seq_len: 'reject' them, or 'truncate' the communication to fit "
        "(rejected anyway if that cuts off an evidence quote). Counted in the manifest either way.",
    )
    max_line_bytes: int = Field(2_000_000, ge=1024, description="Longer input lines are rejected unread.")
    dedup: Literal["near", "exact", "off"] = Field(
        "near", description="Duplicate scenarios: 'near' (case, spacing, punctuation ignored), 'exact', or 'off'.",
    )
    validation_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for validation.")
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of pair groups for test.")
    seed: int = Field(42, description="Seed of the split; same seed and input give the same split.")


class PrepareConfig(Strict):
    """Config of jobs/prepare.py: raw JSON Lines -> formatted, split Parquet + manifest."""

    data: DataConfig = Field(default_factory=DataConfig, description="Inputs, outputs, validation and split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Whose tokenizer and chat template format the data.")
    format: FormatConfig = Field(default_factory=FormatConfig, description="Instruction text and its placement.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Ray cluster to run on.")
