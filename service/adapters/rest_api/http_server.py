"""TF Serving's REST API on aiohttp, on the server's own event loop, over the same data plane as gRPC.

Routes and error bodies follow tensorflow_model_server's HTTP handler: `POST /v1/models/{name}[/versions/{v}]
:predict|:classify`, `GET /v1/models/{name}[/versions/{v}]` (status) and `.../metadata`; failures answer
`{"error": "<message>"}` with the HTTP status TF Serving maps the gRPC code to. Requests go through the data
plane, so REST and gRPC requests for a model share its batcher and its batches. `/metrics` (Prometheus) is
served from the same port.
"""

from __future__ import annotations

import asyncio
import ssl
import logging
import re
from typing import Any, Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from service.adapters.http_support import observed, read_body
from service.adapters.rest_api import json_answers, json_body, json_examples, json_tensors
from service.adapters.tf_serving_messages import EXPORT_METADATA, model_metadata_response, model_status_response
from service.dataplane import DEFAULT_SIGNATURE, DataPlane, ExamplesRequest, PredictRequest
from service.errors import InvalidInputError, ModelNotFoundError, ServingError, canonical_code
from service.observability.metrics import METRICS_PATHS
from service.observability.observation import RequestObserver
from service.tensors.spec import SignatureSpec

_log = logging.getLogger(__name__)

# tensorflow_model_server's own URL patterns (http_rest_api_handler.cc).
_PREDICTION_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)"
)
_STATUS_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")
_MAX_VERSION = 2**63 - 1  # versions are int64

# The HTTP status TF Serving answers for each gRPC code (ToHTTPStatusCode in its net_http adapter).
HTTP_STATUS_BY_CODE: dict[str, int] = {
    "OK": 200,
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "RESOURCE_EXHAUSTED": 429,
    "PERMISSION_DENIED": 403,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500,
}
# Larger bodies are parsed in a thread. That lets the loop run only where the parser yields the interpreter
# (the standard library's number hooks do); orjson parses in one hold, about 6-9 ms per MB.
_OFF_LOOP_JSON_BYTES = 64 * 1024

MetricsExposition = Callable[[], tuple[bytes, str]]


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)




def add_metrics_routes(app: web.Application, exposition: MetricsExposition, extra_path: str = "") -> None:
    """Serve Prometheus' text format at /metrics, at TF Serving's /monitoring/prometheus/metrics, and at
    `extra_path` (--monitoring_config_file's) if it is another."""

    async def metrics(_request: web.Request) -> web.Response:
        body, content_type = exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    for path in dict.fromkeys((*METRICS_PATHS, extra_path or METRICS_PATHS[0])):
        app.router.add_get(path, metrics)


