"""Shared fixtures: one real local Ray head (`ray start --head`) per session, a tiny random Mistral
with the real v3 tokenizer, and builders for input records."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

from pipeline.testing import ray_cli, stop_ray_head

ROOT = Path(__file__).resolve().parent.parent
RAY_CMD = ray_cli()
# `ray start --head` enforces token auth on local clusters since Ray 2.59; clients must say so too.
os.environ.setdefault("RAY_AUTH_MODE", "token")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    """A real `ray start --head` for the session on free ports with a private temp dir; yields
    (gcs address, dashboard URL). Several test sessions on one machine do not disturb each other."""
    # Jobs run `python ...` on the cluster: put this interpreter first on the cluster's PATH.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    token = subprocess.run([*RAY_CMD, "get-auth-token", "--generate"], capture_output=True, text=True, env=env)
    assert token.returncode == 0, token.stderr
    temp_dir = tempfile.mkdtemp(prefix="crt-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    gcs, dashboard, agent, client = (_free_port() for _ in range(4))
    started = subprocess.run(
        [*RAY_CMD, "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}", f"--temp-dir={temp_dir}",
         "--dashboard-host=127.0.0.1", "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats"],
        capture_output=True, text=True, env=env, timeout=180,
    )
    if started.returncode != 0:
        stop_ray_head(temp_dir)
        raise AssertionError(started.stdout + started.stderr)
    yield f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}"
    import ray

    ray.shutdown()
    stop_ray_head(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_session(ray_head):
    """This process connected to the session's head (Ray Data runs on it)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_head[0], log_to_driver=False)
    yield ray_head


@pytest.fixture(scope="session")
def adapters(tiny_mistral, tmp_path_factory) -> dict[str, str]:
    """Two LoRA adapters of the tiny model, 'risk-a' and 'risk-b', with different random B weights."""
    from pipeline.testing import save_random_adapters

    return save_random_adapters(tiny_mistral, tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="session")
def tiny_mistral(tmp_path_factory) -> Path:
    """A 2-layer random MistralForCausalLM with the real Mistral v3 tokenizer, saved like a hub checkpoint."""
    from pipeline.testing import save_random_mistral

    return save_random_mistral(tmp_path_factory.mktemp("models") / "tiny-mistral", "tiny")


def version(scenario: str, verdict: str, evidence: list[str], topic: str = "Guarantees Against Loss",
            rule: str = "FINRA Rule 2150(b)", severity: str = "HIGH") -> dict:
    compliant = verdict == "COMPLIANT"
    return {
        "scenario": scenario, "final_verdict": verdict, "executive_summary": "Summary sentence.",
        "rule_violated": "None" if compliant else rule, "compliance_topic": "None" if compliant else topic,
        "severity": "NONE" if compliant else severity, "evidence_list": evidence,
        "reasoning_trace": "The advisor's statement was checked against the rule.",
    }


def item(i: int, topic: str = "Guarantees Against Loss", fmt: str = "chat", source: str = "FINRA") -> dict:
    """A valid compliant / non-compliant pair, unique per `i`."""
    bad = f"I guarantee you will not lose a cent on the Harbor {i} fund."
    good = f"Returns on the Harbor {i} fund are not guaranteed and you could lose money."
    opener = f"Client (account {i:05d}): Is the Harbor {i} fund safe for my savings?"
    return {
        "id": f"t{i}", "source": source, "chunk_analysis": {"format_identified": fmt},
        "compliant_version": version(f"{opener}\nAdvisor: {good}", "COMPLIANT", [good]),
        "non_compliant_version": version(f"{opener}\nAdvisor: {bad}", "NON_COMPLIANT", [bad], topic=topic),
    }


def write_jsonl(path: Path, items: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for it in items:
            f.write((it if isinstance(it, str) else json.dumps(it)) + "\n")
    return path


@pytest.fixture
def clean_dir(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skipped (with the reason shown) on CPU machines; run them on the device."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on the GPU machine through the device tool)")
    for test in items:
        if "gpu" in test.keywords:
            test.add_marker(skip)
