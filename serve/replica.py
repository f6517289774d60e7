"""The Detector deployment: one model per replica, dynamic batching, LoRA adapters multiplexed on it.

* One base model per replica, loaded by the engine's `Detector` (CPU or GPU, from the config).
* `analyze` and `score` each take a communication's prompt ids (encoded once, by the ingress) and feed a
  `@serve.batch` queue (max_batch_size, batch_wait_timeout_s): concurrent requests run through the engine's
  batched `score` (and `generate` for analyze) together. Serve forms a batch from what arrives within the wait, busy model or not; the
  replica merges every batch that arrived while the model was busy into its next call (up to
  max_batch_size), so under load the model runs full batches. Each result says how many
  communications shared its model call.
* Adapters: Serve routes a request to a replica by its multiplexed model id (the adapter name);
  the replica's `@serve.multiplexed` loader attaches that adapter to the one base model through the
  engine (`attach_adapter`; `use_adapter` picks it for a batch), and detaches the least recently used beyond `max_adapters_per_replica`, so
  memory is one base plus small adapters, never a model copy per adapter. Serve 2.60 already splits
  a batch by model id; the batch is grouped by adapter again here, so a mixed batch is still right.
* The model runs in one worker thread: the event loop keeps accepting requests (forming the next
  batch) while a batch computes, and switching the active adapter can never race a running batch.
* Deadlines: each request carries the time by which the model must take it (the ingress adds
  `detector.queue_timeout_s` to its arrival). One still waiting then fails with `QueueTimeout`
  at once (a timer, not the next batch), is never run, and frees its place in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ray import serve

from serve.config import ServeAppConfig

log = logging.getLogger("ray.serve")


class QueueTimeout(Exception):
    """A request waited longer than detector.queue_timeout_s for the model; it was not run."""


@dataclass
class _Waiting:
    """A request waiting for the model: which method and model, its prompt ids, where its result goes, the time
    (time.time()) by which the model must take it, and whether it has."""

    generate: bool
    name: str
    prompt: list[int]
    future: asyncio.Future
    deadline: float | None = None
    started: bool = False


class AttachedAdapter:
    """A LoRA adapter attached to the replica's base model: what the multiplexed loader returns.

    Serve calls `__del__` when it evicts the adapter (least recently used); that detaches it from the
    base model. The flag makes the later garbage-collection call a no-op, so it cannot detach a
    newer attachment of the same name.
    """

    def __init__(self, server: "DetectorServer", name: str, folder: str):
        from pipeline.inference.engine import resolve_source

        self.server, self.name, self.folder = server, name, folder
        source = resolve_source(folder)  # its prompt format is the ingress's concern: prompts arrive encoded
        self.version = source.version
        self._released = False
        if source.base != server.detector.source.base:
            log.warning("adapter %s was trained on %s but this replica serves %s: check adapters.%s",
                        name, source.base, server.detector.source.base, name)

    def __del__(self):
        if not self._released:
            self._released = True
            self.server.detach(self.name)


@serve.deployment(name="Detector")
class DetectorServer:
    """Serve deployment (bound in serve/app.py with its options from ServeAppConfig.detector)."""

    def __init__(self, config: dict):
        from pipeline.inference.engine import Detector

        self.cfg = ServeAppConfig.model_validate(config)
        model, engine = self.cfg.model, self.cfg.engine
        if self.cfg.adapters:  # the base alone; adapters are attached on demand, never merged
            model = model.model_copy(update={"adapter": None})
            engine = engine.model_copy(update={"merge_adapter": False})
        self.detector = Detector(model, engine)
        self._check_context_fits()
        self._lock = threading.RLock()  # model state: active adapter, attach/detach
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector")
        self._waiting: list[_Waiting] = []  # requests handed over by @serve.batch, not yet run
        self._runner: asyncio.Task | None = None
        self._analyze_batch.set_max_batch_size(self.cfg.batching.max_batch_size)
        self._analyze_batch.set_batch_wait_timeout_s(self.cfg.batching.batch_wait_timeout_s)
        self._score_batch.set_max_batch_size(self.cfg.batching.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(self.cfg.batching.batch_wait_timeout_s)

        async def load_adapter(name: str) -> AttachedAdapter:
            folder = self.cfg.adapters[name]
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._attach, name, folder)

        # Wired per instance so the LRU size comes from the config (Serve 2.60 detects this form too).
        lru_size = self.cfg.detector.max_adapters_per_replica
        self.get_adapter = serve.multiplexed(max_num_models_per_replica=lru_size)(load_adapter)
        self._metrics()

    def _metrics(self) -> None:
        from ray.util.metrics import Histogram

        self.batch_size_hist = Histogram(
            "complyray_batch_size", description="Communications run through the model together, per batch.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128], tag_keys=("method", "model"))
        self.batch_seconds_hist = Histogram(
            "complyray_batch_seconds", description="Model time of one batch (seconds).",
            boundaries=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120], tag_keys=("method", "model"))

    def _check_context_fits(self) -> None:
        positions = getattr(self.detector.model.config, "max_position_embeddings", None)
        need = self.cfg.limits.max_prompt_tokens + self.cfg.engine.max_new_tokens
        if positions and need > positions:
            raise ValueError(f"limits.max_prompt_tokens + engine.max_new_tokens = {need} exceeds the model's "
                             f"{positions} positions; lower limits.max_prompt_tokens")

    # -- adapters ------------------------------------------------------------------------------------------------
    def _attach(self, name: str, folder: str) -> AttachedAdapter:
        t0 = time.time()
        with self._lock:
            self.detector.attach_adapter(name, folder)
        log.info("attached adapter %s from %s in %.2fs", name, folder, time.time() - t0)
        return AttachedAdapter(self, name, folder)

    def detach(self, name: str) -> None:
        """Remove adapter `name` from the base model (Serve evicted it); no-op when already gone."""
        with self._lock:
            if self.detector.detach_adapter(name):
                log.info("detached adapter %s", name)

    # -- model work (in the worker thread) -----------------------------------------------------------------------
    def _run_group(self, adapter: AttachedAdapter | None, prompts: list[list[int]], generate: bool) -> list[dict]:
        """One batch of encoded prompts through the model with `adapter` (None: the base); a row per prompt."""
        t0 = time.time()
        with self._lock:
            # An adapter evicted between lookup and run is attached again from its folder.
            with self.detector.use_adapter(adapter and adapter.name, adapter and adapter.folder):
                scores = self.detector.score(prompts)
                generations = self.detector.generate(prompts) if generate else [None] * len(prompts)
        seconds = time.time() - t0
        out = []
        for p, m, ids, g in zip(scores.probability, scores.format_mass, prompts, generations):
            row = {"verdict_probability": float(p), "format_mass": float(m), "prompt_tokens": len(ids),
                   "batch_size": len(prompts), "model_seconds": seconds}
            if g is not None:
                row["generation"] = g  # the ingress reads the verdict from it (pipeline.inference.verdicts)
            out.append(row)
        return out

    def _process(self, prompts: list[list[int]], names: list[str], deadlines: list[float | None],
                 generate: bool) -> list[asyncio.Future]:
        """Queue a Serve batch for the model; returns one future per request, each awaited by its own caller (a
        request that times out in the queue answers at once, not when its batch-mates finish)."""
        loop = asyncio.get_running_loop()
        futures = []
        for prompt, name, deadline in zip(prompts, names, deadlines):
            waiting = _Waiting(generate, name, prompt, loop.create_future(), deadline)
            futures.append(waiting.future)
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:  # waited out its time before reaching this replica (queued at the ingress)
                    self._expire(waiting)
                    continue
                loop.call_later(left, self._expire, waiting)
            self._waiting.append(waiting)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_waiting())
        return futures

    def _expire(self, waiting: _Waiting) -> None:
        """Fail a request the model has not taken by its deadline (no-op once taken or answered)."""
        if not waiting.started and not waiting.future.done():
            waiting.future.set_exception(QueueTimeout(
                f"waited over detector.queue_timeout_s={self.cfg.detector.queue_timeout_s}s for the model"))

    async def _run_waiting(self) -> None:
        """Run waiting requests through the model, one (method, model) group of up to max_batch_size at a time.

        Serve's @serve.batch forms a batch from the requests that arrive within batch_wait_timeout_s, whether
        or not the model is free; here every batch that arrived while the model was busy joins the next call,
        so under load the model runs full batches instead of many small ones.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._waiting = [w for w in self._waiting if not w.future.done()]  # drop cancelled requests
            if not self._waiting:
                return
            head = self._waiting[0]
            group = [w for w in self._waiting if (w.generate, w.name) == (head.generate, head.name)]
            group = group[:self.cfg.batching.max_batch_size]
            taken = set(map(id, group))
            self._waiting = [w for w in self._waiting if id(w) not in taken]
            for w in group:
                w.started = True
            try:
                adapter = await self.get_adapter(head.name) if head.name != self.cfg.base_name else None
                rows = await loop.run_in_executor(self._pool, self._run_group, adapter, [w.prompt for w in group],
                                                  head.generate)
            except Exception as e:  # fail this group's requests, keep serving the others
                for w in group:
                    if not w.future.done():
                        w.future.set_exception(e)
                continue
            tags = {"method": "analyze" if head.generate else "score", "model": head.name}
            self.batch_size_hist.observe(len(group), tags=tags)
            self.batch_seconds_hist.observe(rows[0]["model_seconds"], tags=tags)
            model = {"name": head.name, "base": self.detector.source.base,
                     "adapter": adapter.folder if adapter else self.detector.source.adapter,
                     "version": adapter.version if adapter else self.detector.info["version"]}
            for w, row in zip(group, rows):
                if not w.future.done():  # a cancelled request (client gone) has a done future
                    w.future.set_result({**row, "model": model})

    # max_concurrent_batches > 1: Serve hands every batch over at once and _run_waiting merges them.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.02, max_concurrent_batches=64)  # sizes: __init__
    async def _analyze_batch(self, prompts: list[list[int]], names: list[str],
                             deadlines: list[float | None]) -> list[asyncio.Future]:
        return self._process(prompts, names, deadlines, generate=True)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.02, max_concurrent_batches=64)
    async def _score_batch(self, prompts: list[list[int]], names: list[str],
                           deadlines: list[float | None]) -> list[asyncio.Future]:
        return self._process(prompts, names, deadlines, generate=False)

    # -- called by the ingress -----------------------------------------------------------------------------------
    def _model_name(self) -> str:
        # The ingress sets the multiplexed model id to the adapter name (unset for the base model).
        return serve.get_multiplexed_model_id() or self.cfg.base_name

    async def analyze(self, prompt: list[int], deadline: float | None = None) -> dict:
        """Probability + generation for one communication's prompt ids (in this model's format, from the
        ingress), batched with concurrent calls. Raises QueueTimeout when the model has not taken it by
        `deadline` (time.time())."""
        return await (await self._analyze_batch(prompt, self._model_name(), deadline))

    async def score(self, prompt: list[int], deadline: float | None = None) -> dict:
        """P(NON_COMPLIANT) only (one forward pass) for one communication's prompt ids, batched with concurrent
        calls. Raises QueueTimeout when the model has not taken it by `deadline` (time.time())."""
        return await (await self._score_batch(prompt, self._model_name(), deadline))

    async def info(self) -> dict:
        """The loaded base model's identity (answers once the model is loaded: readiness)."""
        return {**self.detector.info, "adapters_attached": self.detector.attached_adapters}