class _MalformedHttpIsNotAnError(logging.Filter):
    """aiohttp logs its refusal of malformed HTTP (an 8 KB URL, a broken chunk, an unknown encoding) at ERROR
    with a traceback; the client got its 400 and the server is fine, so it is one INFO line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (HttpProcessingError, RequestPayloadError)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args, record.exc_info, record.exc_text = "refused malformed HTTP: %s", (error,), None, None
        return True


_MALFORMED_HTTP_FILTER = _MalformedHttpIsNotAnError()
logging.getLogger("aiohttp.server").addFilter(_MALFORMED_HTTP_FILTER)


class RestServer:
    """An aiohttp application on the running loop; `start` binds, `stop` drains within the grace."""

    def __init__(
        self,
        dataplane: DataPlane,
        *,
        observer: RequestObserver | None = None,
        metrics_exposition: MetricsExposition | None = None,
        more_routes: Sequence[Callable[[web.Application], None]] = (),
        metrics_path: str = "",
        max_body_bytes: int = 64 * 1024 * 1024,
        shutdown_grace_seconds: float = 10.0,
        timeout_seconds: float = 0.0,
        idle_timeout_seconds: float = 60.0,
    ) -> None:
        self._dataplane = dataplane
        self._observer = observer
        self._timeout_seconds = timeout_seconds  # TF Serving's --rest_api_timeout_in_ms; 0: no deadline
        self._app = web.Application(client_max_size=max_body_bytes)
        # TF Serving matches its paths case-insensitively; other methods get a JSON error, not aiohttp's text.
        self._app.router.add_route("*", "/{path:(?i:v1)/.*}", self._dispatch)
        if metrics_exposition is not None:
            add_metrics_routes(self._app, metrics_exposition, metrics_path)
        for add_routes in more_routes:  # other HTTP protocols on the same port (KServe v2)
            add_routes(self._app)
        self._started = False
        self._runner = web.AppRunner(
            self._app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_grace_seconds,
            keepalive_timeout=idle_timeout_seconds,
        )

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Bind and serve (over TLS with `ssl_context`); returns the bound port (useful with port 0)."""
        await self._runner.setup()
        self._started = True
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting connections; requests in flight get the shutdown grace to finish."""
        if self._started:
            await self._runner.cleanup()

    # -- handlers --------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return await self._handle_get(request)
        if request.method == "POST":
            return await self._handle_post(request)
        return error_response(405, f"Malformed request: {request.method} {request.path}: use GET or POST")

    async def _handle_get(self, request: web.Request) -> web.Response:
        match = _STATUS_PATH.fullmatch(request.path)
        if match is None or match.group(1) is None:
            return await self._answer(request, None, "rest:unknown", "/v1/*", _malformed(request))
        name, version_text, label, metadata = match.groups()
        route = "/v1/models/{model_name}" + ("/metadata" if metadata else "")

        async def answer() -> dict[str, Any]:
            version = _version(version_text, label)
            if metadata:
                model = self._dataplane.describe_model(name, version)
                response = model_metadata_response(model)
                signatures = response.metadata["signature_def"]
                body = {"signature_def": _as_json(_unpack_signature_map(signatures))}
                if model.export_metadata:  # as the file has it: integers stay integers, which a Struct would not keep
                    body[EXPORT_METADATA] = dict(model.export_metadata)
                return {"model_spec": _as_json(response.model_spec), "metadata": body}
            return _as_json(model_status_response(self._dataplane.model_status(name, version)))

        return await self._answer(request, name, "rest:metadata" if metadata else "rest:status", route, answer)

    async def _handle_post(self, request: web.Request) -> web.Response:
        match = _PREDICTION_PATH.fullmatch(request.path)
        if match is None:
            return await self._answer(request, None, "rest:unknown", "/v1/*", _malformed(request))
        name, version_text, label, verb = match.groups()
        verb = verb.lower()

        # The request's deadline counts from its arrival, as a gRPC deadline does.
        deadline = asyncio.get_running_loop().time() + self._timeout_seconds if self._timeout_seconds else None

        async def answer() -> dict[str, Any]:
            version = _version(version_text, label)
            self._dataplane.check_model(name, version)  # NOT_FOUND before input errors, like TF Serving
            verb_handler = {"predict": self._predict, "classify": self._classify, "regress": self._regress}[verb]
            # The parsed body is handed over, not kept here: each handler drops it once it has its tensors.
            return await verb_handler(name, version, await _json_body(request, deadline), deadline)

        return await self._answer(request, name, f"rest:{verb}", f"/v1/models/{{model_name}}:{verb}", answer)

    # Each handler hands the parsed body to an object that lets go of it once it has the tensors, before the
    # model is awaited. A nested list of numbers is a thousand lists for one 32x32x3 input: kept alive across
    # the wait by every request in flight, they are what the garbage collector's young generations scan again
    # and again (a quarter of the server's CPU per request at 64 clients on a small model, measured), where a
    # numpy array is nothing to scan.

    async def _predict(
        self, name: str, version: int | str | None, body: dict[str, Any], deadline: float | None
    ) -> dict[str, Any]:
        """TF Serving's JSON tensors (row or columnar) in, the same format out."""
        signature, inputs = _signature(body), _JsonInputs(body)
        del body
        result = await self._dataplane.predict(PredictRequest(name, version, signature, inputs, deadline=deadline))
        return json_answers.predict_response(result.outputs, inputs.row_format)

    async def _classify(
        self, name: str, version: int | str | None, body: dict[str, Any], deadline: float | None
    ) -> dict[str, Any]:
        request = _examples_request(name, version, body, deadline)
        del body
        classified = await self._dataplane.classify(request)
        return json_answers.classify_response(classified.classes, classified.scores)

    async def _regress(
        self, name: str, version: int | str | None, body: dict[str, Any], deadline: float | None
    ) -> dict[str, Any]:
        request = _examples_request(name, version, body, deadline)
        del body
        regressed = await self._dataplane.regress(request)
        return json_answers.regress_response(regressed.values)

    async def _answer(
        self, request: web.Request, model: str | None, method: str, route: str,
        compute: Callable[[], Awaitable[dict[str, Any]]],
    ) -> web.Response:
        """Run a handler body, observed like every gRPC request (metrics, server span, access log); map every
        failure onto TF Serving's {"error": ...} with its HTTP status."""
        return await observed(
            self._observer, request, model, method, route, lambda: _respond(compute), HTTP_STATUS_BY_CODE
        )


