"""Which model versions are served: loading, warm-up, hot reload and unloading, off the event loop.

TF Serving's lifecycle: each model's base path is polled for numeric version directories; the versions its
policy aspires to (by default the latest one) are loaded and warmed up *beside* the ones serving; a request
for "the latest" switches to a new version the moment it is AVAILABLE, and only then is the old one
unloaded, after every request that picked it has its answer (its batcher drains). A version that fails to
load is refused and logged, keeps state END with its error (GetModelStatus shows it), and is not retried;
the versions serving before keep serving.

Each served version owns its runtime and its batcher, so versions and models never share a queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


from batching import Batcher, BatchingParameters, BatchListener, DeadlinePolicy, ListenerGroup

from service.models import heap
from service.errors import InvalidInputError, ModelNotFoundError, UnavailableError, servable_not_found
from service.models.model_config import ModelSource
from service.models.batch_size_probe import time_batch_sizes
from service.models.batch_size_tuning import BatchSizeChoice
from service.runtime.model_runtime import DEFAULT_TAGS, ModelLoadError, ModelRuntime
from service.models.signature_batching import SignatureBatchers
from service.models.served_version import (
    LeaseCount,
    ServedVersion,
    StuckWatch,
    VersionState,
    close_batchers,
    seeded_weights_warning,
)
from service.models.version_dirs import describe_base_path, describe_load_failure, find_versions
from service.models.recorded_warmup import WARMUP_FILE, read_warmup_requests, run_recorded_predictions

_log = logging.getLogger(__name__)


@dataclass
class _Model:
    source: ModelSource
    versions: dict[int, ServedVersion] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)  # failed to load: not retried
    poll_error: str = ""  # why the last poll of the base path failed ("": it did not), logged once

    @property
    def name(self) -> str:
        return self.source.name


class ModelManager:
    def __init__(
        self,
        batching: BatchingParameters,
        listener_factory: Callable[[str, int], BatchListener] | None = None,
        *,
        batch_execution_timeout: float | None = None,
        deadline_policy: DeadlinePolicy | None = None,
        enable_model_warmup: bool = True,
        saved_model_tags: Sequence[str] = DEFAULT_TAGS,
        auto_batch_size: bool = False,
        batch_latency_budget_seconds: float = 0.0,
    ) -> None:
        self._batching = batching
        self._auto_batch_size = auto_batch_size
        self._batch_latency_budget = batch_latency_budget_seconds
        self._saved_model_tags = tuple(saved_model_tags)
        self._enable_model_warmup = enable_model_warmup
        self._batch_execution_timeout = batch_execution_timeout
        self._deadline_policy = deadline_policy
        self._listener_factory = listener_factory
        self._models: dict[str, _Model] = {}
        self._leases = LeaseCount()  # shared with every ServedVersion this manager makes
        self._poller: asyncio.Task[None] | None = None
        self._heap_changed = False  # a version was loaded (or refused) or unloaded since the last refreeze
        # One change of the served set at a time: a version poll, a config reload.
        self._changing = asyncio.Lock()
        self._starting = False  # see hold_requests_until_started

    # -- loading ---------------------------------------------------------------------------

    async def add_model(self, source: ModelSource) -> list[ServedVersion]:
        """Serve `source`: load and warm up the versions its policy aspires to.

        Raises ModelLoadError when none of them becomes AVAILABLE (a server cannot start without it).
        """
        if source.name in self._models:
            raise ValueError(f"model '{source.name}' is already served")
        model = self._models[source.name] = _Model(source)
        try:
            await self._reconcile(model, log_refusals=False)
        except ModelLoadError as error:  # the base path cannot be listed
            raise ModelLoadError(f"model '{source.name}': {error}") from None
        finally:
            self._refreeze_heap()
        available = [v for v in model.versions.values() if v.state is VersionState.AVAILABLE]
        refused = [v for v in model.versions.values() if v.error]
        if not available:  # the caller reports it, in one line: no "refused" line before it
            errors = "; ".join(f"version {v.version}: {v.error}" for v in refused)
            raise ModelLoadError(f"model '{source.name}' {errors}" if errors
                                 else f"model '{source.name}': {describe_base_path(source.base_path)}")
        for served in refused:
            self._log_refusal(model, served)
        return available

    async def apply_config(self, sources: Sequence[ModelSource]) -> None:
        """Serve exactly `sources` from now on, without failing a request to a model that stays.

        New models are loaded and warmed up first; if one cannot become available, the new ones are dropped
        again, nothing else changes, and ModelLoadError says why. Then models that stay take their new
        version policy and labels (new versions load beside the serving ones), and models no longer named
        stop taking requests and unload once the requests they hold have their answers. A model cannot move
        to another base path while served (ValueError): version numbers would mean other directories.
        """
        async with self._changing:
            await self._apply_config(sources)

    async def _apply_config(self, sources: Sequence[ModelSource]) -> None:
        wanted = {source.name: source for source in sources}
        for name, source in wanted.items():
            current = self._models.get(name)
            if current is not None and current.source.base_path != source.base_path:
                raise ValueError(
                    f"model '{name}' is served from {current.source.base_path}; it cannot move to "
                    f"{source.base_path} while served (remove it first, or restart)"
                )
        added: list[str] = []
        try:
            for name, source in wanted.items():
                if name not in self._models:
                    added.append(name)
                    await self.add_model(source)
        except ModelLoadError:
            for name in added:
                await self._remove_model(name)
            raise
        try:
            for name, model in list(self._models.items()):
                if name in wanted and name not in added and model.source != wanted[name]:
                    model.source = wanted[name]
                    await self._reconcile(model)
            for name in [name for name in self._models if name not in wanted]:
                await self._remove_model(name)
        finally:
            self._refreeze_heap()
        _log.info("serving models %s", sorted(self._models))

    async def _remove_model(self, name: str) -> None:
        """Stop routing to `name` (new requests get NOT_FOUND), then unload its versions as they drain."""
        model = self._models.pop(name, None)
        if model is None:
            return
        for served in list(model.versions.values()):
            if served.state is VersionState.AVAILABLE:
                await self._unload(served)
        _log.info("removed model %s", name)

    def start_polling(self, interval_seconds: float) -> None:
        """Look for new or removed versions every `interval_seconds` (<= 0: never, after the first load)."""
        if interval_seconds > 0 and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_forever(interval_seconds), name="model-version-poller"
            )

    async def poll(self) -> None:
        """One pass over every model's base path: load aspired versions, unload the others."""
        async with self._changing:
            await self._poll_models()

    async def _poll_models(self) -> None:
        try:
            for model in list(self._models.values()):
                try:
                    await self._reconcile(model)
                    model.poll_error = ""
                except ModelLoadError as error:  # e.g. the base path became unreadable: keep serving what loaded
                    if str(error) != model.poll_error:  # once per reason, not once per poll
                        model.poll_error = str(error)
                        _log.error("polling %s failed, still serving what loaded: %s", model.source.base_path, error)
                except Exception:  # a polling fault must never stop serving
                    _log.exception("polling %s failed", model.source.base_path)
        finally:
            self._refreeze_heap()

    def _refreeze_heap(self) -> None:
        """Once per pass that loaded or unloaded versions: keep the garbage collector off the new long-lived
        heap, and collect an unloaded version's cycles (models/heap.py)."""
        if self._heap_changed:
            self._heap_changed = False
            heap.refreeze()

    async def _poll_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            await self.poll()

    async def _reconcile(self, model: _Model, *, log_refusals: bool = True) -> None:
        on_disk = await asyncio.to_thread(find_versions, model.source.base_path)
        aspired = model.source.policy.aspired(sorted(on_disk))
        for version in sorted(aspired):
            current = model.versions.get(version)
            if version in model.refused or (current is not None and current.state is not VersionState.END):
                continue
            await self._load(model, version, on_disk[version], log_refusal=log_refusals)
        # Availability first: old versions go only once an aspired one serves in their place.
        if any(model.versions[v].state is VersionState.AVAILABLE for v in aspired if v in model.versions):
            for served in list(model.versions.values()):
                if served.version not in aspired and served.state is VersionState.AVAILABLE:
                    await self._unload(served)

    async def _load(self, model: _Model, version: int, path: Path, *, log_refusal: bool = True) -> None:
        served = ServedVersion(name=model.name, version=version, path=path, leases=self._leases)
        model.versions[version] = served
        served.state = VersionState.LOADING
        self._heap_changed = True  # loaded or refused, it leaves objects behind
        _log.info("loading model %s version %d from %s", model.name, version, served.path)
        started = time.perf_counter()
        try:
            served.runtime, served.batch_size_choice = await asyncio.to_thread(self._load_and_warm, served.path)
        except Exception as error:  # TF raises a zoo of types for corrupt models: refuse them all
            served.state, served.error = VersionState.END, describe_load_failure(error, served.path)
            model.refused.add(version)
            if log_refusal:
                self._log_refusal(model, served)
            return
        served.batching = self._batching
        if served.batch_size_choice is not None:
            served.batching = dataclasses.replace(self._batching, max_batch_size=served.batch_size_choice.batch_size)
        if served.runtime.image_contract:
            served.batcher = self._new_batcher(served, "", served.runtime.run_batch, served.batching)
        served.signature_batchers = SignatureBatchers(
            lambda label, run_batch, parameters: self._new_batcher(served, label, run_batch, parameters),
            served.batching,
        )
        served.loaded_seconds = time.perf_counter() - started
        metadata = served.runtime.metadata
        served.seeded_weights = metadata.get("weights") == "random"
        served.state = VersionState.AVAILABLE  # from here on, get(name) picks it if it is the highest
        _log.info("loaded model %s version %d in %.1f s", model.name, version, served.loaded_seconds)
        if served.seeded_weights:  # a build without network falls back to them: never let that pass unseen
            _log.warning(seeded_weights_warning(served, metadata),
                         extra={"model": model.name, "version": version, "weights": "random"})

    @staticmethod
    def _log_refusal(model: _Model, served: ServedVersion) -> None:
        serving = [v.version for v in model.versions.values() if v.state is VersionState.AVAILABLE]
        _log.error("refused model %s version %d: %s; still serving versions %s",
                   model.name, served.version, served.error, serving)

    def _new_batcher(
        self, served: ServedVersion, label: str, run_batch: Callable[..., Sequence[object]],
        parameters: BatchingParameters,
    ) -> Batcher:
        listener: BatchListener = StuckWatch(served)
        if self._listener_factory:
            listener = ListenerGroup(self._listener_factory(served.name, served.version), listener)
        return Batcher(
            run_batch, parameters, name=f"{served.name}-v{served.version}{'-' + label if label else ''}",
            listener=listener,
            execution_timeout=self._batch_execution_timeout, deadline_policy=self._deadline_policy,
        )

    def _load_and_warm(self, path: Path) -> tuple[ModelRuntime, BatchSizeChoice | None]:
        """Load, then run every allowed batch size and the recorded warm-up requests, so no client pays; with
        --max_batch_size=auto, time the batch sizes first (in a child process on a CPU) and keep the best
        (models/batch_size_probe.py)."""
        runtime = ModelRuntime(path, self._saved_model_tags)
        if not runtime.image_contract:
            recorded = run_recorded_predictions(runtime, path) if self._enable_model_warmup else 0
            _log.info("loaded %s: signatures %s%s", path, sorted(runtime.signatures),
                      f", warmed up with {recorded} recorded request(s)" if recorded else "")
            if self._auto_batch_size:
                _log.warning("%s: --max_batch_size=auto times image models only (it needs inputs of the model's "
                             "own making); batching at %d", path, self._batching.max_batch_size)
            return runtime, None
        choice = None
        max_batch_size = self._batching.max_batch_size
        if self._auto_batch_size:
            choice = time_batch_sizes(runtime, self._saved_model_tags, self._batch_latency_budget)
            max_batch_size = choice.batch_size
            _log.info("%s: %s", path, choice.describe(), extra={"batch_size_curve": [
                {"batch_size": p.batch_size, "items_per_second": round(p.items_per_second, 2),
                 "seconds_per_batch": round(p.seconds_per_batch, 4)} for p in choice.curve]})
        sizes = self._batching.allowed_batch_sizes or (1, max_batch_size)
        runtime.warm_up(sizes)
        requests = read_warmup_requests(path) if self._enable_model_warmup else []
        for request in requests:
            pixels = request.pixels if request.pixels is not None else [runtime.preprocess(i) for i in request.images or []]
            if len(pixels) and tuple(pixels[0].shape) != tuple(runtime.input_shape):
                raise ModelLoadError(f"{path / WARMUP_FILE}: pixels of shape {list(pixels[0].shape)} do not fit the model")
            step = max_batch_size
            for start in range(0, len(pixels), step):
                chunk = list(pixels[start:start + step])
                runtime.run_batch(chunk, len(chunk) if choice else self._batching.padded_size(len(chunk)))
        _log.info(
            "warmed up %s: batch sizes %s%s", path, sorted(set(sizes)),
            f", {len(requests)} request(s) from {WARMUP_FILE}" if requests else "",
        )
        return runtime, choice

    async def _unload(self, served: ServedVersion) -> None:
        """Stop routing to `served`, let every request that picked it finish, then release it."""
        served.state = VersionState.UNLOADING
        _log.info("unloading model %s version %d (%d request(s) in flight)", served.name, served.version, served.in_flight)
        await served._wait_idle()
        await close_batchers(served)
        served.state = VersionState.END
        # the SavedModel's memory goes with the last reference
        served.runtime, served.batcher, served.signature_batchers = None, None, None
        self._heap_changed = True
        _log.info("unloaded model %s version %d", served.name, served.version)

    # -- serving ---------------------------------------------------------------------------

    def hold_requests_until_started(self) -> None:
        """Until `started()`, `get` answers UNAVAILABLE for any model, known or not.

        TF Serving opens its ports only once the models it starts with have loaded, so its clients see
        UNAVAILABLE (connection refused) until then, and scripts take any answer naming a servable as "ready".
        This server answers health, status and metrics meanwhile, and its inference calls answer as TF
        Serving's clients expect."""
        self._starting = True

    def started(self) -> None:
        self._starting = False

    def get(self, name: str, version: int | str | None = None) -> ServedVersion:
        """The version to serve a request with: the given one (a number, or a label of the config file's
        version_labels), or the highest AVAILABLE one."""
        if self._starting:
            raise UnavailableError("the server is starting: its models are still loading; retry shortly")
        if isinstance(version, str):
            version = self.version_for_label(name, version)
        model = self._models.get(name)
        if model is None:
            raise servable_not_found(name, version)
        if version is not None:
            served = model.versions.get(version)
            if served is None or served.state is VersionState.END:
                raise servable_not_found(name, version)
            if served.state is not VersionState.AVAILABLE:  # loading or unloading: TF Serving's NOT_FOUND
                raise servable_not_found(name, version)
            return served
        latest: ServedVersion | None = None
        for served in model.versions.values():  # on every request: a loop, not a list and a max()
            if served.state is VersionState.AVAILABLE and (latest is None or served.version > latest.version):
                latest = served
        if latest is None:  # still loading: TF Serving answers NOT_FOUND, and its clients wait on that
            raise servable_not_found(name, None)
        return latest

    def version_for_label(self, name: str, label: str) -> int:
        """The version a label names; TF Serving's INVALID_ARGUMENT wording for a label it does not know."""
        model = self._models.get(name)
        version = model.source.version_for_label(label) if model is not None else None
        if version is None:
            raise InvalidInputError(f"Unrecognized servable version label: {label}")
        return version

    def versions(self, name: str) -> list[ServedVersion]:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"Could not find any versions of model {name}", model_name=name)
        return [model.versions[v] for v in sorted(model.versions)]

    @property
    def in_flight_requests(self) -> int:
        """Inference requests in flight now, over every model and version: the leases held (each request
        holds one from picking its version to its answer). What --max_inflight_requests limits; O(1)."""
        return self._leases.held

    def in_flight_requests_of(self, name: str) -> int:
        """Inference requests holding a lease on any version of model `name` (0 for a model not served);
        read at scrape time for the inference_inflight_requests metric."""
        model = self._models.get(name)
        if model is None:
            return 0
        return sum(served.in_flight for served in list(model.versions.values()))

    def stuck_seconds(self) -> dict[str, float]:
        """Models with a version stuck in a model call (a batch past --batch_execution_timeout_seconds and no
        batch completed since), and for how long."""
        now = time.monotonic()
        stuck: dict[str, float] = {}
        for name, model in self._models.items():
            for served in model.versions.values():
                if served.stuck_since is not None and served.state is VersionState.AVAILABLE:
                    stuck[name] = max(stuck.get(name, 0.0), now - served.stuck_since)
        return stuck

    @property
    def model_names(self) -> list[str]:
        return sorted(self._models)

    def serves(self, name: str) -> bool:
        return name in self._models

    def all_available(self) -> bool:
        return bool(self._models) and all(
            any(v.state is VersionState.AVAILABLE for v in m.versions.values()) for m in self._models.values()
        )

    async def close(self) -> None:
        """Stop polling, finish queued and running batches of every version, then release them."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait([self._poller])
            self._poller = None
        for model in self._models.values():
            for served in model.versions.values():
                if served.state in (VersionState.AVAILABLE, VersionState.UNLOADING):
                    served.state = VersionState.UNLOADING
                    await close_batchers(served)
                    served.state = VersionState.END
