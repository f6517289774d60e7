"""The HTTP ingress (FastAPI) in front of the Detector replicas (serve/replica.py); bound in serve/app.py.

Endpoints (OpenAPI at /docs): POST /v1/analyze, /v1/analyze/batch, /v1/score, /v1/chat/completions
(OpenAI-compatible), GET /v1/models, /healthz, /readyz. Inputs are checked here, before any model
work: an empty text is a 422, an over-long one a 413 naming the limit (on /v1/analyze only a text over
`limits.max_chars`: a shorter one whose prompt exceeds `limits.max_prompt_tokens` is judged in overlapping
windows, pipeline/score/chunking.py, and explained from its riskiest), an unknown model a 404
listing the known ones, text that is not valid Unicode a 422, a body that is not UTF-8 a 400, a body
not sent as `Content-Type: application/json` a 415; every error has the one JSON shape. Overload is a
fast 503: when every Detector replica holds `detector.max_ongoing_requests` and
`detector.max_queued_requests` more wait here, Serve raises BackPressureError at once and it is
answered as JSON; a request still waiting for the model after `detector.queue_timeout_s` is a 503
too. Every delivered decision gets an audit line.

A request's text is tokenised once, here: the length check encodes it with the chosen model's own prompt
format, and those ids go to the replica, whose engine scores and generates from them. The replica's
generation becomes a verdict in `pipeline.inference.verdicts.read_verdict`.
"""

# No `from __future__ import annotations`: FastAPI must see the real body types of the class-based routes
# after Serve pickles the app (string annotations fail to resolve there).
import asyncio
import email.message
import importlib.metadata
import json
import logging
import math
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RayServeException
from ray.serve.handle import DeploymentHandle

from serve.audit import AuditLog
from serve.auth import key_matches, resolve_api_key
from serve.config import ServeAppConfig
from serve.replica import QueueTimeout
from serve.schemas import (
    Analysis, AnalyzeRequest, BatchAnalysis, BatchAnalyzeRequest, ChatCompletion, ChatCompletionRequest,
    ErrorResponse, ModelCard, ModelList, ScoreRequest, ScoreResponse,
)

log = logging.getLogger("ray.serve")

def _package_version() -> str:
    try:
        return importlib.metadata.version("complyray")
    except importlib.metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, not installed (the GPU machine)
        import pipeline

        return pipeline.__version__


api = FastAPI(
    title="complyray detector", version=_package_version(),
    description="Judges financial-advisor communications for SEC/FINRA violations: verdict JSON, "
    "P(NON_COMPLIANT), evidence grounding. Errors are JSON: {\"error\": {\"message\", \"type\", \"code\"}}.",
    responses={s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 415, 422, 503)},
)
bearer = HTTPBearer(auto_error=False, description="The API key, when the service has auth.enabled.")


