"""The service's one typed config, `ServeAppConfig`: the `args:` of an application in a Serve config file.

    applications:
    - name: complyray
      import_path: serve.app:build_app
      args: {model: {name_or_path: embedded}, engine: {device: cpu}, batching: {max_batch_size: 16}, ...}

Deployment settings (replicas, autoscaling, queue limits, CPUs/GPUs) live here too, so one file,
validated with every problem listed at once, describes the whole service. `parse_app_config`
raises `ConfigError` in the user's key names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from pipeline.config import ConfigError, Strict, cross_field_error, format_errors
from pipeline.inference.config import DetectorModelConfig, EngineConfig
from pipeline.inference.grounding import DEFAULT_THRESHOLD

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class BatchingConfig(Strict):
    max_batch_size: int = Field(
        16, ge=1, le=1024, description="Most requests a Detector replica runs through the model together "
        "(Serve dynamic batching). 1 turns batching off.")
    batch_wait_timeout_s: float = Field(
        0.02, ge=0, le=10, description="How long the first request of a batch waits for others before the "
        "batch runs anyway (seconds). Higher: bigger batches under light load, more latency.")


class AutoscalingConfig(Strict):
    min_replicas: int = Field(1, ge=0, description="Fewest Detector replicas (0 allows scale to zero: the first "
                              "request then waits for a model to load).")
    max_replicas: int = Field(1, ge=1, description="Most Detector replicas (one GPU each on GPU clusters).")
    target_ongoing_requests: float = Field(
        16, gt=0, description="Requests in flight per replica that autoscaling aims for; near max_batch_size "
        "keeps batches full without queueing.")
    upscale_delay_s: float = Field(30, ge=0, description="Load must stay high this long before adding a replica.")
    downscale_delay_s: float = Field(600, ge=0, description="Load must stay low this long before removing one.")

    @model_validator(mode="after")
    def _range(self) -> "AutoscalingConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas={self.min_replicas} exceeds max_replicas={self.max_replicas}")
        return self


class DetectorDeploymentConfig(Strict):
    num_replicas: int | None = Field(
        None, ge=1, description="A fixed number of Detector replicas (null: 1, or `autoscaling` decides).")
    autoscaling: AutoscalingConfig | None = Field(
        None, description="Scale replicas with load (exclusive with num_replicas).")
    max_ongoing_requests: int = Field(
        32, ge=1, description="Requests one replica holds at once (running + waiting for its batch); at least "
        "batching.max_batch_size, ideally twice, so the next batch fills while one runs.")
    max_queued_requests: int = Field(
        64, ge=-1, description="Requests each caller (ingress replica) queues for busy replicas; beyond it the "
        "service answers 503 at once instead of queueing. -1: unbounded (never 503, latency grows).")
    queue_timeout_s: float | None = Field(
        60.0, gt=0, description="Longest a request may wait for the model (from its arrival at the ingress until "
        "a replica starts its batch); one still waiting then is answered 503 (Retry-After: this many seconds, "
        "rounded up) and never run. Work already running is not cut short. Measured on wall clocks (keep the "
        "nodes' clocks in sync). null: no deadline.")
    num_cpus: float = Field(1.0, ge=0, description="CPUs per replica; on CPU also torch's thread count.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (1 on GPU clusters; engine.device=auto "
                            "then picks CUDA).")
    max_adapters_per_replica: int = Field(
        4, ge=1, description="LoRA adapters kept attached to a replica's base model; the least recently used is "
        "detached beyond this (Serve model multiplexing).")

    @model_validator(mode="after")
    def _replicas(self) -> "DetectorDeploymentConfig":
        if self.num_replicas is not None and self.autoscaling is not None:
            raise ValueError("set num_replicas or autoscaling, not both")
        return self


class IngressDeploymentConfig(Strict):
    num_replicas: int = Field(1, ge=1, description="HTTP ingress replicas (FastAPI; light, async).")
    max_ongoing_requests: int = Field(
        512, ge=1, description="Concurrent HTTP requests one ingress replica holds; keep it above the Detector's "
        "capacity so overload is answered by the Detector's queue limit (503) rather than queued here.")
    max_queued_requests: int = Field(1024, ge=-1, description="Requests the HTTP proxy queues per ingress "
                                     "replica before answering 503 itself (-1: unbounded).")
    num_cpus: float = Field(0.0, ge=0, description="CPUs reserved per ingress replica (0: it only awaits I/O).")


class LimitsConfig(Strict):
    max_chars: int = Field(20_000, ge=1, description="Longest communication accepted (characters); longer: 413.")
    max_prompt_tokens: int = Field(
        4096, ge=16, description="Longest formatted prompt (tokens, instruction included): /v1/analyze judges a "
        "longer text in overlapping windows of this size; the other endpoints answer 413. With "
        "engine.max_new_tokens it must fit the model's context.")
    window_overlap_tokens: int = Field(128, ge=0, description="/v1/analyze windows: tokens each window repeats "
                                       "from the one before (capped at half a window).")
    max_batch_items: int = Field(32, ge=1, description="Most communications in one /v1/analyze/batch or "
                                 "/v1/score request; more: 413.")


class AuthConfig(Strict):
    enabled: bool = Field(False, description="Require `Authorization: Bearer <key>` on /v1/* (health probes stay "
                          "open). The key comes from api_key_file, else the env var api_key_env.")
    api_key_env: str = Field("COMPLYRAY_API_KEY", description="Environment variable holding the key, as seen by "
                             "the ingress replica (e.g. a Kubernetes secretKeyRef on the Ray pods).")
    api_key_file: str | None = Field(None, description="File holding the key (e.g. a mounted secret); wins over "
                                     "the env var.")


class AuditConfig(Strict):
    path: str | None = Field(None, description="JSON Lines file getting one record per decision delivered, "
                             "appended under a file lock by the ingress replica. `{replica}` in it becomes the "
                             "replica's id: one file per replica, for several replicas on a shared volume. "
                             "null: no audit log.")
    include_text: bool = Field(False, description="Also store the communication's raw text (default: only its "
                               "SHA-256).")
    file_mode: str = Field(
        "0600", pattern=r"^0?[0-7]{3}$", description="Permissions (octal) of the audit file when the service "
        "creates it; a folder it creates for it gets the same with search (x) added, 0700 for 0600. The default "
        "lets only the service's user read the decisions; e.g. 0640 lets its group read them too.")


class ServeAppConfig(Strict):
    """Config of the serving application (serve/app.py: build_app)."""

    model: DetectorModelConfig = Field(
        default_factory=DetectorModelConfig, description="The detector model; with `adapters`, "
        "model.name_or_path is the shared base model.")
    engine: EngineConfig = Field(
        default_factory=lambda: EngineConfig(batch_size=32), description="How each replica runs the model.")
    adapters: dict[str, str] = Field(
        default_factory=dict, description="LoRA adapters served on the one base model: name -> adapter folder "
        "(a training artifact with adapter_config.json). Clients pick one per request.")
    default_adapter: str | None = Field(None, description="Adapter used when a request names none (null: the "
                                        "base model, named `base_name`).")
    base_name: str = Field("base", description="Model name of model.name_or_path without any adapter.")
    grounding_threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=100, description="Fuzzy score (0-100) an evidence quote "
                                       "needs to count as grounded in the communication.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Dynamic request batching.")
    detector: DetectorDeploymentConfig = Field(default_factory=DetectorDeploymentConfig,
                                                 description="Model replicas: count, queue limits, resources.")
    ingress: IngressDeploymentConfig = Field(default_factory=IngressDeploymentConfig,
                                               description="HTTP ingress replicas.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Input size limits.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Optional API-key authentication.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Per-decision audit log.")

    @model_validator(mode="after")
    def _check_combinations(self) -> "ServeAppConfig":
        errors = []
        for name in self.adapters:
            if not ADAPTER_NAME.match(name) or name == self.base_name:
                errors.append(cross_field_error(
                    ("adapters", name), name, f"adapter names are 1-64 of [A-Za-z0-9._:-] and differ from "
                    f"base_name={self.base_name!r}"))
        if self.default_adapter is not None and self.default_adapter not in self.adapters:
            errors.append(cross_field_error(("default_adapter",), self.default_adapter,
                                             f"not one of adapters {sorted(self.adapters)}"))
        if self.adapters and self.model.adapter is not None:
            errors.append(cross_field_error(
                ("model", "adapter"), self.model.adapter,
                "with `adapters`, list every adapter there (name -> folder) and leave model.adapter null"))
        if self.adapters and (Path(self.model.name_or_path) / "adapter_config.json").is_file():
            errors.append(cross_field_error(
                ("model", "name_or_path"), self.model.name_or_path,
                "is an adapter folder; with `adapters`, model.name_or_path must be the base model they were "
                "trained on"))
        if self.detector.max_ongoing_requests < self.batching.max_batch_size:
            errors.append(cross_field_error(
                ("detector", "max_ongoing_requests"), self.detector.max_ongoing_requests,
                f"below batching.max_batch_size={self.batching.max_batch_size}: a replica could never fill a "
                "batch; raise it (twice the batch size lets the next batch fill while one runs)"))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def adapter_for(self, name: str | None) -> str | None:
        """The adapter folder behind a model name (None for the base model). Raises KeyError when unknown."""
        name = name or self.default_adapter or self.base_name
        if name == self.base_name:
            return None
        return self.adapters[name]

    @property
    def model_names(self) -> list[str]:
        """Every model name a client may ask for: the base, then the adapters."""
        return [self.base_name, *self.adapters]


def parse_app_config(args: dict[str, Any] | None) -> ServeAppConfig:
    """Validate application args; raises ConfigError listing every problem in dotted key names."""
    try:
        return ServeAppConfig.model_validate(args or {})
    except ValidationError as e:
        raise ConfigError(f"ServeAppConfig has {e.error_count()} problem(s):\n{format_errors(e)}") from e


def with_absolute_paths(cfg: ServeAppConfig) -> ServeAppConfig:
    """`cfg` with relative local paths (model.name_or_path/adapter when they exist, adapters, audit.path,
    auth.api_key_file) made absolute against the current directory: replicas run elsewhere, so the
    paths are fixed where the application is built (`serve run`, jobs.serve; on a cluster use absolute)."""

    def fix(value: str | None, only_existing: bool = False) -> str | None:
        if value is None or "://" in value or Path(value).is_absolute():
            return value
        return str(Path(value).resolve()) if not only_existing or Path(value).exists() else value

    data = cfg.model_dump()
    data["model"]["name_or_path"] = fix(cfg.model.name_or_path, only_existing=True)
    data["model"]["adapter"] = fix(cfg.model.adapter, only_existing=True)
    data["adapters"] = {name: fix(folder) for name, folder in cfg.adapters.items()}
    data["audit"]["path"] = fix(cfg.audit.path)
    data["auth"]["api_key_file"] = fix(cfg.auth.api_key_file)
    return ServeAppConfig.model_validate(data)


def check_adapter_folders(cfg: ServeAppConfig) -> None:
    """Every configured adapter folder exists and holds adapter_config.json; raises ConfigError listing all
    that do not. Run where the replicas run (build_app runs on the cluster for `serve deploy`)."""
    bad = [f"  adapters.{name}={path!r}: no adapter_config.json there (a PEFT adapter folder, e.g. a training "
           "job's output_dir)" for name, path in cfg.adapters.items()
           if not (Path(path) / "adapter_config.json").is_file()]
    if bad:
        raise ConfigError(f"ServeAppConfig has {len(bad)} problem(s):\n" + "\n".join(bad))
