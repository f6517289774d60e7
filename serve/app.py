"""The complyray Ray Serve application: the HTTP ingress (serve/ingress.py) in front of Detector replicas
(serve/replica.py), both configured from one `ServeAppConfig` (serve/config.py).

    serve run serve/config_demo.yaml                     # embedded model on CPU, http://127.0.0.1:8000/docs
    serve deploy serve/config_mistral7b_gpu.yaml          # onto a running cluster (GPU replicas, autoscaling)
    python -m jobs.serve --config serve/config_demo.yaml --smoke

A request's way through: HTTP -> `Ingress` (checks, auth, the one tokenisation) -> `DetectorServer` (dynamic
batching, adapter choice) -> the engine's `Detector` (score + generate from the ids) -> back to the ingress,
where `pipeline.inference.verdicts.read_verdict` turns the generation into the verdict it answers with.
"""

from ray.serve import Application

from serve.config import ServeAppConfig, check_adapter_folders, parse_app_config, with_absolute_paths
from serve.ingress import Ingress
from serve.replica import DetectorServer


def deployment_options(cfg: ServeAppConfig) -> tuple[dict, dict]:
    """Serve options of the (Detector, Ingress) deployments from the config."""
    d, i = cfg.detector, cfg.ingress
    detector = {"max_ongoing_requests": d.max_ongoing_requests, "max_queued_requests": d.max_queued_requests,
                "ray_actor_options": {"num_cpus": d.num_cpus, "num_gpus": d.num_gpus}}
    if d.autoscaling is not None:
        detector["autoscaling_config"] = d.autoscaling.model_dump()
    else:
        detector["num_replicas"] = d.num_replicas or 1
    ingress = {"num_replicas": i.num_replicas, "max_ongoing_requests": i.max_ongoing_requests,
               "max_queued_requests": i.max_queued_requests, "ray_actor_options": {"num_cpus": i.num_cpus}}
    return detector, ingress


def build_app(args: dict) -> Application:
    """Serve application builder (`import_path: serve.app:build_app`, `args:` = ServeAppConfig).

    Raises ConfigError listing every problem in the args, or a missing adapter folder.
    """
    cfg = with_absolute_paths(parse_app_config(args))
    check_adapter_folders(cfg)
    detector_opts, ingress_opts = deployment_options(cfg)
    config = cfg.model_dump(mode="json")
    detector = DetectorServer.options(**detector_opts).bind(config)
    return Ingress.options(**ingress_opts).bind(detector, config)
