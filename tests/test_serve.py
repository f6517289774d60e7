"""The Serve application over real HTTP on a real local Ray: tiny random Mistral, two real LoRA adapters.

Two deployments, one per test class (Serve is shut down in between): the full service (auth on,
adapters, audit log) and a deliberately tiny-capacity one for overload. Plus the jobs.serve entry point
and config validation, which need no deployment.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from pipeline.config import ConfigError
from serve.config import parse_app_config

ROOT = Path(__file__).resolve().parent.parent
PORT = 8123
URL = f"http://127.0.0.1:{PORT}"
KEY = "test-key-" + uuid.uuid4().hex
TEXT = "Client: Is the Harbor fund safe?\nAdvisor: I guarantee you will not lose a cent on the Harbor fund."


def deploy(args: dict):
    from ray import serve

    from serve.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(build_app(args), name="complyray", route_prefix="/")


def post(path: str, body, key: str | None = KEY, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    if isinstance(body, (str, bytes)):
        return requests.post(URL + path, data=body, headers={**headers, "content-type": "application/json"},
                             timeout=120, **kw)
    return requests.post(URL + path, json=body, headers=headers, timeout=120, **kw)


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class TestService:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def service(cls, ray_session, tiny_mistral, adapters, tmp_path_factory):
        from ray import serve

        folder = tmp_path_factory.mktemp("service")
        (folder / "key").write_text(KEY + "\n")
        args = {
            "model": {"name_or_path": str(tiny_mistral)}, "engine": {"device": "cpu", "max_new_tokens": 24, "batch_size": 16},
            "adapters": adapters,
            "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.25},
            # One adapter attached at a time: switching adapters exercises Serve's LRU eviction (detach + attach).
            "detector": {"num_replicas": 1, "max_ongoing_requests": 16, "max_queued_requests": 64, "num_cpus": 1,
                         "max_adapters_per_replica": 1},
            "limits": {"max_chars": 6000, "max_prompt_tokens": 600, "max_batch_items": 4},
            "auth": {"enabled": True, "api_key_file": str(folder / "key")},
            "audit": {"path": str(folder / "audit" / "audit.jsonl")},  # the service creates the folder
        }
        deploy(args)
        cls.audit_path = folder / "audit" / "audit.jsonl"
        cls.adapter_dirs = adapters
        cls.model_dir = str(tiny_mistral)
        yield
        serve.shutdown()

    def test_probes_are_open_and_ready(self):
        assert requests.get(URL + "/healthz", timeout=10).json() == {"status": "ok"}
        ready = requests.get(URL + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["model"]["device"] == "cpu"
        assert "/v1/chat/completions" in requests.get(URL + "/openapi.json", timeout=10).json()["paths"]

    def test_auth_guards_v1(self):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
            r = requests.get(URL + "/v1/models", headers=headers, timeout=10)
            assert r.status_code == 401 and "API key" in r.json()["error"]["message"], r.text
        assert post("/v1/analyze", {"text": TEXT}, key="wrong").status_code == 401
        r = requests.get(URL + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        cards = {c["id"]: c for c in r.json()["data"]}
        assert r.status_code == 200 and list(cards) == ["base", "risk-a", "risk-b"]
        assert cards["base"]["default"] and cards["risk-a"]["adapter_dir"] == self.adapter_dirs["risk-a"]
        assert cards["risk-b"]["version"] == "risk-b"

    def test_analyze(self):
        r = post("/v1/analyze", {"text": TEXT, "id": "m-1", "metadata": {"channel": "chat"}})
        assert r.status_code == 200, r.text
        a = r.json()
        assert uuid.UUID(a["request_id"]) and a["id"] == "m-1" and a["metadata"] == {"channel": "chat"}
        assert 0 < a["verdict_probability"] < 1 and 0 < a["format_mass"] <= 1
        # Under the verdict grammar (engine.constrained, the default) a random model's answer is a verdict from
        # its first token; 24 new tokens cannot hold a whole one: reported as truncated, not as a parse error.
        assert a["parse_status"] == "truncated" and not a["finished"], a["raw_text"]
        assert a["raw_text"].lstrip().startswith('{"final_verdict": "')
        assert a["verdict"]["final_verdict"] in ("COMPLIANT", "NON_COMPLIANT")
        assert isinstance(a["evidence"], list) and a["raw_text"] is not None
        assert a["usage"]["prompt_tokens"] > 100 and 0 < a["usage"]["completion_tokens"] <= 24
        assert a["model"]["name"] == "base" and a["model"]["adapter"] is None and a["latency_ms"] > 0
        assert a["batch_size"] >= 1

    def test_long_text_below_the_cap_is_analyzed_in_windows(self):
        """Over limits.max_prompt_tokens (600) but under limits.max_chars (6000): judged in overlapping windows
        (was a 413), its probability the riskiest window's, each window scoring as /v1/score does."""
        text = "".join(f"Advisor: fund {i} has a fee of {i % 7}% and a lock-up of {i % 5} years.\n" for i in range(90))
        assert len(text) < 6000
        r = post("/v1/analyze", {"text": text, "id": "long-1"})
        assert r.status_code == 200, r.text
        a = r.json()
        windows = a["windows"]
        assert len(windows) > 1 and windows[0]["start"] == 0 and windows[-1]["end"] == len(text)
        assert all(w["prompt_tokens"] <= 600 for w in windows)
        assert all(p["start"] < n["start"] < p["end"] for p, n in zip(windows, windows[1:]))
        [best] = [w for w in windows if w["explained"]]
        assert a["verdict_probability"] == max(w["verdict_probability"] for w in windows) == best["verdict_probability"]
        assert a["usage"]["prompt_tokens"] == best["prompt_tokens"] and a["id"] == "long-1"
        piece = text[best["start"]:best["end"]]
        s = post("/v1/score", {"text": piece}).json()["results"][0]["verdict_probability"]
        assert s == pytest.approx(best["verdict_probability"], abs=1e-4)
        for e in a["evidence"]:  # whatever the random model quoted: located in the request's text, or null
            assert e["start"] is None or best["start"] <= e["start"] < e["end"] <= best["end"]
        short = post("/v1/analyze", {"text": TEXT}).json()["windows"]
        assert [(w["start"], w["end"], w["explained"]) for w in short] == [(0, len(TEXT), True)]

    def test_batch_and_score(self):
        r = post("/v1/analyze/batch", {"items": [{"text": TEXT, "id": str(i)} for i in range(3)]})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["id"] for x in results] == ["0", "1", "2"] and len({x["request_id"] for x in results}) == 3
        assert max(x["batch_size"] for x in results) > 1  # the three items ran through the model together
        s = post("/v1/score", {"texts": [TEXT, "Advisor: Returns are not guaranteed."]})
        assert s.status_code == 200, s.text
        probs = [x["verdict_probability"] for x in s.json()["results"]]
        assert len(probs) == 2 and all(0 < p < 1 for p in probs)
        single = post("/v1/score", {"text": TEXT}).json()["results"][0]["verdict_probability"]
        assert single == pytest.approx(probs[0], abs=1e-4)

    def test_concurrent_requests_share_a_batch(self):
        with cf.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: post("/v1/score", {"text": f"{TEXT} ({i})"}), range(8)))
        assert all(a.status_code == 200 for a in answers)
        sizes = [a.json()["results"][0]["batch_size"] for a in answers]
        assert max(sizes) > 1, sizes

    def test_adapters_are_selected_per_request_and_differ(self):
        def score(**kw):
            r = post("/v1/score", {"text": TEXT, **kw.pop("body", {})}, **kw)
            assert r.status_code == 200, r.text
            return r.json()

        base, a, b = score(), score(body={"adapter": "risk-a"}), score(body={"adapter": "risk-b"})
        p = [x["results"][0]["verdict_probability"] for x in (base, a, b)]
        assert len({round(v, 4) for v in p}) == 3, p
        assert (a["model"]["name"], a["model"]["adapter"]) == ("risk-a", self.adapter_dirs["risk-a"])
        attached = requests.get(URL + "/readyz", timeout=10).json()["model"]["adapters_attached"]
        assert attached == ["risk-b"]  # risk-a was evicted (max_adapters_per_replica=1), the base is shared
        via_header = score(headers={"serve_multiplexed_model_id": "risk-a"})  # attached again
        assert via_header["model"]["name"] == "risk-a"
        assert via_header["results"][0]["verdict_probability"] == pytest.approx(p[1], abs=1e-5)
        again = score()  # back to the bare base after adapters were active
        assert again["results"][0]["verdict_probability"] == pytest.approx(p[0], abs=1e-5)
        gen = post("/v1/analyze", {"text": TEXT, "adapter": "risk-b"}).json()
        assert gen["model"]["name"] == "risk-b" and gen["model"]["version"] == "risk-b"

    def test_openai_client(self):
        import openai

        client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == ["base", "risk-a", "risk-b"]
        resp = client.chat.completions.create(model="risk-a", messages=[
            {"role": "system", "content": "ignored"}, {"role": "user", "content": TEXT}])
        assert resp.object == "chat.completion" and resp.model == "risk-a"
        assert resp.choices[0].message.role == "assistant" and resp.choices[0].message.content
        assert resp.choices[0].finish_reason in ("stop", "length")
        assert resp.usage.prompt_tokens > 100 and resp.usage.total_tokens > resp.usage.prompt_tokens
        asked = client.chat.completions.create(model="base", messages=[{"role": "user", "content": TEXT}],
                                               response_format={"type": "json_object"})
        assert asked.choices[0].finish_reason == "length"  # 24 tokens: the verdict is cut, and says so
        assert asked.model_extra["complyray"]["parse_status"] == "truncated"
        with pytest.raises(openai.UnprocessableEntityError, match="response_format"):
            client.chat.completions.create(model="base", messages=[{"role": "user", "content": TEXT}],
                                           response_format={"type": "xml"})
        with pytest.raises(openai.BadRequestError, match="stream"):
            client.chat.completions.create(model="base", messages=[{"role": "user", "content": TEXT}],
                                           stream=True)
        with pytest.raises(openai.NotFoundError, match="risk-a"):
            client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": TEXT}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=URL + "/v1", api_key="nope", max_retries=0).models.list()

    @pytest.mark.parametrize("path,body,status,fragment", [
        ("/v1/analyze", {"text": ""}, 422, "empty"),
        ("/v1/analyze", {"text": "  \n "}, 422, "empty"),
        ("/v1/analyze", {"text": 5}, 422, "text"),
        ("/v1/analyze", {}, 422, "text: Field required"),
        ("/v1/analyze", {"text": TEXT, "colour": "red"}, 422, "colour"),
        ("/v1/analyze", "{not json", 422, "JSON"),
        ("/v1/analyze", ["a list"], 422, "body"),
        ("/v1/analyze", {"text": "a" * 6001}, 413, "6000"),
        ("/v1/score", {"text": "fund guarantee " * 300}, 413, "limits.max_prompt_tokens"),
        ("/v1/analyze/batch", {"items": [{"text": "fund guarantee " * 300}]}, 413, "limits.max_prompt_tokens"),
        ("/v1/analyze", {"text": TEXT, "adapter": "nope"}, 404, "['base', 'risk-a', 'risk-b']"),
        ("/v1/analyze/batch", {"items": []}, 422, "items"),
        ("/v1/analyze/batch", {"items": [{"text": TEXT}] * 5}, 413, "limit of 4"),
        ("/v1/analyze/batch", {"items": [{"text": TEXT}, {"text": ""}, {"text": "a" * 6001}]}, 422, "items.1.text"),
        ("/v1/analyze/batch", {"items": [{"text": TEXT, "adapter": "zzz"}]}, 404, "zzz"),
        ("/v1/score", {}, 422, "exactly one"),
        ("/v1/score", {"text": TEXT, "texts": [TEXT]}, 422, "exactly one"),
        ("/v1/score", {"texts": []}, 422, "texts"),
        ("/v1/score", {"texts": [TEXT] * 5}, 413, "limit of 4"),
        ("/v1/score", {"texts": [TEXT, None]}, 422, "texts.1"),
        ("/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": TEXT}], "stream": True},
         400, "stream"),
        ("/v1/chat/completions", {"model": "base", "messages": [{"role": "system", "content": "x"}]}, 422, "user"),
        ("/v1/chat/completions", {"model": "base", "messages": [{"role": "user", "content": ""}]}, 422, "empty"),
        ("/v1/chat/completions", {"model": "other", "messages": [{"role": "user", "content": TEXT}]}, 404, "other"),
        ("/v1/chat/completions", {"messages": []}, 422, "model"),
    ])
    def test_bad_input_is_a_clear_4xx(self, path, body, status, fragment):
        r = post(path, body)
        assert r.status_code == status, r.text
        assert fragment in r.json()["error"]["message"], r.text

    @pytest.mark.parametrize("path,raw,field", [
        ("/v1/analyze", '{"text": "a \\ud800 b"}', "text"),
        ("/v1/score", '{"text": "a \\ud800 b"}', "text"),
        ("/v1/score", '{"texts": ["fine", "a \\udc00 b"]}', "texts.1"),
        ("/v1/analyze/batch", '{"items": [{"text": "ok", "id": "\\ud83d"}]}', "items.0.id"),
        ("/v1/analyze", '{"text": "ok", "metadata": {"note": ["x", "\\ud800"]}}', "metadata"),
        ("/v1/chat/completions", '{"model": "base", "messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages.0.content"),
    ])
    def test_lone_surrogate_is_a_422_naming_the_field(self, path, raw, field):
        """JSON may escape half a UTF-16 pair; no tokenizer can take it (was a 500 TypeError)."""
        r = post(path, raw)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request" and error["code"] == 422
        assert error["problems"][0].startswith(f"{field}: not valid Unicode") and "lone surrogate" in error["message"]
        assert post("/v1/score", '{"text": "a pair is fine: \\ud83d\\ude00"}').status_code == 200

    def test_body_that_is_not_utf8_is_a_400_in_the_error_shape(self):
        r = post("/v1/analyze", b'{"text": "caf\xe9 au lait"}')
        assert r.status_code == 400, r.text
        assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "invalid_request",
                                      "code": 400, "problems": [r.json()["error"]["message"]]}}
        assert "not valid UTF-8 (byte 0xe9 at position 13)" in r.json()["error"]["message"]
        for method, path, status in (("get", "/v2/nothing", 404), ("get", "/v1/analyze", 405)):
            other = requests.request(method, URL + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
            assert other.status_code == status and other.json()["error"]["code"] == status, other.text

    @pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
    def test_body_not_sent_as_json_is_a_415(self, content_type):
        headers = {"Authorization": f"Bearer {KEY}", **({"content-type": content_type} if content_type else {})}
        for path in ("/v1/analyze", "/v1/score"):
            r = requests.post(URL + path, data=json.dumps({"text": TEXT}).encode(), headers=headers, timeout=30)
            assert r.status_code == 415, r.text
            error = r.json()["error"]
            assert error["type"] == "unsupported_media_type" and "Content-Type: application/json" in error["message"]
            assert (repr(content_type) if content_type else "none was sent") in error["message"]
        r = requests.post(URL + "/v1/score", data="x", headers={"content-type": "text/plain"}, timeout=30)
        assert r.status_code == 401  # auth is checked first
        headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json; charset=utf-8"}
        ok = requests.post(URL + "/v1/score", data=json.dumps({"text": TEXT}).encode(), headers=headers, timeout=60)
        assert ok.status_code == 200, ok.text

    def test_readyz_shows_model_paths_only_with_the_key(self):
        open_ = requests.get(URL + "/readyz", timeout=10)
        assert open_.status_code == 200 and open_.json()["status"] == "ready"
        assert self.model_dir not in open_.text and {"model", "adapter"}.isdisjoint(open_.json()["model"])
        assert open_.json()["model"]["version"] == Path(self.model_dir).name
        wrong = requests.get(URL + "/readyz", headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert wrong.status_code == 200 and self.model_dir not in wrong.text
        keyed = requests.get(URL + "/readyz", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert keyed.status_code == 200 and keyed.json()["model"]["model"] == self.model_dir

    def test_audit_log_is_private(self):
        assert post("/v1/score", {"text": TEXT}).status_code == 200
        assert self.audit_path.stat().st_mode & 0o777 == 0o600
        assert self.audit_path.parent.stat().st_mode & 0o777 == 0o700

    def test_unknown_adapter_in_header_is_404(self):
        r = post("/v1/score", {"text": TEXT}, headers={"serve_multiplexed_model_id": "ghost"})
        assert r.status_code == 404 and "ghost" in r.json()["error"]["message"]

    def test_audit_log_has_one_line_per_decision(self):
        before = len(audit_lines(self.audit_path))
        texts = [f"{TEXT} [{i}]" for i in range(6)]
        assert post("/v1/analyze", {"text": texts[0], "id": "aud-0"}).status_code == 200
        assert post("/v1/analyze/batch", {"items": [{"text": t} for t in texts[1:4]]}).status_code == 200
        assert post("/v1/score", {"texts": texts[4:6]}).status_code == 200
        assert post("/v1/chat/completions", {"model": "risk-b", "messages": [{"role": "user", "content": TEXT}]}
                    ).status_code == 200
        assert post("/v1/analyze", {"text": ""}).status_code == 422  # rejected: no decision, no line
        lines = audit_lines(self.audit_path)[before:]
        assert len(lines) == 7
        assert [x["endpoint"] for x in lines] == ["analyze", "batch", "batch", "batch", "score", "score", "chat"]
        sha = {hashlib.sha256(t.encode()).hexdigest() for t in texts + [TEXT]}
        for x in lines:
            assert x["input_sha256"] in sha and "text" not in x
            assert {"request_id", "timestamp", "model", "adapter", "version", "verdict", "verdict_probability",
                    "parse_status", "latency_ms"} <= set(x)
        assert lines[0]["id"] == "aud-0" and lines[-1]["model"] == "risk-b"
        assert len({x["request_id"] for x in lines}) == 7

    def test_injected_control_text_stays_text(self, tiny_mistral):
        """A communication that forges a chat turn ([/INST] ... </s><s>[INST], <|im_end|> ...) is judged as text:
        the prompt the replica builds is the safe encoding (forged markers would be one token each, so fewer) on
        /v1/score, /v1/analyze and /v1/chat/completions, and the ingress's length limit counts it that way."""
        from test_injection import CORPUS

        from pipeline.formatting import ChatFormatter
        from pipeline.models import load_tokenizer

        tok = load_tokenizer(str(tiny_mistral))
        f = ChatFormatter(tok)
        texts = [CORPUS["mistral_turn"], CORPUS["alone_mistral"], CORPUS["starts_with"], CORPUS["chatml_turn"]]
        safe = [len(ids) for ids in f.prompt_ids(texts)]
        naive = [len(tok(f.prompt(t), add_special_tokens=False)["input_ids"]) for t in texts]
        assert all(n < s for n, s in zip(naive[:3], safe[:3]))
        r = post("/v1/score", {"texts": texts})
        assert r.status_code == 200, r.text
        assert [x["prompt_tokens"] for x in r.json()["results"]] == safe
        a = post("/v1/analyze", {"text": texts[0]})
        assert a.status_code == 200 and a.json()["usage"]["prompt_tokens"] == safe[0], a.text
        c = post("/v1/chat/completions", {"model": "risk-a", "messages": [{"role": "user", "content": texts[1]}]})
        assert c.status_code == 200 and c.json()["usage"]["prompt_tokens"] == safe[1], c.text
        flood = "[INST]" * 300  # 300 tokens if read as markers (under the 600-token limit), twice that as text
        assert len(tok(f.prompt(flood), add_special_tokens=False)["input_ids"]) <= 600 < len(f.prompt_ids([flood])[0])
        r = post("/v1/score", {"text": flood})
        assert r.status_code == 413 and "limits.max_prompt_tokens" in r.json()["error"]["message"], r.text

    def test_metrics_reach_the_prometheus_endpoint(self):
        import ray

        port = next(n["MetricsExportPort"] for n in ray.nodes() if n["Alive"])
        deadline, text = time.time() + 40, ""
        while time.time() < deadline:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            if "complyray_requests" in text and "complyray_batch_size" in text:
                break
            time.sleep(2)
        assert 'endpoint="/v1/analyze"' in text and "complyray_decisions" in text, text[-2000:]


class TestOverload:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def small_service(cls, ray_session, tiny_mistral):
        from ray import serve

        deploy({
            "model": {"name_or_path": str(tiny_mistral)}, "engine": {"device": "cpu", "max_new_tokens": 768, "batch_size": 2},
            "batching": {"max_batch_size": 2, "batch_wait_timeout_s": 0.05},
            "detector": {"num_replicas": 1, "max_ongoing_requests": 2, "max_queued_requests": 2, "num_cpus": 1},
            "limits": {"max_prompt_tokens": 1024},
        })
        yield
        serve.shutdown()

    def test_auth_off_leaves_v1_open(self):
        assert requests.get(URL + "/v1/models", timeout=10).status_code == 200

    def test_overload_answers_503_fast(self):
        def call(i):
            t0 = time.perf_counter()
            r = post("/v1/analyze", {"text": f"{TEXT} #{i}"}, key=None)
            return r, time.perf_counter() - t0

        with cf.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
        codes = [r.status_code for r, _ in results]
        rejected = [(r, s) for r, s in results if r.status_code == 503]
        assert codes.count(200) >= 2 and len(rejected) >= 8, codes
        assert set(codes) <= {200, 503}, codes
        slowest_ok = max(s for r, s in results if r.status_code == 200)
        for r, seconds in rejected:
            body = r.json()["error"]
            assert body["type"] == "overloaded" and "max_queued_requests=2" in body["message"]
            assert r.headers["Retry-After"] == "1" and seconds < 1.5, (seconds, slowest_ok)
        assert slowest_ok > 1.5  # the rejections did not wait for the model


class TestQueueTimeout:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def slow_service(cls, ray_session, tiny_mistral):
        from ray import serve

        # Room to queue (no 503 for overload) but a 0.5 s deadline to be taken by the model, whose batches of
        # two take seconds (768 new tokens).
        deploy({
            "model": {"name_or_path": str(tiny_mistral)}, "engine": {"device": "cpu", "max_new_tokens": 768, "batch_size": 2},
            "batching": {"max_batch_size": 2, "batch_wait_timeout_s": 0.05},
            "detector": {"num_replicas": 1, "max_ongoing_requests": 4, "max_queued_requests": 16, "num_cpus": 1,
                         "queue_timeout_s": 0.5},
            "limits": {"max_prompt_tokens": 1024},
        })
        yield
        serve.shutdown()

    def test_waiting_past_queue_timeout_answers_503_with_retry_after(self):
        def call(i):
            t0 = time.perf_counter()
            r = post("/v1/analyze", {"text": f"{TEXT} #{i}"}, key=None)
            return r, time.perf_counter() - t0

        with cf.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(8)))
        codes = [r.status_code for r, _ in results]
        assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 4, codes
        slowest_ok = max(s for r, s in results if r.status_code == 200)
        for r, seconds in results:
            if r.status_code == 503:
                body = r.json()["error"]
                assert body["type"] == "queue_timeout" and "detector.queue_timeout_s=0.5" in body["message"]
                assert body["code"] == 503 and r.headers["Retry-After"] == "1"
                assert seconds < slowest_ok, (seconds, slowest_ok)  # answered when due, not after the model
        assert post("/v1/score", {"text": TEXT}, key=None).status_code == 200  # an idle service takes requests


def test_jobs_serve_smoke_runs_the_entry_point(ray_session, tiny_mistral, tmp_path):
    """`python -m jobs.serve --config serve/config_demo.yaml --smoke`, tiny model, on the session's cluster."""
    env = {**os.environ, "RAY_ADDRESS": ray_session[0], "PYTHONPATH": str(ROOT)}
    audit = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "jobs.serve", "--config", "serve/config_demo.yaml", "--smoke", f"--port={PORT}",
         f"model.name_or_path={tiny_mistral}", "engine.max_new_tokens=16", "limits.max_prompt_tokens=2048",
         f"audit.path={audit}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "POST http://127.0.0.1:8123/v1/analyze -> 200" in done.stdout
    assert len(audit_lines(audit)) == 1 and audit_lines(audit)[0]["id"] == "smoke-1"


def test_jobs_serve_rejects_a_bad_config_before_starting(tmp_path):
    done = subprocess.run([sys.executable, "-m", "jobs.serve", "--config", "serve/config_demo.yaml",
                           "limits.max_chars=0", "engine.max_new_tokens=abc", "batching.max_batchsize=4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "3 problem(s)" in done.stderr, done.stderr
    for fragment in ("limits.max_chars=0", "engine.max_new_tokens='abc'", "batching.max_batchsize: unknown key"):
        assert fragment in done.stderr


SHIPPED = [ROOT / "serve" / "config_demo.yaml", ROOT / "serve" / "config_mistral7b_gpu.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_serve_configs_validate(path):
    text = path.read_text()
    assert text.startswith("#") and "serve " in text.split("\n\n")[0]
    app = yaml.safe_load(text)["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    parse_app_config(app["args"])


def test_rayservice_manifest_embeds_a_valid_app():
    docs = list(yaml.safe_load_all((ROOT / "ray_cluster" / "kuberay" / "rayservice.yaml").read_text()))
    service = next(d for d in docs if d and d["kind"] == "RayService")
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    app = serve_config["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    cfg = parse_app_config(app["args"])
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["authOptions"]["mode"] == "token"
    gpus = [g for g in cluster["workerGroupSpecs"]
            if g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")]
    assert gpus and cfg.detector.num_gpus == 1


def test_demo_audit_log_is_not_in_a_shared_tmp_folder():
    app = yaml.safe_load((ROOT / "serve" / "config_demo.yaml").read_text())["applications"][0]
    path = parse_app_config(app["args"]).audit.path
    assert not Path(path).is_absolute() and path.startswith("runs/"), path
    assert parse_app_config(app["args"]).audit.file_mode == "0600"


def test_config_errors_are_listed_in_key_names():
    with pytest.raises(ConfigError) as e:
        parse_app_config({"adapters": {"base": "/x"}, "default_adapter": "zz",
                          "detector": {"max_ongoing_requests": 4}, "batching": {"max_batch_size": 8}})
    msg = str(e.value)
    for fragment in ("adapters.base", "default_adapter='zz'", "detector.max_ongoing_requests=4"):
        assert fragment in msg
    with pytest.raises(ConfigError, match="num_replicas or autoscaling"):
        parse_app_config({"detector": {"num_replicas": 2, "autoscaling": {"max_replicas": 3}}})


def test_api_key_comes_from_file_or_env(tmp_path, monkeypatch):
    from serve.auth import resolve_api_key
    from serve.config import AuthConfig

    assert resolve_api_key(AuthConfig()) is None
    monkeypatch.setenv("MY_KEY", " s3cret \n")
    assert resolve_api_key(AuthConfig(enabled=True, api_key_env="MY_KEY")) == "s3cret"
    (tmp_path / "k").write_text("from-file\n")
    both = AuthConfig(enabled=True, api_key_env="MY_KEY", api_key_file=str(tmp_path / "k"))
    assert resolve_api_key(both) == "from-file"
    with pytest.raises(ValueError, match="NO_SUCH_VAR"):
        resolve_api_key(AuthConfig(enabled=True, api_key_env="NO_SUCH_VAR"))