async def _respond(compute: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[web.Response, str]:
    """The response and its canonical status code."""
    try:
        return web.Response(body=json_answers.dumps(await compute()), content_type="application/json"), "OK"
    except ServingError as error:
        code = canonical_code(error)
        return error_response(HTTP_STATUS_BY_CODE.get(code, 500), str(error)), code
    except web.HTTPRequestEntityTooLarge as error:
        return error_response(413, error.text or "request body too large"), "RESOURCE_EXHAUSTED"
    except Exception:
        _log.exception("unexpected error in REST handler")
        return error_response(500, "internal server error (logged on the server)"), "INTERNAL"


def _malformed(request: web.Request) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def refuse() -> dict[str, Any]:
        raise ModelNotFoundError(f"Malformed request: {request.method} {request.path}")

    return refuse


def _version(version_text: str | None, label: str | None) -> int | str | None:
    """`/versions/<number>`, `/labels/<label>` (resolved by the model manager), or None: the latest."""
    if label is not None:
        return label
    if version_text is None:
        return None
    if len(version_text) > 19 or int(version_text) > _MAX_VERSION:  # TF Serving's wording
        raise InvalidInputError(f"Failed to convert version: {version_text[:40]} to numeric.")
    return int(version_text)


class _JsonInputs:
    """A Predict body's tensors, parsed against the signature the data plane found (JSON numbers take the
    input's type), then let go of; `row_format` says how the request was written, for the answer."""

    __slots__ = ("_body", "row_format")

    def __init__(self, body: dict[str, Any]) -> None:
        self._body: dict[str, Any] | None = body
        self.row_format = True

    @property
    def names(self) -> list[str]:
        """The input names the body spells out (none for bare values: a one-input signature's)."""
        body = self._body or {}
        named = body.get("inputs")
        instances = body.get("instances")
        if named is None and isinstance(instances, list) and instances:
            named = instances[0]
        return list(named) if isinstance(named, dict) and "b64" not in named else []

    def decode(self, signature: SignatureSpec) -> dict[str, Any]:
        body, self._body = self._body, None
        inputs, self.row_format = json_tensors.parse_predict_request(body, signature)
        return inputs


class _ParsedOnce:
    """The body parsed when the data plane asks for it, then let go of."""

    __slots__ = ("_parse", "_body")

    def __init__(self, parse: Callable[[Any], Any], body: dict[str, Any]) -> None:
        self._parse, self._body = parse, body

    def __call__(self) -> Any:
        body, self._body = self._body, None
        return self._parse(body)


def _examples_request(
    name: str, version: int | str | None, body: dict[str, Any], deadline: float | None
) -> ExamplesRequest:
    """A Classify or Regress body: its tf.Examples parsed when the data plane asks for them."""
    return ExamplesRequest(name, version, _signature(body), _ParsedOnce(json_examples.examples_from_json, body),
                           deadline)


def _signature(body: dict[str, Any]) -> str:
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):  # null, false or 0 too: not a quiet fall-back to the default
        raise InvalidInputError("'signature_name' must be a string")
    return signature or DEFAULT_SIGNATURE


async def _json_body(request: web.Request, deadline: float | None) -> dict[str, Any]:
    """The body, parsed (a large one in a thread); TF Serving's DEADLINE_EXCEEDED (504) when it does not arrive
    in time."""
    raw = await read_body(request, deadline)
    loads = json_body.loads
    body = await asyncio.to_thread(loads, raw) if len(raw) > _OFF_LOOP_JSON_BYTES else loads(raw)
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return body


def _as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _unpack_signature_map(packed: Any) -> get_model_metadata_pb2.SignatureDefMap:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    packed.Unpack(signature_map)
    return signature_map