class ApiError(Exception):
    """An error answered as JSON with its status code (never a bare 500 for a client's mistake)."""

    def __init__(self, status: int, message: str, kind: str, problems: list[str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.problems, self.headers = problems, headers


def error_json(status: int, message: str, kind: str, problems: list[str] | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"message": message, "type": kind, "code": status}
    if problems:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status, headers=headers)


@api.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_json(exc.status, exc.message, exc.kind, exc.problems, exc.headers)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for e in exc.errors():
        if e["type"] == "json_invalid":
            problems.append(f"body: not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} at character "
                            f"{e['loc'][-1]})")
            continue
        where = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
        problems.append(f"{where}: {e['msg']}")
    return error_json(422, "; ".join(problems), "invalid_request", problems)


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Errors raised by FastAPI/Starlette themselves (unreadable body, unknown path, wrong method), in the
    service's error shape instead of their {"detail": ...}."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):  # FastAPI: "There was an error parsing the body"
        message = (f"body: not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at position {cause.start}); "
                   "send the JSON encoded as UTF-8")
        return error_json(400, message, "invalid_request", [message])
    kinds = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
    return error_json(exc.status_code, str(exc.detail), kinds.get(exc.status_code, "http_error"),
                      headers=getattr(exc, "headers", None))


@api.exception_handler(Exception)
async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_json(500, f"internal error ({type(exc).__name__}); see the service logs", "internal_error")


def _ingress() -> "Ingress | None":
    """This replica's Ingress instance (dependencies and middleware have no `self`); None outside a replica."""
    try:
        return serve.get_replica_context().servable_object
    except RayServeException:
        return None


@api.middleware("http")
async def _observe(request: Request, call_next):
    """Request counts by endpoint and status, latency; early 413 for bodies no valid request can have."""
    ingress, t0 = _ingress(), time.perf_counter()
    if ingress is None:
        return await call_next(request)
    size = request.headers.get("content-length", "0")
    size = int(size) if size.isdigit() else 0  # a malformed length is the HTTP server's to reject
    if size > ingress.max_body_bytes:
        response = error_json(413, f"request body of {size} bytes exceeds {ingress.max_body_bytes} "
                              "(limits.max_chars x limits.max_batch_items)", "too_large")
    else:
        try:
            response = await call_next(request)
        except Exception:
            ingress.metrics.observe(request, 500, t0)
            raise
    ingress.metrics.observe(request, response.status_code, t0)
    return response


def require_api_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """401 unless the bearer token is the service's key (no-op when auth is off)."""
    ingress = _ingress()
    if ingress is None:  # fail closed: never serve /v1 without knowing whether auth is on
        raise RuntimeError("require_api_key called outside an Ingress replica")
    expected = ingress.api_key
    if expected is not None and not key_matches(credentials.credentials if credentials else "", expected):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})


def require_json(request: Request) -> None:
    """415 unless the body is sent as JSON (`Content-Type: application/json` or a `+json` type); FastAPI would
    otherwise validate the raw bytes and answer a 422 that never mentions the content type."""
    given = request.headers.get("content-type", "")
    message = email.message.Message()
    message["content-type"] = given
    subtype = message.get_content_subtype()
    if not given or message.get_content_maintype() != "application" or not (
            subtype == "json" or subtype.endswith("+json")):
        got = f"got {given!r}" if given else "none was sent"
        raise ApiError(415, f"Content-Type: application/json is required ({got}); send the body as JSON",
                       "unsupported_media_type")


POST_CHECKS = [Depends(require_api_key), Depends(require_json)]  # auth first: a stranger learns nothing more


class IngressMetrics:
    """ray.util.metrics, exported on each node's Prometheus endpoint (prefixed ray_ by Ray)."""

    def __init__(self):
        from ray.util.metrics import Counter, Histogram

        self.requests = Counter("complyray_requests", description="HTTP requests by endpoint and status.",
                                tag_keys=("endpoint", "status"))
        self.latency = Histogram("complyray_request_latency_ms", description="HTTP request latency (ms).",
                                 boundaries=[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
                                 tag_keys=("endpoint",))
        self.decisions = Counter("complyray_decisions", description="Decisions delivered, by verdict and model.",
                                 tag_keys=("verdict", "model", "endpoint"))

    def observe(self, request: Request, status: int, t0: float) -> None:
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        self.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
        self.latency.observe((time.perf_counter() - t0) * 1000, tags={"endpoint": endpoint})


def build_analysis(raw: dict, text: str, threshold: float, offset: int = 0) -> dict:
    """A replica's raw result (probability, format mass, the generation) -> the Analysis fields: the verdict
    record of `read_verdict`, shaped for the response. `text` is what the model judged: the request's text, or
    one window of it starting at character `offset` (evidence offsets point into the request's text)."""
    from pipeline.inference.grounding import quote_span
    from pipeline.inference.verdicts import read_verdict

    record = read_verdict(raw["generation"], text, threshold)
    gen, parsed = record.generation, record.parsed
    spans = [quote_span(g.quote, text, threshold) for g in record.evidence]
    return {
        "verdict": record.verdict, "verdict_probability": raw["verdict_probability"],
        "format_mass": raw["format_mass"], "parse_status": parsed.status, "parse_error": parsed.error,
        "parse_problems": parsed.problems, "repairs": parsed.repairs,
        "evidence": [{"quote": g.quote, "grounded": g.grounded, "exact": g.exact, "score": round(g.score, 1),
                      "start": offset + span[0] if span else None, "end": offset + span[1] if span else None}
                     for g, span in zip(record.evidence, spans)],
        "all_evidence_grounded": record.all_grounded,
        "finished": gen.finished, "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.new_tokens},
        "model": raw["model"], "batch_size": raw["batch_size"], "raw_text": gen.text,
    }


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    """HTTP front: validation, auth, model (adapter) choice, response shaping, audit, metrics."""

    def __init__(self, detector: DeploymentHandle, config: dict):
        from pipeline.inference.engine import resolve_source
        from pipeline.formatting import ChatFormatter
        from pipeline.models import load_tokenizer

        self.cfg = cfg = ServeAppConfig.model_validate(config)
        self.detector = detector
        self.api_key = resolve_api_key(cfg.auth)
        self.metrics = IngressMetrics()
        self.audit = None
        if cfg.audit.path:
            path = cfg.audit.path.replace("{replica}", serve.get_replica_context().replica_tag)
            self.audit = AuditLog(path, cfg.audit.include_text, int(cfg.audit.file_mode, 8))
        self.max_body_bytes = cfg.limits.max_chars * 4 * cfg.limits.max_batch_items + (1 << 20)
        # Prompt lengths are checked here, before queueing, with each model's own instruction text.
        base = resolve_source(cfg.model.name_or_path, cfg.model.adapter)
        self.tokenizer = load_tokenizer(base.tokenizer, cfg.model.revision, cfg.model.trust_remote_code)
        created = int(time.time())
        default = cfg.default_adapter or cfg.base_name
        self.formatters = {cfg.base_name: ChatFormatter(self.tokenizer, base.system_prompt, base.system_role)}
        self.cards = {cfg.base_name: ModelCard(id=cfg.base_name, created=created, base=base.base,
                                               adapter_dir=base.adapter, version=base.version,
                                               default=default == cfg.base_name)}
        for name, folder in cfg.adapters.items():
            src = resolve_source(folder)
            self.formatters[name] = ChatFormatter(self.tokenizer, src.system_prompt, src.system_role)
            self.cards[name] = ModelCard(id=name, created=created, base=base.base, adapter_dir=folder,
                                         version=src.version, default=default == name)
        # Requests for an adapter carry its name as the multiplexed model id: Serve routes them to a replica
        # that has it attached, and the replica's loader attaches it when none has.
        self.handles = {name: detector if name == cfg.base_name else detector.options(multiplexed_model_id=name)
                        for name in self.cards}

    # -- checks ------------------------------------------------------------------------------------------------
    def _model(self, requested: str | None) -> str:
        """The model name a request is served by: its field, else the serve_multiplexed_model_id header, else the
        default. Raises ApiError 404 for a name this service does not serve."""
        name = requested or serve.get_multiplexed_model_id() or self.cfg.default_adapter or self.cfg.base_name
        if name not in self.cards:
            raise ApiError(404, f"unknown model {name!r}; this service serves {list(self.cards)}",
                           "model_not_found")
        return name

    def _encode(self, texts: list[tuple[str, Any, str]], windows: bool = False) -> list[list[int]]:
        """(where, text, model) triples -> each text's prompt ids in its model's format: the one tokenisation of
        the request, checked against the limits here and handed to the replica. Raises one ApiError listing
        every problem (422 if any is malformed, else 413 for sizes over the limits). With `windows`, a prompt
        over limits.max_prompt_tokens is returned, not refused: the caller judges it in windows."""
        lim = self.cfg.limits
        problems: list[tuple[int, str]] = []
        prompts: list[list[int]] = []
        for where, text, name in texts:
            if not isinstance(text, str) or not text.strip():
                problems.append((422, f"{where}: is empty; send the communication's text"))
            elif len(text) > lim.max_chars:
                problems.append((413, f"{where}: {len(text)} characters exceed the limit of {lim.max_chars} "
                                      "(limits.max_chars)"))
            else:
                prompts.append(self.formatters[name].prompt_ids([text])[0])
                n = len(prompts[-1])
                if n > lim.max_prompt_tokens and not windows:
                    problems.append((413, f"{where}: the prompt is {n} tokens, over the limit of "
                                          f"{lim.max_prompt_tokens} (limits.max_prompt_tokens); shorten the text"))
        if problems:
            status = 422 if any(s == 422 for s, _ in problems) else 413
            messages = [m for _, m in problems]
            kind = "invalid_request" if status == 422 else "too_large"
            raise ApiError(status, "; ".join(messages), kind, messages)
        return prompts

    def _check_count(self, n: int, field: str) -> None:
        if n == 0:
            raise ApiError(422, f"{field}: is empty; send at least one communication", "invalid_request")
        if n > self.cfg.limits.max_batch_items:
            limit = self.cfg.limits.max_batch_items
            raise ApiError(413, f"{field}: {n} communications exceed the limit of {limit} per request "
                                "(limits.max_batch_items); split the request", "too_large")

    # -- model calls ---------------------------------------------------------------------------------------------
    async def _call(self, method: str, name: str, prompt: list[int]) -> dict:
        """One encoded communication through a Detector replica (batched there with concurrent calls); the model
        must take it within detector.queue_timeout_s, else ApiError 503."""
        timeout = self.cfg.detector.queue_timeout_s
        deadline = time.time() + timeout if timeout else None
        try:
            return await getattr(self.handles[name], method).remote(prompt, deadline)
        except QueueTimeout as e:
            raise ApiError(503, f"timed out waiting for the model, retry later: every replica stayed busy for "
                                f"detector.queue_timeout_s={timeout}s", "queue_timeout",
                           headers={"Retry-After": str(max(1, math.ceil(timeout)))}) from e
        except BackPressureError as e:
            raise ApiError(503, f"overloaded, retry shortly: {e.message}", "overloaded",
                           headers={"Retry-After": str(max(1, round(e.retry_after_s or 1)))}) from e
        except DeploymentUnavailableError as e:
            raise ApiError(503, f"the model is unavailable: {e.message}", "unavailable") from e

    async def _analyze(self, items: list[tuple[str, str, list[int]]]) -> tuple[list[dict], float]:
        """(text, model, prompt ids) triples -> parsed, grounded analyses, and the perf_counter time the work
        started."""
        t0 = time.perf_counter()
        raws = await asyncio.gather(*(self._call("analyze", name, prompt) for _, name, prompt in items))
        threshold = self.cfg.grounding_threshold
        analyses = [build_analysis(raw, text, threshold) for raw, (text, _, _) in zip(raws, items)]
        return analyses, t0

    def _deliver(self, endpoint: str, rows: list[tuple[str, str | None, dict]], t0: float) -> float:
        """Audit and count delivered decisions: (text, client id, analysis or score with its request_id) rows.
        Returns the latency (ms) since `t0`."""
        latency_ms = (time.perf_counter() - t0) * 1000
        records = []
        for text, client_id, result in rows:
            verdict = (result.get("verdict") or {}).get("final_verdict")
            self.metrics.decisions.inc(tags={"verdict": verdict or "none", "model": result["model"]["name"],
                                             "endpoint": endpoint})
            if self.audit:
                records.append(self.audit.record(
                    request_id=result["request_id"], endpoint=endpoint, text=text, client_id=client_id,
                    model=result["model"], verdict=verdict, probability=result["verdict_probability"],
                    parse_status=result.get("parse_status"), latency_ms=latency_ms))
        if self.audit:
            self.audit.write(records)
        return latency_ms

    # -- endpoints -----------------------------------------------------------------------------------------------
    @api.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/readyz", tags=["probes"], summary="A model replica is loaded and answering (503 until then); the "
             "model's paths only with the API key")
    async def readyz(self, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        try:
            info = await asyncio.wait_for(self.detector.info.remote(), timeout=5)
        except (asyncio.TimeoutError, BackPressureError, DeploymentUnavailableError) as e:
            return error_json(503, f"not ready: no model replica answered ({type(e).__name__})", "not_ready")
        # The probe is open to anyone; where the model lives on disk is only for callers with the API key (with
        # auth off nobody has one: GET /v1/models lists the folders there).
        given = credentials.credentials if credentials else ""
        if self.api_key is None or not key_matches(given, self.api_key):
            info = {k: v for k, v in info.items() if k not in ("model", "adapter")}
        return {"status": "ready", "model": info}

    @api.get("/v1/models", response_model=ModelList, dependencies=[Depends(require_api_key)], tags=["v1"],
             summary="Models served: the base and each adapter, with versions (OpenAI list shape)")
    async def models(self) -> ModelList:
        return ModelList(data=list(self.cards.values()))

    @api.post("/v1/analyze", response_model=Analysis, dependencies=POST_CHECKS, tags=["v1"],
              summary="Judge one communication (a long one in overlapping windows, explained from the riskiest)")
    async def analyze(self, body: AnalyzeRequest) -> dict:
        name = self._model(body.adapter)
        [prompt] = self._encode([("text", body.text, name)], windows=True)
        request_id = str(uuid.uuid4())
        if len(prompt) > self.cfg.limits.max_prompt_tokens:
            result, t0 = await self._analyze_windows(body.text, name)
        else:
            analyses, t0 = await self._analyze([(body.text, name, prompt)])
            result = analyses[0]
            result["windows"] = [{"start": 0, "end": len(body.text), "prompt_tokens": len(prompt),
                                  "verdict_probability": result["verdict_probability"], "explained": True}]
        result = {**result, "request_id": request_id, "id": body.id, "metadata": body.metadata}
        result["latency_ms"] = self._deliver("analyze", [(body.text, body.id, result)], t0)
        return result

    async def _analyze_windows(self, text: str, name: str) -> tuple[dict, float]:
        """A text whose prompt exceeds limits.max_prompt_tokens: every window scored, the riskiest explained.
        Returns the analysis (its probability the riskiest window's, evidence offsets into `text`, the windows)
        and the perf_counter time the work started."""
        from pipeline.score.chunking import split_windows, token_counter

        lim, t0 = self.cfg.limits, time.perf_counter()
        formatter = self.formatters[name]
        windows = split_windows(text, formatter.prompt_ids, token_counter(self.tokenizer), lim.max_prompt_tokens,
                                lim.window_overlap_tokens)
        scores = await asyncio.gather(*(self._call("score", name, w.prompt) for w in windows))
        probs = [s["verdict_probability"] for s in scores]
        best = max(range(len(windows)), key=probs.__getitem__)
        window = windows[best]
        raw = await self._call("analyze", name, window.prompt)
        result = build_analysis(raw, text[window.start:window.end], self.cfg.grounding_threshold, window.start)
        result["verdict_probability"] = probs[best]  # the message's risk: its riskiest window's, as scored
        result["windows"] = [{"start": w.start, "end": w.end, "verdict_probability": p,
                              "prompt_tokens": len(w.prompt), "explained": i == best}
                             for i, (w, p) in enumerate(zip(windows, probs))]
        return result, t0

    @api.post("/v1/analyze/batch", response_model=BatchAnalysis, dependencies=POST_CHECKS,
              tags=["v1"], summary="Judge several communications (batched with all concurrent requests)")
    async def analyze_batch(self, body: BatchAnalyzeRequest) -> dict:
        self._check_count(len(body.items), "items")
        names = [self._model(item.adapter or body.adapter) for item in body.items]
        prompts = self._encode([(f"items.{i}.text", item.text, name)
                                for i, (item, name) in enumerate(zip(body.items, names))])
        request_id = str(uuid.uuid4())
        analyses, t0 = await self._analyze([(item.text, name, prompt)
                                            for item, name, prompt in zip(body.items, names, prompts)])
        results = [{**a, "request_id": str(uuid.uuid4()), "id": item.id, "metadata": item.metadata}
                   for a, item in zip(analyses, body.items)]
        latency_ms = self._deliver("batch", [(it.text, it.id, r) for it, r in zip(body.items, results)], t0)
        for r in results:
            r["latency_ms"] = latency_ms
        return {"request_id": request_id, "results": results, "latency_ms": latency_ms}

    @api.post("/v1/score", response_model=ScoreResponse, dependencies=POST_CHECKS, tags=["v1"],
              summary="P(NON_COMPLIANT) only: one forward pass, no generation (triage)")
    async def score(self, body: ScoreRequest) -> dict:
        if (body.text is None) == (body.texts is None):
            raise ApiError(422, "give exactly one of `text` or `texts`", "invalid_request")
        texts = [body.text] if body.text is not None else body.texts
        self._check_count(len(texts), "texts")
        name = self._model(body.adapter)
        where = ["text"] if body.text is not None else [f"texts.{i}" for i in range(len(texts))]
        prompts = self._encode([(w, t, name) for w, t in zip(where, texts)])
        request_id, t0 = str(uuid.uuid4()), time.perf_counter()
        raws = await asyncio.gather(*(self._call("score", name, p) for p in prompts))
        results = [{"request_id": str(uuid.uuid4()), **r} for r in raws]
        latency_ms = self._deliver("score", [(t, None, r) for t, r in zip(texts, results)], t0)
        return {"request_id": request_id, "model": raws[0]["model"], "latency_ms": latency_ms, "results": results}

    @api.post("/v1/chat/completions", response_model=ChatCompletion, dependencies=POST_CHECKS,
              tags=["openai"], summary="OpenAI-compatible: the last user message is judged; the verdict JSON is "
              "the assistant's answer; `model` picks the adapter")
    async def chat_completions(self, body: ChatCompletionRequest) -> dict:
        if body.stream:
            raise ApiError(400, "stream=true is not supported: a verdict is returned whole; send stream=false",
                           "invalid_request")
        kind = (body.response_format or {}).get("type", "text")
        if kind not in ("text", "json_object", "json_schema"):
            raise ApiError(422, f"response_format.type={kind!r}: use json_object or json_schema (the verdict "
                                "JSON) or text", "invalid_request")
        if kind != "text" and not self.cfg.engine.constrained:
            raise ApiError(400, f"response_format.type={kind} needs grammar-constrained decoding, which this "
                                "deployment turned off (engine.constrained=false); send type=text", "invalid_request")
        name = self._model(body.model)
        users = [i for i, m in enumerate(body.messages) if m.role == "user"]
        if not users:
            raise ApiError(422, "messages: no message with role 'user'; the last user message is the "
                                "communication", "invalid_request")
        content = body.messages[users[-1]].content
        text = content if isinstance(content, str) else "\n".join(
            p.get("text", "") for p in (content or []) if isinstance(p, dict) and p.get("type") == "text")
        [prompt] = self._encode([(f"messages.{users[-1]}.content", text, name)])
        request_id = str(uuid.uuid4())
        analyses, t0 = await self._analyze([(text, name, prompt)])
        a = {**analyses[0], "request_id": request_id}
        latency_ms = self._deliver("chat", [(text, None, a)], t0)
        answer = json.dumps(a["verdict"], ensure_ascii=False) if a["verdict"] else a["raw_text"]
        usage = a["usage"]
        return {
            "id": f"chatcmpl-{request_id}", "created": int(time.time()), "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": "stop" if a["finished"] else "length"}],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "complyray": {**a, "latency_ms": latency_ms},
        }
